"""The trace engine's steps, declared in one list: which ``sql/`` file (or numpy step) builds
which DuckDB temp tables and results from which inputs.

:class:`~dsocr_nsys.trace.engine.Trace` builds a table by running the step that creates it,
after the steps that create the temp tables it needs (and only once per opened trace). The
order lives here, not in the engine's code: a new step is a row below and its SQL file (or
its method).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..vocab import NvtxEventType

KERNEL_TABLE = "CUPTI_ACTIVITY_KIND_KERNEL"
RUNTIME_TABLE = "CUPTI_ACTIVITY_KIND_RUNTIME"
GRAPH_TABLE = "CUPTI_ACTIVITY_KIND_GRAPH_TRACE"
NVTX_TABLE = "NVTX_EVENTS"

#: The GPU-operation tables of an export and the SQL branch that reads each into ``ops`` (one
#: UNION ALL of the branches, so DuckDB scans the tables side by side: a small table's SQLite
#: scan runs on one thread); a table the export lacks is skipped.
OP_SOURCES: dict[str, str] = {
    KERNEL_TABLE: "trace_ops_kernel",
    "CUPTI_ACTIVITY_KIND_MEMCPY": "trace_ops_memcpy",
    "CUPTI_ACTIVITY_KIND_MEMSET": "trace_ops_memset",
    GRAPH_TABLE: "trace_ops_graph",
}

#: ``NVTX_EVENTS.eventType`` values bound as parameters of the NVTX SQL (named once, in vocab).
NVTX_PARAMS: dict[str, int] = {
    "push_pop": NvtxEventType.PUSH_POP_RANGE,
    "start_end": NvtxEventType.START_END_RANGE,
    "nvtxt_push_pop": NvtxEventType.NVTXT_PUSH_POP_RANGE,
    "nvtxt_start_end": NvtxEventType.NVTXT_START_END_RANGE,
    "domain_create": NvtxEventType.DOMAIN_CREATE,
}


@dataclass(frozen=True)
class Step:
    """One step. ``name``: the SQL file ``sql/<name>.sql``, or, with ``numpy``, the method
    ``Trace._<name>`` that computes it in numpy (:mod:`dsocr_nsys.trace.attribution`) from the
    SQL files it names in ``sql_files``; ``reads``: the export tables it reads (``t.<TABLE>``);
    ``needs``: what earlier steps made that it reads; ``creates``: what it makes (DuckDB temp
    tables and views; a numpy step's in-memory results too); ``params``: the names of the
    values the engine binds."""

    name: str
    reads: tuple[str, ...]
    needs: tuple[str, ...]
    creates: tuple[str, ...]
    params: tuple[str, ...] = ()
    numpy: bool = False
    sql_files: tuple[str, ...] = ()


STEPS: tuple[Step, ...] = (
    # the operations, read by one UNION ALL of OP_SOURCES and kept as numpy columns
    Step("ops", tuple(OP_SOURCES), (), ("ops_columns",), (), True, tuple(OP_SOURCES.values())),
    # the DuckDB view ops over those columns (trace_ops.sql), built only for the SQL that reads
    # operations (kernels): DuckDB's register waits for a polars import still running
    Step("ops_view", (), ("ops_columns",), ("ops",), (), True, ("trace_ops",)),
    Step(
        "launches",
        (RUNTIME_TABLE,),
        ("ops_columns",),
        ("launches",),
        (),
        True,
        ("trace_runtime_calls",),
    ),
    Step(
        "trace_nvtx_ranges",
        (NVTX_TABLE, "StringIds"),
        ("ops_columns", "launches"),
        ("nvtx_range",),
        ("last_ns", *NVTX_PARAMS),
    ),
    Step("trace_range_tree", (), ("nvtx_range",), ("range_tree",)),
    Step("sweep", (), ("ops_columns",), ("sweep",), (), True),
    Step(
        "range_metrics",
        (),
        ("nvtx_range", "ops_columns", "launches", "sweep"),
        ("range_metrics", "range_devices"),
        (),
        True,
        ("trace_range_intervals",),
    ),
    Step(
        "trace_ranges",
        (),
        ("nvtx_range", "range_tree", "range_metrics", "range_devices"),
        ("range_all",),
    ),
)

#: The step that creates each table or result.
STEP_FOR: dict[str, Step] = {table: step for step in STEPS for table in step.creates}
