"""Per-range and per-stage GPU time from an Nsight Systems export: DuckDB SQL and numpy.

DuckDB reads the export and aggregates with the SQL in ``sql/trace_*.sql``; the interval work
in between (launch join, projection onto ranges, busy union) is numpy, in
:mod:`dsocr_nsys.trace.attribution`. The steps and their order are declared in
:mod:`dsocr_nsys.trace.steps`, and this module runs them, checks what the export holds and
turns results into polars frames. The export (SQLite, a Parquet folder, or a ``.nsys-rep``
exported once, see :mod:`dsocr_nsys.trace.source`) is read once per :class:`Trace`: the
columns needed are kept on first use (the operations as numpy columns, with a DuckDB view
``ops`` over them once SQL needs it; ``nvtx_range``, ``range_all``, ... as DuckDB temp tables),
and every later call queries those.
See docs/trace-engine.md for the definitions and how they relate to ``nsys stats``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import duckdb

from ..errors import InputFileError, StageNotFoundError, TraceContentError
from ..sqlfiles import load_sql
from . import db, source
from .model import GpuInfo, GraphRecords, TraceInfo
from .steps import (
    GRAPH_TABLE,
    KERNEL_TABLE,
    NVTX_PARAMS,
    NVTX_TABLE,
    OP_SOURCES,
    RUNTIME_TABLE,
    STEP_FOR,
)

if TYPE_CHECKING:  # imported where used, so that a command's start-up can import numpy and
    # polars on another thread while DuckDB reads the export (see cli._open_trace_cli)
    import numpy as np
    import polars as pl

    from . import attribution

NVTX_FLAG = (
    "record with `nsys profile -t cuda,nvtx ...` and export with `nsys export --type sqlite`"
)
STAGE_BY = ("name", "domain")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def open_trace(
    path: str | Path, threads: int | None = None, nsys: str | Path | None = None
) -> Trace:
    """Open an Nsight Systems export read-only: an ``nsys export --type sqlite`` file, an
    ``nsys export --type parquetdir`` folder, or a ``.nsys-rep`` report (exported once to a
    sibling cache with nsys: ``nsys``, else ``$NSYS``, else ``nsys`` on PATH).

    Raises :class:`~dsocr_nsys.errors.InputFileError` when the path is missing, not SQLite or
    truncated, :class:`~dsocr_nsys.errors.TraceContentError` when it is not an nsys export,
    :class:`~dsocr_nsys.errors.ToolNotFoundError` for a report without nsys.
    ``threads`` caps DuckDB's worker threads (default: all cores).
    """
    export = source.resolve(Path(path), nsys=nsys)
    return Trace(Path(path), db.connect(export, threads=threads))


class Trace:
    """One opened export. Use as a context manager or call :meth:`close`."""

    def __init__(self, path: Path, con: duckdb.DuckDBPyConnection) -> None:
        self.path = path
        self._con = con
        self._tables = db.table_names(con)
        self._done: set[str] = set()  # steps run (by name)
        # the numpy steps' results (steps.STEPS)
        self._ops: dict[str, np.ndarray] = {}
        self._launches: attribution.Launches | None = None
        self._sweep: attribution.Sweep | None = None
        self._range_ops: attribution.RangeOps | None = None
        self._ranges_checked = False
        self._bounds_ns: tuple[int | None, int | None] | None = None
        self._trace_busy_ns: int | None = None
        # (stage, include_warmup) that kernel_scope holds: kernels() and graph_records() of one
        # scope (the kernels command asks both) fill it once
        self._scope_of: tuple[str | None, bool] | None = None

    # --- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        """Release the DuckDB connection (the export itself was never opened for writing)."""
        self._con.close()

    def __enter__(self) -> Trace:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- query plumbing --------------------------------------------------------------------

    @contextmanager
    def _querying(self) -> Iterator[None]:
        """Run DuckDB calls: bound parameters without the pandas import, and DuckDB errors
        raised while reading the export turned into the package's typed errors."""
        try:
            with db.no_pandas_import():
                yield
        except (duckdb.ParserException, duckdb.OutOfMemoryException):
            raise  # our bug, or the machine's limit: not the file's fault
        except (duckdb.CatalogException, duckdb.BinderException) as exc:
            raise TraceContentError(
                f"{self.path}: the export lacks a table or column the engine reads "
                f"({_first_line(exc)}); export it with Nsight Systems 2022.2 or newer"
            ) from exc
        except duckdb.Error as exc:
            raise InputFileError(
                f"{self.path}: damaged or unreadable export ({_first_line(exc)}); export it again"
            ) from exc

    def _execute(self, sql: str, params: dict[str, Any] | None = None) -> duckdb.DuckDBPyConnection:
        """Execute one statement; the connection is returned for ``fetchone``/``fetchall``."""
        with self._querying():
            return self._con.execute(sql, params)

    def _run(self, name: str, params: dict[str, Any] | None = None) -> duckdb.DuckDBPyConnection:
        """Execute ``sql/<name>.sql`` (see :meth:`_execute`)."""
        return self._execute(load_sql(name), params)

    def _frame(self, sql: str, params: dict[str, Any] | None = None) -> pl.DataFrame:
        """A SELECT's result as a polars frame.

        Handed over through the Arrow C stream interface rather than ``.pl()``, which would
        import pyarrow (0.1-0.3 s at start-up) only to pass the same buffers along.
        """
        import polars as pl

        with self._querying():
            # Loading runs with preserve_insertion_order off (db.connect); under it DuckDB's
            # Arrow export hands out result chunks as threads finish them, so a result of more
            # than one chunk (2,048 rows) would lose its ORDER BY. On for results only.
            self._con.execute("SET preserve_insertion_order = true")
            try:
                return pl.DataFrame(self._con.sql(sql, params=params))
            finally:
                self._con.execute("SET preserve_insertion_order = false")

    def _numpy(self, sql: str, params: dict[str, Any] | None = None) -> dict[str, np.ndarray]:
        """A SELECT's result as numpy columns (NULLs as -1: never a time, id or device here).

        Without parameters through a relation (``sql``), which DuckDB materialises on all
        threads, where a statement's result (``execute``) is converted on one: 0.39 against
        0.79 s wall for 1.5 M ops. With parameters as a statement: a relation re-reads bound
        values row by row (0.3 s more per 1.5 M rows compared)."""
        with self._querying():
            result = self._con.execute(sql, params) if params else self._con.sql(sql)
            columns = result.fetchnumpy()
        import numpy as np

        # a column with NULLs comes as a masked array (numpy.ma is imported only then: 15 ms)
        return {
            name: col if type(col) is np.ndarray else np.ma.filled(col, -1)
            for name, col in columns.items()
        }

    def _register(self, name: str, columns: dict[str, np.ndarray], table: bool) -> None:
        """Make numpy columns readable by SQL as ``name``: a view over the arrays, or (``table``)
        a temp table copied from them."""
        with self._querying():
            if not table:
                self._con.register(name, columns)
                return
            self._con.register("_numpy_columns", columns)
            try:
                self._con.execute(
                    f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM _numpy_columns"
                )
            finally:
                self._con.unregister("_numpy_columns")

    def has_table(self, table: str) -> bool:
        """Whether the export holds ``table``."""
        return table in self._tables

    def _build(self, table: str) -> None:
        """Make ``table``: run the step that creates it (steps.STEPS), after the steps it
        needs, each once."""
        step = STEP_FOR[table]
        if step.name in self._done:
            return
        for need in step.needs:
            self._build(need)
        if step.name == "trace_nvtx_ranges" and not self.has_table(NVTX_TABLE):
            raise TraceContentError(
                f"{self.path}: no NVTX_EVENTS table: the trace was recorded without NVTX; "
                f"{NVTX_FLAG}"
            )
        if step.numpy:
            getattr(self, f"_step_{step.name}")()
        else:
            self._run(step.name, {name: self._param(name) for name in step.params} or None)
        self._done.add(step.name)
        if step.name == "trace_nvtx_ranges":
            self._check_nvtx_names()

    def _step_ops(self) -> None:
        """ops_columns: every GPU operation (trace_ops_*.sql), as numpy columns."""
        present = [sql for table, sql in OP_SOURCES.items() if self.has_table(table)]
        if present:
            ops = self._numpy("\nUNION ALL\n".join(load_sql(sql) for sql in present))
        # numpy only now: a command imports it on another thread while DuckDB reads (cli.py),
        # and the first read is the first use (0.2 s of waiting on a 16-core host when earlier)
        import numpy as np

        from . import attribution

        if not present:
            names = ("op_id", "start_ns", "end_ns", "device_id", "correlation_id", "global_pid")
            ops = {name: np.empty(0, dtype=np.int64) for name in names}
        ops["kind"] = (ops["op_id"] >> attribution.KIND_SHIFT).astype(np.int8)
        self._ops = ops

    def _step_ops_view(self) -> None:
        """ops: the DuckDB view over ops_columns (trace_ops.sql)."""
        self._register("ops_columns", self._ops, table=False)
        self._run("trace_ops")

    def _step_launches(self) -> None:
        """launches: each operation's launching call (trace_runtime_calls.sql, joined in numpy)."""
        import numpy as np

        from . import attribution

        if self.has_table(RUNTIME_TABLE):
            calls = self._numpy(load_sql("trace_runtime_calls"))
        else:
            calls = {
                k: np.empty(0, dtype=np.int64)
                for k in ("correlationId", "globalTid", "start", "end")
            }
        self._launches = attribution.join_launches(self._ops, calls)

    def _step_sweep(self) -> None:
        """sweep: every device's operations in start order (attribution.sweep)."""
        from . import attribution

        self._sweep = attribution.sweep(self._ops)

    def _step_range_metrics(self) -> None:
        """range_metrics, range_devices: the projection of operations onto NVTX ranges."""
        from . import attribution

        assert self._launches is not None and self._sweep is not None
        ranges = self._numpy(load_sql("trace_range_intervals"))
        metrics, devices, self._range_ops = attribution.range_metrics(
            self._ops, self._launches, ranges, self._sweep
        )
        self._register("range_metrics", metrics, table=True)
        self._register("range_devices", devices, table=True)

    def _param(self, name: str) -> Any:
        if name == "last_ns":
            return self._bounds()[1]
        return NVTX_PARAMS[name]

    def _bounds(self) -> tuple[int | None, int | None]:
        """First and last timestamp of the GPU operations and their launch calls."""
        if self._bounds_ns is None:
            self._build("launches")
            assert self._launches is not None
            starts = [a for a in (self._ops["start_ns"], self._launches.start_ns) if len(a)]
            ends = [a for a in (self._ops["end_ns"], self._launches.end_ns) if len(a)]
            self._bounds_ns = (
                min(int(a.min()) for a in starts) if starts else None,
                max(int(a.max()) for a in ends) if ends else None,
            )
        return self._bounds_ns

    def _op_counts(self) -> tuple[int, int, int, int]:
        """Operations per kind: kernels, memcpys, memsets, whole-graph records."""
        import numpy as np

        from . import attribution

        self._build("ops_columns")
        counts = np.bincount(self._ops["kind"], minlength=max(attribution.OP_KINDS.values()) + 1)
        kernel, memcpy, memset, graph = (
            int(counts[code]) for code in attribution.OP_KINDS.values()
        )
        return kernel, memcpy, memset, graph

    def _check_nvtx_names(self) -> None:
        """An export whose range names point at missing StringIds rows is damaged: one clear
        error rather than nameless rows."""
        missing, total, example = self._run("trace_check_nvtx_names").fetchone()
        if missing:
            raise TraceContentError(
                f"{self.path}: {missing:,} of {total:,} NVTX ranges name a string (textId "
                f"{example}) that the StringIds table lacks: the export is damaged or "
                "incomplete; export it again from the .nsys-rep"
            )

    def _require_gpu_ops(self, kernels_only: bool = False) -> None:
        """Raise unless the trace holds GPU operations (kernels; or whole-graph records, unless
        ``kernels_only``)."""
        tables = (KERNEL_TABLE,) if kernels_only else (KERNEL_TABLE, GRAPH_TABLE)
        if not any(self.has_table(t) for t in tables):
            raise TraceContentError(
                f"{self.path}: no CUDA kernels ({KERNEL_TABLE} table missing): the trace was "
                f"recorded without CUDA tracing; {NVTX_FLAG}"
            )
        kernels, _, _, graphs = self._op_counts()
        if not (kernels if kernels_only else kernels + graphs):
            raise TraceContentError(
                f"{self.path}: no CUDA kernels ({KERNEL_TABLE} is empty): nothing ran on the GPU "
                "while profiling; check the profiled command and the capture range"
            )

    def _load_ranges(self) -> None:
        """Materialise NVTX ranges, their nesting, op attribution and metrics (once)."""
        if self._ranges_checked:
            return
        self._build("nvtx_range")
        self._require_gpu_ops()
        if not self.has_table(RUNTIME_TABLE):
            raise TraceContentError(
                f"{self.path}: no CUDA runtime calls ({RUNTIME_TABLE} missing), so GPU work cannot "
                f"be attributed to NVTX ranges; {NVTX_FLAG}"
            )
        if not self._run("trace_nvtx_bounds").fetchone()[2]:
            raise TraceContentError(
                f"{self.path}: the NVTX_EVENTS table holds no ranges; wrap the stages in NVTX "
                "ranges (nvtx.annotate / torch.cuda.nvtx.range_push) and profile again"
            )
        self._build("range_all")
        self._ranges_checked = True

    def _trace_busy(self) -> int:
        if self._trace_busy_ns is None:
            self._build("sweep")
            assert self._sweep is not None
            self._trace_busy_ns = sum(self._sweep.busy_ns.values())
        return self._trace_busy_ns

    def _known_names(self) -> list[str]:
        rows = self._execute(
            "SELECT name FROM range_all GROUP BY name ORDER BY min(start_ns)"
        ).fetchall()
        return [r[0] for r in rows]

    def _check_names(self, names: list[str]) -> None:
        known = self._known_names()
        missing = [n for n in names if n not in set(known)]
        if missing:
            shown = ", ".join(known[:25]) + (
                f", ... ({len(known)} names)" if len(known) > 25 else ""
            )
            raise StageNotFoundError(
                f"no NVTX range named {', '.join(repr(m) for m in missing)} in {self.path.name}; "
                f"known names: {shown}"
            )

    # --- public API ------------------------------------------------------------------------

    def ranges(self, include_warmup: bool = False, names: list[str] | None = None) -> pl.DataFrame:
        """One row per NVTX range instance (see docs/trace-engine.md for each column).

        Times are integer ns. ``proj_ns``/``busy_ns``/``idle_ns`` are null for ranges that
        launched no GPU operation. ``gpu_launches`` equals nsys' NumGPUOps (launch calls),
        ``gpu_ops`` counts the operations executed (kernels, memcpys, memsets and whole-graph
        records, ``graph_launches``, whose time ``graph_ns`` is in proj/busy, not kernel_ns).
        Warm-up ranges (``in_warmup``) are left out unless ``include_warmup``; ``names`` keeps
        only ranges with those names (text without domain).
        """
        self._load_ranges()
        if names:
            self._check_names(list(names))
        return self._frame(
            "SELECT * FROM range_all WHERE ($include_warmup OR NOT in_warmup) "
            "AND ($names IS NULL OR list_contains($names, name)) ORDER BY start_ns, range_id",
            {"include_warmup": include_warmup, "names": list(names) if names else None},
        )

    def stages(
        self, include_warmup: bool = False, by: str = "name", names: list[str] | None = None
    ) -> pl.DataFrame:
        """One row per stage (NVTX range name), split per process and per device set when the
        trace has several. Columns: name, pid, device_ids, instances, gpu_instances,
        gpu_launches, gpu_ops, kernels, graph_launches, graph_total_ns, then
        ``{proj,busy,kernel,cpu,idle}_{total,mean,median,min,max,p90}_ns``, gpu_pct,
        first_start_ns, first_gpu_start_ns (see :meth:`ranges` for the counts).

        ``by="domain"`` names stages as nsys does, ``domain:name`` (``:name`` for the default
        domain).
        """
        if by not in STAGE_BY:
            raise ValueError(f"by must be one of {STAGE_BY}, not {by!r}")
        self._load_ranges()
        if names:
            self._check_names(list(names))
        counted = self._execute(
            "SELECT count(DISTINCT pid), count(DISTINCT device_ids) FILTER (WHERE gpus > 0), "
            "max(gpus) FROM range_all WHERE $include_warmup OR NOT in_warmup",
            {"include_warmup": include_warmup},
        ).fetchone()
        pids, device_sets, max_gpus = counted or (0, 0, 0)
        split_pid = (pids or 0) > 1
        # Per device only when one process spreads over several GPUs (else pid already splits).
        split_device = not split_pid and ((device_sets or 0) > 1 or (max_gpus or 0) > 1)
        frame = self._frame(
            load_sql("trace_stages"),
            {
                "include_warmup": include_warmup,
                "names": list(names) if names else None,
                "split_pid": split_pid,
                "split_device": split_device,
                "trace_busy_ns": self._trace_busy(),
            },
        )
        if by == "domain":
            import polars as pl

            domains = self._frame(
                "SELECT name, any_value(domain) AS domain FROM range_all GROUP BY name"
            )
            frame = (
                frame.join(domains, on="name", how="left")
                .with_columns(
                    (pl.col("domain").fill_null("") + pl.lit(":") + pl.col("name")).alias("name")
                )
                .drop("domain")
            )
        return frame

    def kernels(
        self, stage: str | None = None, top: int = 20, include_warmup: bool = False
    ) -> pl.DataFrame:
        """Kernels by total GPU time: name (demangled), short_name, instances, total_ns,
        mean_ns, median_ns, min_ns, max_ns, stddev_ns, share_pct (of the scope's kernel time).

        ``stage=None``: the whole trace (equals ``nsys stats -r cuda_gpu_kern_sum``). With a
        stage: the kernels launched inside its (non-warm-up) instances, each counted once.
        Raises :class:`~dsocr_nsys.errors.StageNotFoundError` for an unknown stage.
        """
        if top < 1:
            raise ValueError("top must be at least 1")
        self._scope(stage, include_warmup, kernels_only=True)
        frame = self._frame(load_sql("trace_kernels"), {"top": top})
        unnamed = frame.filter(frame["name"].is_null()).height if frame.height else 0
        if unnamed:
            raise TraceContentError(
                f"{self.path}: {unnamed} of the top {frame.height} kernel names point at strings "
                "that the StringIds table lacks: the export is damaged or incomplete; export "
                "it again from the .nsys-rep"
            )
        return frame

    def graph_records(self, stage: str | None = None, include_warmup: bool = False) -> GraphRecords:
        """The whole-graph records (``--cuda-graph-trace=graph``) in the scope of
        :meth:`kernels`: CUDA-graph executions whose kernels the trace does not hold."""
        if not self.has_table(GRAPH_TABLE):
            if stage is not None:
                self._load_ranges()
                self._check_names([stage])
            return GraphRecords(launches=0, graph_ns=0)
        self._scope(stage, include_warmup, kernels_only=False)
        launches, graph_ns = self._run("trace_scope_graphs").fetchone()
        return GraphRecords(launches=launches, graph_ns=graph_ns or 0)

    def _scope(self, stage: str | None, include_warmup: bool, kernels_only: bool) -> None:
        """Fill kernel_scope with the operations of the whole trace or of one stage (checked
        every call; filled only when it holds another scope)."""
        if stage is None:
            self._require_gpu_ops(kernels_only=kernels_only)
        else:
            self._load_ranges()
            self._check_names([stage])
        key = (stage, include_warmup and stage is not None)  # the whole trace ignores warm-up
        self._build("ops")  # the scope's SQL (trace_kernels, trace_scope_graphs) reads it
        if self._scope_of == key:
            return
        if stage is None:
            self._run("trace_kernel_scope_all")
        else:
            assert self._range_ops is not None
            ranges = self._numpy(
                load_sql("trace_stage_ranges"), {"stage": stage, "include_warmup": include_warmup}
            )
            members = self._range_ops.ops_of(ranges["range_id"])
            self._register("kernel_scope", {"op_id": self._ops["op_id"][members]}, table=True)
        self._scope_of = key

    def gpus(self) -> list[GpuInfo]:
        """The GPUs in ``TARGET_INFO_GPU`` (empty when the export lacks the table)."""
        if not self.has_table("TARGET_INFO_GPU"):
            return []
        return [GpuInfo(**row) for row in self._frame(load_sql("trace_info_gpus")).to_dicts()]

    def info(self) -> TraceInfo:
        """Exporter and schema version, GPUs, event counts and the trace's span."""
        first, last = self._bounds()
        meta: dict[str, str] = {}
        if self.has_table("META_DATA_EXPORT"):
            meta = dict(self._run("trace_info_meta").fetchall())
        elif self.has_table("EXPORT_META_DATA"):
            meta = dict(self._run("trace_info_meta_legacy").fetchall())
        gpus = self.gpus()
        kernels, memcpy, memset, graphs = self._op_counts()
        nvtx_ranges = None
        if self.has_table(NVTX_TABLE):
            self._build("nvtx_range")
            n_first, n_last, nvtx_ranges = self._run("trace_nvtx_bounds").fetchone()
            first = min((v for v in (first, n_first) if v is not None), default=None)
            last = max((v for v in (last, n_last) if v is not None), default=None)
        runtime = (
            self._run("trace_count_runtime").fetchone()[0]
            if self.has_table(RUNTIME_TABLE)
            else None
        )
        return TraceInfo(
            path=self.path,
            exporter_version=meta.get("EXPORT_PRODUCT_VERSION"),
            schema_version=meta.get("EXPORT_SCHEMA_VERSION"),
            gpus=gpus,
            nvtx_ranges=nvtx_ranges,
            kernels=kernels if self.has_table(KERNEL_TABLE) else None,
            runtime_calls=runtime,
            memcpy=memcpy if self.has_table("CUPTI_ACTIVITY_KIND_MEMCPY") else None,
            memset=memset if self.has_table("CUPTI_ACTIVITY_KIND_MEMSET") else None,
            graph_launches=graphs if self.has_table(GRAPH_TABLE) else None,
            first_ns=first,
            last_ns=last,
            duration_ns=(last - first) if first is not None and last is not None else None,
        )
