"""Figures that cannot be true, found in a computed MFU result.

An MFU above 100 % on any time base, or an MBU above 100 %, means the static file or the peak
does not describe the traced run (a base-mode static file on another trace, the wrong GPU). The
CLI warns on stderr, every format marks the rows (the ``impossible`` column) and ``--strict``
makes it exit 3. Totals past what an Int64 column holds are refused before a frame is built.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import polars as pl

from ..errors import StaticFileError
from ..vocab import RATE_BASES
from .notes import Finding, note

INT64_MAX = 2**63 - 1
#: Utilisation columns whose value cannot exceed 100 %.
UTILISATION_COLUMNS = tuple(b.mfu_pct for b in RATE_BASES) + tuple(b.mbu_pct for b in RATE_BASES)


def impossible_columns(row: Mapping[str, Any]) -> list[str]:
    """The utilisation columns of one stage row that exceed 100 %."""
    return [c for c in UTILISATION_COLUMNS if (row.get(c) or 0) > 100]


def mark_impossible(stages: pl.DataFrame) -> pl.DataFrame:
    """``stages`` with a boolean ``impossible`` column: some MFU or MBU above 100 %."""
    cols = [c for c in UTILISATION_COLUMNS if c in stages.columns]
    flag = (
        pl.any_horizontal([pl.col(c).fill_null(0) > 100 for c in cols]) if cols else pl.lit(False)
    )
    return stages.with_columns(flag.alias("impossible"))


def impossible_findings(stages: pl.DataFrame) -> list[Finding]:
    """One finding per stage with an impossible figure: the columns over 100 % and values."""
    out = []
    for row in stages.to_dicts():
        bad = impossible_columns(row)
        if bad:
            out.append(
                Finding("impossible", {"stage": row["stage"], "columns": {c: row[c] for c in bad}})
            )
    return out


def impossible_warnings(stages: pl.DataFrame) -> list[str]:
    """The warning lines for :func:`impossible_findings` (the same text as their notes)."""
    return [note(f) for f in impossible_findings(stages)]


def check_int64(rows: Iterable[Mapping[str, Any]]) -> None:
    """Refuse FLOP or byte totals an Int64 column cannot hold (raise StaticFileError)."""
    for row in rows:
        for key, value in row.items():
            if isinstance(value, int) and not isinstance(value, bool) and abs(value) > INT64_MAX:
                raise StaticFileError(
                    f"{row.get('stage', '?')}: {key} = {value:.3e} exceeds 2^63 - 1; the static "
                    "file's counts are not FLOP or byte counts of this run: regenerate it "
                    "with `dsocr-nsys static`"
                )
