"""The launcher's hardware steps: ``profile --ncu`` (Nsight Compute on a short request of the
traced configuration, after the nsys run) and ``profile``'s default calibration.

Both are best effort: a missing ncu, no access to the GPU's performance counters, or no GPU
gives one warning line and the nsys part of the run folder is kept. Polars-free (the GPU image
runs the launcher without it).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..errors import DsocrError, ToolNotFoundError
from ..launch.nsys import Tool, find_tool
from ..launch.runinfo import RUN_JSON
from .ncu import (
    DEFAULT_METRICS,
    FLOAT_PRECISIONS,
    NCU_FLAGS,
    TENSOR_METRIC_RE,
    TIME_METRIC,
    hw_flops,
    read_ncu_csv,
)

Progress = Callable[[str], None]

NCU_CSV = "ncu.csv"
NCU_LOG = "ncu.log"
HW_JSON = "hw_flops.json"
CALIBRATE_LOG = "calibrate.log"
#: New tokens of the ncu request (prefill plus one decode step).
NCU_NEW_TOKENS = 2
#: Cache and clock control off: the kernels run as they did under nsys (docs/hwflops.md).
NCU_REPLAY = ("--cache-control", "none", "--clock-control", "none")
#: The tensor precision the model's dtype runs its GEMMs in.
PRECISION_OF_DTYPE = {"bfloat16": "bf16", "float16": "fp16", "float32": "tf32"}
INSTALL_HINT = (
    "install Nsight Compute (it ships with the CUDA toolkit) or pass --ncu-path / set $NCU"
)
_PERMISSION = ("ERR_NVGPUCTRPERM", "permission to access NVIDIA GPU Performance Counters")


#: Nsight Compute, found as nsys is (:func:`~dsocr_nsys.launch.nsys.find_tool`).
NCU = Tool("ncu", "Nsight Compute", "--ncu-path", "NCU", INSTALL_HINT)


def _capture(argv: Sequence[str], env: Mapping[str, str] | None, timeout_s: int = 120) -> str:
    try:
        done = subprocess.run(
            [str(a) for a in argv],
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout_s,
            check=False,
            env=dict(env) if env is not None else None,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ToolNotFoundError(f"{argv[0]} {argv[1]} did not answer ({exc})") from None
    return done.stdout + done.stderr


def ncu_version(text: str) -> str:
    """``Version 2025.3.1.0`` out of ``ncu --version``'s text ('unknown' if absent)."""
    m = re.search(r"Version\s+(\S+)", text)
    return m.group(1) if m else "unknown"


def available_metrics(query_text: str) -> set[str]:
    """Base metric names listed by ``ncu --query-metrics`` (first word of each row)."""
    names = set()
    for line in query_text.splitlines():
        word = line.split(maxsplit=1)[0] if line.strip() else ""
        if "__" in word:
            names.add(word)
    return names


def choose_metrics(available: set[str], dtype: str) -> list[str]:
    """One metric group: the aggregate tensor counter of the precision the model runs in (its
    ``_dst_fp32`` form where the chip names it so) and the kernel time. Raises DsocrError when
    the chip has no such counter."""
    prec = PRECISION_OF_DTYPE.get(dtype, "bf16")
    preferred = [m for m in DEFAULT_METRICS if m != TIME_METRIC] if prec == "bf16" else []
    candidates = [
        *preferred,
        f"sm__ops_path_tensor_src_{prec}_dst_fp32.sum",
        f"sm__ops_path_tensor_src_{prec}.sum",
    ]
    for name in candidates:
        if name.removesuffix(".sum") in available:
            return [name, TIME_METRIC]
    listed = sorted(
        f"{n}.sum"
        for n in available
        if (m := TENSOR_METRIC_RE.match(f"{n}.sum")) and m.group(1) in FLOAT_PRECISIONS
    )
    raise DsocrError(
        f"this GPU's ncu lists no {prec} tensor counter (sm__ops_path_tensor_src_{prec}*); "
        f"tensor counters it has: {', '.join(listed) or 'none'}"
    )


def ncu_argv(ncu: Path, metrics: Sequence[str], app: Sequence[str]) -> list[str]:
    """The ncu command line around the inference argv ``app``."""
    return [str(ncu), *NCU_REPLAY, *NCU_FLAGS, "--metrics", ",".join(metrics), *app]


def ncu_step(
    options: Any,
    run_dir: Path,
    infer_argv: Callable[[Any, Path], list[str]],
    env: Mapping[str, str],
    say: Progress,
    ncu_path: str | None = None,
    new_tokens: int = NCU_NEW_TOKENS,
) -> dict[str, Any]:
    """Run ncu on a ``new_tokens`` request of ``options`` (no warm-up, one repeat), write
    ``ncu.csv`` and ``hw_flops.json`` into ``run_dir``; the ``run.json`` record of the step.

    Never raises for a missing tool, counters or a failing run: the record then holds
    ``error`` (one line, also said through ``say``)."""
    record: dict[str, Any] = {"new_tokens": new_tokens}
    try:
        ncu = find_tool(NCU, ncu_path, env)
        record["version"] = ncu_version(_capture([ncu, "--version"], env))
        metrics = choose_metrics(available_metrics(_capture([ncu, "--query-metrics"], env)),
                                 getattr(options, "dtype", "bfloat16"))  # fmt: skip
        short = replace(options, max_new_tokens=new_tokens, warmup=0, repeats=1)
        app = infer_argv(short, run_dir / "ncu_result.json")
        argv = ncu_argv(ncu, metrics, app)
        record.update(command=argv, metrics=metrics)
        csv_path, log_path = run_dir / NCU_CSV, run_dir / NCU_LOG
        say(f"ncu ({', '.join(metrics)}) on a {new_tokens}-token request → {csv_path} "
            f"(log: {log_path})")  # fmt: skip
        # ncu's stdout goes to a partial file, renamed when ncu is done: no half-written ncu.csv
        partial = run_dir / f".{NCU_CSV}.partial"
        with (
            partial.open("w", encoding="utf-8") as out,
            log_path.open("w", encoding="utf-8") as log,
        ):
            log.write("$ " + shlex.join(argv) + "\n")
            log.flush()
            status = subprocess.run(
                argv, stdout=out, stderr=log, stdin=subprocess.DEVNULL, env=dict(env), check=False
            ).returncode
        os.replace(partial, csv_path)
        (run_dir / "ncu_result.json").unlink(missing_ok=True)
        text = log_path.read_text(encoding="utf-8", errors="replace")
        text += csv_path.read_text(encoding="utf-8", errors="replace")[:20000]
        if any(p in text for p in _PERMISSION):
            raise DsocrError(
                "no access to the GPU performance counters (ERR_NVGPUCTRPERM): run as root or "
                "load the driver with NVreg_RestrictProfilingToAdminUsers=0"
            )
        if status != 0:
            raise DsocrError(f"ncu exited with status {status}; see {log_path}")
        result = hw_flops(read_ncu_csv(csv_path))
        from ..output import write_atomic

        write_atomic(run_dir / HW_JSON, json.dumps(result.document(), indent=2) + "\n")
        record.update(csv=NCU_CSV, hw_flops=HW_JSON, log=NCU_LOG)
        say(f"wrote {run_dir / HW_JSON}")
    except DsocrError as exc:
        record["error"] = str(exc)
        say(f"warning: ncu step skipped ({exc}); the nsys run folder is kept")
    return record


def calibrate_argv() -> list[str]:
    """The calibration child: this interpreter, the polars-free module entry."""
    return [sys.executable, "-m", "dsocr_nsys.hw.calibrate"]


def calibrate_step(
    options: Any, run_dir: Path, env: Mapping[str, str], say: Progress
) -> dict[str, Any] | None:
    """``python -m dsocr_nsys.hw.calibrate`` in a child process (after the traced run, so it
    does not share the GPU with it); its record, or None with a warning line."""
    device = str(getattr(options, "device", "cuda"))
    if not device.startswith("cuda"):
        say(f"calibrate skipped (--device {device}): the ceilings are measured on a CUDA GPU")
        return None
    log = run_dir / CALIBRATE_LOG
    say(f"calibrate: dense BF16 GEMM and device copy ceilings (log: {log})")
    try:
        done = subprocess.run(
            calibrate_argv(),
            capture_output=True,
            text=True,
            env=dict(env),
            timeout=300,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        say(f"warning: calibrate failed ({exc})")
        return None
    log.write_text(done.stderr, encoding="utf-8")
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        say(f"warning: calibrate failed: {last}")
        return None
    try:
        record = json.loads(done.stdout)
        tflops, gbps = record["gemm_tflops"], record["copy_gbps"]
    except (ValueError, TypeError, KeyError):  # the child printed something else: no record
        say("warning: calibrate failed: its output is not a calibration record")
        return None
    say(f"calibrate: {tflops:.1f} TFLOP/s BF16 GEMM, {gbps:.1f} GB/s device copy")
    return record


def mfu_args(run_dir: Path, record: Mapping[str, Any]) -> list[str]:
    """``mfu`` options for what a run folder holds: ``--hw`` when ``hw_flops.json`` is there,
    ``--ceiling run.json`` when the run was calibrated (``make report``)."""
    args = []
    if (run_dir / HW_JSON).is_file():
        args += ["--hw", str(run_dir / HW_JSON)]
    if record.get("calibration"):
        args += ["--ceiling", str(run_dir / RUN_JSON)]
    return args
