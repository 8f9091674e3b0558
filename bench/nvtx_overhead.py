"""What the NVTX instrumentation costs: the same model in the same process, requests with the
ranges on and off, alternated, each timed by host wall clock between two device syncs.

Target: the median request with ranges on is at most 1 % slower than with them off.

    python bench/nvtx_overhead.py --mode base --max-new-tokens 32 --pairs 10      # GPU
    python bench/nvtx_overhead.py --preset tiny --device cpu --dtype float32 --pairs 3  # smoke
    nsys profile -t cuda,nvtx --sample=none --cpuctxsw=none -o /tmp/b python bench/...  # profiled

Each pair runs on-then-off or off-then-on (the order alternates) so a drift in clocks or
caches falls on both sides equally. Reported: the median request time of each side and the
overhead ``(median_on - median_off) / median_off`` in percent, plus the median of the per-pair
ratios; JSON with ``--json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from dsocr_nsys.model.config import get_config
from dsocr_nsys.model.deepseek_ocr import build_model, resolve_dtype
from dsocr_nsys.model.generate import generate
from dsocr_nsys.model.inputs import load_image, plan_request, prepare_pixels, prompt_ids
from dsocr_nsys.model.ranges import Ranges


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="full", choices=("full", "tiny"))
    parser.add_argument("--mode", default="base")
    parser.add_argument("--crops", type=int, default=None)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--pairs", type=int, default=10, help="on/off pairs timed")
    parser.add_argument("--warmup", type=int, default=2, help="untimed requests first")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="write the result here")
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    cfg = get_config(args.preset)
    dtype = resolve_dtype(args.dtype)
    image = load_image(None)
    text_ids, _ = prompt_ids(None, cfg.llm.vocab_size)
    plan = plan_request(args.mode, image.size, args.crops, text_tokens=len(text_ids))
    t0 = time.perf_counter()
    model = build_model(cfg, device, dtype, args.seed)
    global_view, crops = prepare_pixels(image, plan)
    global_view = global_view.to(device=device, dtype=dtype)
    crops = crops.to(device=device, dtype=dtype) if crops is not None else None
    _sync(device)
    print(
        f"model built in {time.perf_counter() - t0:.1f} s; {plan.num_views} view(s), "
        f"prefill {plan.prefill_tokens} tokens, {args.max_new_tokens} new",
        file=sys.stderr,
    )
    on, off = Ranges(True), Ranges(False)

    def request(ranges: Ranges) -> int:
        _sync(device)
        start = time.perf_counter_ns()
        generate(model, plan, global_view, crops, text_ids, args.max_new_tokens, ranges)
        _sync(device)
        return time.perf_counter_ns() - start

    for _ in range(args.warmup):
        request(on)
        request(off)
    on_ns: list[int] = []
    off_ns: list[int] = []
    for pair in range(args.pairs):
        if pair % 2 == 0:
            on_ns.append(request(on))
            off_ns.append(request(off))
        else:
            off_ns.append(request(off))
            on_ns.append(request(on))
        print(
            f"pair {pair + 1}/{args.pairs}: on {on_ns[-1] / 1e6:.3f} ms, "
            f"off {off_ns[-1] / 1e6:.3f} ms",
            file=sys.stderr,
        )
    med_on, med_off = statistics.median(on_ns), statistics.median(off_ns)
    result = {
        "preset": args.preset,
        "mode": args.mode,
        "max_new_tokens": args.max_new_tokens,
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "dtype": args.dtype,
        "pairs": args.pairs,
        "on_ns": on_ns,
        "off_ns": off_ns,
        "median_on_ns": int(med_on),
        "median_off_ns": int(med_off),
        "overhead_pct": 100.0 * (med_on - med_off) / med_off,
        "median_pair_ratio_pct": 100.0
        * (statistics.median(a / b for a, b in zip(on_ns, off_ns, strict=True)) - 1.0),
        # request, prefill, sam, clip, projector, then one per decode step
        "nvtx_ranges_per_request": 5 + (args.max_new_tokens - 1),
    }
    print(
        f"NVTX overhead: median request on {med_on / 1e6:.3f} ms, off {med_off / 1e6:.3f} ms "
        f"-> {result['overhead_pct']:+.2f} % (median pair ratio "
        f"{result['median_pair_ratio_pct']:+.2f} %, target <= 1 %)"
    )
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return result


if __name__ == "__main__":
    main()
