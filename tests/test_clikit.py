"""dsocr_nsys.clikit: typed errors become one stderr line and exit 2; Ctrl-C exit 130."""

from __future__ import annotations

import click
from click.testing import CliRunner

from dsocr_nsys.clikit import CONTEXT_SETTINGS, DsocrGroup, progress
from dsocr_nsys.errors import InputFileError


@click.group(cls=DsocrGroup, context_settings=CONTEXT_SETTINGS)
def group() -> None:
    """A group as both entry points build theirs."""


@group.command()
def bad() -> None:
    progress("working ...")
    raise InputFileError("trace.sqlite not found; pass an existing export")


@group.command()
def interrupted() -> None:
    raise KeyboardInterrupt


def test_typed_error_is_one_line_and_exit_2() -> None:
    result = CliRunner().invoke(group, ["bad"])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "working ...",
        "Error: trace.sqlite not found; pass an existing export",
    ]


def test_interrupt_is_exit_130() -> None:
    result = CliRunner().invoke(group, ["interrupted"])
    assert result.exit_code == 130 and result.stderr == "Interrupted.\n"


def test_short_help_option() -> None:
    assert "Usage:" in CliRunner().invoke(group, ["-h"]).stdout
