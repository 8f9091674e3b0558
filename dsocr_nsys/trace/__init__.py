"""Trace engine: per-range and per-stage GPU time from Nsight Systems exports (SQLite, Parquet
folders, .nsys-rep reports)."""

from .engine import Trace, open_trace
from .model import GpuInfo, GraphRecords, TraceInfo

__all__ = ["GpuInfo", "GraphRecords", "Trace", "TraceInfo", "open_trace"]
