"""One input of ``dsocr-nsys compare``: a run folder, an ``mfu.json`` or a bare export, loaded
into a :class:`Run` (configuration, per-stage times and rates, per-instance times).

Per-stage times come from the MFU library for every kind of input (so the stage rows,
``vision``, ``llm_prefill`` and ``request`` are defined once): with the run's static file when
there is one, else with an empty one (times only, no rates).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from ..errors import InputFileError, StageNotFoundError
from ..jsonfile import read_json
from ..launch.runinfo import RUN_JSON, SQLITE, STATIC_JSON
from ..mfu.compute import compute_mfu, select_ranges
from ..mfu.peaks import PeakChoice
from ..static.format import StaticCompute
from ..vocab import RATE_BASES, REQUEST, STAGES, TIME_BASES

if TYPE_CHECKING:
    from ..trace import Trace

RUN_FOLDER = "run folder"
MFU_JSON = "mfu.json"
EXPORT = "export"

#: Stage rows that are NVTX ranges of their own, so have instances to measure noise on.
INSTANCE_STAGES = tuple(s.name for s in STAGES if s.kind in ("range", "request"))

# The MFU library calls the request row `total` when the trace has no `request` ranges (the
# sum of top-level stages): vocab's `request` stage says the same thing.
_MFU_TOTAL_ROW = "total"
# PyTorch's emit_nvtx appends per-call counters to range names ("aten::mul, seq = 45328,
# op_id = 990726"; "sizes = [[...]]" with shapes): dropped so that calls of one op group.
PER_CALL_SUFFIX = r",\s*(?:seq|op_id)\s*=\s*\d+|,\s*sizes\s*=.*$"

#: Configuration fields, in table order (None where an input does not say).
CONFIG_FIELDS = (
    "gpu", "mode", "max_new_tokens", "prefill_tokens", "decode_steps", "views", "batch",
    "decode", "moe", "compile", "decode_attention", "dtype", "nsys_export", "nsys_cli",
    "torch", "driver", "peak",
)  # fmt: skip
_STATIC_FIELDS = ("mode", "max_new_tokens", "prefill_tokens", "decode_steps", "views", "dtype")
_LAUNCH_FIELDS = ("batch", "decode", "moe", "compile", "decode_attention")


@dataclass
class Run:
    """One loaded input.

    ``stages``: one row per stage the MFU library found (``stage``, ``instances``, a
    ``{base}_total_ns`` per time base, ``mfu_{base}_pct`` / ``mbu_{base}_pct`` per rate base,
    null without a static file), or None when the export holds none of our stages.
    ``instances``: one row per counted NVTX range instance (``stage``, ``gpu``: it launched
    GPU work, a ``{base}_ns`` column per time base), None for an ``mfu.json``.
    ``ranges``: the same for every range of the export, named without per-call counters (for
    exports without our stages). ``trace``: the open export (kernels are read from it).
    """

    label: str
    path: Path
    kind: str
    config: dict[str, Any]
    stages: pl.DataFrame | None
    instances: pl.DataFrame | None = None
    ranges: pl.DataFrame | None = None
    trace: Trace | None = None
    has_static: bool = False
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        # every field in table order, lists (view sizes) as one cell
        self.config = {k: _scalar(self.config.get(k)) for k in CONFIG_FIELDS}

    def close(self) -> None:
        if self.trace is not None:
            self.trace.close()
            self.trace = None


def range_group(name: pl.Expr) -> pl.Expr:
    """Range names without PyTorch emit_nvtx's per-call ``seq``/``op_id``/``sizes`` parts."""
    return name.str.replace_all(PER_CALL_SUFFIX, "")


def input_kind(path: Path) -> str:
    """What a compare input is (run folder, mfu.json, export: SQLite, Parquet folder or
    .nsys-rep, as the trace engine reads them); InputFileError for none."""
    if path.is_dir():
        if (path / SQLITE).is_file():
            return RUN_FOLDER
        if any(path.glob("*.parquet")):
            return EXPORT
        raise InputFileError(
            f"{path}: a folder without {SQLITE} or .parquet files; pass a run folder from "
            "`dsocr-nsys profile`, an mfu.json or an nsys export"
        )
    if not path.is_file():
        raise InputFileError(f"{path} not found; pass a run folder, an mfu.json or an export")
    from ..trace.db import SQLITE_MAGIC
    from ..trace.source import REPORT_SUFFIXES

    if path.suffix in REPORT_SUFFIXES:
        return EXPORT  # exported once by nsys, or one line saying how, as in the trace commands
    with path.open("rb") as fh:
        if fh.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC:
            return EXPORT
    if path.suffix == ".json":
        return MFU_JSON
    raise InputFileError(
        f"{path}: neither a run folder, an mfu.json nor an nsys export; export the report "
        "with `nsys export --type sqlite` or pass `dsocr-nsys mfu -o DIR`'s mfu.json"
    )


def check_input(path: str | Path) -> None:
    """Raise the error :func:`load_run` would raise for a bad input (not a run folder, mfu.json
    or export; a damaged or foreign export), without reading it: compare checks every input
    first, so a bad last one is the only line, before any progress."""
    from ..trace import open_trace

    p = Path(path)
    kind = input_kind(p)
    if kind == MFU_JSON:
        _load_mfu_json(p)  # a small file: its whole check is reading it
    else:
        with open_trace(p / SQLITE if kind == RUN_FOLDER else p):
            pass


def _read_json(path: Path) -> dict[str, Any]:
    data = read_json(path, InputFileError, str(path), "write it again")
    if not isinstance(data, dict):
        raise InputFileError(f"{path}: not a JSON object")
    return data


def _label(path: Path) -> str:
    """A run's short name: the folder, or the file's stem (``mfu.json``: its run folder)."""
    if path.is_dir():
        return path.resolve().name
    if path.name == "mfu.json":
        parent = path.resolve().parent
        return parent.parent.name if parent.name == "mfu" else parent.name
    return path.stem


def _stage_frame(stages: pl.DataFrame) -> pl.DataFrame:
    """The MFU library's per-stage rows, cut to what compare reads (missing columns null)."""
    if "stage" in stages.columns:
        stages = stages.with_columns(
            pl.col("stage").replace(_MFU_TOTAL_ROW, REQUEST).alias("stage")
        )
    cols = [
        ("stage", pl.String),
        ("instances", pl.Int64),
        *((b.total, pl.Int64) for b in TIME_BASES),
        *((b.mfu_pct, pl.Float64) for b in RATE_BASES),
        *((b.mbu_pct, pl.Float64) for b in RATE_BASES),
        ("total_flops", pl.Int64),
        ("total_bytes", pl.Int64),
    ]
    return stages.select(
        pl.col(c).cast(t) if c in stages.columns else pl.lit(None, dtype=t).alias(c)
        for c, t in cols
    )


def _instance_frame(ranges: pl.DataFrame, names: pl.Expr) -> pl.DataFrame:
    """Per-instance rows: ``stage`` (from ``names``), ``gpu`` and one column per time base."""
    return ranges.select(
        names.alias("stage"),
        pl.col("gpu_start_ns").is_not_null().alias("gpu"),
        *(pl.col(b.column).cast(pl.Int64) for b in TIME_BASES),
    )


def peak_text(meta: dict[str, Any]) -> str | None:
    """The peak MFU/MBU are against, from mfu's JSON keys (:func:`~dsocr_nsys.mfu.report.
    peak_meta`): ``989 TFLOP/s, 4,800 GB/s (H200)``; None without a peak."""
    tflops, gbps = meta.get("peak_tflops"), meta.get("peak_gbps")
    if not tflops:
        return None
    text = f"{tflops:,g} TFLOP/s" + (f", {gbps:,g} GB/s" if gbps else "")
    return text + (f" ({meta['peak_gpu']})" if meta.get("peak_gpu") else "")


def _no_static() -> tuple[StaticCompute, PeakChoice]:
    static = StaticCompute(config={}, stages={}, raw={})
    peak = PeakChoice(None, None, None, "no static file", "no static file")
    return static, peak


def _trace_config(trace: Trace, ranges: pl.DataFrame) -> dict[str, Any]:
    info = trace.info()
    used: set[int] = set()
    for ids in ranges["device_ids"].drop_nulls().to_list() if "device_ids" in ranges else []:
        used.update(i for i in ids if i is not None)
    names = sorted({g.name for g in info.gpus if g.name and (not used or g.id in used)})
    return {"gpu": ", ".join(names) or None, "nsys_export": info.exporter_version}


def _run_json_config(run: dict[str, Any]) -> dict[str, Any]:
    options = run.get("options") or {}
    versions = run.get("versions") or {}
    nsys = versions.get("nsys")
    cfg: dict[str, Any] = {
        "gpu": (run.get("gpu") or {}).get("name"),
        "dtype": options.get("dtype"),
        "nsys_cli": nsys.removeprefix("NVIDIA Nsight Systems version ").strip() if nsys else None,
        "torch": versions.get("torch"),
        "driver": versions.get("driver"),
    }
    for key in ("mode", "max_new_tokens", "prefill_tokens", "decode_steps", "views"):
        cfg[key] = run.get(key)
    # fields the launcher adds over time: absent from older run.json files
    for key in _LAUNCH_FIELDS:
        cfg[key] = run.get(key, options.get(key))
    return cfg


def _merge(into: dict[str, Any], more: dict[str, Any]) -> None:
    """Fill ``into``'s unknown fields from ``more`` (the first source that knows wins)."""
    for key, value in more.items():
        if into.get(key) is None and value is not None:
            into[key] = value


def _scalar(value: Any) -> Any:
    return ", ".join(str(v) for v in value) if isinstance(value, list) else value


def load_run(
    path: str | Path,
    *,
    include_warmup: bool = False,
    progress: Callable[[str], None] | None = None,
) -> Run:
    """Load one compare input (see the module docstring). Raises
    :class:`~dsocr_nsys.errors.InputFileError` for a path of none of the three kinds."""
    from ..mfu.report import analyse_trace, peak_meta
    from ..static.format import load_static
    from ..trace import open_trace

    p = Path(path)
    kind = input_kind(p)
    if kind == MFU_JSON:
        return _load_mfu_json(p)
    trace_path = p / SQLITE if kind == RUN_FOLDER else p
    trace = open_trace(trace_path)  # checks the export first: a bad one is one error line
    if progress:
        progress(f"reading {trace_path}")
    try:
        raw = trace.ranges(include_warmup=include_warmup)
        config: dict[str, Any] = {}
        notes: list[str] = []
        static_path = p / STATIC_JSON if kind == RUN_FOLDER else None
        run_json = p / RUN_JSON if kind == RUN_FOLDER else None
        run_record = _read_json(run_json) if run_json and run_json.is_file() else None
        if run_record is not None:
            _merge(config, _run_json_config(run_record))
        elif kind == RUN_FOLDER:
            notes.append(f"{p.name}: no {RUN_JSON}; configuration from the trace only")
        _merge(config, _trace_config(trace, raw))
        has_static = bool(static_path and static_path.is_file())
        stages: pl.DataFrame | None
        try:
            if has_static:
                assert static_path is not None
                gpu = ((run_record or {}).get("gpu") or {}).get("mfu_name")
                result = analyse_trace(
                    trace, static_path, gpu=gpu, include_warmup=include_warmup
                )
                _merge(config, {k: load_static(static_path).config.get(k) for k in _STATIC_FIELDS})
                config["peak"] = peak_text(peak_meta(result.peak))
            else:
                if kind == RUN_FOLDER:
                    notes.append(f"{p.name}: no {STATIC_JSON}; stage times only, no MFU/MBU")
                result = compute_mfu(raw, *_no_static())
            stages = _stage_frame(result.stages)
        except StageNotFoundError:
            stages = None
        instances = (
            _instance_frame(select_ranges(raw, list(INSTANCE_STAGES)), pl.col("name"))
            if stages is not None
            else None
        )
        ranges = _instance_frame(raw, range_group(pl.col("name")))
    except BaseException:
        trace.close()
        raise
    return Run(
        label=_label(p),
        path=p,
        kind=kind,
        config=config,
        stages=stages,
        instances=instances,
        ranges=ranges,
        trace=trace,
        has_static=has_static,
        notes=notes,
    )


def _parse_config(text: str | None) -> dict[str, Any]:
    """``mfu.json``'s ``config`` line (``k=v, k=v``; values may hold ", ") as a dict."""
    if not text:
        return {}
    out: dict[str, Any] = {}
    for part in re.split(r", (?=\w+=)", text):
        key, _, value = part.partition("=")
        out[key] = int(value) if value.isdigit() else value
    return out


def _load_mfu_json(path: Path) -> Run:
    data = _read_json(path)
    rows = data.get("stages")
    if not isinstance(rows, list) or not all(isinstance(r, dict) and "stage" in r for r in rows):
        raise InputFileError(
            f"{path}: a JSON file without the `stages` rows of an mfu.json; pass the mfu.json "
            "that `dsocr-nsys mfu -o DIR` wrote"
        )
    static_cfg = _parse_config(data.get("config"))
    config = {k: static_cfg.get(k) for k in _STATIC_FIELDS}
    config["gpu"] = data.get("detected_gpu") or data.get("peak_gpu")
    config["peak"] = peak_text(data)
    stages = _stage_frame(pl.DataFrame(rows, infer_schema_length=None))
    return Run(
        label=_label(path),
        path=path,
        kind=MFU_JSON,
        config=config,
        stages=stages,
        has_static=True,
        notes=[f"{path}: an mfu.json holds totals only: no per-instance noise, no kernels"],
    )
