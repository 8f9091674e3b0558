"""Kernels of one scope (a stage, or the whole trace) matched between two runs.

Matched first by demangled name; what is left on both sides is then matched by short name
(the same kernel built with other template arguments, e.g. another tile shape); the rest
appeared (only in the other run) or vanished (only in the baseline).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import polars as pl

if TYPE_CHECKING:
    from ..trace import Trace

#: ``Trace.kernels`` limit that means "every kernel" (its ``top`` is an SQL INTEGER).
ALL_KERNELS = 2**31 - 1
BY_NAME = "name"
BY_SHORT_NAME = "short name"
BOTH, APPEARED, VANISHED = "in both", "appeared", "vanished"

KERNEL_SCHEMA = {
    "name": pl.String,
    "short_name": pl.String,
    "matched_by": pl.String,
    "status": pl.String,
    "baseline_instances": pl.Int64,
    "instances": pl.Int64,
    "baseline_ns": pl.Int64,
    "value_ns": pl.Int64,
    "delta_ns": pl.Int64,
}


def kernel_totals(trace: Trace, stage: str | None, include_warmup: bool = False) -> pl.DataFrame:
    """Every kernel of the scope: name, short_name, instances, total_ns (``stage=None``: the
    whole trace, as ``nsys stats -r cuda_gpu_kern_sum``)."""
    frame = trace.kernels(stage=stage, top=ALL_KERNELS, include_warmup=include_warmup)
    return frame.select("name", "short_name", "instances", "total_ns")


def _by_short(frame: pl.DataFrame) -> pl.DataFrame:
    return (
        frame.filter(pl.col("short_name") != "")
        .group_by("short_name")
        .agg(
            pl.col("name").sort().first(),
            pl.len().alias("variants"),
            pl.col("instances").sum(),
            pl.col("total_ns").sum(),
        )
    )


def match_kernels(baseline: pl.DataFrame, other: pl.DataFrame) -> pl.DataFrame:
    """One row per kernel (or short-name group) of either run: instances and total time in
    each (null where absent), ``delta_ns`` = other − baseline (an absent side counts 0),
    ``matched_by`` and ``status``. Sorted by absolute change, largest first."""
    joined = baseline.join(other, on="name", how="full", coalesce=True, suffix="_o")
    named = joined.filter(pl.col("total_ns").is_not_null() & pl.col("total_ns_o").is_not_null())
    left = joined.filter(pl.col("total_ns_o").is_null()).select(
        "name", "short_name", "instances", "total_ns"
    )
    right = joined.filter(pl.col("total_ns").is_null()).select(
        "name", pl.col("short_name_o").alias("short_name"),
        pl.col("instances_o").alias("instances"), pl.col("total_ns_o").alias("total_ns"),
    )  # fmt: skip
    short = _by_short(left).join(_by_short(right), on="short_name", suffix="_o")
    matched_short = set(short["short_name"].to_list())
    rows = [
        named.select(
            "name", "short_name", pl.lit(BY_NAME).alias("matched_by"), pl.lit(BOTH).alias("status"),
            pl.col("instances").alias("baseline_instances"),
            pl.col("instances_o").alias("instances"),
            pl.col("total_ns").alias("baseline_ns"), pl.col("total_ns_o").alias("value_ns"),
        ),
        short.select(
            # the baseline's name (first in order) stands for the group; matched_by says so
            "name", "short_name",
            pl.format("{} ({}→{} names)", pl.lit(BY_SHORT_NAME), "variants", "variants_o")
            .alias("matched_by"),
            pl.lit(BOTH).alias("status"),
            pl.col("instances").alias("baseline_instances"),
            pl.col("instances_o").alias("instances"),
            pl.col("total_ns").alias("baseline_ns"), pl.col("total_ns_o").alias("value_ns"),
        ),
        left.filter(~pl.col("short_name").is_in(matched_short)).select(
            "name", "short_name", pl.lit(None, pl.String).alias("matched_by"),
            pl.lit(VANISHED).alias("status"), pl.col("instances").alias("baseline_instances"),
            pl.lit(None, pl.Int64).alias("instances"), pl.col("total_ns").alias("baseline_ns"),
            pl.lit(None, pl.Int64).alias("value_ns"),
        ),
        right.filter(~pl.col("short_name").is_in(matched_short)).select(
            "name", "short_name", pl.lit(None, pl.String).alias("matched_by"),
            pl.lit(APPEARED).alias("status"), pl.lit(None, pl.Int64).alias("baseline_instances"),
            "instances", pl.lit(None, pl.Int64).alias("baseline_ns"),
            pl.col("total_ns").alias("value_ns"),
        ),
    ]  # fmt: skip
    out = pl.concat(
        [r.with_columns(pl.col(c).cast(t) for c, t in KERNEL_SCHEMA.items() if c in r.columns)
         for r in rows]
    ).with_columns(
        (pl.col("value_ns").fill_null(0) - pl.col("baseline_ns").fill_null(0)).alias("delta_ns")
    )  # fmt: skip
    return out.select(list(KERNEL_SCHEMA)).sort(
        pl.col("delta_ns").abs(), "name", descending=[True, False]
    )
