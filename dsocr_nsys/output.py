"""One renderer for every command: ``--format table|md|json|csv`` and ``-o FILE``.

Library functions return :class:`Report` objects (named tables plus notes); only the CLI
renders them. A table is a polars frame or plain rows (a list of dicts with the same keys):
rows render without polars, for the launcher on a GPU image that has none. Column names carry
their unit as a suffix, and the suffix decides how a human-readable format shows the value:

==============  =====================================  ==========================
suffix          meaning (JSON/CSV keep the raw value)  table / md shows
==============  =====================================  ==========================
``_ns``         integer nanoseconds                    ms or µs (unit in header)
``_pct``        percent                                one decimal
``_flops``      floating-point operations (a count)    GFLOP
``_bytes``      bytes (a count)                        MB (10^6)
``_tflops``     TFLOP/s (a rate)                       two decimals
``_gbps``       GB/s (10^9 bytes per second)           one decimal
==============  =====================================  ==========================
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import statistics
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:  # polars is only touched through the frames callers pass in, so importing
    # the CLI (e.g. `dsocr-nsys profile` on a GPU box) does not need it.
    import polars as pl

FORMATS = ("table", "md", "json", "csv")

# suffix -> (header unit, divisor, decimals); ``_ns`` is handled apart (ms or µs per column).
_SCALED: dict[str, tuple[str, float, int]] = {
    "_pct": ("%", 1.0, 1),
    "_flops": ("GFLOP", 1e9, 2),
    "_bytes": ("MB", 1e6, 2),
    "_tflops": ("TFLOP/s", 1.0, 2),
    "_gbps": ("GB/s", 1.0, 1),
}


@dataclass
class Report:
    """What a command produces: named tables (first is the main one), notes and metadata.

    ``meta`` holds scalars (paths, versions, the GPU) that JSON output carries as-is and the
    human formats print above the tables.
    """

    tables: dict[str, pl.DataFrame | list[dict[str, Any]]]
    notes: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    title: str = ""


def _time_unit(values: list[Any]) -> tuple[str, float]:
    """ms when the column's median magnitude is at least 1 ms, else µs."""
    nonnull = [abs(v) for v in values if v is not None]
    if nonnull and float(statistics.median(nonnull)) >= 1e6:
        return "ms", 1e6
    return "µs", 1e3


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _columns(table: pl.DataFrame | list[dict[str, Any]]) -> list[tuple[str, list[Any], bool]]:
    """(name, values, numeric) per column of a polars frame or of plain rows; a plain column
    is numeric when it holds at least one number and nothing else but nulls."""
    if isinstance(table, list):
        names = list(table[0]) if table else []
        out = []
        for name in names:
            values = [row.get(name) for row in table]
            present = [v for v in values if v is not None]
            out.append((name, values, bool(present) and all(_is_number(v) for v in present)))
        return out
    return [(c, table[c].to_list(), table[c].dtype.is_numeric()) for c in table.columns]


def _height(table: pl.DataFrame | list[dict[str, Any]]) -> int:
    return len(table) if isinstance(table, list) else table.height


# Words a header spells the way the field does (sentence case would give "Gpu", "Mfu").
_SPELLED = {
    "gpu": "GPU",
    "gpus": "GPUs",
    "cpu": "CPU",
    "mfu": "MFU",
    "kv": "KV",
    "id": "ID",
    "ids": "IDs",
    "pid": "PID",
    "tid": "TID",
    "sm": "SM",
    "sms": "SMs",
    "nvtx": "NVTX",
    "hbm": "HBM",
    "fvcore": "fvcore",
}


def _label(name: str) -> str:
    """Header text for a column name: words in sentence case, acronyms as spelled."""
    words = [_SPELLED.get(w.lower(), w) for w in name.replace("_", " ").split()]
    if words and words[0] not in _SPELLED.values():
        words[0] = words[0][:1].upper() + words[0][1:]
    return " ".join(words)


def humanize(
    frame: pl.DataFrame | list[dict[str, Any]],
) -> tuple[list[str], list[list[str]], list[bool]]:
    """Headers, string cells and right-alignment flags for a human-readable table."""
    headers: list[str] = []
    columns: list[list[str]] = []
    numeric: list[bool] = []
    for name, values, is_num in _columns(frame):
        scale: tuple[str, float, int] | None = None
        base = name
        if is_num and name.endswith("_ns"):
            unit, div = _time_unit(values)
            scale, base = (unit, div, 3 if unit == "ms" else 1), name[:-3]
        elif is_num:
            for suffix, spec in _SCALED.items():
                if name.endswith(suffix):
                    scale, base = spec, name[: -len(suffix)]
                    break
        headers.append(f"{_label(base)} ({scale[0]})" if scale else _label(base))
        cells = []
        for value in values:
            cells.append(_cell(value, scale))
        columns.append(cells)
        numeric.append(is_num)
    rows = [list(r) for r in zip(*columns, strict=True)] if columns else []
    return headers, rows, numeric


def _cell(value: Any, scale: tuple[str, float, int] | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    if scale is not None:
        scaled = value / scale[1]
        # Keep two significant digits of small non-zero figures (a 0.04 % decode MFU must not
        # read as 0.0).
        digits = scale[2]
        if scaled and abs(scaled) < 10.0**-digits * 10:
            digits = max(digits, 1 - math.floor(math.log10(abs(scaled))))
        return f"{scaled:,.{digits}f}"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 100_000 else str(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _text_table(frame: pl.DataFrame | list[dict[str, Any]], markdown: bool) -> str:
    headers, rows, numeric = humanize(frame)
    if markdown:
        esc = [h.replace("|", "\\|") for h in headers]
        out = ["| " + " | ".join(esc) + " |"]
        out.append("|" + "|".join("---:" if n else "---" for n in numeric) + "|")
        for row in rows:
            out.append("| " + " | ".join(c.replace("|", "\\|") for c in row) + " |")
        return "\n".join(out)
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.rjust(w) if n else c.ljust(w) for c, w, n in zip(cells, widths, numeric, strict=True)
        ).rstrip()

    out = [line(headers), "  ".join("-" * w for w in widths)]
    out.extend(line(r) for r in rows)
    return "\n".join(out)


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"cannot serialise {type(value).__name__}")


def render(report: Report, fmt: str) -> str:
    """Render a report as text in one of :data:`FORMATS`.

    ``csv`` holds one table only: the report's first (main) table.
    """
    if fmt == "json":
        payload: dict[str, Any] = dict(report.meta)
        payload.update(
            {
                name: frame if isinstance(frame, list) else frame.to_dicts()
                for name, frame in report.tables.items()
            }
        )
        if report.notes:
            payload["notes"] = report.notes
        return json.dumps(payload, indent=2, default=_json_default) + "\n"
    if fmt == "csv":
        frame = next(iter(report.tables.values()))
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        columns = _columns(frame)
        writer.writerow([name for name, _values, _num in columns])
        writer.writerows(zip(*(values for _name, values, _num in columns), strict=True))
        return buf.getvalue()
    if fmt not in ("table", "md"):
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    md = fmt == "md"
    parts: list[str] = []
    if report.title:
        parts.append(f"# {report.title}" if md else report.title)
    if report.meta:
        parts.append(
            "\n".join(
                f"- **{_label(k)}**: {v}" if md else f"{_label(k)}: {v}"
                for k, v in report.meta.items()
                if not isinstance(v, (dict, list))
            )
        )
    multi = len(report.tables) > 1
    for name, frame in report.tables.items():
        if multi:
            parts.append(f"## {_label(name)}" if md else f"[{_label(name)}]")
        parts.append(_text_table(frame, md) if _height(frame) else "(no rows)")
    if report.notes:
        parts.append("\n".join(f"- {n}" if md else f"note: {n}" for n in report.notes))
    return "\n\n".join(p for p in parts if p) + "\n"


def write_atomic(path: str | os.PathLike[str], data: str | bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename,
    so a reader never sees a half-written file. Returns the path written."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode("utf-8") if isinstance(data, str) else data)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def emit(report: Report, fmt: str, output: str | None) -> None:
    """Render and send to stdout, or atomically to ``output``."""
    text = render(report, fmt)
    if output:
        write_atomic(output, text)
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(text, nl=False)


F = TypeVar("F", bound=Callable[..., Any])


def output_options(
    func: F | None = None, *, directory: bool = False, help: str | None = None
) -> Any:
    """The shared ``--format`` / ``-o`` options; the command receives ``fmt`` and ``output``.

    ``@output_options`` gives ``-o FILE``; ``@output_options(directory=True, help=...)`` gives
    ``-o DIR`` for a command that writes a folder of files (``help`` says which)."""

    def decorate(f: F) -> F:
        if directory:
            out_type = click.Path(file_okay=False, writable=True)
            out_help = help or "Write into this directory instead of printing."
        else:
            out_type = click.Path(dir_okay=False, writable=True)
            out_help = help or "Write to this file (atomically) instead of stdout."
        f = click.option("-o", "--output", type=out_type, default=None, help=out_help)(f)
        f = click.option(
            "-f",
            "--format",
            "fmt",
            type=click.Choice(FORMATS),
            default="table",
            show_default=True,
            help="table/md show readable units (ms, µs) in headers; json/csv carry integer ns.",
        )(f)
        return f

    return decorate(func) if func is not None else decorate
