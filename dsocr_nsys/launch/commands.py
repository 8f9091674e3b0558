"""The launcher's commands, declared once: ``infer``, ``profile`` and ``report``.

Registered in both entry points, ``dsocr-nsys`` (:mod:`dsocr_nsys.cli`) and the polars-free
``python -m dsocr_nsys.launch`` (:mod:`.__main__`) that nsys wraps and the bare GPU image runs;
so nothing here imports polars or DuckDB: summaries are plain rows, rendered by
:mod:`dsocr_nsys.output` like every other table.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import click

from ..clikit import progress
from ..output import Report, emit, output_options
from . import runinfo
from .options import inference_options, options_from_kwargs
from .profile import profile_options, request_from_kwargs


@click.command("infer")
@inference_options
@click.option("--result-json", type=click.Path(path_type=Path, dir_okay=False), hidden=True)
@output_options
def infer(result_json: Path | None, fmt: str, output: str | None, **kwargs: Any) -> None:
    """Run DeepSeek-OCR inference in this process (no nsys) and print wall times per request.

    The entry point that `profile` runs under nsys, and what the NVTX-overhead benchmark times."""
    from .infer import execute_infer, summary_rows

    options = options_from_kwargs(kwargs)
    payload = execute_infer(options, result_json, progress)
    result = payload["result"]
    report = Report(
        tables={"requests": summary_rows(result)},
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


@click.command("profile")
@inference_options
@profile_options
@output_options
def profile(fmt: str, output: str | None, **kwargs: Any) -> None:
    """Run inference under `nsys profile`, export to SQLite, and leave a run folder:
    trace.nsys-rep, trace.sqlite, run.json (model config, tokens, versions, GPU, nsys commands)."""
    from .profile import profile_run, summary_rows

    options = options_from_kwargs(kwargs)
    request = request_from_kwargs(kwargs, options)
    record = profile_run(options, request, progress)
    report = Report(
        tables={"files": summary_rows(record, request.out)},
        meta={
            key: value
            for key, value in {
                "run": str(request.out),
                "command": shlex.join(record["command"]) if record.get("command") else None,
                "mode": record["mode"],
                "views": record["views"],
                "prefill_tokens": record["prefill_tokens"],
                "decode_steps": record["decode_steps"],
                "gpu": record["gpu"]["name"],
                "mfu_gpu": record["gpu"]["mfu_name"],
                "nsys": record["versions"]["nsys"],
            }.items()
            # a program of the user's own has no mode, views or tokens of ours to show
            if value is not None
        },
        title="dsocr-nsys profile: run folder",
    )
    emit(report, fmt, output)


@click.command("report")
@click.argument("run_dir", type=click.Path(path_type=Path, file_okay=False), default="runs/latest")
@click.option("--gpu", default=None, help="GPU name for MFU (default: the one in run.json).")
@click.option("--dsocr", default="dsocr-nsys", show_default=True, help="dsocr-nsys command.")
def report(run_dir: Path, gpu: str | None, dsocr: str) -> None:
    """Static compute for a run folder's configuration, then MFU of its trace (make report)."""
    from .report import run_report

    if run_dir.name == runinfo.LATEST:
        run_dir = runinfo.resolve_latest(run_dir.parent)
    run_report(run_dir, (dsocr,), gpu, progress)


#: Every launcher command, in help order.
COMMANDS: tuple[click.Command, ...] = (infer, profile, report)
