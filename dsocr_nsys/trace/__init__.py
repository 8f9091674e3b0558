"""Trace engine: per-range and per-stage GPU time from Nsight Systems SQLite exports."""

from .engine import Trace, open_trace
from .model import GpuInfo, TraceInfo

__all__ = ["GpuInfo", "Trace", "TraceInfo", "open_trace"]
