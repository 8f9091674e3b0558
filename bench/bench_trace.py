"""Benchmark the trace engine and ways of reading an Nsight Systems SQLite export into DuckDB.

Usage: ``python bench/bench_trace.py [--source X.sqlite --times N] [--runs 3] [--methods ...]``
``[--trace FILE]`` (``make bench`` runs it with the defaults). Needs only duckdb, the duckdb
sqlite extension wheel, polars, pyarrow (DuckDB's ``.pl()`` and the ``sqlite3_polars`` method)
and this repository on PYTHONPATH.

1. Builds (or reuses) the large input in bench/out/: a real export (default: the DeepSeek-OCR
   trace tests/fixtures/traces/dsocr_base32_h100_nsys2025.sqlite ×21) repeated N times by
   bench/scale_trace.py, optionally with NVTX thinned (see docs/benchmarks.md for the choice).
2. Runs each method in a fresh child process, ``--runs`` times, and reports the median wall time
   (s) and the peak resident memory of the child (MB, from ``os.wait4``'s ru_maxrss):
   - ``engine_lib``: ``open_trace(path).stages()`` in-process (timed after imports, polars too);
   - ``engine_cli``: ``dsocr-nsys stages TRACE`` as a subprocess, end to end (process wall time);
   - ``baseline_cli``: the same, run in another checkout (``--baseline DIR``), for A/B figures;
   - ``attach`` / ``sqlite_scan`` / ``attach_copy`` / ``sqlite3_polars``: the same reference
     query work (REFERENCE_WORK below) over four ways of reading the export;
   - ``floor``: the least any stage table can cost, a bare DuckDB query (bench/floor_query.py)
     that reads the columns ``stages`` needs (NVTX ranges and their names, launching runtime
     calls, kernels/memcpy/memset) once, with one correlation join, timed from the connection to
     the result (DuckDB imported first);
   - ``floor_cli``: the same query as a program of its own (``python bench/floor_query.py``),
     end to end like ``engine_cli``: the least a *command* can cost.
   ``--trace`` may be a Parquet folder (``nsys export --type parquetdir``, or
   bench/parquet_trace.py): the floor and the engine methods then read it.
   With ``--interleave`` each round runs every method once (``--runs`` rounds), so a shared
   machine's changing load falls on all methods alike.
3. Prints a short table last.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from floor_query import TABLES, duckdb_with_sqlite, run_floor  # bench/ is this script's path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT_DIR = HERE / "out"
# A real DeepSeek-OCR run (base mode, 32 new tokens, H100, nsys 2025.3): 82,815 kernels,
# 198,343 runtime calls, 37 NVTX stage ranges covering all GPU work. ×21 gives 1.74 M kernels.
DEFAULT_SOURCE = ROOT / "tests/fixtures/traces/dsocr_base32_h100_nsys2025.sqlite"
DEFAULT_TIMES = 21
# Anchor trace (issue 2): 394 MB, 1.70 M kernels, 6.25 M runtime calls, 2,415 NVTX ranges;
# nsys stats on the GPU machine: nvtx_gpu_proj_sum 15.1 s, nvtx_kern_sum 28.7 s.
ANCHOR_KERNELS = 1_700_000
ANCHOR_NVTX_RANGES = 2_415
NSYS_PROJ_SUM_S = 15.1
NSYS_KERN_SUM_S = 28.7

# Columns the reference work reads from each table (what a column-pruning reader fetches).
COLUMNS = {
    "kernel": ["start", '"end"', "correlationId", "globalPid", "shortName"],
    "runtime": ["start", '"end"', "correlationId", "globalTid"],
    "memcpy": ["start", '"end"', "correlationId", "globalPid"],
    "memset": ["start", '"end"', "correlationId", "globalPid"],
    "nvtx": ["start", '"end"', "eventType", "globalTid", "text", "textId"],
    "strings": ["id", "value"],
}

# Reference query work, shaped like `stages` + `kernels`: (1) NVTX ranges with names; (2) GPU ops
# (kernels, memcpy, memset) joined to the runtime call that launched them (same correlationId,
# same process: globalPid = globalTid with the low 24 tid bits cleared); (3) each op attributed to
# every range on the launching thread that contains its runtime call; per range: projected start,
# projected duration (first op start to last op end, ns), op count, kernel time sum (ns);
# (4) per range name: instances and totals; (5) top kernels per range name.
REFERENCE_WORK = [
    """CREATE TEMP TABLE rng AS
       SELECT row_number() OVER (ORDER BY n.start, n.globalTid) AS range_id, n.start,
              n."end", n.globalTid, coalesce(n.text, s.value) AS name
       FROM {nvtx} n LEFT JOIN {strings} s ON s.id = n.textId
       WHERE n.eventType IN (59, 60, 70, 71) AND n."end" IS NOT NULL""",
    """CREATE TEMP TABLE ops AS
       SELECT r.globalTid, r.start AS api_start, r."end" AS api_end,
              o.start, o."end", o.kernel_ns, o.name_id
       FROM (SELECT correlationId, globalPid, start, "end", "end" - start AS kernel_ns,
                    shortName AS name_id FROM {kernel}
             UNION ALL SELECT correlationId, globalPid, start, "end", 0, NULL FROM {memcpy}
             UNION ALL SELECT correlationId, globalPid, start, "end", 0, NULL FROM {memset}) o
       JOIN {runtime} r ON r.correlationId = o.correlationId
        AND r.globalTid // 16777216 = o.globalPid // 16777216""",
    """CREATE TEMP TABLE attributed AS
       SELECT g.range_id, g.name, o.start, o."end", o.kernel_ns, o.name_id
       FROM rng g JOIN ops o
         ON o.api_start >= g.start AND o.api_end <= g."end"
       WHERE o.globalTid = g.globalTid""",
    """SELECT range_id, any_value(name) AS name, min(start) AS proj_start_ns,
              max("end") - min(start) AS proj_ns, count(*) AS gpu_ops, sum(kernel_ns) AS kernel_ns
       FROM attributed GROUP BY range_id ORDER BY range_id""",
    """SELECT name, count(DISTINCT range_id) AS instances, sum(kernel_ns) AS kernel_ns
       FROM attributed GROUP BY name ORDER BY kernel_ns DESC""",
    """SELECT a.name, s.value AS kernel, count(*) AS n, sum(a.kernel_ns) AS kernel_ns
       FROM attributed a JOIN {strings} s ON s.id = a.name_id
       GROUP BY a.name, s.value
       QUALIFY row_number() OVER (PARTITION BY a.name ORDER BY sum(a.kernel_ns) DESC) <= 20""",
]

READ_METHODS = ("attach", "sqlite_scan", "attach_copy", "sqlite3_polars", "floor")
# `nsys stats` on the same export (needs --nsys): the reports the anchor timed.
NSYS_METHODS = {"nsys_proj_sum": "nvtx_gpu_proj_sum", "nsys_kern_sum": "nvtx_kern_sum"}
ALL_METHODS = (
    "engine_lib", "engine_cli", "baseline_cli", *READ_METHODS, "floor_cli", *NSYS_METHODS
)  # fmt: skip


# ---------------------------------------------------------------- input trace


def ensure_trace(source: Path, times: int, nvtx_ranges: int | None) -> Path:
    """Path of the scaled trace in bench/out/, building it with scale_trace if missing."""
    sys.path.insert(0, str(HERE))
    from scale_trace import scale_trace

    tag = f"_nvtx{nvtx_ranges}" if nvtx_ranges else ""
    out = OUT_DIR / f"{source.stem}_x{times}{tag}.sqlite"
    if not out.exists():
        OUT_DIR.mkdir(parents=True, exist_ok=True)
        scale_trace(source, out, times, nvtx_ranges=nvtx_ranges)
    return out


def trace_shape(path: Path) -> dict[str, float]:
    """Size (MB) and row counts of the main event tables of an export (SQLite or Parquet)."""
    sys.path.insert(0, str(ROOT))
    from dsocr_nsys.trace import db

    con = db.connect(path)
    try:
        files = path.glob("*.parquet") if path.is_dir() else [path]
        shape: dict[str, float] = {"size_mb": sum(f.stat().st_size for f in files) / 1e6}
        for key in ("kernel", "runtime", "memcpy", "memset"):
            shape[key] = con.execute(f"SELECT count(*) FROM t.{TABLES[key]}").fetchone()[0]
        shape["nvtx_ranges"] = con.execute(
            "SELECT count(*) FROM t.NVTX_EVENTS WHERE eventType IN (59, 60, 70, 71)"
        ).fetchone()[0]
    finally:
        con.close()
    return shape


def machine() -> str:
    """Cores, RAM and CPU model of this machine, in one line."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        mem_kb = next(
            int(x.split()[1])
            for x in Path("/proc/meminfo").read_text().splitlines()
            if x.startswith("MemTotal")
        )
        ram = f"{mem_kb / 1024**2:.0f} GiB RAM"
    except (OSError, StopIteration):
        ram = "RAM unknown"
    return f"{os.cpu_count()} cores, {ram}, {model}"


# ---------------------------------------------------------------- child: one timed run


def _run_work(con, rel: dict[str, str]) -> int:
    """Run REFERENCE_WORK with table names replaced by rel; return the rows produced."""
    rows = 0
    for sql in REFERENCE_WORK:
        res = con.execute(sql.format(**rel))
        if sql.lstrip().upper().startswith("SELECT"):
            rows += len(res.fetchall())
    return rows


def child(method: str, trace: Path) -> dict[str, float]:
    """One timed run of method on trace (in this process); returns seconds and result rows."""
    if method == "engine_lib":
        import polars  # noqa: F401  (the engine imports it lazily: keep imports out of the timing)

        from dsocr_nsys.trace import open_trace

        t0 = time.perf_counter()
        result = open_trace(trace).stages()
        seconds = time.perf_counter() - t0
        rows = sum(len(t) for t in getattr(result, "tables", {}).values()) or len(result)
        return {"seconds": seconds, "rows": rows}

    if method == "floor":
        import duckdb  # noqa: F401  (imported before the clock starts)

        t0 = time.perf_counter()
        run_floor(trace)
        return {"seconds": time.perf_counter() - t0, "rows": 1}

    t0 = time.perf_counter()
    con = duckdb_with_sqlite()
    path = str(trace)
    # ATTACH takes no bound parameters: the path goes in as an escaped string literal.
    quoted = path.replace("'", "''")
    if method == "attach":
        con.execute(f"ATTACH '{quoted}' AS t (TYPE sqlite, READ_ONLY)")
        rel = {k: f"t.{v}" for k, v in TABLES.items()}
    elif method == "sqlite_scan":
        rel = {k: f"sqlite_scan('{quoted}', '{v}')" for k, v in TABLES.items()}
    elif method == "attach_copy":
        # Read each table once, only the needed columns, into DuckDB's own columnar storage.
        con.execute(f"ATTACH '{quoted}' AS t (TYPE sqlite, READ_ONLY)")
        for k, v in TABLES.items():
            con.execute(f"CREATE TEMP TABLE src_{k} AS SELECT {', '.join(COLUMNS[k])} FROM t.{v}")
        rel = {k: f"src_{k}" for k in TABLES}
    elif method == "sqlite3_polars":
        import sqlite3

        import polars as pl

        sq = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        for k, v in TABLES.items():
            frame = pl.read_database(
                f"SELECT {', '.join(COLUMNS[k])} FROM {v}", sq, infer_schema_length=None
            )
            con.register(f"src_{k}", frame)
        sq.close()
        rel = {k: f"src_{k}" for k in TABLES}
    else:
        raise SystemExit(f"unknown method {method}")
    rows = _run_work(con, rel)
    return {"seconds": time.perf_counter() - t0, "rows": rows}


# ---------------------------------------------------------------- parent: repeat and measure


def run_measured(
    cmd: list[str], env: dict[str, str], cwd: Path = ROOT
) -> tuple[float, float, float, str]:
    """Run cmd as a child; return (wall s, CPU s (user+sys), peak RSS MB of that child, stdout)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        cwd=cwd,
        text=True,
    )
    out = proc.stdout.read() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[-2:]} exited with {proc.returncode}")
    cpu = usage.ru_utime + usage.ru_stime
    return wall, cpu, usage.ru_maxrss / 1024, out  # ru_maxrss is in KiB on Linux


def bench_method(
    method: str,
    trace: Path,
    runs: int,
    env: dict[str, str],
    nsys: str | None = None,
    baseline_env: dict[str, str] | None = None,
) -> dict[str, float]:
    """Median seconds and peak RSS over `runs` fresh child processes for one method.

    ``cpu_s`` is the child's whole-process CPU time (user+sys, imports included): steadier than
    wall time on a shared machine. ``baseline_cli`` is ``engine_cli`` run in another checkout
    (``--baseline DIR``). ``nsys_*`` methods run ``nsys stats`` on a copy of the export (nsys
    may add tables to the file it reads), timed end to end like ``engine_cli``.
    """
    secs: list[float] = []
    cpus: list[float] = []
    rss: list[float] = []
    for _ in range(runs):
        if method in ("engine_cli", "baseline_cli"):
            cmd = [
                sys.executable,
                "-c",
                "from dsocr_nsys.cli import main; main()",
                "stages",
                str(trace.resolve()),
            ]
            if method == "baseline_cli" and baseline_env:
                # run in the baseline checkout: `python -c` imports from its working directory
                baseline_dir = Path(baseline_env["PYTHONPATH"].split(os.pathsep)[0])
                wall, cpu, peak, _ = run_measured(cmd, baseline_env, baseline_dir)
            else:
                wall, cpu, peak, _ = run_measured(cmd, env)
            secs.append(wall)
        elif method == "floor_cli":
            cmd = [sys.executable, str(HERE / "floor_query.py"), str(trace.resolve())]
            wall, cpu, peak, _ = run_measured(cmd, env)
            secs.append(wall)
        elif method in NSYS_METHODS:
            if not nsys:
                raise RuntimeError("give --nsys PATH to time nsys stats")
            copy = OUT_DIR / f"nsys_copy_{trace.name}"
            shutil.copyfile(trace, copy)
            cmd = [nsys, "stats", "--report", NSYS_METHODS[method], "--format", "csv", str(copy)]
            wall, cpu, peak, _ = run_measured(cmd, env)
            copy.unlink()
            secs.append(wall)
        else:
            cmd = [sys.executable, str(Path(__file__).resolve()), "--child", method, str(trace)]
            _, cpu, peak, out = run_measured(cmd, env)
            secs.append(json.loads(out.strip().splitlines()[-1])["seconds"])
        rss.append(peak)
        cpus.append(cpu)
    return {
        "median_s": statistics.median(secs),
        "min_s": min(secs),
        "max_s": max(secs),
        "cpu_s": statistics.median(cpus),
        "peak_rss_mb": max(rss),
        "runs": runs,
    }


def _merge(single_runs: list[dict[str, float]]) -> dict[str, float]:
    """bench_method's summary over several one-run results of the same method."""
    secs = [r["median_s"] for r in single_runs]
    return {
        "median_s": statistics.median(secs),
        "min_s": min(secs),
        "max_s": max(secs),
        "cpu_s": statistics.median(r["cpu_s"] for r in single_runs),
        "peak_rss_mb": max(r["peak_rss_mb"] for r in single_runs),
        "runs": len(single_runs),
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="real export to repeat")
    ap.add_argument("--times", type=int, default=DEFAULT_TIMES, help="copies of the source")
    ap.add_argument(
        "--nvtx-ranges",
        type=int,
        default=0,
        help=f"thin NVTX to about this many ranges (0: keep all; anchor: {ANCHOR_NVTX_RANGES})",
    )
    ap.add_argument("--trace", type=Path, help="benchmark this export instead of building one")
    ap.add_argument("--runs", type=int, default=3, help="runs per method (median reported)")
    ap.add_argument("--methods", nargs="+", default=list(ALL_METHODS), choices=ALL_METHODS)
    ap.add_argument("--json", type=Path, help="also write the results as JSON here")
    ap.add_argument("--nsys", help="path of the nsys binary, for the nsys_* methods")
    ap.add_argument(
        "--baseline", type=Path, help="checkout whose dsocr_nsys the baseline_cli method runs"
    )
    ap.add_argument(
        "--interleave",
        action="store_true",
        help="one run of each method per round, --runs rounds (side by side on a shared machine)",
    )
    ap.add_argument("--child", nargs=2, metavar=("METHOD", "TRACE"), help=argparse.SUPPRESS)
    a = ap.parse_args(argv)

    if a.child:
        print(json.dumps(child(a.child[0], Path(a.child[1]))))
        return

    trace = a.trace or ensure_trace(a.source, a.times, a.nvtx_ranges or None)
    shape = trace_shape(trace)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    print(f"machine: {machine()}", file=sys.stderr)
    print(
        f"trace: {trace} ({shape['size_mb']:.0f} MB, {shape['kernel']:,} kernels, "
        f"{shape['runtime']:,} runtime calls, {shape['memcpy']:,} memcpy, "
        f"{shape['memset']:,} memset, {shape['nvtx_ranges']:,} NVTX ranges)",
        file=sys.stderr,
    )
    baseline_env = None
    if a.baseline:
        baseline_env = dict(os.environ)  # the baseline first, then what the caller put there
        baseline_env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(a.baseline.resolve()), os.environ.get("PYTHONPATH")])
        )
    elif "baseline_cli" in a.methods:
        raise SystemExit("baseline_cli needs --baseline DIR")
    methods = list(a.methods)
    if "sqlite3_polars" in methods:
        try:
            import pyarrow  # noqa: F401  (DuckDB needs it to scan a polars frame)
        except ImportError:
            print("skip sqlite3_polars: pyarrow not installed", file=sys.stderr)
            methods.remove("sqlite3_polars")
    # Interleaved: round r runs every method once, so load changes hit all methods alike.
    rounds = (
        [(m, 1) for _ in range(a.runs) for m in methods]
        if a.interleave
        else [(m, a.runs) for m in methods]
    )
    runs_of: dict[str, list[dict[str, float]]] = {}
    for method, runs in rounds:
        print(f"running {method} x{runs} ...", file=sys.stderr, flush=True)
        try:
            runs_of.setdefault(method, []).append(
                bench_method(method, trace, runs, env, a.nsys, baseline_env)
            )
        except (RuntimeError, ImportError) as exc:
            print(f"skip {method}: {exc}", file=sys.stderr)
    results = {m: r[0] if len(r) == 1 else _merge(r) for m, r in runs_of.items()}

    base = results.get("attach", {}).get("median_s")
    nsys_s = results.get("nsys_proj_sum", {}).get("median_s")
    nsys_label = "this trace" if nsys_s else "anchor"
    nsys_s = nsys_s or NSYS_PROJ_SUM_S
    if a.json:
        payload = {"machine": machine(), "trace": str(trace), "shape": shape, "results": results}
        a.json.write_text(json.dumps(payload, indent=2))
    print(
        f"\n{machine()}; trace {shape['size_mb']:.0f} MB, {shape['kernel']:,} kernels, "
        f"{shape['runtime']:,} runtime, {shape['nvtx_ranges']:,} NVTX ranges"
    )
    load = os.getloadavg()[0]
    print(
        f"(load average {load:.1f} at the end; nsys stats on the anchor, 16-core H100 host: "
        f"nvtx_gpu_proj_sum {NSYS_PROJ_SUM_S} s, nvtx_kern_sum {NSYS_KERN_SUM_S} s)"
    )
    print(
        f"{'method':<16}{'median s':>10}{'min s':>8}{'max s':>8}{'CPU s':>8}{'peak RSS MB':>13}"
        f"{'vs attach':>11}{'nsys proj_sum / median (' + nsys_label + ')':>36}"
    )
    for method, r in results.items():
        ratio = f"{r['median_s'] / base:.2f}x" if base else "-"
        speedup = f"{nsys_s / r['median_s']:.1f}x"
        print(
            f"{method:<16}{r['median_s']:>10.2f}{r['min_s']:>8.2f}{r['max_s']:>8.2f}"
            f"{r['cpu_s']:>8.2f}{r['peak_rss_mb']:>13.0f}{ratio:>11}{speedup:>36}"
        )


if __name__ == "__main__":
    main()
