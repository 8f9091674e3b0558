"""Plain data the trace engine returns besides polars frames."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class GpuInfo:
    """One GPU of the profiled machine, from ``TARGET_INFO_GPU`` (fields None when unknown).

    ``clock_hz`` is the SM clock in Hz, ``memory_bandwidth_bps`` the DRAM bandwidth in bytes
    per second, ``memory_bytes`` the memory size in bytes.
    """

    id: int | None
    name: str | None
    sm_count: int | None = None
    clock_hz: int | None = None
    memory_bandwidth_bps: int | None = None
    memory_bytes: int | None = None


@dataclass(frozen=True)
class TraceInfo:
    """What an export holds. Counts are None when the table is missing from the export.

    ``graph_launches`` counts whole-graph records (``CUPTI_ACTIVITY_KIND_GRAPH_TRACE``, a
    trace made with ``--cuda-graph-trace=graph``). Timestamps are the export's (ns since the
    session's time base); ``first_ns``/``last_ns`` bound the NVTX ranges, the GPU operations
    and the runtime calls that launched them, and ``duration_ns = last_ns - first_ns``.
    """

    path: Path
    exporter_version: str | None
    schema_version: str | None
    gpus: list[GpuInfo] = field(default_factory=list)
    nvtx_ranges: int | None = None
    kernels: int | None = None
    runtime_calls: int | None = None
    memcpy: int | None = None
    memset: int | None = None
    graph_launches: int | None = None
    first_ns: int | None = None
    last_ns: int | None = None
    duration_ns: int | None = None


@dataclass(frozen=True)
class GraphRecords:
    """Whole-graph records in a scope: ``launches`` CUDA-graph executions traced as one record
    each (``--cuda-graph-trace=graph``, their kernels not traced), ``graph_ns`` their summed
    GPU time in ns."""

    launches: int
    graph_ns: int
