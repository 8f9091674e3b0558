"""bench/scale_trace.py: repeating a real export N times keeps its structure and its numbers.

Scales small real fixtures ×3 and checks row counts, per-kernel totals against the golden
`nsys stats -r cuda_gpu_kern_sum` CSV, and per-range projected GPU times against the golden
`nvtx_gpu_proj_trace` CSV (every copy repeats copy 0, shifted by one period).
"""

from __future__ import annotations

import bisect
import csv
import hashlib
import importlib.util
import sqlite3
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TRACES = ROOT / "tests/fixtures/traces"
GOLDEN = TRACES / "golden"
TIMES = 3

_spec = importlib.util.spec_from_file_location("scale_trace", ROOT / "bench/scale_trace.py")
assert _spec and _spec.loader
scale_mod = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(scale_mod)


def _scaled(tmp_path: Path, name: str, **kw) -> tuple[Path, Path, dict[str, int]]:
    src = TRACES / f"{name}.sqlite"
    dst = tmp_path / f"{name}_x{TIMES}.sqlite"
    info = scale_mod.scale_trace(src, dst, TIMES, progress=lambda _m: None, **kw)
    return src, dst, info


def _count(path: Path, table: str, where: str = "1") -> int:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return con.execute(f'SELECT count(*) FROM "{table}" WHERE {where}').fetchone()[0]
    finally:
        con.close()


def _tables(path: Path) -> list[str]:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    finally:
        con.close()


@pytest.mark.parametrize(
    "name", ["h100_matmul_nvtx_nsys2025", "pipit_saxpy_a100_nsys2022", "nsysai_mfu_2gpu_before"]
)
def test_rows_exactly_times_n_and_input_unchanged(tmp_path: Path, name: str) -> None:
    src_hash = hashlib.sha256((TRACES / f"{name}.sqlite").read_bytes()).hexdigest()
    src, dst, _ = _scaled(tmp_path, name)
    assert hashlib.sha256(src.read_bytes()).hexdigest() == src_hash, "input was modified"
    assert not dst.with_name(dst.name + ".tmp").exists()
    assert _tables(dst) == _tables(src)
    defs = ",".join(map(str, scale_mod.NVTX_DEFINITION_TYPES))
    for table in _tables(src):
        n = _count(src, table)
        cols = {r[1] for r in sqlite3.connect(src).execute(f'PRAGMA table_info("{table}")')}
        if table == "NVTX_EVENTS":
            n_def = _count(src, table, f"eventType IN ({defs})")
            assert _count(dst, table) == TIMES * (n - n_def) + n_def, table
            assert _count(dst, table, f"eventType IN ({defs})") == n_def, "NVTX names kept once"
        elif "start" in cols or "timestamp" in cols:
            assert _count(dst, table) == TIMES * n, table
        else:
            assert _count(dst, table) == n, table


def test_each_gpu_op_joins_exactly_one_runtime_call(tmp_path: Path) -> None:
    _, dst, _ = _scaled(tmp_path, "nsysai_mfu_2gpu_before")
    con = sqlite3.connect(f"file:{dst}?mode=ro", uri=True)
    for table in ("KERNEL", "MEMCPY", "MEMSET"):
        n_joined, n_dup = con.execute(
            f"""SELECT count(r.correlationId), count(*) - count(DISTINCT o.rowid)
                FROM CUPTI_ACTIVITY_KIND_{table} o LEFT JOIN CUPTI_ACTIVITY_KIND_RUNTIME r
                  ON r.correlationId = o.correlationId
                 AND r.globalTid / 16777216 = o.globalPid / 16777216"""
        ).fetchone()
        src_joined = (
            sqlite3.connect(TRACES / "nsysai_mfu_2gpu_before.sqlite")
            .execute(
                f"""SELECT count(r.correlationId) FROM CUPTI_ACTIVITY_KIND_{table} o
                JOIN CUPTI_ACTIVITY_KIND_RUNTIME r ON r.correlationId = o.correlationId
                 AND r.globalTid / 16777216 = o.globalPid / 16777216"""
            )
            .fetchone()[0]
        )
        assert n_dup == 0, f"{table}: an op joins several runtime calls"
        assert n_joined == TIMES * src_joined, table


def test_per_kernel_totals_are_n_times_cuda_gpu_kern_sum(tmp_path: Path) -> None:
    name = "nsysai_mfu_2gpu_before"
    _, dst, _ = _scaled(tmp_path, name)
    con = sqlite3.connect(f"file:{dst}?mode=ro", uri=True)
    ours = {
        row[0]: (row[1], row[2])
        for row in con.execute(
            """SELECT s.value, sum(k."end" - k.start), count(*)
               FROM CUPTI_ACTIVITY_KIND_KERNEL k JOIN StringIds s ON s.id = k.demangledName
               GROUP BY s.value"""
        )
    }
    with open(GOLDEN / f"{name}_cuda_gpu_kern_sum.csv", newline="") as fh:
        golden = list(csv.DictReader(fh))
    assert golden and len(golden) == len(ours)
    for row in golden:
        total_ns, count = ours[row["Name"]]
        assert total_ns == TIMES * int(row["Total Time (ns)"]), row["Name"]
        assert count == TIMES * int(row["Instances"]), row["Name"]


# NVIDIA's projection: a range's GPU ops are those whose launching runtime call lies inside the
# range on the same thread (an op counts once even when nested API calls share its correlation
# id, as in 2022 exports); projected start/duration span their first start to last end.
PROJECTION_SQL = """
SELECT start_ns, min(op_start), max(op_end) - min(op_start), count(*) FROM (
  SELECT DISTINCT n.rowid AS rid, n.start AS start_ns, o.kind, o.op_rowid,
         o.start AS op_start, o."end" AS op_end
  FROM NVTX_EVENTS n
  JOIN CUPTI_ACTIVITY_KIND_RUNTIME r
    ON r.globalTid = n.globalTid AND r.start >= n.start AND r."end" <= n."end"
  JOIN ({ops}) o
    ON o.correlationId = r.correlationId AND o.globalPid / 16777216 = r.globalTid / 16777216
  WHERE n.eventType = 59)
GROUP BY rid ORDER BY start_ns
"""


def _projection(path: Path) -> list[tuple[int, int, int, int]]:
    tables = _tables(path)
    ops = " UNION ALL ".join(
        f"SELECT '{t}' AS kind, rowid AS op_rowid, correlationId, globalPid, start, \"end\" "
        f"FROM {t}"
        for t in (
            "CUPTI_ACTIVITY_KIND_KERNEL",
            "CUPTI_ACTIVITY_KIND_MEMCPY",
            "CUPTI_ACTIVITY_KIND_MEMSET",
        )
        if t in tables
    )
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return con.execute(PROJECTION_SQL.format(ops=ops)).fetchall()
    finally:
        con.close()


@pytest.mark.parametrize("name", ["h100_matmul_nvtx_nsys2025", "pipit_saxpy_a100_nsys2022"])
def test_projected_ranges_repeat_per_copy(tmp_path: Path, name: str) -> None:
    _, dst, info = _scaled(tmp_path, name)
    period = info["period_ns"]
    with open(GOLDEN / f"{name}_nvtx_gpu_proj_trace.csv", newline="") as fh:
        golden = sorted(
            (
                int(r["Orig Start (ns)"]),
                int(r["Projected Start (ns)"]),
                int(r["Projected Duration (ns)"]),
                int(r["NumGPUOps"]),
            )
            for r in csv.DictReader(fh)
        )
    rows = _projection(dst)
    assert len(rows) == TIMES * len(golden)
    expected = sorted(
        (orig + k * period, proj + k * period, dur, ops)
        for k in range(TIMES)
        for orig, proj, dur, ops in golden
    )
    assert sorted(rows) == expected


def test_nvtx_thinning_keeps_whole_trees_and_all_kernels(tmp_path: Path) -> None:
    name = "nsysai_mfu_2gpu_before"
    src, dst, info = _scaled(tmp_path, name, nvtx_every=7)
    assert info["nvtx_every"] == 7
    assert _count(dst, "CUPTI_ACTIVITY_KIND_KERNEL") == TIMES * _count(
        src, "CUPTI_ACTIVITY_KIND_KERNEL"
    )
    n_src = _count(src, "NVTX_EVENTS", "eventType = 59")
    n_dst = _count(dst, "NVTX_EVENTS", "eventType = 59")
    assert 0 < n_dst < TIMES * n_src / 3
    # Whole trees: a kept range's enclosing ranges and everything nested in a kept top-level
    # range (in the shifted source copies) are kept too.
    period = info["period_ns"]
    src_rows = _ranges(src)
    dst_rows = set(_ranges(dst))
    copies = {(tid, s + k * period, e + k * period) for k in range(TIMES) for tid, s, e in src_rows}
    assert dst_rows <= copies
    # Top-level kept ranges per thread (sorted, disjoint), then look each copy range up in them.
    tops: dict[int, list[tuple[int, int]]] = {}
    for tid, s, e in sorted(dst_rows, key=lambda r: (r[0], r[1], -r[2])):
        lst = tops.setdefault(tid, [])
        if not lst or s >= lst[-1][1] or e > lst[-1][1]:
            lst.append((s, e))
    for tid, s, e in copies:
        lst = tops.get(tid, [])
        i = bisect.bisect_right(lst, (s, float("inf"))) - 1
        if i >= 0 and lst[i][0] <= s and e <= lst[i][1]:
            assert (tid, s, e) in dst_rows, "a nested range of a kept tree was dropped"


def _ranges(path: Path) -> list[tuple[int, int, int]]:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return con.execute(
            'SELECT globalTid, start, "end" FROM NVTX_EVENTS WHERE eventType = 59'
        ).fetchall()
    finally:
        con.close()
