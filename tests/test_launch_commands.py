"""dsocr_nsys.launch.commands: each launcher command declared once, registered in both entry
points, and the bare-image entry point free of polars and DuckDB."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from dsocr_nsys.cli import cli
from dsocr_nsys.launch.__main__ import main as launch_main
from dsocr_nsys.launch.commands import COMMANDS

# Imports a module of the launcher and reports which heavy packages got imported with it.
_PROBE = """
import json, sys
from click.testing import CliRunner
from dsocr_nsys.launch.__main__ import main
result = CliRunner().invoke(main, sys.argv[1:])
heavy = sorted(m for m in ("polars", "duckdb", "pyarrow") if m in sys.modules)
print(json.dumps({"exit_code": result.exit_code, "heavy": heavy, "output": result.output}))
"""


def test_the_same_command_objects_in_both_entry_points() -> None:
    for command in COMMANDS:
        assert cli.commands[command.name] is command
        assert launch_main.commands[command.name] is command
    assert set(launch_main.commands) == {c.name for c in COMMANDS}


@pytest.mark.parametrize("argv", [["--help"], ["infer", "--help"], ["profile", "--help"]])
def test_bare_entry_point_imports_neither_polars_nor_duckdb(argv: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *argv], capture_output=True, text=True, check=True
    )
    probe = json.loads(done.stdout)
    assert probe["exit_code"] == 0, probe["output"]
    assert "Usage:" in probe["output"]
    assert probe["heavy"] == [], f"the bare launcher imported {probe['heavy']}"


def test_python_dash_m_launch_help_runs() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "dsocr_nsys.launch", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "infer" in done.stdout and "profile" in done.stdout and "report" in done.stdout
