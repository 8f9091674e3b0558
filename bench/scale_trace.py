"""Build a large, structurally real Nsight Systems SQLite export by repeating a real one N times.

Usage: ``python bench/scale_trace.py IN.sqlite OUT.sqlite --times N [--nvtx-ranges R]``

The output has the input's schema and every table of the input. Event tables (every table with a
``start`` or ``timestamp`` column: kernels, runtime calls, memcpy/memset, synchronisation, NVTX,
OS runtime, ...) hold N copies of their rows. Copy k (0-based) is the original with:

- every timestamp column (``start``, ``end``, ``timestamp``, ``qmd*Done``) shifted by
  k × period ns, where period = span of the original events (ns) + ``--gap-ns``, so copies never
  overlap and each copy's internal timing is unchanged;
- every correlation id (``correlationId``, ``endCorrelationId``) increased by k × (largest
  correlation id in the input + 1), the same offset in every table, so a kernel still joins to
  the runtime call that launched it and to nothing else;
- other ids that must stay unique (``rangeId``, ``gridId``, ``eventSyncId``, integer primary
  keys) increased by k × (their largest value + 1);
- string ids (``StringIds``, ``textId``, ``nameId``, ...), thread/process ids and every other
  column kept as is.

NVTX definition rows (domain create/destroy, categories, thread/device naming) are kept once, so
the output names things exactly as the input does. ``--nvtx-every K`` (or ``--nvtx-ranges R``,
which picks K) thins NVTX ranges to resemble a trace with few, long stage ranges: only every K-th
top-level range tree (a top-level range on its thread together with every range nested in it) is
kept, counting trees across all copies. Kernels and runtime calls are never thinned.

All copying runs inside SQLite (``INSERT … SELECT`` from the attached input with integer
arithmetic); the output is written to ``OUT.tmp`` and renamed, and the input is opened read-only.
Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import time
from collections.abc import Callable
from pathlib import Path

# Columns holding a timestamp (ns). start/end are never 0 in a real export; timestamp and the
# qmd* columns use 0 for "not collected", which must stay 0.
ALWAYS_SHIFTED = ("start", "end")
SHIFTED_IF_POSITIVE = ("timestamp", "qmdBulkReleaseDone", "qmdPreexitDone", "qmdLastCtaDone")
# Columns linking runtime calls to GPU activity: one shared offset across all tables.
CORRELATION_COLS = ("correlationId", "endCorrelationId")
# Ids that must stay unique per copy but link nothing across tables we repeat.
UNIQUE_ID_COLS = ("rangeId", "gridId", "eventSyncId")
# NVTX eventType values that define names rather than record events: kept once.
NVTX_DEFINITION_TYPES = (33, 39, 64, 72, 73, 74, 75, 76, 97, 98, 99)
# NVTX range event types (push/pop, start/end, and their NVTXT-imported forms): thinned by tree.
NVTX_RANGE_TYPES = (59, 60, 70, 71)
COPIES_PER_STATEMENT = 16

Progress = Callable[[str], None]


def _stderr_progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _q(name: str) -> str:
    """Quote an SQLite identifier."""
    return '"' + name.replace('"', '""') + '"'


def _columns(con: sqlite3.Connection, schema: str, table: str) -> list[tuple[str, bool]]:
    """(column name, is integer primary key) for each column of schema.table, in order."""
    rows = con.execute(f"PRAGMA {schema}.table_info({_q(table)})").fetchall()
    return [(r[1], bool(r[5]) and (r[2] or "").upper() == "INTEGER") for r in rows]


def _is_event_table(cols: list[tuple[str, bool]]) -> bool:
    names = {c for c, _ in cols}
    return "start" in names or "timestamp" in names


def _max_over(con: sqlite3.Connection, tables: dict[str, list[str]], col: str) -> int:
    """Largest value of col over every source table that has it (0 if none)."""
    best = 0
    for table, names in tables.items():
        if col in names:
            (v,) = con.execute(f"SELECT max({_q(col)}) FROM src.{_q(table)}").fetchone()
            if v is not None and v > best:
                best = int(v)
    return best


def _time_span(con: sqlite3.Connection, tables: dict[str, list[str]]) -> tuple[int, int]:
    """(earliest, latest) timestamp in ns over all source event tables."""
    lo: int | None = None
    hi: int | None = None
    for table, names in tables.items():
        firsts = [c for c in ("start", "timestamp") if c in names]
        lasts = [c for c in ("end", "start", "timestamp") if c in names]
        for c in firsts:
            (v,) = con.execute(
                f"SELECT min({_q(c)}) FROM src.{_q(table)} WHERE {_q(c)} > 0"
            ).fetchone()
            if v is not None:
                lo = v if lo is None else min(lo, v)
        for c in lasts:
            (v,) = con.execute(f"SELECT max({_q(c)}) FROM src.{_q(table)}").fetchone()
            if v is not None:
                hi = v if hi is None else max(hi, v)
    if lo is None or hi is None:
        raise SystemExit("scale_trace: the input has no timestamped events to repeat")
    return int(lo), int(hi)


def _nvtx_trees(con: sqlite3.Connection) -> int:
    """Number each NVTX range of the source by its top-level tree; return the tree count.

    A tree is a top-level range on its thread (not inside any other range of that thread) plus
    every range nested in it. Fills temp table nvtx_tree(rid = source rowid, tree).
    """
    rows = con.execute(
        'SELECT rowid, globalTid, start, coalesce("end", start) FROM src.NVTX_EVENTS '
        f"WHERE eventType IN ({','.join(map(str, NVTX_RANGE_TYPES))}) "
        'ORDER BY globalTid, start, coalesce("end", start) DESC'
    ).fetchall()
    assigned: list[tuple[int, int, int]] = []  # (first start of tree, tid, rowid) per range
    tree_first: dict[int, tuple[int, int]] = {}
    cur_tid = None
    cur_end = -1
    cur_key: tuple[int, int] = (0, 0)
    for rid, tid, start, end in rows:
        if tid != cur_tid or start >= cur_end or end > cur_end:
            cur_tid, cur_end, cur_key = tid, end, (start, rid)
            tree_first[rid] = cur_key
        assigned.append((rid, *cur_key))
    # Number trees in time order (across threads) so "every K-th tree" spreads over the run.
    order = {key: i for i, key in enumerate(sorted(set(tree_first.values())))}
    con.execute("CREATE TEMP TABLE nvtx_tree (rid INTEGER PRIMARY KEY, tree INTEGER NOT NULL)")
    con.executemany(
        "INSERT INTO nvtx_tree VALUES (?, ?)", [(rid, order[(s, r)]) for rid, s, r in assigned]
    )
    return len(order)


def scale_trace(
    src: Path,
    dst: Path,
    times: int,
    *,
    gap_ns: int = 1_000_000,
    nvtx_every: int = 1,
    nvtx_ranges: int | None = None,
    progress: Progress = _stderr_progress,
) -> dict[str, int]:
    """Write dst: src's export repeated `times` times (see module docstring).

    nvtx_ranges, when given, overrides nvtx_every with the K that leaves about that many NVTX
    ranges. Returns row counts of the main event tables in dst and the parameters used
    (``period_ns``, ``correlation_offset``, ``nvtx_every``).
    """
    if times < 1:
        raise SystemExit("scale_trace: --times must be at least 1")
    src, dst = Path(src), Path(dst)
    if not src.is_file():
        raise SystemExit(f"scale_trace: {src} does not exist")
    tmp = dst.with_name(dst.name + ".tmp")
    tmp.unlink(missing_ok=True)
    t0 = time.perf_counter()
    con = sqlite3.connect(tmp, isolation_level=None)
    try:
        con.execute("PRAGMA journal_mode=OFF")
        con.execute("PRAGMA synchronous=OFF")
        con.execute("PRAGMA temp_store=MEMORY")
        con.execute("ATTACH ? AS src", (f"file:{src.resolve()}?mode=ro",))
        (page_size,) = con.execute("PRAGMA src.page_size").fetchone()
        con.execute(f"PRAGMA main.page_size={int(page_size)}")

        objects = con.execute(
            "SELECT type, name, sql FROM src.sqlite_master WHERE sql IS NOT NULL "
            "AND name NOT LIKE 'sqlite_%' ORDER BY CASE type WHEN 'table' THEN 0 ELSE 1 END, rowid"
        ).fetchall()
        tables = [name for typ, name, _ in objects if typ == "table"]
        con.execute("BEGIN")
        for typ, _, sql in objects:
            if typ == "table":
                con.execute(sql)
        cols = {t: _columns(con, "src", t) for t in tables}
        events = {t: [c for c, _ in cols[t]] for t in tables if _is_event_table(cols[t])}

        lo, hi = _time_span(con, events)
        period = hi - lo + gap_ns
        corr_off = _max_over(con, events, "correlationId")
        corr_off = max(corr_off, _max_over(con, events, "endCorrelationId")) + 1
        has_nvtx = "NVTX_EVENTS" in events
        n_trees = _nvtx_trees(con) if has_nvtx else 0
        if nvtx_ranges is not None and has_nvtx:
            (n_ranges,) = con.execute("SELECT count(*) FROM nvtx_tree").fetchone()
            nvtx_every = max(1, round(n_ranges * times / max(nvtx_ranges, 1)))
        progress(
            f"scale_trace: {src.name} x{times}: period {period} ns, correlation offset "
            f"{corr_off}, NVTX trees {n_trees}, keeping every {nvtx_every}"
        )

        for ti, table in enumerate(tables):
            qt = _q(table)
            if table not in events:
                con.execute(f"INSERT INTO main.{qt} SELECT * FROM src.{qt}")
                continue
            exprs = []
            for col, int_pk in cols[table]:
                qc = _q(col)
                if col in ALWAYS_SHIFTED:
                    exprs.append(f"s.{qc} + c.k * :period")
                elif col in SHIFTED_IF_POSITIVE:
                    exprs.append(
                        f"CASE WHEN s.{qc} > 0 THEN s.{qc} + c.k * :period ELSE s.{qc} END"
                    )
                elif col in CORRELATION_COLS:
                    exprs.append(f"s.{qc} + c.k * :corr")
                elif col in UNIQUE_ID_COLS or int_pk:
                    off = _max_over(con, {table: [col]}, col) + 1
                    exprs.append(f"s.{qc} + c.k * {int(off)}")
                else:
                    exprs.append(f"s.{qc}")
            where = ["1"]
            join = ""
            if table == "NVTX_EVENTS":
                defs = ",".join(map(str, NVTX_DEFINITION_TYPES))
                where.append(f"(c.k = 0 OR s.eventType NOT IN ({defs}))")
                if nvtx_every > 1:
                    join = "LEFT JOIN temp.nvtx_tree m ON m.rid = s.rowid"
                    where.append("(m.tree IS NULL OR (c.k * :trees + m.tree) % :every = 0)")
            sql = (
                "WITH RECURSIVE c(k) AS "
                "(SELECT :k0 UNION ALL SELECT k + 1 FROM c WHERE k + 1 < :k1) "
                f"INSERT INTO main.{qt} SELECT {', '.join(exprs)} "
                f"FROM c CROSS JOIN src.{qt} s {join} WHERE {' AND '.join(where)} "
                f"ORDER BY c.k, s.rowid"
            )
            for k0 in range(0, times, COPIES_PER_STATEMENT):
                k1 = min(times, k0 + COPIES_PER_STATEMENT)
                params = {"k0": k0, "k1": k1, "period": period, "corr": corr_off}
                if join:
                    params |= {"trees": n_trees, "every": nvtx_every}
                con.execute(sql, {p: v for p, v in params.items() if f":{p}" in sql})
                if k1 < times and (k1 // COPIES_PER_STATEMENT) % 8 == 0:
                    progress(f"  [{ti + 1}/{len(tables)}] {table}: {k1}/{times} copies")
            progress(f"  [{ti + 1}/{len(tables)}] {table}: done")

        if "ANALYSIS_DETAILS" in tables and {"duration", "startTime", "stopTime"} <= {
            c for c, _ in cols["ANALYSIS_DETAILS"]
        }:
            # The session now lasts N periods longer: keep "trace end" consistent with the events.
            con.execute(
                "UPDATE main.ANALYSIS_DETAILS SET duration = duration + :d, "
                "stopTime = stopTime + :d",
                {"d": (times - 1) * period},
            )
        for typ, _, sql in objects:
            if typ != "table":
                con.execute(sql)
        counts = {
            t: con.execute(f"SELECT count(*) FROM main.{_q(t)}").fetchone()[0]
            for t in (
                "CUPTI_ACTIVITY_KIND_KERNEL",
                "CUPTI_ACTIVITY_KIND_RUNTIME",
                "CUPTI_ACTIVITY_KIND_MEMCPY",
                "CUPTI_ACTIVITY_KIND_MEMSET",
                "NVTX_EVENTS",
            )
            if t in tables
        }
        con.execute("COMMIT")
        con.execute("DETACH src")
    finally:
        con.close()
    os.replace(tmp, dst)
    size_mb = dst.stat().st_size / 1e6
    progress(
        f"scale_trace: wrote {dst} ({size_mb:.0f} MB) in {time.perf_counter() - t0:.1f} s: "
        + ", ".join(f"{t} {n:,}" for t, n in counts.items())
    )
    return counts | {"period_ns": period, "correlation_offset": corr_off, "nvtx_every": nvtx_every}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("src", type=Path, help="input Nsight Systems SQLite export (read-only)")
    ap.add_argument("dst", type=Path, help="output SQLite file (written atomically)")
    ap.add_argument("--times", type=int, required=True, help="number of copies N (>= 1)")
    ap.add_argument("--gap-ns", type=int, default=1_000_000, help="gap between copies (ns)")
    thin = ap.add_mutually_exclusive_group()
    thin.add_argument("--nvtx-every", type=int, default=1, help="keep every K-th NVTX range tree")
    thin.add_argument("--nvtx-ranges", type=int, help="thin NVTX to about this many ranges")
    a = ap.parse_args(argv)
    scale_trace(
        a.src, a.dst, a.times, gap_ns=a.gap_ns, nvtx_every=a.nvtx_every, nvtx_ranges=a.nvtx_ranges
    )


if __name__ == "__main__":
    main()
