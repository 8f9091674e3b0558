"""The inference entry point that nsys wraps: run the model once in this process and record
what ran (the model's ``InferenceResult`` plus versions and the GPU) as JSON.

Polars-free, so it runs on the bare GPU image; ``dsocr-nsys infer`` and
``python -m dsocr_nsys.launch infer`` both call :func:`run_infer`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import DsocrError, ModelError
from .options import LaunchOptions
from .runinfo import runtime_environment, to_jsonable, utc_now, wall_timings, write_json_atomic

OOM_HINT = (
    "CUDA out of memory; free GPU memory or lower the load (--mode base instead of "
    "gundam/large, fewer --crops, fewer --max-new-tokens)"
)


def run_infer(options: LaunchOptions, progress: Callable[[str], None] | None = None) -> Any:
    """Build the model and run the requests; returns the model's ``InferenceResult``.

    A CUDA out-of-memory error that the model side did not already type becomes
    :class:`ModelError` (one line, no traceback)."""
    options.validate()
    from ..model.generate import run_inference

    try:
        return run_inference(options.to_settings(), progress=progress)
    except DsocrError:
        raise
    except Exception as exc:
        # torch.OutOfMemoryError (torch >= 2.5) / torch.cuda.OutOfMemoryError, matched by name so
        # this module does not import torch just to name the class.
        if type(exc).__name__ == "OutOfMemoryError" or "out of memory" in str(exc).lower():
            raise ModelError(OOM_HINT) from exc
        raise


def inner_payload(options: LaunchOptions, result: Any, started: str) -> dict[str, Any]:
    """What the inner process writes to ``--result-json`` on success."""
    return {
        "started": started,
        "finished": utc_now(),
        "options": options.as_record(),
        "result": to_jsonable(result),
        "environment": runtime_environment(options.device),
    }


def error_payload(exc: DsocrError) -> dict[str, Any]:
    """What the inner process writes on a typed error, so the parent re-raises it as is."""
    return {"error": {"type": type(exc).__name__, "message": str(exc)}}


def write_result(path: Path | None, payload: dict[str, Any]) -> None:
    """Write the inner payload (atomically) when a path was given."""
    if path is not None:
        write_json_atomic(path, payload)


def summary_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per timed request: wall times (ns, see :func:`runinfo.wall_timings`) and the
    decode throughput (tokens decoded per second of decode wall time: batch x decode steps).

    ``result`` is the JSON form of an ``InferenceResult``."""
    timings = wall_timings(result)
    steps = int(result.get("decode_steps") or 0)
    batch = int((result.get("variant") or {}).get("batch") or 1)
    rows = []
    for index, (request_ns, prefill_ns, decode_ns) in enumerate(
        zip(timings["request_ns"], timings["prefill_ns"], timings["decode_ns"], strict=True)
    ):
        rows.append(
            {
                "request": index,
                "batch": batch,
                "prefill_tokens": result.get("prefill_tokens"),
                "decode_steps": steps,
                "request_ns": request_ns,
                "prefill_ns": prefill_ns,
                "decode_ns": decode_ns,
                "decode_step_ns": decode_ns // steps if steps else None,
                "decode_tokens_per_s": batch * steps / (decode_ns / 1e9)
                if steps and decode_ns > 0
                else None,
            }
        )
    return rows


def execute_infer(
    options: LaunchOptions,
    result_json: Path | None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run, write the payload (or the typed error) to ``result_json``, return the payload."""
    started = utc_now()
    try:
        result = run_infer(options, progress)
    except DsocrError as exc:
        write_result(result_json, error_payload(exc))
        raise
    payload = inner_payload(options, result, started)
    write_result(result_json, payload)
    return payload
