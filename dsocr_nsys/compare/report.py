"""A :class:`~.core.CompareResult` shaped as :class:`~dsocr_nsys.output.Report` objects or a
folder of files (``compare -o DIR``)."""

from __future__ import annotations

from pathlib import Path

from ..mfu.report import label_time_bases
from ..output import Report, render, write_dir_atomic
from .core import CompareResult
from .noise import CONFIDENCE, RESAMPLES

FILES = ("compare.md", "compare.json", "compare.csv", "compare.png")


def title(result: CompareResult) -> str:
    return f"dsocr-nsys compare: {', '.join(result.labels[1:])} against {result.labels[0]}"


def definitions() -> list[str]:
    """The notes every compare report carries: what delta, speed-up and verdict mean."""
    return [
        "delta = run − baseline (ns); speedup = baseline / run (above 1: the run is faster)",
        f"verdict judges the per-instance median: a {CONFIDENCE:.0%} percentile-bootstrap "
        f"interval of baseline median / run median ({RESAMPLES} resamples per run, seeded) "
        "wholly above 1 = faster, wholly below = slower, else within noise; a stage with one "
        "instance in either run has no noise estimate (changed, noise unknown)",
    ]


def display_report(result: CompareResult) -> Report:
    """The human view: configuration first, then times, changes, noise, rates, decode,
    kernels (empty tables left out)."""
    tables = {
        "configuration": result.config,
        "time": result.times,
        "change": label_time_bases(result.stages),
        "noise": label_time_bases(result.noise),
        "mfu": result.rates,
        "decode": label_time_bases(result.decode),
        "kernels": result.kernels,
    }
    return Report(
        tables={k: v for k, v in tables.items() if v.height},
        notes=definitions() + result.notes,
        meta=result.meta,
        title=title(result),
        verbatim=frozenset(result.labels),
    )


def data_report(result: CompareResult) -> Report:
    """The machine view (json/csv): the per-stage change table first (the CSV), then the rest
    with raw keys."""
    tables = {
        "stages": result.stages,
        "times": result.times,
        "configuration": result.config,
        "noise": result.noise,
        "rates": result.rates,
        "decode": result.decode,
        "kernels": result.kernels,
    }
    return Report(
        tables=tables, notes=definitions() + result.notes, meta=result.meta, title=title(result)
    )


def report_for(result: CompareResult, fmt: str) -> Report:
    """Split tables for people, the raw tables for machines."""
    return data_report(result) if fmt in ("json", "csv") else display_report(result)


def write_dir(result: CompareResult, out_dir: str | Path) -> list[Path]:
    """Write ``compare.md``, ``.json``, ``.csv`` and ``.png`` as the folder ``out_dir``, the
    whole set at once (:func:`~dsocr_nsys.output.write_dir_atomic`). Returns the paths."""
    from .plot import render_plot  # matplotlib only when the folder is asked for

    data = data_report(result)
    md = render(display_report(result), "md").rstrip() + "\n\n![compare](compare.png)\n"
    files: dict[str, str | bytes] = {
        "compare.png": render_plot(result),
        "compare.json": render(data, "json"),
        "compare.csv": render(data, "csv"),
        "compare.md": md,
    }
    return write_dir_atomic(out_dir, files)
