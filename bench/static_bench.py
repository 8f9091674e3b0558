"""Benchmark `dsocr-nsys static` on the full model (gundam, 6 crops, 256 new tokens): wall time
and peak RSS of the whole command, in a fresh process per run (imports included).

Targets: <= 60 s and <= 8 GB on the 2-core CPU machine, no GPU, no weights.

    .venv/bin/python bench/static_bench.py [--runs 3] [--formulas-only]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run_once(extra: list[str]) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds (user + sys), peak RSS in GB) of one `dsocr-nsys static`
    process. CPU seconds are reported too because a shared machine's wall time varies."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            sys.executable,
            "-m",
            "dsocr_nsys.cli",
            "static",
            "--preset",
            "full",
            "--mode",
            "gundam",
            "--crops",
            "6",
            "--max-new-tokens",
            "256",
            "-o",
            str(Path(tmp) / "static_compute.json"),
            *extra,
        ]
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"command failed: {' '.join(cmd)}")
        cpu = usage.ru_utime + usage.ru_stime
        return wall, cpu, usage.ru_maxrss / 1e6  # ru_maxrss is KiB on Linux; ~GB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--formulas-only", action="store_true")
    args = parser.parse_args()
    extra = ["--formulas-only"] if args.formulas_only else []
    walls, cpus, rss = [], [], []
    for i in range(args.runs):
        w, c, r = run_once(extra)
        walls.append(w)
        cpus.append(c)
        rss.append(r)
        print(f"run {i + 1}: {w:.1f} s wall, {c:.1f} s CPU, peak RSS {r:.2f} GB", file=sys.stderr)
    print(
        f"dsocr-nsys static --preset full --mode gundam --crops 6 {' '.join(extra)}: "
        f"median {statistics.median(walls):.1f} s wall "
        f"(min {min(walls):.1f}, max {max(walls):.1f}), "
        f"median {statistics.median(cpus):.1f} s CPU, "
        f"peak RSS {max(rss):.2f} GB over {args.runs} runs; {os.cpu_count()} CPUs"
    )


if __name__ == "__main__":
    main()
