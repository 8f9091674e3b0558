"""docs/cli.md matches the CLI: every command has a section, and every example in it runs
(each `$ dsocr-nsys ...` line, from the repository root, its -o files in a temporary folder),
printing the rows the page shows."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from dsocr_nsys.cli import cli

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "cli.md"


@pytest.mark.parametrize("name", sorted(cli.commands))
def test_command_documented(name: str) -> None:
    text = DOCS.read_text(encoding="utf-8")
    assert f"## dsocr-nsys {name}" in text, f"add a '## dsocr-nsys {name}' section to docs/cli.md"


def _examples() -> list[tuple[str, list[str]]]:
    """(command line, the output lines shown under it) for each `$ dsocr-nsys` line."""
    out: list[tuple[str, list[str]]] = []
    for block in re.findall(r"```\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.S):
        lines = block.splitlines()
        for i, line in enumerate(lines):
            if line.startswith("$ dsocr-nsys "):
                shown = []
                for follow in lines[i + 1 :]:
                    if follow.startswith("$ "):
                        break
                    shown.append(follow)
                out.append((line[2:], shown))
    return out


EXAMPLES = _examples()


def test_the_page_has_examples() -> None:
    assert len(EXAMPLES) >= 4


@pytest.mark.parametrize(("command", "shown"), EXAMPLES, ids=[c for c, _ in EXAMPLES])
def test_example_runs_and_prints_what_the_page_shows(
    command: str, shown: list[str], tmp_path: Path
) -> None:
    args = shlex.split(command)[1:]
    for i, arg in enumerate(args):  # inputs from the repository, outputs into tmp_path
        if args[i - 1] in ("-o", "--output"):
            args[i] = str(tmp_path / arg)
        elif (ROOT / arg).exists():
            args[i] = str(ROOT / arg)
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.stderr
    for line in shown:  # each shown row is in the output, its cells in order ("..." = elided)
        cells = [c for c in re.split(r"\s{2,}", line.strip()) if c != "..."]
        actual = next(
            (a for a in result.stdout.splitlines() if a.split()[:1] == cells[0].split()[:1]),
            None,
        )
        assert actual is not None, line
        parts = [c for c in re.split(r"\s{2,}", actual.strip())]
        it = iter(parts)
        assert all(c in it for c in cells), (line, actual)
