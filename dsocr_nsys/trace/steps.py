"""The trace engine's SQL steps, declared in one list: which ``sql/`` file builds which DuckDB
temp tables from which inputs.

:class:`~dsocr_nsys.trace.engine.Trace` builds a table by running the step that creates it,
after the steps that create the temp tables it needs (and only once per opened trace). The
order lives here, not in the engine's code: a new step is a row below and its SQL file.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..vocab import NvtxEventType

KERNEL_TABLE = "CUPTI_ACTIVITY_KIND_KERNEL"
RUNTIME_TABLE = "CUPTI_ACTIVITY_KIND_RUNTIME"
GRAPH_TABLE = "CUPTI_ACTIVITY_KIND_GRAPH_TRACE"
NVTX_TABLE = "NVTX_EVENTS"

#: The GPU-operation tables of an export and the SQL branch that reads each into ``ops``
#: (trace_ops.sql says how they are combined); a table the export lacks is skipped.
OP_SOURCES: dict[str, str] = {
    KERNEL_TABLE: "trace_ops_kernel",
    "CUPTI_ACTIVITY_KIND_MEMCPY": "trace_ops_memcpy",
    "CUPTI_ACTIVITY_KIND_MEMSET": "trace_ops_memset",
    GRAPH_TABLE: "trace_ops_graph",
}

#: Exports without this table (schema 2, as nsys 2022 writes) record each launch twice in the
#: runtime table; for them a step runs its variant in SCHEMA2_SQL instead.
SCHEMA3_TABLE = "META_DATA_EXPORT"
SCHEMA2_SQL: dict[str, str] = {"trace_launches": "trace_launches_merged"}
#: A schema-3 export is not trusted to record each launch once: after trace_launches, this
#: check (bool) runs, and where it is true the step's SCHEMA2_SQL variant replaces its table.
DOUBLED_CHECK: dict[str, str] = {"trace_launches": "trace_launches_doubled"}

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
    """One SQL step. ``sql``: the file ``sql/<sql>.sql``; ``reads``: the export tables it reads
    (``t.<TABLE>``); ``needs``: the temp tables of earlier steps it reads; ``creates``: the temp
    tables (and views) it makes; ``params``: the names of the values the engine binds."""

    sql: str
    reads: tuple[str, ...]
    needs: tuple[str, ...]
    creates: tuple[str, ...]
    params: tuple[str, ...] = ()


STEPS: tuple[Step, ...] = (
    # ops is created empty by trace_ops, then filled from OP_SOURCES in one INSERT.
    Step("trace_ops", tuple(OP_SOURCES), (), ("ops",)),
    Step("trace_launches", (RUNTIME_TABLE,), ("ops",), ("launches",)),
    Step(
        "trace_nvtx_ranges",
        (NVTX_TABLE, "StringIds"),
        ("ops", "launches"),
        ("nvtx_range",),
        ("last_ns", *NVTX_PARAMS),
    ),
    Step("trace_range_tree", (), ("nvtx_range",), ("range_tree",)),
    Step(
        "trace_range_ops",
        (),
        ("nvtx_range", "launches", "ops"),
        ("range_launches", "range_ops"),
    ),
    Step("trace_op_sweep", (), ("ops",), ("op_sweep",)),
    Step("trace_range_metrics", (), ("range_launches", "op_sweep"), ("range_metrics",)),
    Step("trace_ranges", (), ("nvtx_range", "range_tree", "range_metrics"), ("range_all",)),
)

#: The step that creates each temp table.
STEP_FOR: dict[str, Step] = {table: step for step in STEPS for table in step.creates}
