"""The one loader for the queries in top-level ``sql/`` (shipped as package ``dsocr_nsys.sql``)."""

from __future__ import annotations

import functools
import re
from importlib import resources


@functools.cache
def load_sql(name: str) -> str:
    """Return the text of ``sql/<name>.sql``; cached, since queries never change at run time."""
    return resources.files("dsocr_nsys.sql").joinpath(f"{name}.sql").read_text(encoding="utf-8")


@functools.cache
def export_tables() -> frozenset[str]:
    """The export tables the queries read: every ``t.<TABLE>`` in ``sql/`` (nsys names its
    tables with a capital; ``t.`` before a lower-case name is a column of an alias ``t``)."""
    folder = resources.files("dsocr_nsys.sql")
    texts = (f.read_text(encoding="utf-8") for f in folder.iterdir() if f.name.endswith(".sql"))
    return frozenset(name for text in texts for name in re.findall(r"\bt\.([A-Z]\w*)", text))
