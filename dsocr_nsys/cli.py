"""Thin click wiring. Commands call library functions (which return data) and render it with
:mod:`dsocr_nsys.output`; every :class:`~dsocr_nsys.errors.DsocrError` becomes one line on
stderr and exit code 2 in the group (:mod:`dsocr_nsys.clikit`, shared with the launcher).

The launcher's commands (``infer``, ``profile``, ``report``) are declared once, in
:mod:`dsocr_nsys.launch.commands`, and registered here as in ``python -m dsocr_nsys.launch``.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import threading
from pathlib import Path
from typing import Any

import click

from . import __version__
from .clikit import CONTEXT_SETTINGS, DsocrGroup, keep_freed_memory, progress
from .launch.commands import COMMANDS as LAUNCH_COMMANDS
from .launch.options import variant_options
from .output import Report, emit, output_options, shorten_names, write_atomic
from .settings import InferenceSettings
from .vocab import BUSY, TIME_BASES, WARMUP, time_base


@click.group(cls=DsocrGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, prog_name="dsocr-nsys")
def cli() -> None:
    """Where DeepSeek-OCR inference spends its GPU time, from Nsight Systems traces."""


# Commands are grouped by pipeline step; each is a few lines of wiring around a library call.

# --- trace engine: stages, kernels, info ------------------------------------------------

# No exists=True: the library's InputFileError gives the one-line message for a bad path.
_TRACE_ARG = click.argument("trace", type=click.Path(path_type=Path, dir_okay=True))
# One warm-up rule for every command that reads ranges (see docs/trace-engine.md).
_INCLUDE_WARMUP = click.option(
    "--include-warmup",
    is_flag=True,
    help="Count ranges named `warmup` and everything nested in them (left out by default).",
)
_NSYS_OPTION = click.option(
    "--nsys",
    default=None,
    metavar="PATH",
    help="nsys used to export a .nsys-rep TRACE once (default: $NSYS, then PATH).",
)
_BUSY = time_base(BUSY)
_STAGE_COLUMNS = (
    "name", "pid", "device_ids", "instances", "gpu_launches", "gpu_ops", "kernels",
    "graph_launches",
    *(b.total for b in TIME_BASES),  # the vocabulary's order, as mfu and compare show them
    _BUSY.stat("mean"), _BUSY.stat("median"), "gpu_pct",
)  # fmt: skip
# The stages table's note: each time base as the vocabulary defines it.
_STAGES_NOTE = "; ".join(
    [f"{b.label} ({b.key}_*) = {b.definition}" for b in TIME_BASES]
    + ["GPU % = GPU busy / whole-trace GPU busy time"]
)
_COUNTS_NOTE = "GPU launches = launch calls (nsys NumGPUOps); GPU ops = operations executed"
_NAME_WIDTH = 70
_STAGES_SHOWN = 50  # table/md rows of `stages` without --top (a PyTorch trace has thousands)


def _import_modules(names: tuple[str, ...]) -> None:
    for name in names:
        importlib.import_module(name)


def _open_trace_cli(path: Path, nsys: str | None = None) -> Any:
    from .trace import open_trace

    # Importing numpy and polars takes 0.1-0.2 s each (0.2 s for numpy on a 16-core GPU host).
    # DuckDB releases the GIL while it reads the export, so imports started now on a thread
    # finish behind the reading; the engine's own imports then find them done (or wait on the
    # import lock, never importing twice). Connecting, a few short DuckDB calls, waits a little
    # for the GIL on each return meanwhile: one reason it makes few (db.connect_parquet).
    threading.Thread(target=_import_modules, args=(("numpy", "polars"),), daemon=True).start()

    if path.is_file() and path.stat().st_size > 64 * 1024 * 1024:
        progress(f"reading {path.name} ({path.stat().st_size / 1e6:,.0f} MB) ...")
    return open_trace(path, nsys=nsys)


def _graph_note(launches: int, graph_ns: int) -> str:
    """What a trace made with --cuda-graph-trace=graph holds, in one line."""
    return (
        f"{launches:,} CUDA-graph launches ({graph_ns / 1e6:,.3f} ms on the GPU) were traced as "
        "whole graphs, so their kernels were not traced: their time counts in proj, busy and "
        "idle (graph_total_ns), not in kernel time; profile with --cuda-graph-trace=node to see "
        "their kernels"
    )


def _readable(frame: Any, fmt: str, columns: tuple[str, ...] | None = None) -> Any:
    """Human formats get the main columns and shortened kernel names; json/csv stay raw."""
    import polars as pl

    if fmt in ("csv", "table", "md") and "device_ids" in frame.columns:
        # CSV and text cells hold no lists: devices as "0,1".
        frame = frame.with_columns(
            pl.col("device_ids").list.eval(pl.element().cast(pl.Utf8)).list.join(",")
        )
    if fmt not in ("table", "md"):
        return frame
    if columns:
        frame = frame.select([c for c in columns if c in frame.columns])
    for col in ("name", "short_name"):
        if col in frame.columns and frame.schema[col] == pl.Utf8:
            names = shorten_names(frame[col].fill_null("").to_list(), _NAME_WIDTH)
            frame = frame.with_columns(pl.Series(col, names, dtype=pl.Utf8))
    for col in ("pid", "device_ids"):
        # One process / one GPU (stages without GPU work aside): the column says nothing.
        if col in frame.columns:
            values = {str(v) for v in frame[col].drop_nulls().unique().to_list()} - {""}
            if len(values) <= 1:
                frame = frame.drop(col)
    return frame


@cli.command()
@_TRACE_ARG
@_INCLUDE_WARMUP
@click.option(
    "--stage",
    "stage_names",
    multiple=True,
    metavar="NAME",
    help="Only these stages (NVTX range names); repeat for several.",
)
@click.option("--wide", is_flag=True, help="table/md: show every column (json/csv always do).")
@click.option(
    "--top",
    type=click.IntRange(min=1),
    default=None,
    help=f"Only the N stages with the most GPU busy time (table/md default: {_STAGES_SHOWN}).",
)
@_NSYS_OPTION
@output_options
def stages(
    trace: Path,
    include_warmup: bool,
    stage_names: tuple[str, ...],
    wide: bool,
    top: int | None,
    nsys: str | None,
    fmt: str,
    output: str | None,
) -> None:
    """Per-stage GPU time: one row per NVTX range name, on every time base (busy, proj,
    kernel, cpu, idle; the notes define each, docs/trace-engine.md lists the columns)."""
    with _open_trace_cli(trace, nsys) as tr:
        frame = tr.stages(include_warmup=include_warmup, names=list(stage_names) or None)
        gpus = ", ".join(sorted({g.name for g in tr.gpus() if g.name})) or "unknown"
        graphs = tr.graph_records(include_warmup=include_warmup)
    notes = [_STAGES_NOTE, _COUNTS_NOTE]
    if graphs.launches:
        notes.append(_graph_note(graphs.launches, graphs.graph_ns))
    elif fmt in ("table", "md"):
        frame = frame.drop("graph_launches")  # no whole-graph records: the column says nothing
    keep = top if top is not None else (_STAGES_SHOWN if fmt in ("table", "md") else None)
    if keep is not None and frame.height > keep:
        # the N busiest, in their order of first appearance
        busiest = frame.with_row_index("_order").sort(_BUSY.total, descending=True, nulls_last=True)
        frame = busiest.head(keep).sort("_order").drop("_order")
        notes.append(
            f"showing the {keep:,} of {busiest.height:,} stages with the most GPU busy time; "
            "--top N for another count, -f json/csv for every stage"
        )
    report = Report(
        tables={"stages": _readable(frame, fmt, None if wide else _STAGE_COLUMNS)},
        meta={"trace": str(trace), "gpu": gpus, "warmup_included": include_warmup},
        notes=notes,
        title="GPU time per stage",
    )
    emit(report, fmt, output)


@cli.command()
@_TRACE_ARG
@click.option("--stage", default=None, metavar="NAME", help="Only kernels launched in this stage.")
@click.option(
    "--top", default=20, show_default=True, type=click.IntRange(min=1),
    help="Only the N kernels with the most total GPU time.",
)  # fmt: skip
@_INCLUDE_WARMUP
@_NSYS_OPTION
@output_options
def kernels(
    trace: Path,
    stage: str | None,
    top: int,
    include_warmup: bool,
    nsys: str | None,
    fmt: str,
    output: str | None,
) -> None:
    """Top kernels by total GPU time, for the whole trace or one stage."""
    with _open_trace_cli(trace, nsys) as tr:
        frame = tr.kernels(stage=stage, top=top, include_warmup=include_warmup)
        graphs = tr.graph_records(stage=stage, include_warmup=include_warmup)
    columns = (
        "name", "short_name", "instances", "total_ns", "mean_ns", "median_ns", "min_ns",
        "max_ns", "share_pct",
    )  # fmt: skip
    notes = []
    if stage is None:
        counted = "every kernel in the trace, warm-up included (as nsys cuda_gpu_kern_sum)"
        if include_warmup:
            notes.append("--include-warmup changes nothing here: the whole trace counts all")
    elif include_warmup:
        counted = f"kernels launched in `{stage}` ranges, warm-up included"
    else:
        counted = (
            "nothing: `warmup` ranges are left out unless --include-warmup"
            if stage == WARMUP
            else f"kernels launched in `{stage}` ranges outside `warmup` ranges"
        )
        if frame.height == 0:
            notes.append(
                f"no kernels in `{stage}` ranges outside warm-up: ranges named `warmup` and "
                "everything nested in them are left out; pass --include-warmup to count them"
            )
    if graphs.launches:
        notes.append(_graph_note(graphs.launches, graphs.graph_ns))
    report = Report(
        tables={"kernels": _readable(frame, fmt, columns)},
        meta={"trace": str(trace), "stage": stage or "(whole trace)", "counted": counted,
              "top": top},
        notes=notes,
        title="Top kernels" + (f" in stage {stage}" if stage else ""),
    )  # fmt: skip
    emit(report, fmt, output)


@cli.command()
@_TRACE_ARG
@_NSYS_OPTION
@output_options
def info(trace: Path, nsys: str | None, fmt: str, output: str | None) -> None:
    """What an export holds: nsys version, GPUs, event counts, duration."""
    import polars as pl

    with _open_trace_cli(trace, nsys) as tr:
        ti = tr.info()
    counts = pl.DataFrame(
        [
            {
                "nvtx_ranges": ti.nvtx_ranges,
                "kernels": ti.kernels,
                "runtime_calls": ti.runtime_calls,
                "memcpy": ti.memcpy,
                "memset": ti.memset,
                "graph_launches": ti.graph_launches,
                "duration_ns": ti.duration_ns,
            }
        ],
        schema={k: pl.Int64 for k in (
            "nvtx_ranges", "kernels", "runtime_calls", "memcpy", "memset", "graph_launches",
            "duration_ns",
        )},
    )  # fmt: skip
    gpu_schema = {
        "id": pl.Int64,
        "name": pl.Utf8,
        "sm_count": pl.Int64,
        "clock_hz": pl.Int64,
        "memory_bandwidth_bps": pl.Int64,
        "memory_bytes": pl.Int64,
    }
    gpus = pl.DataFrame([vars(g) for g in ti.gpus], schema=gpu_schema)
    if fmt in ("table", "md"):
        gpus = gpus.select(
            "id",
            "name",
            "sm_count",
            (pl.col("clock_hz") / 1e6).alias("clock_MHz"),
            (pl.col("memory_bandwidth_bps") / 1e9).alias("memory_bandwidth_gbps"),
            "memory_bytes",
        )
    notes = []
    if ti.nvtx_ranges is None:
        notes.append("no NVTX_EVENTS table: record with `nsys profile -t cuda,nvtx` for stages")
    if not ti.gpus:
        notes.append("no TARGET_INFO_GPU table: GPU model, SMs and clocks unknown")
    report = Report(
        tables={"counts": counts, "gpus": gpus},
        meta={
            "trace": str(trace),
            "exporter_version": ti.exporter_version,
            "schema_version": ti.schema_version,
            "first_ns": ti.first_ns,
            "last_ns": ti.last_ns,
        },
        notes=notes,
        title="Trace info",
    )
    emit(report, fmt, output)


# --- static compute: static ---------------------------------------------------------------


@cli.command("static")
@click.option("--preset", default="full", show_default=True, help="Model preset: full or tiny.")
# Defaults are the launcher's (InferenceSettings), so `static` with none describes a default
# `profile` run.
@click.option(
    "--mode", default=InferenceSettings.mode, show_default=True,
    help="tiny|small|base|large|gundam.",
)  # fmt: skip
@click.option("--crops", type=int, default=None, help="Gundam crops (2-9); default: tiling rule.")
@click.option("--image-size", default=None, metavar="WxH", help="Image size in pixels.")
@click.option(
    "--max-new-tokens", type=int, default=InferenceSettings.max_new_tokens, show_default=True,
    help="New tokens of the run (prefill gives the first; decode steps: one fewer).",
)  # fmt: skip
@click.option("--context-mode", default="auto", show_default=True, help="auto|fixed|max.")
@click.option("--context", type=int, default=None, help="Decode context for --context-mode fixed.")
@click.option("--dtype", default="bfloat16", show_default=True, help="Bytes per weight/activation.")
@click.option("--formulas-only", is_flag=True, help="Skip the fvcore/FlopCounterMode cross-check.")
@variant_options
@output_options
def static_cmd(
    preset: str,
    mode: str,
    crops: int | None,
    image_size: str | None,
    max_new_tokens: int,
    context_mode: str,
    context: int | None,
    dtype: str,
    formulas_only: bool,
    decode: str,
    moe: str | None,
    compile: bool,
    batch: int,
    fmt: str,
    output: str | None,
) -> None:
    """Per-stage parameters, FLOPs and bytes (formulas, fvcore, FlopCounterMode side by side).

    With -o FILE.json writes the static-compute JSON (read by `dsocr-nsys mfu`) and a Markdown
    twin FILE.md; -o with another suffix (or -f) writes the tables in that format; without -o
    prints the tables.
    """
    from .static.compute import StaticOptions, compute_static, parse_image_size, write_static

    opts = StaticOptions(
        preset=preset,
        mode=mode,
        crops=crops,
        image_size=parse_image_size(image_size) if image_size else None,
        max_new_tokens=max_new_tokens,
        context_mode=context_mode,
        context=context,
        dtype=dtype,
        sources=not formulas_only,
        decode=decode,
        moe=moe,
        compile=compile,
        batch=batch,
    )
    result = compute_static(opts, progress=progress)
    if output and fmt == "json":
        for path in write_static(result, output):
            progress(f"wrote {path}")
    else:
        emit(result.report(), fmt, output)


# --- mfu: mfu --------------------------------------------------------------------------------


@cli.command("mfu")
@click.argument("trace", type=click.Path(dir_okay=True))
@click.option(
    "--static",
    "static_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="static_compute.json for the traced configuration (from `dsocr-nsys static`).",
)
@click.option("--gpu", default=None, help="Peak-table GPU name (overrides the detected GPU).")
@click.option(
    "--peak-tflops",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Peak dense BF16 TFLOP/s (overrides --gpu, MFU_PEAK_TFLOPS and detection).",
)
@click.option(
    "--peak-gbps",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Peak memory GB/s (overrides --gpu, MFU_PEAK_GBPS and detection).",
)
@click.option(
    "--allow-mismatch",
    is_flag=True,
    help="Go on when the static configuration does not match the trace (noted in the report).",
)
@click.option(
    "--strict",
    is_flag=True,
    help="Exit 3 when a figure is impossible (MFU or MBU above 100 % of peak).",
)
@_INCLUDE_WARMUP
@click.option(
    "--hw",
    "hw_path",
    default=None,
    type=click.Path(dir_okay=False),
    help="hw_flops.json (dsocr-nsys hwflops -o): add hardware FLOPs, HFU and useful share.",
)
@click.option(
    "--ceiling",
    "ceiling_path",
    default=None,
    type=click.Path(dir_okay=False),
    help="run.json with a calibration (or a calibrate JSON): MFU/MBU against the measured ceiling.",
)
@output_options(
    directory=True, help="Write mfu.md, mfu.json, mfu.csv and PNG plots into this directory."
)
def mfu_cmd(
    trace: str,
    static_path: str,
    gpu: str | None,
    peak_tflops: float | None,
    peak_gbps: float | None,
    allow_mismatch: bool,
    strict: bool,
    include_warmup: bool,
    hw_path: str | None,
    ceiling_path: str | None,
    fmt: str,
    output: str | None,
) -> None:
    """Per-stage MFU and MBU: the trace's stage times joined with static FLOPs and bytes.

    With -o DIR, writes DIR/mfu.md, mfu.json, mfu.csv and PNG plots instead of printing."""
    from .errors import ImpossibleFiguresError
    from .mfu.checks import impossible_warnings
    from .mfu.report import analyse, report_for, write_dir

    result = analyse(
        trace,
        static_path,
        gpu=gpu,
        peak_tflops=peak_tflops,
        peak_gbps=peak_gbps,
        allow_mismatch=allow_mismatch,
        include_warmup=include_warmup,
        progress=progress,
    )
    if hw_path or ceiling_path:
        from .hw.join import apply

        apply(result, hw_path, ceiling_path)
    impossible = impossible_warnings(result.stages)
    for line in (*result.peak.warnings, *impossible):
        click.echo(f"warning: {line}", err=True)
    if output:
        progress(f"writing {output}/")
        for path in write_dir(result, output):
            progress(f"wrote {path}")
    else:
        emit(report_for(result, fmt), fmt, None)
    if strict and impossible:
        raise ImpossibleFiguresError(
            f"--strict: {len(impossible)} row(s) above 100 % of peak (marked `impossible`)"
        )


# --- hardware: hwflops, calibrate -----------------------------------------------------------


@cli.command("hwflops")
@click.argument("ncu_csv", type=click.Path(dir_okay=False))
@output_options
def hwflops_cmd(ncu_csv: str, fmt: str, output: str | None) -> None:
    """Hardware FLOPs per stage from an Nsight Compute raw CSV (`ncu --csv --page raw --nvtx`):
    tensor-core FLOPs per precision, FP32 FLOPs, ncu kernel time.

    JSON is the hw_flops.json document (read by `mfu --hw`): `-o hw_flops.json` writes it,
    `-f json` prints it; the other formats show its tables."""
    import json

    from .hw.ncu import hw_flops, read_ncu_csv

    result = hw_flops(read_ncu_csv(ncu_csv))
    if fmt == "json":
        text = json.dumps(result.document(), indent=2) + "\n"
        if output:
            write_atomic(output, text)
            progress(f"wrote {output}")
        else:
            click.echo(text, nl=False)
        return
    from .hw.report import hwflops_report

    emit(hwflops_report(result), fmt, output)


@cli.command("calibrate")
@click.option(
    "--repeats", default=10, show_default=True, type=click.IntRange(min=10),
    help="Timed repeats per size (each figure is their median).",
)  # fmt: skip
@output_options
def calibrate_cmd(repeats: int, fmt: str, output: str | None) -> None:
    """Measure this GPU's ceilings: dense BF16 GEMM TFLOP/s and device-copy GB/s (a few s)."""
    from .hw.calibrate import calibrate
    from .hw.report import calibration_report

    emit(calibration_report(calibrate(repeats=repeats)), fmt, output)


# --- compare: compare -----------------------------------------------------------------------


@cli.command("compare")
@click.argument("runs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--stage",
    default=None,
    metavar="NAME",
    help="Kernels of this range name (`all`: the whole trace). Default: decode, else all.",
)
@click.option(
    "--kernels", "n_kernels", default=15, show_default=True, type=click.IntRange(min=1),
    help="Kernel rows per run (largest change first).",
)  # fmt: skip
@click.option(
    "--top", default=15, show_default=True, type=click.IntRange(min=1),
    help="Range names shown when the exports hold no dsocr stages (largest change first).",
)  # fmt: skip
@_INCLUDE_WARMUP
@output_options(
    directory=True, help="Write compare.md, compare.json, compare.csv and compare.png here."
)
def compare_cmd(
    runs: tuple[Path, ...],
    stage: str | None,
    n_kernels: int,
    top: int,
    include_warmup: bool,
    fmt: str,
    output: str | None,
) -> None:
    """Compare runs with the first (the baseline): per stage, noise, MFU, kernels.

    Each RUN is a run folder, an mfu.json or an nsys SQLite export. With -o DIR, writes
    DIR/compare.md, compare.json, compare.csv and compare.png instead of printing."""
    from .compare import compare_runs
    from .compare.report import report_for, write_dir

    result = compare_runs(
        runs, stage=stage, kernels=n_kernels, top=top, include_warmup=include_warmup,
        progress=progress,
    )  # fmt: skip
    if output:
        for path in write_dir(result, output):
            progress(f"wrote {path}")
        return
    report = report_for(result, fmt)
    report.tables = {k: _readable(v, fmt) for k, v in report.tables.items()}
    emit(report, fmt, None)


# --- launch: infer, profile, report (declared in launch/commands.py) -------------------------

for _command in LAUNCH_COMMANDS:
    cli.add_command(_command)


def main() -> None:
    """Console-script entry point."""
    # numpy's OpenBLAS starts a thread per core at import, which spin for ~2 s of CPU on a
    # 16-core host; no command multiplies matrices with numpy (torch has its own pools)
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    keep_freed_memory()
    try:
        cli.main(prog_name="dsocr-nsys", standalone_mode=True)
    except SystemExit as exc:
        _end(exc)


def _end(exc: SystemExit) -> None:
    """End the process with ``exc``'s status. Without torch, at once: the interpreter's
    teardown (modules, DuckDB's buffers, the arrays of a large trace freed one by one) took
    0.05 s of a 1 s `stages` on a 1.5 M-kernel trace (2 cores), and nothing of these commands
    needs it: output files are complete (written atomically) and the streams are flushed here.
    A process that imported torch ends normally: CUDA and a profiler around it (nsys) flush
    their data then."""
    if "torch" in sys.modules:
        raise exc
    code = exc.code
    if not isinstance(code, int):
        if code is not None:
            print(code, file=sys.stderr)
        code = 0 if code is None else 1
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe (`| head`) or stream
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
