"""Hardware truth: what the GPU executed (Nsight Compute counters per stage) and what it can
reach (measured GEMM and copy ceilings).

- :mod:`.ncu`: reads an ``ncu --csv --page raw`` file and sums tensor-core and FP32 FLOPs per
  ``dsocr`` stage (pure Python: runs on the GPU image without polars);
- :mod:`.calibrate`: achievable dense BF16 GEMM TFLOP/s and device-copy GB/s (torch only);
- :mod:`.launch`: the ``profile --ncu`` / calibrate steps of the launcher;
- :mod:`.join`: hardware FLOPs joined onto the ``mfu`` stages frame (polars);
- :mod:`.report`: the ``hwflops`` and ``calibrate`` reports (polars).

:mod:`.ncu`, :mod:`.calibrate` and :mod:`.launch` import no polars, so the launcher on the
bare GPU image can use them; :mod:`.join` and :mod:`.report` serve the analysis CLI.
"""
