"""PNG plots for ``dsocr-nsys mfu -o DIR``: per-stage time breakdown, MFU per stage, and a
roofline with the stages as points. matplotlib (Agg backend) is imported here only, so the
computation never needs it."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from ..output import write_atomic
from ..vocab import RATE_BASES
from .compute import MfuResult


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    return write_atomic(path, buf.getvalue())


def write_plots(result: MfuResult, out_dir: Path) -> list[Path]:
    """Write ``mfu_time.png``, ``mfu_per_stage.png`` and ``mfu_roofline.png``; return paths."""
    plt = _pyplot()
    rows = result.stages.to_dicts()
    names = [r["stage"] for r in rows]
    paths = []
    try:
        # 1. time per stage on each time base (ms), grouped bars
        fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(rows)), 4))
        width = 0.8 / len(RATE_BASES)
        # bar i of n sits (i - (n - 1) / 2) widths from the stage's tick: the group is centred
        offsets = [(i - (len(RATE_BASES) - 1) / 2) * width for i in range(len(RATE_BASES))]
        for b, off in zip(RATE_BASES, offsets, strict=True):
            xs = [k + off for k in range(len(rows))]
            ax.bar(xs, [(r[b.total] or 0) / 1e6 for r in rows], width, label=b.label)
        ax.set_xticks(range(len(rows)), names, rotation=30, ha="right")
        positive = [r[b.total] for r in rows for b in RATE_BASES if r[b.total]]
        if positive and max(positive) > 100 * min(positive):
            ax.set_yscale("log")  # CPU ranges can dwarf GPU time (launch- or init-bound)
        ax.set_ylabel("time (ms, total over counted instances)")
        ax.set_title("Time per stage")
        ax.legend(fontsize=8)
        paths.append(_save(fig, out_dir / "mfu_time.png"))
        plt.close(fig)

        # 2. MFU per stage per time base (%)
        fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(rows)), 4))
        for b, off in zip(RATE_BASES, offsets, strict=True):
            xs = [k + off for k in range(len(rows))]
            ax.bar(xs, [r[b.mfu_pct] or 0 for r in rows], width, label=b.label)
        ax.set_xticks(range(len(rows)), names, rotation=30, ha="right")
        ax.set_ylabel(f"MFU (% of {result.peak.peak_tflops:g} TFLOP/s)")
        ax.set_title("MFU per stage")
        ax.legend(fontsize=8)
        paths.append(_save(fig, out_dir / "mfu_per_stage.png"))
        plt.close(fig)

        # 3. roofline: attainable TFLOP/s vs FLOP/byte, stages at (intensity, busy TFLOP/s)
        fig, ax = plt.subplots(figsize=(6.5, 4.5))
        peak_t = result.peak.peak_tflops or 0.0
        peak_g = result.peak.peak_gbps
        pts = [r for r in rows if r["intensity_flop_per_byte"] and r["busy_tflops"]]
        xs_all = [r["intensity_flop_per_byte"] for r in pts]
        ridge = result.peak.ridge_flops_per_byte
        lo = min([*xs_all, ridge or 1.0, 1.0]) / 4
        hi = max([*xs_all, ridge or 1.0, 1.0]) * 4
        if peak_g:
            grid = [lo * (hi / lo) ** (k / 200) for k in range(201)]
            ax.plot(
                grid,
                [min(peak_t, x * peak_g / 1e3) for x in grid],
                color="black",
                label=f"roofline ({peak_t:g} TFLOP/s, {peak_g:g} GB/s)",
            )
            ax.axvline(ridge, color="grey", linestyle=":", label=f"ridge {ridge:.0f} FLOP/B")
        else:
            ax.axhline(peak_t, color="black", label=f"peak {peak_t:g} TFLOP/s")
        # one marker per stage, named in the legend (stage points often sit close together)
        markers = "osD^vP*X<>"
        for k, r in enumerate(pts):
            ax.scatter(
                r["intensity_flop_per_byte"],
                r["busy_tflops"],
                marker=markers[k % len(markers)],
                zorder=3,
                label=r["stage"],
            )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("arithmetic intensity (FLOP/byte)")
        ax.set_ylabel("achieved TFLOP/s (GPU busy time)")
        ax.set_title("Roofline" + ("" if pts else " (no stage has both FLOPs and bytes)"))
        ax.legend(fontsize=8)
        paths.append(_save(fig, out_dir / "mfu_roofline.png"))
        plt.close(fig)
    finally:
        plt.close("all")
    return paths
