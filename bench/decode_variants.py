"""Decode variants on one model build: eager (MoE loop / device), CUDA-graph decode, compiled
decode, at several batch sizes; each request timed with CUDA events.

    python bench/decode_variants.py --mode base --max-new-tokens 32 --batches 1,4,16 \
        --variants eager-loop,eager-device,cuda-graph --json base.json          # GPU
    python bench/decode_variants.py --preset tiny --mode tiny --device cpu --dtype float32 \
        --max-new-tokens 4 --batches 1,2 --variants eager-loop,eager-device     # smoke (CPU)

Variants: ``eager-loop`` (today's baseline: eager, context attention, host-sync MoE as the
reference code), ``eager-device`` (eager, device MoE), ``cuda-graph`` (static cache, step
captured once and replayed), ``compile`` (static cache, torch.compile'd step run eagerly),
``compile-graph`` (the compiled step captured), ``cuda-graph-gather`` / ``cuda-graph-grouped``
(``cuda-graph`` with the device MoE's routed-expert kernel forced: the kernel comparison with
launch overhead taken out). ``--moe-kernels`` also times one MoE layer per implementation,
eagerly: CUDA events around eager launches, so launch-bound kernels count their gaps too.

Per (variant, batch): ``--warmup`` untimed requests, then ``--repeats`` timed ones; per timed
request CUDA events at request start, token 1 issued, last decode step, so
``prefill_ms`` (vision + LLM prefill + token 1), ``decode_ms`` (the ``max_new_tokens - 1``
steps), ``step_ms = decode_ms / steps``, ``decode_tokens_per_s = batch * steps / decode_s``,
``pages_per_s = batch / request_s``; medians over the repeats. On a CPU the events are host
clock reads (``time.perf_counter``). Each row also holds ``prepare_s`` (compile / capture) and
whether the variant produced the eager-loop tokens (``same_tokens``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import traceback
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from dsocr_nsys.model.config import get_config
from dsocr_nsys.model.deepseek_ocr import build_model, resolve_dtype
from dsocr_nsys.model.generate import generate, make_decoder, moe_kernel, page_inputs
from dsocr_nsys.model.inputs import load_image, plan_request, prompt_ids
from dsocr_nsys.model.llm import MoE, set_moe_impl
from dsocr_nsys.model.ranges import Ranges
from dsocr_nsys.settings import InferenceSettings, resolved_moe, variant

VARIANTS: dict[str, dict[str, Any]] = {
    "eager-loop": {"decode": "eager", "moe": "loop"},
    "eager-device": {"decode": "eager", "moe": "device"},
    "cuda-graph": {"decode": "cuda-graph", "moe": "device"},
    "compile": {"decode": "eager", "moe": "device", "compile": True},
    "compile-graph": {"decode": "cuda-graph", "moe": "device", "compile": True},
    # the device MoE's other routed-expert kernel (MoE.kernel), captured the same way
    "cuda-graph-gather": {"decode": "cuda-graph", "moe": "device", "kernel": "gather_bmm"},
    "cuda-graph-grouped": {"decode": "cuda-graph", "moe": "device", "kernel": "grouped_mm"},
}


class Clock:
    """CUDA events on a GPU, host clock reads on a CPU; ``ms(a, b)`` between two marks."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.marks: dict[str, Any] = {}

    def mark(self, name: str) -> None:
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            self.marks[name] = event
        else:
            self.marks[name] = time.perf_counter()

    def ms(self, a: str, b: str) -> float:
        if self.cuda:
            torch.cuda.synchronize()
            return float(self.marks[a].elapsed_time(self.marks[b]))
        return (self.marks[b] - self.marks[a]) * 1e3


def _median(rows: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in rows)


def run_variant(
    model: Any,
    settings: InferenceSettings,
    plan: Any,
    image: Any,
    text_ids: list[int],
    device: torch.device,
    dtype: torch.dtype,
    warmup: int,
    repeats: int,
    kernel: str | None = None,
) -> dict[str, Any]:
    """Time one (variant, batch) on the built model (``kernel``: force the device MoE's
    routed-expert kernel); returns its row."""
    set_moe_impl(model, resolved_moe(settings))
    for moe in model.modules():
        if isinstance(moe, MoE):
            moe.kernel = kernel
    glob, crops = page_inputs(image, plan, settings.batch, device, dtype)
    decoder = make_decoder(model, settings, plan, device, dtype)
    prepare_s = decoder.prepare(lambda m: print(m, file=sys.stderr))
    quiet = Ranges(False)
    steps = settings.max_new_tokens - 1
    for _ in range(warmup):
        generate(
            model, plan, glob, crops, text_ids, settings.max_new_tokens, quiet, decoder=decoder
        )
    timed = []
    tokens = None
    for _ in range(repeats):
        clock = Clock(device)
        if clock.cuda:
            torch.cuda.synchronize()
        clock.mark("start")
        out, _ = generate(
            model,
            plan,
            glob,
            crops,
            text_ids,
            settings.max_new_tokens,
            quiet,
            decoder=decoder,
            mark=clock.mark,
        )
        prefill_ms, decode_ms = clock.ms("start", "prefill"), clock.ms("prefill", "decode")
        request_s = (prefill_ms + decode_ms) / 1e3
        timed.append(
            {
                "prefill_ms": prefill_ms,
                "decode_ms": decode_ms,
                "step_ms": decode_ms / steps if steps else 0.0,
                "request_ms": request_s * 1e3,
                "decode_tokens_per_s": settings.batch * steps / (decode_ms / 1e3) if steps else 0.0,
                "pages_per_s": settings.batch / request_s,
            }
        )
        tokens = out.reshape(settings.batch, -1)[0].tolist()
    row: dict[str, Any] = {**variant(settings), "prepare_s": round(prepare_s, 3)}
    if row["moe"] == "device":
        row["moe_kernel"] = moe_kernel(model)
    for key in timed[0]:
        row[key] = round(_median(timed, key), 4)
    row["repeats"] = repeats
    row["tokens"] = tokens
    del decoder
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return row


def moe_kernel_rows(
    model: Any, batches: list[int], device: torch.device, dtype: torch.dtype, iters: int = 50
) -> list[dict[str, Any]]:
    """One MoE layer's forward per routed-expert kernel and batch (CUDA events, median of
    ``iters``), the layer's own routing on random hidden states."""
    moe = next(m for m in model.modules() if isinstance(m, MoE))
    rows = []
    for batch in batches:
        x = torch.randn(batch, 1, model.cfg.llm.hidden, device=device, dtype=dtype)
        for impl, kernel in (("loop", None), ("device", "grouped_mm"), ("device", "gather_bmm")):
            moe.impl, moe.kernel = impl, kernel
            try:
                with torch.inference_mode():
                    for _ in range(5):
                        moe(x)
                    times = []
                    for _ in range(iters):
                        clock = Clock(device)
                        clock.mark("a")
                        moe(x)
                        clock.mark("b")
                        times.append(clock.ms("a", "b"))
                rows.append(
                    {
                        "batch": batch,
                        "impl": impl,
                        "kernel": kernel,
                        "layer_ms": round(statistics.median(times), 4),
                    }
                )
            except Exception as exc:  # a kernel missing here is a result
                rows.append({"batch": batch, "impl": impl, "kernel": kernel, "error": str(exc)})
            print(f"moe-kernels: {rows[-1]}", file=sys.stderr)
    moe.impl, moe.kernel = "loop", None
    return rows


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="full", choices=("full", "tiny"))
    parser.add_argument("--mode", default="base")
    parser.add_argument("--crops", type=int, default=None)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--batches", default="1,4,16")
    parser.add_argument("--variants", default="eager-loop,eager-device,cuda-graph,compile")
    parser.add_argument("--moe-kernels", action="store_true", help="also time one MoE layer")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="write results here (as it goes)")
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    cfg = get_config(args.preset)
    dtype = resolve_dtype(args.dtype)
    image = load_image(None)
    text_ids, _ = prompt_ids(None, cfg.llm.vocab_size)
    plan = plan_request(args.mode, image.size, args.crops, text_tokens=len(text_ids))
    t0 = time.perf_counter()
    model = build_model(cfg, device, dtype, args.seed)
    result: dict[str, Any] = {
        "preset": args.preset,
        "mode": args.mode,
        "max_new_tokens": args.max_new_tokens,
        "prefill_tokens": plan.prefill_tokens,
        "views": plan.num_views,
        "dtype": args.dtype,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "argv": sys.argv,
        "build_s": round(time.perf_counter() - t0, 2),
        "rows": [],
    }

    def save() -> None:
        if args.json is not None:
            args.json.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")

    base = InferenceSettings(
        preset=args.preset,
        mode=args.mode,
        crops=args.crops,
        max_new_tokens=args.max_new_tokens,
        device=args.device,
        dtype=args.dtype,
    )
    batches = [int(b) for b in args.batches.split(",")]
    reference: dict[int, list[int]] = {}
    for batch in batches:
        for name in args.variants.split(","):
            spec = dict(VARIANTS[name])
            kernel = spec.pop("kernel", None)
            settings = replace(base, batch=batch, **spec)
            print(f"== {args.mode} {name} batch {batch}", file=sys.stderr, flush=True)
            try:
                row = run_variant(
                    model,
                    settings,
                    plan,
                    image,
                    text_ids,
                    device,
                    dtype,
                    args.warmup,
                    args.repeats,
                    kernel,
                )
            except Exception as exc:  # one failing variant must not end the run
                traceback.print_exc()
                row = {**variant(settings), "error": f"{type(exc).__name__}: {exc}"[:400]}
                if device.type == "cuda":
                    torch.cuda.empty_cache()
            row["variant"] = name
            if "tokens" in row:
                reference.setdefault(batch, row["tokens"])
                row["same_tokens"] = row["tokens"] == reference[batch]
            print(
                json.dumps({k: v for k, v in row.items() if k != "tokens"}),
                file=sys.stderr,
                flush=True,
            )
            result["rows"].append(row)
            save()
    if args.moe_kernels:
        result["moe_kernels"] = moe_kernel_rows(model, batches, device, dtype)
        save()
    print(
        f"{'variant':<14} {'batch':>5} {'step ms':>8} {'tok/s':>9} {'pages/s':>8} "
        f"{'prefill ms':>10} {'prep s':>6} same"
    )
    for r in result["rows"]:
        if "error" in r:
            print(f"{r['variant']:<14} {r['batch']:>5} error: {r['error'][:80]}")
            continue
        print(
            f"{r['variant']:<14} {r['batch']:>5} {r['step_ms']:>8.3f} "
            f"{r['decode_tokens_per_s']:>9.1f} {r['pages_per_s']:>8.2f} "
            f"{r['prefill_ms']:>10.1f} {r['prepare_s']:>6.1f} {r.get('same_tokens')}"
        )
    return result


if __name__ == "__main__":
    main()
