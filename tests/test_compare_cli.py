"""`dsocr-nsys compare` through click's CliRunner: formats, -o DIR (md, json, csv, one plot)
and bad input as one line on stderr with exit code 2."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from click.testing import CliRunner
from compare_helpers import BEFORE, DSOCR, run_folder

from dsocr_nsys.cli import cli


def _run(*args: str):
    return CliRunner().invoke(cli, ["compare", *map(str, args)], env={"MFU_PEAK_TFLOPS": ""})


def _one_line_error(result, fragment: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("Error: ") and fragment in lines[-1], result.stderr
    assert sum(line.startswith("Error: ") for line in lines) == 1
    assert "Traceback" not in result.stderr


def test_folder_against_export_json_csv_and_dir(tmp_path: Path) -> None:
    folder = run_folder(tmp_path)
    out = tmp_path / "cmp"
    result = _run(folder, DSOCR, "-o", out)
    assert result.exit_code == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        "compare.csv", "compare.json", "compare.md", "compare.png",
    ]  # fmt: skip
    data = json.loads((out / "compare.json").read_text())
    assert data["baseline"] == "base-32" and data["kernel_scope"] == "decode"
    assert {r["verdict"] for r in data["stages"]} == {"no change"}
    rows = list(csv.DictReader(io.StringIO((out / "compare.csv").read_text())))
    assert rows[0]["stage"] == "sam" and rows[0]["time_base"] == "busy"
    assert rows[0]["baseline_ns"] == rows[0]["value_ns"] == "11091878"
    md = (out / "compare.md").read_text()
    assert md.index("## Configuration") < md.index("## Change") and "![compare](compare.png)" in md
    assert (out / "compare.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_table_for_people() -> None:
    result = _run(BEFORE, BEFORE, "--top", "2", "--kernels", "3")
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert out.index("[Configuration]") < out.index("[Change]") < out.index("[Kernels]")
    assert "GPU busy" in out and "no change" in out and "Mode: ranges" in out


def test_bad_inputs_are_one_line(tmp_path: Path) -> None:
    text = tmp_path / "x.txt"
    text.write_text("not a trace")
    _one_line_error(_run(DSOCR, text), "neither a run folder")
    _one_line_error(_run(DSOCR, BEFORE), "no stage in common")
    _one_line_error(_run(DSOCR, DSOCR, "--stage", "nope"), "no NVTX range named 'nope'")
    _one_line_error(_run(DSOCR), "at least two")
    # a damaged mfu.json is found in the first pass over the inputs: its error is the only line
    bad = tmp_path / "mfu.json"
    bad.write_bytes(b"\xff\xfe{")
    damaged = _run(DSOCR, bad)
    _one_line_error(damaged, "not valid JSON")
    assert damaged.stderr.strip().splitlines() == [damaged.stderr.strip()]
