"""Every CLI command is documented in docs/cli.md under a heading of its own."""

from pathlib import Path

import pytest

from dsocr_nsys.cli import cli

DOCS = Path(__file__).resolve().parent.parent / "docs" / "cli.md"


@pytest.mark.parametrize("name", sorted(cli.commands))
def test_command_documented(name: str) -> None:
    text = DOCS.read_text(encoding="utf-8")
    assert f"## dsocr-nsys {name}" in text, f"add a '## dsocr-nsys {name}' section to docs/cli.md"
