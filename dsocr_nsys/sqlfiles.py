"""The one loader for the queries in top-level ``sql/`` (shipped as package ``dsocr_nsys.sql``)."""

from __future__ import annotations

import functools
from importlib import resources


@functools.cache
def load_sql(name: str) -> str:
    """Return the text of ``sql/<name>.sql``; cached, since queries never change at run time."""
    return resources.files("dsocr_nsys.sql").joinpath(f"{name}.sql").read_text(encoding="utf-8")
