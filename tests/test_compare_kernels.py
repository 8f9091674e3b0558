"""Kernel matching of `dsocr_nsys.compare.kernels`: on the real before/after training-step
exports (totals equal `Trace.kernels` to the ns) and on the rules for templates that differ,
kernels that appear and kernels that vanish."""

from __future__ import annotations

import polars as pl
from compare_helpers import AFTER, BEFORE

from dsocr_nsys.compare.kernels import APPEARED, BOTH, VANISHED, kernel_totals, match_kernels
from dsocr_nsys.trace import open_trace


def test_before_after_totals_equal_the_trace_engine() -> None:
    with open_trace(BEFORE) as b, open_trace(AFTER) as a:
        kb, ka = kernel_totals(b, None), kernel_totals(a, None)
        top_b = b.kernels(top=5)
    matched = match_kernels(kb, ka)
    assert matched.height == len(set(kb["name"]) | set(ka["name"]))
    before = dict(kb.select("name", "total_ns").rows())
    after = dict(ka.select("name", "total_ns").rows())
    for row in matched.to_dicts():
        assert row["baseline_ns"] == before.get(row["name"])
        assert row["value_ns"] == after.get(row["name"])
        assert row["delta_ns"] == (after.get(row["name"]) or 0) - (before.get(row["name"]) or 0)
    # the engine's own top-5 (= nsys stats cuda_gpu_kern_sum) are among the rows, same totals
    for name, total in top_b.select("name", "total_ns").rows():
        assert matched.filter(pl.col("name") == name)["baseline_ns"].item() == total
    deltas = matched["delta_ns"].abs().to_list()
    assert deltas == sorted(deltas, reverse=True)
    flash = matched.row(0, named=True)  # the largest change: flash attention forward
    assert flash["short_name"] == "flash_fwd_kernel" and flash["status"] == BOTH
    assert (flash["baseline_instances"], flash["instances"]) == (68, 60)


def _frame(rows: list[tuple[str, str, int, int]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=["name", "short_name", "instances", "total_ns"], orient="row")


def test_templates_that_differ_match_by_short_name() -> None:
    base = _frame(
        [
            ("gemm<64, 64>", "gemm", 10, 1000),
            ("add_kernel<float>", "add_kernel", 5, 50),
            ("mul_kernel", "mul_kernel", 4, 40),
        ]
    )
    other = _frame(
        [
            ("gemm<128, 64>", "gemm", 10, 700),
            ("gemm<128, 32>", "gemm", 2, 100),
            ("add_kernel<float>", "add_kernel", 5, 50),
            ("fused_add_mul", "fused_add_mul", 4, 60),
        ]
    )
    rows = {r["short_name"]: r for r in match_kernels(base, other).to_dicts()}
    gemm = rows["gemm"]
    assert gemm["matched_by"] == "short name (1→2 names)" and gemm["status"] == BOTH
    assert (gemm["baseline_ns"], gemm["value_ns"], gemm["delta_ns"]) == (1000, 800, -200)
    assert (gemm["baseline_instances"], gemm["instances"]) == (10, 12)
    assert rows["add_kernel"]["matched_by"] == "name" and rows["add_kernel"]["delta_ns"] == 0
    assert rows["mul_kernel"]["status"] == VANISHED and rows["mul_kernel"]["delta_ns"] == -40
    assert rows["fused_add_mul"]["status"] == APPEARED and rows["fused_add_mul"]["delta_ns"] == 60
    assert rows["fused_add_mul"]["baseline_ns"] is None
