"""``dsocr-nsys mfu`` end to end: open the trace and the static file, choose the peak, compute,
and shape the result as :class:`~dsocr_nsys.output.Report` objects or a folder of files."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from ..launch.runinfo import RUN_JSON, nsys_rep_for
from ..output import Report, render, write_dir_atomic
from ..static.format import load_static
from ..vocab import BUSY, PROJ, RATE_BASES, TIME_BASE_BY_KEY
from .compute import MfuResult, compute_mfu
from .notes import Finding
from .peaks import PeakChoice, TraceGpu, choose_peak

if TYPE_CHECKING:
    from ..static.format import StaticCompute
    from ..trace import Trace

TITLE = "dsocr-nsys mfu: model FLOPs and bandwidth utilisation per stage"

MFU_COLUMNS = [
    "stage",
    "instances",
    "total_flops",
    *(c for b in RATE_BASES for c in (b.tflops, b.mfu_pct)),
]
TIME_COLUMNS = [
    "stage",
    "kind",
    "instances",
    "gpu_ops",
    *(b.total for b in RATE_BASES),
    "gpu_idle_pct",
]
# The roofline's bandwidth columns: the two GPU bases a memory-bound stage is judged on.
ROOFLINE_COLUMNS = [
    "stage",
    "total_flops",
    "total_bytes",
    "intensity_flop_per_byte",
    "bound",
    *(c for k in (BUSY, PROJ) for c in (TIME_BASE_BY_KEY[k].gbps, TIME_BASE_BY_KEY[k].mbu_pct)),
    "attainable_tflops",
    "attainable_busy_pct",
]
TIMELINE_COLUMNS = ["stage", "first_start_ns", "first_gpu_start_ns"]
PLOTS = ("mfu_time.png", "mfu_per_stage.png", "mfu_mbu.png", "mfu_roofline.png")


def _run_beside(trace: Path) -> dict[str, Any] | None:
    """The run.json of the run folder holding ``trace`` (``dsocr-nsys profile``'s layout; a
    fixture's ``NAME.run.json`` beside ``NAME.sqlite`` too), or None."""
    for candidate in (trace.with_name(RUN_JSON), trace.with_suffix(f".{RUN_JSON}")):
        if candidate.is_file():
            try:
                return dict(json.loads(candidate.read_text(encoding="utf-8")))
            except (OSError, ValueError):
                return None
    return None


def analyse(
    trace_path: str | Path,
    static_path: str | Path,
    *,
    gpu: str | None = None,
    peak_tflops: float | None = None,
    peak_gbps: float | None = None,
    allow_mismatch: bool = False,
    include_warmup: bool = False,
    env: Mapping[str, str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> MfuResult:
    """Load, compute, describe: read the static file and the trace's ranges and GPUs, choose
    the peak, run :func:`~dsocr_nsys.mfu.compute.compute_mfu`, and add the inputs' description
    (``meta``) and the findings about them (:func:`analyse_trace` on the opened trace)."""
    from ..trace import open_trace  # the trace engine; imported here so peaks/compute stand alone

    say = progress or (lambda _msg: None)
    static = load_static(static_path)  # fail fast on a bad static file before reading the trace
    with open_trace(trace_path) as trace:  # checks the export first: a bad one is one line
        say(f"reading {trace_path}")
        return analyse_trace(
            trace,
            static_path,
            static=static,
            gpu=gpu,
            peak_tflops=peak_tflops,
            peak_gbps=peak_gbps,
            allow_mismatch=allow_mismatch,
            include_warmup=include_warmup,
            env=env,
        )


def analyse_trace(
    trace: Trace,
    static_path: str | Path,
    *,
    static: StaticCompute | None = None,
    gpu: str | None = None,
    peak_tflops: float | None = None,
    peak_gbps: float | None = None,
    allow_mismatch: bool = False,
    include_warmup: bool = False,
    env: Mapping[str, str] | None = None,
) -> MfuResult:
    """:func:`analyse` on a trace already open (compare reads each run's trace once; what the
    engine computed for it is reused). ``static``: the static file, when already loaded."""
    static = static or load_static(static_path)
    gpus_in_trace = trace.gpus()
    ranges = trace.ranges(include_warmup=include_warmup)
    # the GPUs the ranges' work ran on, when the engine says (a mixed machine: only those count)
    used: set[int] = set()
    if "device_ids" in ranges.columns:
        for ids in ranges["device_ids"].drop_nulls().to_list():
            used.update(i for i in ids if i is not None)
    gpus = [
        TraceGpu(
            name=g.name,
            sm_count=getattr(g, "sm_count", None),
            memory_bandwidth_bps=getattr(g, "memory_bandwidth_bps", None),
        )
        for g in gpus_in_trace
        if g.name and (not used or g.id in used)
    ]
    peak = choose_peak(
        gpus,
        gpu=gpu,
        peak_tflops=peak_tflops,
        peak_gbps=peak_gbps,
        env=os.environ if env is None else env,
    )
    path = trace.path
    result = compute_mfu(ranges, static, peak, allow_mismatch=allow_mismatch, run=_run_beside(path))
    rep = nsys_rep_for(path)
    result.meta = {
        "trace": str(path),
        "nsys_rep": str(rep),
        "static": str(static_path),
        "config": ", ".join(f"{k}={v}" for k, v in static.config.items()) or None,
        "warmup": "included" if include_warmup else "excluded",
    }
    if not rep.exists():
        result.findings.append(Finding("nsys_rep_missing", {"name": rep.name}))
    dtype = str(static.config.get("dtype", "")).lower()
    if dtype and dtype not in ("bfloat16", "bf16", "float16", "fp16", "half"):
        result.findings.append(Finding("dtype_not_bf16", {"dtype": dtype}))
    if include_warmup:
        result.findings.append(Finding("warmup_included"))
    return result


def peak_meta(peak: PeakChoice) -> dict[str, object]:
    """The peak choice as the flat keys of the JSON output (``peak_tflops``, ...)."""
    return {
        "peak_gpu": peak.gpu,
        "peak_tflops": peak.peak_tflops,
        "peak_tflops_source": peak.tflops_source,
        "peak_gbps": peak.peak_gbps,
        "peak_gbps_source": peak.gbps_source,
        "ridge_flop_per_byte": peak.ridge_flops_per_byte,
        "peak_citation": peak.citation,
        "detected_gpu": peak.detected_name,
    }


def _subset(frame: pl.DataFrame, columns: list[str]) -> pl.DataFrame:
    return frame.select([c for c in columns if c in frame.columns])


def label_time_bases(frame: pl.DataFrame) -> pl.DataFrame:
    """Time-base keys shown by their vocabulary label (people read `GPU busy`, not `busy`)."""
    if "time_base" not in frame.columns:
        return frame
    labels = {k: b.label for k, b in TIME_BASE_BY_KEY.items()}
    return frame.with_columns(pl.col("time_base").replace_strict(labels, default=None))


def display_report(result: MfuResult) -> Report:
    """The human view (``table``/``md``): MFU first, then times, roofline, decode, timeline."""
    # rows with a figure above 100 % of peak carry the `impossible` flag in the rate tables
    flag = ["impossible"] if result.stages["impossible"].any() else []
    tables = {
        "mfu": _subset(result.stages, MFU_COLUMNS + flag),
        "time": _subset(result.stages, TIME_COLUMNS),
        "roofline": _subset(result.stages, ROOFLINE_COLUMNS + flag),
    }
    from ..hw.join import display_tables  # here: hw.join imports mfu.notes

    tables.update(display_tables(result.stages))  # hardware FLOPs / measured ceiling, if joined
    if result.decode.height:
        tables["decode"] = label_time_bases(result.decode)
    tables["timeline"] = _subset(
        result.stages.filter(pl.col("first_start_ns").is_not_null()), TIMELINE_COLUMNS
    )
    return Report(tables=tables, notes=result.notes, meta=_meta_for_humans(result), title=TITLE)


def data_report(result: MfuResult) -> Report:
    """The machine view (``json``/``csv``): the wide per-stage table (every column), decode."""
    tables = {"stages": result.stages, "decode": result.decode}
    meta = {**result.meta, **peak_meta(result.peak)}
    return Report(tables=tables, notes=result.notes, meta=meta, title=TITLE)


def report_for(result: MfuResult, fmt: str) -> Report:
    """The report a format shows: split tables for people, the wide table for machines."""
    return data_report(result) if fmt in ("json", "csv") else display_report(result)


def _meta_for_humans(result: MfuResult) -> dict[str, object]:
    m = dict(result.meta)
    peak = result.peak
    ridge = peak.ridge_flops_per_byte
    m["peak_gpu"] = peak.gpu
    m["ridge_flop_per_byte"] = f"{ridge:.1f} FLOP/byte" if ridge is not None else None
    m["peak_citation"] = peak.citation
    m["detected_gpu"] = peak.detected_name
    if peak.peak_gbps and peak.tflops_source == peak.gbps_source:
        m["peak"] = (
            f"{peak.peak_tflops:g} TFLOP/s dense BF16, {peak.peak_gbps:g} GB/s "
            f"({peak.tflops_source})"
        )
    else:
        m["peak"] = f"{peak.peak_tflops:g} TFLOP/s dense BF16 ({peak.tflops_source}); " + (
            f"{peak.peak_gbps:g} GB/s ({peak.gbps_source})" if peak.peak_gbps else "no GB/s"
        )
    if "nsys_rep" in m:
        rep = Path(str(m.pop("nsys_rep")))
        if rep.exists():
            m["open_in_nsight_systems"] = str(rep)
        else:
            m["nsys_rep"] = f"not beside the export ({rep.name}: the report `nsys export` read)"
    return {k: v for k, v in m.items() if v is not None}


def markdown(result: MfuResult, plots: list[Path] | None = None) -> str:
    """``mfu.md``: the human report as Markdown, with how to find each stage on the timeline
    and the plots embedded."""
    text = render(display_report(result), "md")
    lines = [text.rstrip(), ""]
    rep = result.meta.get("nsys_rep")
    if rep:
        where = (
            f"Open `{rep}` in the Nsight Systems GUI."
            if Path(str(rep)).exists()
            else f"Open the `.nsys-rep` this export was made from (`{Path(str(rep)).name}` is not "
            "beside the export; a `dsocr-nsys profile` run folder holds `trace.nsys-rep`)."
        )
        lines += [
            "## Find it in Nsight Systems",
            "",
            f"{where} The timeline table gives, per stage,",
            "the start of its first counted instance: the CPU-side NVTX range start and the",
            "start of its first GPU operation, on the export's clock (ns from the start of the",
            "capture session, the timeline's origin), shown in ms.",
            "",
        ]
    if plots:
        lines += ["## Plots", ""]
        lines += [f"![{p.stem}]({p.name})" for p in plots]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def write_dir(result: MfuResult, out_dir: str | Path, *, plots: bool = True) -> list[Path]:
    """Write ``mfu.md``, ``mfu.json``, ``mfu.csv`` and the PNG plots as the folder
    ``out_dir``, the whole set at once (:func:`~dsocr_nsys.output.write_dir_atomic`).
    Returns the paths written."""
    files: dict[str, str | bytes] = {}
    if plots:
        from .plot import render_plots  # matplotlib only when plots are asked for

        files.update(render_plots(result))
    pngs = [Path(name) for name in files]
    data = data_report(result)
    files["mfu.json"] = render(data, "json")
    files["mfu.csv"] = render(data, "csv")
    files["mfu.md"] = markdown(result, pngs)
    return write_dir_atomic(out_dir, files)
