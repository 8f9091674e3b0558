"""Reading the JSON documents the tool writes (static_compute.json, hw_flops.json, run.json).

A leaf module (json and :mod:`dsocr_nsys.errors` only), so every reader turns the same three
faults (missing, unreadable, not JSON) into one line of its own error type.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .errors import DsocrError


def read_json(path: str | Path, error: type[DsocrError], name: str, fix: str) -> Any:
    """The JSON value in ``path`` (UTF-8, opened read-only). A missing file, an unreadable one
    (permissions) or one that is not JSON raises ``error`` with one line that starts with
    ``name`` (what the file is, e.g. ``--hw PATH``) and, for missing or damaged files, ends
    with ``fix`` (how to write it)."""
    p = Path(path)
    if not p.is_file():
        raise error(f"{name} not found; {fix}")
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise error(f"{name}: cannot be read ({exc.strerror}); check its permissions") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise error(f"{name}: not valid JSON ({exc}); {fix}") from None
