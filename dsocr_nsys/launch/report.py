"""``make report``: from a run folder to MFU tables: ``dsocr-nsys static`` for the run's
configuration (unless the run folder already holds ``static_compute.json``), then
``dsocr-nsys mfu`` on its ``trace.sqlite`` with the GPU named at profile time.

:func:`static_argv` and :func:`report_commands` are pure (tested); :func:`run_report` runs
the commands. ``profile`` uses :func:`static_argv` too, so both write the same file.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import InputFileError
from ..hw import launch as hw_launch
from ..jsonfile import read_json
from . import runinfo
from .nsys import NsysStepError


def load_run(run_dir: Path) -> dict[str, Any]:
    """``run.json`` of a run folder (``runs/latest`` resolved by the caller)."""
    path = run_dir / runinfo.RUN_JSON
    return read_json(
        path,
        InputFileError,
        str(path),
        "profile first (make profile GPU=<name>) or pass RUN=<run folder>",
    )


def static_argv(
    record: Mapping[str, Any], output: Path, dsocr: Sequence[str] = ("dsocr-nsys",)
) -> list[str]:
    """``dsocr-nsys static`` for the configuration a run traced: preset, mode, the crops and
    image size the model's plan used, new tokens and dtype, written to ``output``.

    ``record`` is ``run.json`` (or the same fields: ``preset``, ``mode``, ``max_new_tokens``,
    ``plan``, ``options.dtype``, the variant fields ``decode``, ``moe``, ``compile``,
    ``batch`` at the top level)."""
    plan = record.get("plan") or {}
    cmd = [
        *dsocr,
        "static",
        f"--preset={record.get('preset') or 'full'}",
        f"--mode={record['mode']}",
    ]
    if record["mode"] == "gundam" and plan.get("crops"):
        cmd.append(f"--crops={plan['crops']}")
    if plan.get("image_size"):
        width, height = plan["image_size"]
        cmd.append(f"--image-size={width}x{height}")
    cmd.append(f"--max-new-tokens={record['max_new_tokens']}")
    options = record.get("options") or {}
    dtype = options.get("dtype")
    if dtype:
        cmd.append(f"--dtype={dtype}")
    # The variant as the model resolved it: run.json's top level (runinfo.run_variant, which
    # already falls back on the options where the model recorded none).
    for name in ("decode", "moe"):
        if record.get(name):
            cmd.append(f"--{name}={record[name]}")
    if record.get("compile"):
        cmd.append("--compile")
    if record.get("batch"):
        cmd.append(f"--batch={record['batch']}")
    cmd += ["-o", str(output)]
    return cmd


def report_commands(
    run_dir: Path,
    record: Mapping[str, Any],
    dsocr: Sequence[str] = ("dsocr-nsys",),
    gpu: str | None = None,
) -> list[list[str]]:
    """The ``static`` (when needed) and ``mfu`` command lines for a run folder.

    ``gpu`` overrides the GPU recorded in ``run.json`` (``--gpu`` at profile time, else the
    name torch reported)."""
    sqlite = run_dir / runinfo.SQLITE
    static = run_dir / runinfo.STATIC_JSON
    gpu_name = (
        gpu or (record.get("gpu") or {}).get("mfu_name") or (record.get("gpu") or {}).get("name")
    )
    commands: list[list[str]] = []
    if not static.is_file():
        commands.append(static_argv(record, static, dsocr))
    cmd = [*dsocr, "mfu", str(sqlite), "--static", str(static)]
    if gpu_name:
        cmd.append(f"--gpu={gpu_name}")
    cmd += hw_launch.mfu_args(run_dir, record)  # --hw / --ceiling when the run folder has them
    cmd += ["-o", str(run_dir / "mfu")]
    commands.append(cmd)
    return commands


def run_report(
    run_dir: Path,
    dsocr: Sequence[str] = ("dsocr-nsys",),
    gpu: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[list[str]]:
    """Run :func:`report_commands` in order; a failing step raises :class:`NsysStepError`
    naming it. Returns the commands run."""
    record = load_run(run_dir)
    if not (run_dir / runinfo.SQLITE).is_file():
        raise InputFileError(
            f"no {run_dir / runinfo.SQLITE} (a --no-nsys run has no trace); profile with nsys"
        )
    commands = report_commands(run_dir, record, dsocr, gpu)
    for cmd in commands:
        if progress:
            progress("$ " + " ".join(cmd))
        status = subprocess.run(cmd, check=False).returncode
        if status != 0:
            raise NsysStepError(f"'{' '.join(cmd[:2])}' failed (exit status {status})")
    return commands
