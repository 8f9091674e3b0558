"""``dsocr-nsys mfu``: per-stage MFU/MBU from a trace and a static-compute file.

Load → compute → present: :mod:`.report` loads the inputs and chooses the peak
(:mod:`.peaks`, the GPU peak table), :mod:`.compute` does the arithmetic on frames and records
findings, :mod:`.notes` writes every note's text from them, :mod:`.report` and :mod:`.plot`
(matplotlib, lazily) present the result.
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
