"""``dsocr-nsys mfu``: per-stage MFU/MBU from a trace and a static-compute file.

:mod:`.compute` does the arithmetic on frames, :mod:`.peaks` holds the GPU peak table,
:mod:`.report` opens the inputs and shapes the output, :mod:`.plot` draws (matplotlib, lazily).
"""

from .compute import MfuResult, compute_mfu
from .peaks import GpuPeak, PeakChoice, TraceGpu, choose_peak, detect_gpu, known_gpus, peak_table
from .report import analyse, data_report, display_report, report_for, write_dir

__all__ = [
    "GpuPeak",
    "MfuResult",
    "PeakChoice",
    "TraceGpu",
    "analyse",
    "choose_peak",
    "compute_mfu",
    "data_report",
    "detect_gpu",
    "display_report",
    "known_gpus",
    "peak_table",
    "report_for",
    "write_dir",
]
