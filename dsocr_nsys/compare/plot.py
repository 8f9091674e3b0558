"""``compare -o DIR``'s plot: per-stage time and MFU, runs side by side (matplotlib, Agg)."""

from __future__ import annotations

import polars as pl

from ..mfu.plot import _png, _pyplot
from ..vocab import BUSY, time_base
from .core import CompareResult

_NAME_CHARS = 28  # range names of other programs can be long: tick labels cut to this
_DECADES = 100  # log scale once the largest bar is this many times the smallest


def _bars(
    ax: object, stages: list[str], series: dict[str, list[float | None]], colours: dict[str, str]
) -> None:
    """Grouped bars, one group per stage, one bar per run; log scale across decades."""
    width = 0.8 / max(1, len(series))
    for i, (label, values) in enumerate(series.items()):
        xs = [k + (i - (len(series) - 1) / 2) * width for k in range(len(stages))]
        bars = [v or 0 for v in values]
        ax.bar(xs, bars, width, label=label, color=colours[label])  # type: ignore[attr-defined]
    positive = [v for vs in series.values() for v in vs if v]
    if positive and max(positive) > _DECADES * min(positive):
        ax.set_yscale("log")  # type: ignore[attr-defined]
    ticks = [s if len(s) <= _NAME_CHARS else s[: _NAME_CHARS - 1] + "…" for s in stages]
    ax.set_xticks(range(len(stages)), ticks, rotation=30, ha="right")  # type: ignore[attr-defined]
    ax.legend(fontsize=8)  # type: ignore[attr-defined]


def _config_values(result: CompareResult, field: str) -> str | None:
    """One configuration field over the runs: its value, or the runs' values joined by " / "
    where they differ; None when no run knows it."""
    rows = result.config.filter(pl.col("field") == field)
    if not rows.height:
        return None
    values = [rows[label][0] for label in result.labels if label in rows.columns]
    known = list(dict.fromkeys(v for v in values if v))
    return " / ".join(known) or None


def suptitle(result: CompareResult) -> str:
    """What the figure compares: the runs against the baseline, the GPU(s) and the peak."""
    parts = [f"{', '.join(result.labels[1:])} against {result.labels[0]}"]
    gpu, peak = _config_values(result, "gpu"), _config_values(result, "peak")
    parts += [gpu] if gpu else []
    parts += [f"peak {peak}"] if peak else []
    return " · ".join(parts)


def render_plot(result: CompareResult) -> bytes:
    """The PNG: left, each stage's GPU busy time, per run. Right, when a run
    has a static file: MFU on that base, per such run."""
    plt = _pyplot()
    base = time_base(BUSY)
    times = result.times
    stages = list(dict.fromkeys(times["stage"].to_list()))
    by_run = {
        label: [
            (v / 1e6 if v is not None else None)
            for v in times.filter(pl.col("run") == label)[base.total].to_list()
        ]
        for label in result.labels
    }
    # one colour per run in both panels (a run without a static file has no MFU bar)
    colours = {label: f"C{i % 10}" for i, label in enumerate(result.labels)}
    mfu_col = base.mfu_pct
    rates = result.rates
    with_mfu = bool(rates.height) and mfu_col in rates.columns
    panels = 2 if with_mfu else 1
    fig, axes = plt.subplots(1, panels, figsize=(max(6.0, 1.2 * len(stages)) * panels, 4.5))
    left = axes[0] if with_mfu else axes
    try:
        fig.suptitle(suptitle(result), fontsize=10)
        _bars(left, stages, by_run, colours)
        left.set_ylabel(f"{base.label} (ms, total over counted instances)")
        left.set_title(
            f"{base.label} per stage" + ("" if with_mfu else " (no static file: no MFU)")
        )
        if with_mfu:
            series = {}
            for label in rates["run"].unique(maintain_order=True).to_list():
                got = dict(rates.filter(pl.col("run") == label).select("stage", mfu_col).rows())
                series[label] = [got.get(s) for s in stages]
            _bars(axes[1], stages, series, colours)
            axes[1].set_ylabel(f"MFU on {base.label} (% of peak)")
            axes[1].set_title("MFU per stage (runs with a static file)")
        return _png(fig)
    finally:
        plt.close(fig)
