"""``python -m dsocr_nsys.launch infer|profile``: the launcher without polars or DuckDB.

The inner process that nsys wraps runs ``infer`` from here, and the GPU image (torch, no
polars) runs ``profile`` from here. Same options and library calls as ``dsocr-nsys infer`` /
``dsocr-nsys profile``; the summary is plain text instead of the shared renderer's.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from ..cli import DsocrGroup, progress
from . import runinfo
from .infer import execute_infer, summary_rows
from .options import inference_options, options_from_kwargs
from .profile import profile_options, profile_run, request_from_kwargs
from .report import run_report


def _plain(rows: list[dict[str, Any]]) -> str:
    """Rows as aligned text; ``*_ns`` columns shown in ms."""
    if not rows:
        return "(no rows)\n"
    headers = [h[:-3] + " (ms)" if h.endswith("_ns") else h for h in rows[0]]

    def cell(key: str, value: Any) -> str:
        if value is None:
            return "-"
        if key.endswith("_ns"):
            return f"{value / 1e6:,.3f}"
        return f"{value:.2f}" if isinstance(value, float) else str(value)

    table = [[cell(k, v) for k, v in row.items()] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in table)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in table]
    return "\n".join(lines) + "\n"


@click.group(cls=DsocrGroup, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """DeepSeek-OCR launcher (polars-free entry point of dsocr-nsys)."""


@main.command("infer")
@inference_options
@click.option("--result-json", type=click.Path(path_type=Path, dir_okay=False), hidden=True)
def infer_command(result_json: Path | None, **kwargs: Any) -> None:
    """Run DeepSeek-OCR inference in this process and print wall times."""
    options = options_from_kwargs(kwargs)
    payload = execute_infer(options, result_json, progress)
    click.echo(_plain(summary_rows(payload["result"])), nl=False)


@main.command("profile")
@inference_options
@profile_options
def profile_command(**kwargs: Any) -> None:
    """Run inference under nsys and leave a run folder (trace.nsys-rep, trace.sqlite, run.json)."""
    options = options_from_kwargs(kwargs)
    request = request_from_kwargs(kwargs, options)
    record = profile_run(options, request, progress)
    click.echo(
        f"run folder: {request.out}\n"
        f"mode {record['mode']}, views {record['views']}, prefill tokens "
        f"{record['prefill_tokens']}, decode steps {record['decode_steps']}, "
        f"GPU {record['gpu']['name']}\n"
    )


@main.command("report")
@click.argument("run_dir", type=click.Path(path_type=Path, file_okay=False), default="runs/latest")
@click.option("--gpu", default=None, help="GPU name for MFU (default: the one in run.json).")
@click.option("--dsocr", default="dsocr-nsys", show_default=True, help="dsocr-nsys command.")
def report_command(run_dir: Path, gpu: str | None, dsocr: str) -> None:
    """Static compute for the run's configuration, then MFU of its trace (make report)."""
    if run_dir.name == runinfo.LATEST:
        run_dir = runinfo.resolve_latest(run_dir.parent)
    run_report(run_dir, (dsocr,), gpu, progress)


if __name__ == "__main__":
    sys.exit(main.main(prog_name="python -m dsocr_nsys.launch", standalone_mode=True))
