"""The numpy projection (dsocr_nsys.trace.attribution) against independent readings: a plain
containment join in SQLite over the raw tables of real exports (and edited copies), and small
hand-made cases for the launch join and the sweep."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from dsocr_nsys.trace import open_trace
from dsocr_nsys.trace.attribution import GRAPH, KERNEL, join_launches, sweep

TRACES = Path(__file__).resolve().parent / "fixtures" / "traces"
DSOCR = TRACES / "dsocr_base16_eager_h200_nsys2025.sqlite"
OP_TABLES = (
    "CUPTI_ACTIVITY_KIND_KERNEL",
    "CUPTI_ACTIVITY_KIND_MEMCPY",
    "CUPTI_ACTIVITY_KIND_MEMSET",
)

# nsys' projection written as the plain join it defines: a range holds the operations whose
# launching call (same thread; the two rows nsys 2022 keeps per call merged) lies inside it.
PLAIN_PROJECTION = """
WITH ops AS ({ops}),
calls AS (
    SELECT globalTid AS tid, correlationId AS corr, max(start) AS start, min("end") AS end
    FROM CUPTI_ACTIVITY_KIND_RUNTIME GROUP BY globalTid, correlationId
)
SELECT n.rowid, count(*), count(DISTINCT c.corr), min(o.start), max(o.end),
       sum(o.kernel), sum(CASE WHEN o.kernel THEN o.end - o.start ELSE 0 END)
FROM NVTX_EVENTS AS n
JOIN calls AS c ON c.tid = n.globalTid AND c.start >= n.start AND c.end <= n.end
JOIN ops AS o ON o.corr = c.corr AND o.pid = (c.tid >> 24) << 24
WHERE n.eventType IN (59, 60) AND n.endGlobalTid IS NULL AND n.end IS NOT NULL
GROUP BY n.rowid
"""
OURS = ["range_id", "gpu_ops", "gpu_launches", "gpu_start_ns", "gpu_end_ns", "kernels", "kernel_ns"]


def plain_projection(path: Path) -> dict[int, tuple[int, ...]]:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        ops = " UNION ALL ".join(
            f'SELECT start, "end", correlationId AS corr, globalPid AS pid, '
            f"{int(t.endswith('KERNEL'))} AS kernel FROM {t}"
            for t in OP_TABLES
            if t in tables
        )
        rows = con.execute(PLAIN_PROJECTION.format(ops=ops)).fetchall()
    finally:
        con.close()
    return {row[0]: tuple(row[1:]) for row in rows}


def ours(path: Path) -> dict[int, tuple[int, ...]]:
    with open_trace(path) as trace:
        frame = trace.ranges(include_warmup=True).filter(pl.col("gpu_ops") > 0).select(OURS)
    return {row[0]: tuple(row[1:]) for row in frame.iter_rows()}


@pytest.mark.parametrize(
    "name",
    [
        "h100_matmul_nvtx_nsys2025.sqlite",
        "dsocr_base16_eager_h200_nsys2025.sqlite",
        "nsysai_h100_2gpu_1s.sqlite",  # two processes
        "pipit_saxpy_a100_nsys2022.sqlite",  # every launch recorded twice
    ],
)
def test_projection_equals_the_plain_join(name: str) -> None:
    expected = plain_projection(TRACES / name)
    assert expected and ours(TRACES / name) == expected


def test_projection_with_overlapping_calls_on_one_thread(tmp_path: Path) -> None:
    """Calls of one thread made to overlap (every 50th launch call ends 2 ms late, past the
    next calls and some range ends): ranges then take the per-candidate test, and still equal
    the plain join."""
    path = tmp_path / DSOCR.name
    shutil.copyfile(DSOCR, path)
    con = sqlite3.connect(path)
    con.execute(
        'UPDATE CUPTI_ACTIVITY_KIND_RUNTIME SET "end" = "end" + 2000000 WHERE rowid % 50 = 0 '
        "AND correlationId IN (SELECT correlationId FROM CUPTI_ACTIVITY_KIND_KERNEL)"
    )
    con.commit()
    con.close()
    expected = plain_projection(path)
    got = ours(path)
    assert got == expected
    assert got != ours(DSOCR)  # the edit moved operations out of ranges
    with open_trace(path) as trace:
        trace.ranges()
        assert trace._range_ops is not None and len(trace._range_ops.explicit) > 10


def _calls(rows: list[tuple[int, int, int, int]]) -> dict[str, np.ndarray]:
    corr, tid, start, end = (np.array(col, dtype=np.int64) for col in zip(*rows, strict=True))
    return {"correlationId": corr, "globalTid": tid, "start": start, "end": end}


def _ops(rows: list[tuple[int, int]]) -> dict[str, np.ndarray]:
    corr, pid = (np.array(col, dtype=np.int64) for col in zip(*rows, strict=True))
    return {"correlation_id": corr, "global_pid": pid}


P1, P2 = 1 << 24, 2 << 24  # two processes' globalPid; threads are P + 1, P + 2


def test_launch_join_matches_process_and_correlation_id() -> None:
    calls = _calls([(7, P1 + 1, 100, 110), (7, P2 + 1, 200, 210), (8, P1 + 2, 300, 310)])
    ops = _ops([(7, P2), (8, P1), (7, P1), (9, P1), (-1, P1), (8, P2)])
    got = join_launches(ops, calls)
    assert got.op.tolist() == [0, 1, 2]  # 9: no call; -1 (NULL): none; 8 in P2: none
    assert got.global_tid.tolist() == [P2 + 1, P1 + 2, P1 + 1]
    assert got.start_ns.tolist() == [200, 300, 100]


def test_launch_join_merges_a_call_recorded_twice() -> None:
    """nsys 2022 writes each launch as two rows of one thread (the call around a versioned
    entry): one call, its latest start and earliest end."""
    calls = _calls([(5, P1 + 1, 100, 150), (5, P1 + 1, 101, 149), (6, P1 + 1, 160, 170)])
    got = join_launches(_ops([(5, P1), (6, P1)]), calls)
    assert got.op.tolist() == [0, 1]
    assert (got.start_ns.tolist(), got.end_ns.tolist()) == ([101, 160], [149, 170])


def test_launch_join_on_two_threads_keeps_both() -> None:
    calls = _calls([(5, P1 + 1, 100, 150), (5, P1 + 2, 120, 130)])
    got = join_launches(_ops([(5, P1)]), calls)
    assert got.op.tolist() == [0, 0] and sorted(got.global_tid.tolist()) == [P1 + 1, P1 + 2]


def test_sweep_busy_is_the_union_per_device() -> None:
    ops = {
        "start_ns": np.array([0, 5, 20, 0, 30, 8], dtype=np.int64),
        "end_ns": np.array([10, 12, 25, 4, 31, 9], dtype=np.int64),
        "device_id": np.array([0, 0, 0, 1, 1, 0], dtype=np.int64),
    }
    swept = sweep(ops)
    assert swept.busy_ns == {0: 12 + 5, 1: 4 + 1}
    assert swept.share_cum[-1] == 22
    assert sorted(swept.pos.tolist()) == list(range(6))
    assert KERNEL != GRAPH
