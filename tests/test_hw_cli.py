"""`dsocr-nsys hwflops` and `dsocr-nsys calibrate` through click's CliRunner."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from dsocr_nsys.cli import cli

NCU = Path(__file__).resolve().parent / "fixtures" / "ncu"
KNOWN = NCU / "known_shapes_h200_ncu.csv"
BASE2 = NCU / "dsocr_base2_h200_ncu.csv.xz"


def run(*args: object) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


def one_line_error(*args: object) -> str:
    code, out, err = run(*args)
    assert code == 2, (code, out, err)
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), err
    return lines[0]


def test_table_shows_stages_and_decode_steps():
    code, out, err = run("hwflops", KNOWN)
    assert code == 0, err
    assert "[Stages]" in out and "[Decode steps]" in out
    assert "Tensor BF16 (GFLOP)" in out and "Tensor TF32 (GFLOP)" in out
    sam = next(line for line in out.splitlines() if line.startswith("sam "))
    assert "137.44" in sam  # 2·4096³ FLOPs in GFLOP


def test_json_and_output_file_are_the_document(tmp_path: Path):
    code, out, _ = run("hwflops", BASE2, "-f", "json")
    assert code == 0
    doc = json.loads(out)
    assert doc["schema"] == "dsocr-nsys/hw_flops/1"
    assert doc["precisions"] == ["bf16"]
    assert doc["fp32_counted"] is False
    target = tmp_path / "hw_flops.json"
    code, out, err = run("hwflops", BASE2, "-o", target)
    assert code == 0 and out == "" and f"wrote {target}" in err
    assert json.loads(target.read_text()) == doc


def test_csv_is_the_stage_table():
    code, out, _ = run("hwflops", KNOWN, "-f", "csv")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["stage"] for r in rows] == [
        "sam", "clip", "projector", "vision", "prefill", "llm_prefill", "decode", "request",
    ]  # fmt: skip
    assert int(rows[0]["tensor_bf16_flops"]) == 2 * 4096**3


def test_o_csv_writes_the_stage_table(tmp_path):
    """-o x.csv holds CSV (the format its name says), never the JSON document."""
    target = tmp_path / "hw.csv"
    code, out, _ = run("hwflops", KNOWN, "-o", target)
    assert code == 0 and out == ""
    assert target.read_text() == run("hwflops", KNOWN, "-f", "csv")[1]


def test_md():
    code, out, _ = run("hwflops", KNOWN, "-f", "md")
    assert code == 0 and "| sam | range |" in out


def test_bad_inputs_one_line(tmp_path: Path):
    bad = tmp_path / "x.csv"
    bad.write_text("hello\n")
    assert "not an ncu raw CSV" in one_line_error("hwflops", bad)
    assert "no such file" in one_line_error("hwflops", tmp_path / "none.csv")
    lines = KNOWN.read_text().splitlines()
    no_flops = tmp_path / "noflops.csv"
    start = next(i for i, line in enumerate(lines) if line.startswith('"ID"'))
    rows = list(csv.reader(lines[start:]))
    keep = [i for i, n in enumerate(rows[0]) if not n.startswith("sm__ops_path_tensor")]
    with no_flops.open("w", newline="") as fh:
        csv.writer(fh).writerows([[r[i] for i in keep] for r in rows])
    line = one_line_error("hwflops", no_flops)
    assert "no tensor-FLOP metric" in line and "--metrics" in line


def _has_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.mark.skipif(_has_gpu(), reason="a GPU is visible")
def test_calibrate_without_gpu():
    assert "no CUDA GPU visible" in one_line_error("calibrate")
