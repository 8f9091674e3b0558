"""Thin click wiring. Commands call library functions (which return data) and render it with
:mod:`dsocr_nsys.output`; every :class:`~dsocr_nsys.errors.DsocrError` becomes one line on
stderr and exit code 2, here and nowhere else.
"""

from __future__ import annotations

import importlib
import sys
import threading
from pathlib import Path
from typing import Any

import click

from . import __version__
from .errors import DsocrError
from .launch.options import inference_options, options_from_kwargs
from .launch.profile import profile_options, request_from_kwargs
from .output import Report, emit, output_options
from .settings import DECODE_MODES, MOE_IMPLS


class DsocrGroup(click.Group):
    """Maps the library's typed errors to one stderr line and exit code 2."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DsocrError as exc:
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            ctx.exit(130)


def progress(message: str) -> None:
    """Progress lines go to stderr so stdout stays data only."""
    click.echo(message, err=True)


@click.group(cls=DsocrGroup, context_settings={"help_option_names": ["-h", "--help"]})
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
_STAGE_COLUMNS = (
    "name", "pid", "device_ids", "instances", "gpu_ops", "kernels",
    "proj_total_ns", "busy_total_ns", "kernel_total_ns", "idle_total_ns", "cpu_total_ns",
    "busy_mean_ns", "busy_median_ns", "gpu_pct",
)  # fmt: skip
_NAME_WIDTH = 70


def _open_trace_cli(path: Path) -> Any:
    from .trace import open_trace

    # Importing polars takes 0.15-0.2 s. DuckDB releases the GIL while it reads the export, so
    # an import started now on a thread finishes behind the reading; the engine's own
    # `import polars` then finds it done (or waits on the import lock, never imports twice).
    threading.Thread(target=importlib.import_module, args=("polars",), daemon=True).start()

    if path.is_file() and path.stat().st_size > 64 * 1024 * 1024:
        progress(f"reading {path.name} ({path.stat().st_size / 1e6:,.0f} MB) ...")
    return open_trace(path)


def _readable(frame: Any, fmt: str, columns: tuple[str, ...] | None = None) -> Any:
    """Human formats get the main columns and shortened kernel names; json/csv stay raw."""
    import polars as pl

    if fmt == "csv" and "device_ids" in frame.columns:
        # CSV cells hold no lists: devices as "0,1".
        return frame.with_columns(
            pl.col("device_ids").list.eval(pl.element().cast(pl.Utf8)).list.join(",")
        )
    if fmt not in ("table", "md"):
        return frame
    if columns:
        frame = frame.select([c for c in columns if c in frame.columns])
    for col in ("name", "short_name"):
        if col in frame.columns and frame.schema[col] == pl.Utf8:
            frame = frame.with_columns(
                pl.when(pl.col(col).str.len_chars() > _NAME_WIDTH)
                .then(pl.col(col).str.slice(0, _NAME_WIDTH - 1) + "…")
                .otherwise(pl.col(col))
                .alias(col)
            )
    if "device_ids" in frame.columns:
        frame = frame.with_columns(
            pl.col("device_ids").list.eval(pl.element().cast(pl.Utf8)).list.join(",")
        )
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
@output_options
def stages(
    trace: Path,
    include_warmup: bool,
    stage_names: tuple[str, ...],
    wide: bool,
    fmt: str,
    output: str | None,
) -> None:
    """Per-stage GPU time: one row per NVTX range name.

    Time bases: proj (first GPU op start to last op end), busy (union of op intervals),
    kernel (sum of kernel durations), idle (proj - busy), cpu (the NVTX range itself).
    """
    with _open_trace_cli(trace) as tr:
        frame = tr.stages(include_warmup=include_warmup, names=list(stage_names) or None)
        gpus = ", ".join(sorted({g.name for g in tr.gpus() if g.name})) or "unknown"
    report = Report(
        tables={"stages": _readable(frame, fmt, None if wide else _STAGE_COLUMNS)},
        meta={"trace": str(trace), "gpu": gpus, "warmup_included": include_warmup},
        notes=[
            "proj = first GPU op start to last op end (nsys projected duration); busy = union "
            "of op intervals; idle = proj - busy; GPU % = busy / whole-trace GPU busy time",
        ],
        title="GPU time per stage",
    )
    emit(report, fmt, output)


@cli.command()
@_TRACE_ARG
@click.option("--stage", default=None, metavar="NAME", help="Only kernels launched in this stage.")
@click.option("--top", default=20, show_default=True, type=click.IntRange(min=1))
@_INCLUDE_WARMUP
@output_options
def kernels(
    trace: Path,
    stage: str | None,
    top: int,
    include_warmup: bool,
    fmt: str,
    output: str | None,
) -> None:
    """Top kernels by total GPU time, for the whole trace or one stage."""
    with _open_trace_cli(trace) as tr:
        frame = tr.kernels(stage=stage, top=top, include_warmup=include_warmup)
    columns = (
        "name", "short_name", "instances", "total_ns", "mean_ns", "median_ns", "min_ns",
        "max_ns", "share_pct",
    )  # fmt: skip
    report = Report(
        tables={"kernels": _readable(frame, fmt, columns)},
        meta={"trace": str(trace), "stage": stage or "(whole trace)", "top": top},
        title="Top kernels" + (f" in stage {stage}" if stage else ""),
    )
    emit(report, fmt, output)


@cli.command()
@_TRACE_ARG
@output_options
def info(trace: Path, fmt: str, output: str | None) -> None:
    """What an export holds: nsys version, GPUs, event counts, duration."""
    import polars as pl

    with _open_trace_cli(trace) as tr:
        ti = tr.info()
    counts = pl.DataFrame(
        [
            {
                "nvtx_ranges": ti.nvtx_ranges,
                "kernels": ti.kernels,
                "runtime_calls": ti.runtime_calls,
                "memcpy": ti.memcpy,
                "memset": ti.memset,
                "duration_ns": ti.duration_ns,
            }
        ],
        schema={k: pl.Int64 for k in (
            "nvtx_ranges", "kernels", "runtime_calls", "memcpy", "memset", "duration_ns"
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
@click.option("--mode", default="gundam", show_default=True, help="tiny|small|base|large|gundam.")
@click.option("--crops", type=int, default=None, help="Gundam crops (2-9); default: tiling rule.")
@click.option("--image-size", default=None, metavar="WxH", help="Image size in pixels.")
@click.option("--max-new-tokens", type=int, default=256, show_default=True)
@click.option("--context-mode", default="auto", show_default=True, help="auto|fixed|max.")
@click.option("--context", type=int, default=None, help="Decode context for --context-mode fixed.")
@click.option("--dtype", default="bfloat16", show_default=True, help="Bytes per weight/activation.")
@click.option("--formulas-only", is_flag=True, help="Skip the fvcore/FlopCounterMode cross-check.")
@click.option("--decode", type=click.Choice(DECODE_MODES), default="eager", show_default=True)
@click.option("--moe", type=click.Choice(MOE_IMPLS), default=None, help="Default: as the launcher.")
@click.option("--compile", "compiled", is_flag=True, help="The run compiled its decode step.")
@click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True, help="Pages.")
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
    compiled: bool,
    batch: int,
    fmt: str,
    output: str | None,
) -> None:
    """Per-stage parameters, FLOPs and bytes (formulas, fvcore, FlopCounterMode side by side).

    With -o FILE.json writes the static-compute JSON (read by `dsocr-nsys mfu`) and a Markdown
    twin FILE.md; without -o prints the tables.
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
        compile=compiled,
        batch=batch,
    )
    result = compute_static(opts, progress=progress)
    if output:
        for path in write_static(result, output):
            progress(f"wrote {path}")
    else:
        emit(result.report(), fmt, None)


# --- mfu: mfu --------------------------------------------------------------------------------


@cli.command("mfu")
@click.argument("trace", type=click.Path(dir_okay=False))
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
@_INCLUDE_WARMUP
@output_options
def mfu_cmd(
    trace: str,
    static_path: str,
    gpu: str | None,
    peak_tflops: float | None,
    peak_gbps: float | None,
    allow_mismatch: bool,
    include_warmup: bool,
    fmt: str,
    output: str | None,
) -> None:
    """Per-stage MFU and MBU: the trace's stage times joined with static FLOPs and bytes.

    With -o DIR, writes DIR/mfu.md, mfu.json, mfu.csv and PNG plots instead of printing."""
    from .mfu.report import analyse, report_for, write_dir
    from .output import render

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
    if output:
        progress(f"writing {output}/")
        for path in write_dir(result, output):
            progress(f"wrote {path}")
    else:
        click.echo(render(report_for(result, fmt), fmt), nl=False)


# For this command -o names a directory (the shared option is a file path elsewhere).
for _param in mfu_cmd.params:
    if _param.name == "output" and isinstance(_param, click.Option):
        _param.type = click.Path(file_okay=False, writable=True)
        _param.help = "Write mfu.md, mfu.json, mfu.csv and PNG plots into this directory."


# --- launch: profile (and the inference entry it wraps) -------------------------------------


@cli.command("infer")
@inference_options
@click.option("--result-json", type=click.Path(dir_okay=False), hidden=True)
@output_options
def infer_cmd(result_json: str | None, fmt: str, output: str | None, **kwargs: Any) -> None:
    """Run DeepSeek-OCR inference in this process (no nsys) and print wall times per request.

    The entry point that `profile` runs under nsys, and what the NVTX-overhead benchmark times."""
    from pathlib import Path

    import polars as pl

    from .launch.infer import execute_infer, summary_rows

    options = options_from_kwargs(kwargs)
    payload = execute_infer(options, Path(result_json) if result_json else None, progress)
    result = payload["result"]
    report = Report(
        tables={"requests": pl.DataFrame(summary_rows(result), infer_schema_length=None)},
        meta={
            "preset": options.preset,
            "mode": options.mode,
            "device": options.device,
            "gpu": payload["environment"].get("gpu_name"),
            "prefill_tokens": result.get("prefill_tokens"),
            "decode_steps": result.get("decode_steps"),
        },
        title="DeepSeek-OCR inference (wall clock, one row per timed request)",
    )
    emit(report, fmt, output)


@cli.command("profile")
@inference_options
@profile_options
@output_options
def profile_cmd(fmt: str, output: str | None, **kwargs: Any) -> None:
    """Run inference under `nsys profile`, export to SQLite, and leave a run folder:
    trace.nsys-rep, trace.sqlite, run.json (model config, tokens, versions, GPU, nsys commands)."""
    import polars as pl

    from .launch.profile import profile_run, summary_rows

    options = options_from_kwargs(kwargs)
    request = request_from_kwargs(kwargs, options)
    record = profile_run(options, request, progress)
    report = Report(
        tables={"files": pl.DataFrame(summary_rows(record, request.out), infer_schema_length=None)},
        meta={
            "run": str(request.out),
            "mode": record["mode"],
            "views": record["views"],
            "prefill_tokens": record["prefill_tokens"],
            "decode_steps": record["decode_steps"],
            "gpu": record["gpu"]["name"],
            "mfu_gpu": record["gpu"]["mfu_name"],
            "nsys": record["versions"]["nsys"],
        },
        title="dsocr-nsys profile: run folder",
    )
    emit(report, fmt, output)


def main() -> None:
    """Console-script entry point."""
    sys.exit(cli.main(prog_name="dsocr-nsys", standalone_mode=True))


if __name__ == "__main__":
    main()
