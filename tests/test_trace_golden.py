"""The trace engine against what `nsys stats` printed for the same real exports.

Golden CSVs: tests/fixtures/traces/golden/ (Nsight Systems 2025.3.1). To regenerate one, on a
machine with Nsight Systems: `nsys stats -r REPORT --format csv -o golden/NAME TRACE.sqlite`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

from dsocr_nsys.trace import Trace, open_trace

TRACES = Path(__file__).resolve().parent / "fixtures" / "traces"
GOLDEN = TRACES / "golden"
REGEN = "regenerate with `nsys stats -r {report} --format csv -o golden/{stem} {stem}.sqlite`"

NVTX_FIXTURES = [
    "dsocr_base32_h100_nsys2025",
    "h100_matmul_nvtx_nsys2025",
    "nsysai_h100_2gpu_1s",
    "nsysai_mfu_2gpu_after",
    "nsysai_mfu_2gpu_before",
    "pipit_saxpy_a100_nsys2022",
]
KERNEL_FIXTURES = [*NVTX_FIXTURES, "nsysai_mock", "pipit_cloverleaf_a100_nsys2024"]


def golden(stem: str, report: str) -> pl.DataFrame:
    path = GOLDEN / f"{stem}_{report}.csv"
    assert path.stat().st_size > 0, f"empty golden {path.name}; " + REGEN.format(
        report=report, stem=stem
    )
    return pl.read_csv(path, infer_schema_length=0)


@pytest.fixture(scope="module")
def traces() -> Iterator[dict[str, Trace]]:
    """Each fixture opened once for the whole module."""
    opened = {stem: open_trace(TRACES / f"{stem}.sqlite") for stem in KERNEL_FIXTURES}
    yield opened
    for trace in opened.values():
        trace.close()


def nsys_name() -> pl.Expr:
    """nsys names a range `domain:text` (`:text` in the default domain)."""
    return pl.col("domain").fill_null("") + pl.lit(":") + pl.col("name")


@pytest.mark.parametrize("stem", NVTX_FIXTURES)
def test_projection_equals_nvtx_gpu_proj_trace(traces: dict[str, Trace], stem: str) -> None:
    """Every range with GPU work: projected start, duration, op count, nesting, as nsys."""
    ours = traces[stem].ranges(include_warmup=True)
    gold = golden(stem, "nvtx_gpu_proj_trace").select(
        pl.col("RangeId").cast(pl.Int64).alias("range_id"),
        pl.col("Name").alias("g_name"),
        pl.col("Projected Start (ns)").cast(pl.Int64).alias("g_start"),
        pl.col("Projected Duration (ns)").cast(pl.Int64).alias("g_dur"),
        pl.col("NumGPUOps").cast(pl.Int64).alias("g_ops"),
        pl.col("Orig Start (ns)").cast(pl.Int64).alias("g_orig_start"),
        pl.col("Orig Duration (ns)").cast(pl.Int64).alias("g_orig_dur"),
        pl.col("Style").alias("g_style"),
        pl.col("PID").cast(pl.Int64).alias("g_pid"),
        pl.col("TID").cast(pl.Int64).alias("g_tid"),
        pl.col("Lvl").cast(pl.Int64).alias("g_lvl"),
        pl.col("ParentId").cast(pl.Int64).alias("g_parent"),
        pl.col("NumChild").cast(pl.Int64).alias("g_children"),
    )
    # nsys lists only ranges that launched GPU work.
    with_ops = ours.filter(pl.col("gpu_ops") > 0).with_columns(nsys_name().alias("nsys_name"))
    assert with_ops.height == gold.height, REGEN.format(report="nvtx_gpu_proj_trace", stem=stem)
    # nsys' NumChild counts only the children that launched GPU work themselves.
    children = with_ops.group_by("parent_id").agg(pl.len().alias("children"))
    joined = (
        gold.join(with_ops, on="range_id", how="left")
        .join(children, left_on="range_id", right_on="parent_id", how="left")
        .with_columns(pl.col("children").fill_null(0))
    )
    pairs = {
        "g_name": "nsys_name",
        "g_start": "gpu_start_ns",
        "g_dur": "proj_ns",
        "g_ops": "gpu_ops",
        "g_orig_start": "start_ns",
        "g_orig_dur": "cpu_ns",
        "g_style": "style",
        "g_pid": "pid",
        "g_tid": "tid",
        "g_lvl": "level",
        "g_parent": "parent_id",
        "g_children": "children",
    }
    for theirs, mine in pairs.items():
        bad = joined.filter(~pl.col(theirs).eq_missing(pl.col(mine)))
        assert bad.height == 0, f"{stem}: {mine} differs from nsys {theirs}:\n{bad.head(5)}"
    # The union of op intervals can never exceed the projected span, nor be empty.
    assert (with_ops["busy_ns"] <= with_ops["proj_ns"]).all()
    assert (with_ops["busy_ns"] > 0).all()
    assert (with_ops["idle_ns"] == with_ops["proj_ns"] - with_ops["busy_ns"]).all()


def runtime_rows_per_launch(stem: str) -> int:
    """Rows CUPTI_ACTIVITY_KIND_RUNTIME holds per kernel launch (2 in nsys 2022 exports)."""
    con = sqlite3.connect(f"file:{TRACES / f'{stem}.sqlite'}?mode=ro", uri=True)
    try:
        counts = {
            n
            for (n,) in con.execute(
                "SELECT count(*) FROM CUPTI_ACTIVITY_KIND_KERNEL k"
                " JOIN CUPTI_ACTIVITY_KIND_RUNTIME r"
                " ON r.correlationId = k.correlationId"
                " AND k.globalPid = (r.globalTid >> 24) << 24 GROUP BY k.rowid"
            )
        }
    finally:
        con.close()
    assert len(counts) == 1, f"{stem}: uneven runtime rows per launch {counts}"
    return counts.pop()


@pytest.mark.parametrize("stem", NVTX_FIXTURES)
def test_kernel_time_per_range_name_equals_nvtx_kern_sum(
    traces: dict[str, Trace], stem: str
) -> None:
    """Sum of kernel_ns over the instances of a range name = nsys' Total Time for that name.

    nsys sums over (range instance, kernel, runtime row) join rows: the 2022 export holds two
    runtime rows per launch (the API call and its _v7000 entry), so there nsys counts each
    kernel twice. We count it once; the test derives that factor from the file itself.
    """
    ours = (
        traces[stem]
        .ranges(include_warmup=True)
        .with_columns(nsys_name().alias("range"))
        .group_by("range")
        .agg(pl.col("kernel_ns").sum())
    )
    gold = (
        golden(stem, "nvtx_kern_sum")
        .filter(pl.col("NVTX Range").is_not_null())  # kernels outside every range
        .group_by("NVTX Range")
        .agg(pl.col("Total Time (ns)").cast(pl.Int64).sum().alias("g_total"))
        .rename({"NVTX Range": "range"})
    )
    factor = runtime_rows_per_launch(stem)
    joined = gold.join(ours, on="range", how="left")
    bad = joined.filter(pl.col("g_total") != pl.col("kernel_ns") * factor)
    assert bad.height == 0, f"{stem}: kernel time per range differs from nsys:\n{bad.head(5)}"
    # Names with kernels are exactly the names nsys lists.
    assert set(ours.filter(pl.col("kernel_ns") > 0)["range"]) == set(gold["range"])


@pytest.mark.parametrize("stem", KERNEL_FIXTURES)
def test_kernels_equal_cuda_gpu_kern_sum(traces: dict[str, Trace], stem: str) -> None:
    """Whole-trace kernel summary = nsys cuda_gpu_kern_sum, name by name."""
    ours = traces[stem].kernels(top=1_000_000)
    gold = golden(stem, "cuda_gpu_kern_sum")
    assert ours.height == gold.height
    joined = gold.join(ours, left_on="Name", right_on="name", how="left")
    assert joined["total_ns"].null_count() == 0, "a kernel name nsys lists is missing"
    for theirs, mine in {
        "Total Time (ns)": "total_ns",
        "Instances": "instances",
        "Min (ns)": "min_ns",
        "Max (ns)": "max_ns",
    }.items():
        bad = joined.filter(pl.col(theirs).cast(pl.Int64) != pl.col(mine))
        assert bad.height == 0, f"{stem}: {mine} differs from nsys {theirs}"
    # nsys prints mean/median/stddev rounded to 0.1 ns.
    for theirs, mine in {"Avg (ns)": "mean_ns", "Med (ns)": "median_ns"}.items():
        diff = (joined[theirs].cast(pl.Float64) - joined[mine]).abs()
        assert diff.max() <= 0.05 + 1e-6, f"{stem}: {mine} differs from nsys {theirs}"
    assert ours["share_pct"].sum() == pytest.approx(100.0)
    assert ours["total_ns"].is_sorted(descending=True)


@pytest.mark.parametrize("stem", NVTX_FIXTURES)
def test_stage_projection_totals_equal_nvtx_gpu_proj_sum(
    traces: dict[str, Trace], stem: str
) -> None:
    """Per range name: total projected time, instances with GPU work and GPU ops, as nsys."""
    ranges = traces[stem].ranges(include_warmup=True).filter(pl.col("gpu_ops") > 0)
    ours = (
        ranges.with_columns(nsys_name().alias("range"))
        .group_by("range")
        .agg(
            pl.col("proj_ns").sum(),
            pl.len().alias("instances"),
            pl.col("gpu_ops").sum(),
        )
    )
    gold = golden(stem, "nvtx_gpu_proj_sum").select(
        pl.col("Range").alias("range"),
        pl.col("Total Proj Time (ns)").cast(pl.Int64).alias("g_proj"),
        pl.col("Range Instances").cast(pl.Int64).alias("g_inst"),
        pl.col("Total GPU Ops").cast(pl.Int64).alias("g_ops"),
    )
    joined = gold.join(ours, on="range", how="full", coalesce=True)
    bad = joined.filter(
        (pl.col("g_proj") != pl.col("proj_ns"))
        | (pl.col("g_inst") != pl.col("instances"))
        | (pl.col("g_ops") != pl.col("gpu_ops"))
        | pl.col("g_proj").is_null()
        | pl.col("proj_ns").is_null()
    )
    assert bad.height == 0, f"{stem}: per-name projection differs from nsys:\n{bad.head(5)}"
