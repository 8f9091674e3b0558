"""dsocr_nsys.jsonfile: the three faults of a JSON input, each one line of the caller's type."""

from __future__ import annotations

from pathlib import Path

import pytest

from dsocr_nsys.errors import InputFileError
from dsocr_nsys.jsonfile import read_json

FIX = "write it with `dsocr-nsys x -o f.json`"


def test_reads_the_value(tmp_path: Path) -> None:
    f = tmp_path / "f.json"
    f.write_text('{"a": [1, 2]}', encoding="utf-8")
    assert read_json(f, InputFileError, f"--x {f}", FIX) == {"a": [1, 2]}


def test_missing(tmp_path: Path) -> None:
    f = tmp_path / "none.json"
    with pytest.raises(InputFileError, match=rf"^--x {f} not found; write it with"):
        read_json(f, InputFileError, f"--x {f}", FIX)


def test_not_json(tmp_path: Path) -> None:
    f = tmp_path / "f.json"
    f.write_bytes(b"{not json")
    with pytest.raises(InputFileError, match=r": not valid JSON \(Expecting .*\); write it with"):
        read_json(f, InputFileError, f"--x {f}", FIX)
    f.write_bytes(b"\xff\xfe")
    with pytest.raises(InputFileError, match=r": not valid JSON \(.*utf-8.*\); write it with"):
        read_json(f, InputFileError, f"--x {f}", FIX)


def test_unreadable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """chmod 000 does not stop root, so the read is made to fail as for an unprivileged user."""
    f = tmp_path / "f.json"
    f.write_text("{}", encoding="utf-8")

    def denied(self: Path, *args: object, **kwargs: object) -> str:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_text", denied)
    with pytest.raises(
        InputFileError, match=r"^--x .*f\.json: cannot be read \(Permission denied\); check its"
    ):
        read_json(f, InputFileError, f"--x {f}", FIX)
