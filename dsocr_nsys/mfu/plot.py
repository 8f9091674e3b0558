"""PNG plots for ``dsocr-nsys mfu -o DIR``: time per stage, MFU per stage, MBU per stage and a
roofline with the stages as points. matplotlib (Agg backend) is imported here only, so the
computation never needs it.

Every title names the GPU, the trace and the peak the figures are against; time bases are
labelled with the vocabulary's names and the tables' column keys (``GPU busy (busy)``).
Utilisation axes are logarithmic with each bar's value written on it: decode's 0.04 % and a
prefill's 40 % must both be readable. Rows that hold other rows (``vision``, the sum of its
parts; ``prefill`` with vision nested; the request) are hatched or hollow, and named so.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..vocab import BUSY, RATE_BASES, TIME_BASE_BY_KEY, TimeBase
from .compute import MfuResult

_BUSY_TFLOPS = TIME_BASE_BY_KEY[BUSY].tflops

# row kinds (MfuResult.stages "kind") that hold other rows, and what a plot adds to their
# name: vision is the sum of its parts; prefill and the request are measured ranges that
# contain other rows (their times are not sums).
_SUM_KINDS = {
    "sam+clip+projector": "sum of its parts",
    "range incl. vision": "incl. vision",
    "request ranges": "whole request",
    "sum of top-level stages": "sum of the stages",
}


def _row_name(row: dict[str, Any]) -> str:
    """A row's name in a plot: the stage, with what it holds when it holds other rows."""
    held = _SUM_KINDS.get(row.get("kind") or "")
    return f"{row['stage']} ({held})" if held else row["stage"]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    return buf.getvalue()


def _base_label(key: str) -> str:
    base = TIME_BASE_BY_KEY[key]
    return f"{base.label} ({base.key})"


def _context(result: MfuResult) -> str:
    """Second title line: GPU, trace, peak."""
    peak = result.peak
    gpu = peak.gpu or peak.detected_name or "GPU unknown"
    trace = Path(str(result.meta.get("trace", "trace"))).name
    gbps = f", {peak.peak_gbps:,g} GB/s" if peak.peak_gbps else ""
    return f"{gpu} · {trace} · peak {peak.peak_tflops:,g} TFLOP/s dense BF16{gbps}"


def _legend_outside(ax: Any) -> None:
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)


def _grouped_bars(
    ax: Any,
    rows: list[dict[str, Any]],
    column: Callable[[TimeBase], str],
    annotate: Callable[[float], str] | None,
) -> list[float]:
    """One bar group per stage, one bar per rate time base, each positive value written on
    its bar as ``annotate(value)`` when given; returns the positive values."""
    n = len(RATE_BASES)
    width = 0.8 / n
    values: list[float] = []
    for i, base in enumerate(RATE_BASES):
        xs = [k + (i - (n - 1) / 2) * width for k in range(len(rows))]
        ys = [r[column(base)] for r in rows]
        shown = [y if y and y > 0 else 0.0 for y in ys]
        bars = ax.bar(xs, shown, width, label=_base_label(base.key))
        for bar, r in zip(bars, rows, strict=True):
            if r.get("kind") in _SUM_KINDS:  # rows holding others: hatched, apart from parts
                bar.set_hatch("///")
                bar.set_edgecolor("white")
        values += [y for y in shown if y > 0]
        if annotate:
            for bar, y in zip(bars, ys, strict=True):
                if y and y > 0:
                    ax.annotate(
                        annotate(y),
                        (bar.get_x() + bar.get_width() / 2, y),
                        ha="center",
                        va="bottom",
                        fontsize=6,
                        rotation=90,
                        xytext=(0, 2),
                        textcoords="offset points",
                    )
    ax.set_xticks(range(len(rows)), [_row_name(r) for r in rows], rotation=30, ha="right")
    return values


def _pct_text(value: float) -> str:
    return f"{value:.2g}" if value < 1 else f"{value:.1f}"


def _utilisation_plot(
    plt: Any, result: MfuResult, column: Callable[[TimeBase], str], what: str, peak_text: str
) -> bytes:
    rows = result.stages.to_dicts()
    fig, ax = plt.subplots(figsize=(max(7.0, 1.2 * len(rows)), 4.5))
    try:
        values = _grouped_bars(ax, rows, column, _pct_text)
        if values:
            ax.set_yscale("log")
            ax.set_ylim(min(values) / 3, max(100.0, max(values)) * 4)
        ax.axhline(100, color="red", linewidth=0.8, linestyle="--", label="100 % of peak")
        ax.set_ylabel(f"{what} (% of {peak_text}, log scale)")
        ax.set_title(f"{what} per stage on each time base\n{_context(result)}", fontsize=10)
        _legend_outside(ax)
        return _png(fig)
    finally:
        plt.close(fig)


def render_plots(result: MfuResult) -> dict[str, bytes]:
    """The plots as PNG bytes by file name: ``mfu_time.png``, ``mfu_per_stage.png``,
    ``mfu_mbu.png`` (when a bandwidth peak is known) and ``mfu_roofline.png``."""
    plt = _pyplot()
    rows = result.stages.to_dicts()
    peak = result.peak
    out: dict[str, bytes] = {}
    try:
        # 1. time per stage on each time base (ms), grouped bars
        fig, ax = plt.subplots(figsize=(max(7.0, 1.2 * len(rows)), 4.5))
        ms_rows = [
            {
                "stage": r["stage"],
                "kind": r["kind"],
                **{b.total: (r[b.total] or 0) / 1e6 for b in RATE_BASES},  # ns -> ms
            }
            for r in rows
        ]
        positive = _grouped_bars(ax, ms_rows, lambda b: b.total, None)
        if positive and max(positive) > 100 * min(positive):
            ax.set_yscale("log")  # CPU ranges can dwarf GPU time (launch- or init-bound)
        ax.set_ylabel("time (ms, total over counted instances)")
        ax.set_title(f"Time per stage on each time base\n{_context(result)}", fontsize=10)
        _legend_outside(ax)
        out["mfu_time.png"] = _png(fig)
        plt.close(fig)

        # 2. MFU and 3. MBU per stage per time base (%), log axis, values written on the bars
        out["mfu_per_stage.png"] = _utilisation_plot(
            plt, result, lambda b: b.mfu_pct, "MFU", f"{peak.peak_tflops:,g} TFLOP/s"
        )
        if peak.peak_gbps:
            out["mfu_mbu.png"] = _utilisation_plot(
                plt, result, lambda b: b.mbu_pct, "MBU", f"{peak.peak_gbps:,g} GB/s"
            )

        # 4. roofline: attainable TFLOP/s vs FLOP/byte, stages at (intensity, busy TFLOP/s)
        out["mfu_roofline.png"] = _roofline(plt, result, rows)
    finally:
        plt.close("all")
    return out


def _roofline(plt: Any, result: MfuResult, rows: list[dict[str, Any]]) -> bytes:
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    peak_t = result.peak.peak_tflops or 0.0
    peak_g = result.peak.peak_gbps
    pts = [r for r in rows if r["intensity_flop_per_byte"] and r[_BUSY_TFLOPS]]
    xs_all = [r["intensity_flop_per_byte"] for r in pts]
    ridge = result.peak.ridge_flops_per_byte
    lo = min([*xs_all, ridge or 1.0, 1.0]) / 4
    hi = max([*xs_all, ridge or 1.0, 1.0]) * 4
    if peak_g and ridge:
        grid = [lo * (hi / lo) ** (k / 200) for k in range(201)]
        ax.plot(
            grid,
            [min(peak_t, x * peak_g / 1e3) for x in grid],
            color="black",
            label=f"roofline ({peak_t:,g} TFLOP/s, {peak_g:,g} GB/s)",
        )
        ax.axvline(ridge, color="grey", linestyle=":", label=f"ridge {ridge:,.0f} FLOP/B")
    else:
        ax.axhline(peak_t, color="black", label=f"peak {peak_t:,g} TFLOP/s")
    # parts as filled markers, rows holding others as hollow ones, each named in the legend and
    # beside its marker; filled markers half see-through, so one under another still shows
    markers = "osD^vP*X<>"
    placed: list[tuple[float, float]] = []  # log10 positions of the names written so far
    for k, r in enumerate(pts):
        is_sum = r["kind"] in _SUM_KINDS
        x, y = r["intensity_flop_per_byte"], r[_BUSY_TFLOPS]
        ax.scatter(
            x,
            y,
            marker=markers[k % len(markers)],
            s=70 if is_sum else 40,
            facecolors="none" if is_sum else None,
            edgecolors=f"C{k % 10}",
            color=f"C{k % 10}",
            alpha=1.0 if is_sum else 0.75,
            linewidths=1.5,
            zorder=3,
            label=_row_name(r),
        )
        # a name that would run into an earlier one (a name's width is about 0.35 decades
        # here, its height 0.1) goes one line lower per such neighbour
        here = (math.log10(x), math.log10(y))
        near = sum(abs(here[0] - px) < 0.35 and abs(here[1] - py) < 0.1 for px, py in placed)
        placed.append(here)
        ax.annotate(
            r["stage"],
            (x, y),
            xytext=(7, 3 - 10 * near),
            textcoords="offset points",
            fontsize=7,
            color=f"C{k % 10}",
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (FLOP / modelled minimum DRAM bytes, static)")
    ax.set_ylabel(f"achieved TFLOP/s on {_base_label('busy')}")
    title = "Roofline: stages at static FLOPs / modelled minimum traffic"
    if not pts:
        title += " (no stage has both FLOPs and bytes)"
    ax.set_title(f"{title}\n{_context(result)}", fontsize=10)
    _legend_outside(ax)
    try:
        return _png(fig)
    finally:
        plt.close(fig)
