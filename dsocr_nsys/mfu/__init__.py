"""``dsocr-nsys mfu``: per-stage MFU/MBU from a trace and a static-compute file.

Load → compute → present: :mod:`.report` loads the inputs and chooses the peak
(:mod:`.peaks`, the GPU peak table), :mod:`.compute` does the arithmetic on frames and records
findings, :mod:`.notes` writes every note's text from them, :mod:`.report` and :mod:`.plot`
(matplotlib, lazily) present the result.
"""

from importlib import import_module
from typing import Any

# Names resolved on first use, so `from dsocr_nsys.mfu.peaks import ...` (the polars-free
# `profile` process validating --gpu on the GPU image) does not import polars via .compute.
_EXPORTS = {
    "MfuResult": "compute",
    "compute_mfu": "compute",
    "GpuPeak": "peaks",
    "PeakChoice": "peaks",
    "TraceGpu": "peaks",
    "choose_peak": "peaks",
    "detect_gpu": "peaks",
    "known_gpus": "peaks",
    "peak_table": "peaks",
    "analyse": "report",
    "data_report": "report",
    "display_report": "report",
    "report_for": "report",
    "write_dir": "report",
}


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)


__all__ = sorted(_EXPORTS)
