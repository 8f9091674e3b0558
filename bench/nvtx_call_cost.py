"""What one NVTX range of the launcher costs on the host, measured directly.

The A/B benchmark (bench/nvtx_overhead.py) compares whole requests with the ranges on and off,
but request-to-request noise on a launch-bound model (several %) swamps an effect this small.
This times the instrumentation itself: ``with ranges(name, payload): pass`` with the ranges
enabled and disabled, many times, and reports the median cost per range. Run it plainly and
under ``nsys profile -t nvtx`` (where the injected collector does the real work):

    python bench/nvtx_call_cost.py --json cost.json
    nsys profile -t cuda,nvtx --sample=none --cpuctxsw=none -o /tmp/c python bench/nvtx_call_cost.py

Overhead of a request = ranges per request × cost per range / request time; ``--request-ms``
and ``--ranges-per-request`` (default: base mode, 32 tokens: request + prefill + sam + clip +
projector + 31 decode = 36) give the percentage.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from dsocr_nsys.model.ranges import Ranges


def _per_range_ns(ranges: Ranges, count: int) -> float:
    start = time.perf_counter_ns()
    for i in range(count):
        with ranges("decode", i):
            pass
    return (time.perf_counter_ns() - start) / count


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20_000, help="ranges per timed batch")
    parser.add_argument("--batches", type=int, default=15)
    parser.add_argument("--ranges-per-request", type=int, default=36)
    parser.add_argument("--request-ms", type=float, default=1264.9, help="request wall time")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    on, off = Ranges(True), Ranges(False)
    _per_range_ns(on, 1000)  # first calls resolve the domain and load the collector
    on_ns = [_per_range_ns(on, args.count) for _ in range(args.batches)]
    off_ns = [_per_range_ns(off, args.count) for _ in range(args.batches)]
    cost_ns = statistics.median(on_ns) - statistics.median(off_ns)
    overhead_pct = 100.0 * cost_ns * args.ranges_per_request / (args.request_ms * 1e6)
    result = {
        "median_on_ns_per_range": statistics.median(on_ns),
        "median_off_ns_per_range": statistics.median(off_ns),
        "cost_ns_per_range": cost_ns,
        "ranges_per_request": args.ranges_per_request,
        "request_ms": args.request_ms,
        "overhead_pct": overhead_pct,
    }
    print(
        f"NVTX range: {result['median_on_ns_per_range']:.0f} ns on, "
        f"{result['median_off_ns_per_range']:.0f} ns off -> {cost_ns:.0f} ns per range; "
        f"{args.ranges_per_request} ranges in a {args.request_ms:.1f} ms request = "
        f"{overhead_pct:.4f} % (target <= 1 %)"
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
