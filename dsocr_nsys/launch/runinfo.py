"""The run folder's record, ``run.json``: what ran, on what, with which nsys command lines.

:func:`build_run_record` is pure (tested field by field); the collectors beside it read the
environment. Nothing here imports polars or torch at module level: this runs on the GPU
image, which has torch but not polars.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import platform
import shutil
import subprocess
import sys
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .. import __version__

RUN_SCHEMA = "dsocr-nsys/run"
RUN_SCHEMA_VERSION = 1

# File names inside a run folder (docs/launch.md describes each).
REPORT_BASE = "trace"  # nsys appends .nsys-rep
NSYS_REP = "trace.nsys-rep"
SQLITE = "trace.sqlite"
RUN_JSON = "run.json"
RESULT_JSON = "result.json"
PROFILE_LOG = "nsys-profile.log"
EXPORT_LOG = "nsys-export.log"
INFER_LOG = "infer.log"
STATIC_JSON = "static_compute.json"
STATIC_LOG = "static.log"
LATEST = "latest"


def nsys_rep_for(trace_path: Path) -> Path:
    """The ``.nsys-rep`` report beside an export (same stem), to open in the GUI."""
    return trace_path.with_suffix(".nsys-rep")


def utc_now() -> str:
    """Current UTC time, ISO 8601 with seconds (``2026-11-23T20:16:37Z``)."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def to_jsonable(value: Any) -> Any:
    """Dataclasses, paths, enums, tuples, torch dtypes/devices and numpy scalars as JSON
    values (recursively); anything else unknown becomes its ``str``."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if callable(getattr(value, "to_dict", None)) and not isinstance(value, type):
        return to_jsonable(value.to_dict())  # the model's own JSON form (plan, config)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, enum.Enum):
        return to_jsonable(value.value)
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        return value.item()  # numpy / torch scalar
    if hasattr(value, "tolist") and callable(value.tolist):
        return value.tolist()
    return str(value)


def write_json_atomic(path: Path, payload: Any) -> Path:
    """Write JSON atomically with :func:`dsocr_nsys.output.write_atomic` (polars-free: it
    imports click only), so ``run.json`` gets the mode a plain ``open()`` gives."""
    from ..output import write_atomic

    return write_atomic(path, json.dumps(payload, indent=2, sort_keys=False) + "\n")


def runtime_environment(device: str) -> dict[str, Any]:
    """What the inference process ran on: library versions and, on CUDA, the GPU as torch
    sees it. Called inside the process that ran the model (no extra CUDA context)."""
    env: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    try:
        import torch

        env["torch"] = torch.__version__
        env["torch_cuda"] = torch.version.cuda
        if str(device).startswith("cuda") and torch.cuda.is_available():
            index = torch.device(device).index or 0
            props = torch.cuda.get_device_properties(index)
            env["gpu_name"] = torch.cuda.get_device_name(index)
            env["gpu_capability"] = f"{props.major}.{props.minor}"
            env["gpu_multiprocessors"] = props.multi_processor_count
            env["gpu_memory_bytes"] = int(props.total_memory)
            env["cudnn"] = torch.backends.cudnn.version()
    except ImportError:
        env["torch"] = None
    for name in ("transformers", "nvtx"):
        env[name] = _dist_version(name)
    return env


def _dist_version(name: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def nvidia_smi_query(field: str) -> str | None:
    """One ``nvidia-smi --query-gpu`` field of the first GPU (``driver_version``, ``name``),
    read without creating a CUDA context; None where nvidia-smi is missing or fails."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    try:
        done = subprocess.run(
            [smi, f"--query-gpu={field}", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    first = done.stdout.strip().splitlines()[:1]
    return first[0].strip() if done.returncode == 0 and first else None


def build_run_record(
    *,
    options: Mapping[str, Any],
    inner: Mapping[str, Any],
    gpu_arg: str | None,
    nsys_version: str | None,
    commands: Mapping[str, list[str] | None],
    files: Mapping[str, str | None],
    driver: str | None,
    started: str,
    finished: str,
) -> dict[str, Any]:
    """Assemble ``run.json`` (pure).

    ``options``: the :class:`LaunchOptions` record; ``inner``: what the inner ``infer`` wrote
    (``result``: the model's InferenceResult as JSON, ``environment``: versions and GPU);
    ``gpu_arg``: the ``--gpu`` name for the MFU step; ``commands``: the argv of each step
    (``profile``, ``export``, ``infer``, or ``command``: a program of the user's own, also at the
    top level as ``command``); ``files``: run-folder-relative names of what exists.
    """
    result = dict(inner.get("result") or {})
    environment = dict(inner.get("environment") or {})
    plan = result.get("plan") or {}
    return {
        "schema": RUN_SCHEMA,
        "schema_version": RUN_SCHEMA_VERSION,
        "started": started,
        "finished": finished,
        "preset": options.get("preset"),
        "mode": options.get("mode"),
        "crops": _first(plan, ("crops",), options.get("crops")),
        "views": _first(plan, ("num_views", "views"), None),
        "max_new_tokens": options.get("max_new_tokens"),
        "prefill_tokens": result.get("prefill_tokens"),
        "decode_steps": result.get("decode_steps"),
        "warmup": options.get("warmup"),
        "repeats": options.get("repeats"),
        "nvtx": options.get("nvtx"),
        **run_variant(options, result),
        "options": dict(options),
        "plan": plan,
        "model_config": result.get("model_config"),
        "timings": wall_timings(result),
        "result": {k: v for k, v in result.items() if k not in ("plan", "model_config")},
        "gpu": {
            "name": environment.get("gpu_name"),
            "mfu_name": gpu_arg,
            "capability": environment.get("gpu_capability"),
            "multiprocessors": environment.get("gpu_multiprocessors"),
            "memory_bytes": environment.get("gpu_memory_bytes"),
        },
        "versions": {
            "dsocr_nsys": __version__,
            "python": environment.get("python") or platform.python_version(),
            "torch": environment.get("torch"),
            "transformers": environment.get("transformers"),
            "nvtx": environment.get("nvtx"),
            "cuda": environment.get("torch_cuda"),
            "cudnn": environment.get("cudnn"),
            "driver": driver,
            "nsys": nsys_version,
        },
        "command": commands.get("command"),
        "commands": {k: v for k, v in commands.items()},
        "files": {k: v for k, v in files.items()},
        "host": {"platform": environment.get("platform"), "executable": sys.executable},
    }


def run_variant(options: Mapping[str, Any], result: Mapping[str, Any]) -> dict[str, Any]:
    """The variant fields of ``run.json`` (:data:`VARIANT_FIELDS`, plus ``compile_mode`` and
    ``moe_kernel``): as the model resolved them (``result["variant"]``), else from the options
    (a run of a command of the user's own has neither: all None)."""
    from ..settings import VARIANT_FIELDS, InferenceSettings, variant

    resolved = dict(result.get("variant") or {})
    if not resolved and "decode" in options:
        known = {f: options[f] for f in ("decode", "moe", "compile", "batch") if f in options}
        resolved = variant(InferenceSettings(**known))
    out = {f: resolved.get(f) for f in VARIANT_FIELDS}
    out["compile_mode"] = resolved.get("compile_mode")
    out["moe_kernel"] = resolved.get("moe_kernel")
    return out


def wall_timings(result: Mapping[str, Any]) -> dict[str, list[int]]:
    """Per timed request, in integer ns of host wall clock (device synchronised at both ends):
    ``request_ns`` (whole request), ``prefill_ns`` (request start to token 1 ready) and
    ``decode_ns`` (the rest: the decode steps and the final synchronisation).

    ``result`` is the JSON form of the model's ``InferenceResult`` (``timings_s``,
    ``prefill_s``: seconds per repeat)."""
    request = [round(s * 1e9) for s in result.get("timings_s") or []]
    prefill = [round(s * 1e9) for s in result.get("prefill_s") or []]
    decode = [r - p for r, p in zip(request, prefill, strict=False)]
    return {"request_ns": request, "prefill_ns": prefill, "decode_ns": decode}


def _first(mapping: Mapping[str, Any], keys: tuple[str, ...], default: Any) -> Any:
    """The first of ``keys`` present in ``mapping``; counts given as lists become lengths."""
    for key in keys:
        if key in mapping and mapping[key] is not None:
            value = mapping[key]
            return len(value) if isinstance(value, list) else value
    return default


def point_latest(run_dir: Path) -> Path:
    """Make ``<parent>/latest`` point at ``run_dir``: a relative symlink, or where links are
    not allowed a text file holding the folder's name. Returns the pointer's path."""
    pointer = run_dir.parent / LATEST
    if pointer.resolve() == run_dir.resolve():
        return pointer
    if pointer.is_symlink() or pointer.is_file():
        pointer.unlink()
    elif pointer.exists():
        return pointer  # a real folder named 'latest': leave it alone
    try:
        pointer.symlink_to(run_dir.name, target_is_directory=True)
    except OSError:
        pointer.write_text(run_dir.name + "\n", encoding="utf-8")
    return pointer


def resolve_latest(runs_dir: Path) -> Path:
    """The run folder ``<runs_dir>/latest`` points at (symlink or text file)."""
    pointer = runs_dir / LATEST
    if pointer.is_file() and not pointer.is_symlink():
        return runs_dir / pointer.read_text(encoding="utf-8").strip()
    return pointer.resolve()
