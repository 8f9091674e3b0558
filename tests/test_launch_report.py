"""dsocr_nsys.launch.report: the static and mfu command lines for a run folder (make report)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from dsocr_nsys.errors import InputFileError
from dsocr_nsys.launch.__main__ import main as launch_main
from dsocr_nsys.launch.report import load_run, report_commands, static_argv

GUNDAM = {
    "preset": "full",
    "mode": "gundam",
    "max_new_tokens": 64,
    "plan": {"crops": 6, "image_size": [1240, 1754]},
    "options": {"dtype": "bfloat16"},
    "gpu": {"name": "NVIDIA H100 80GB HBM3", "mfu_name": "h100"},
}


def test_static_argv_gundam() -> None:
    assert static_argv(GUNDAM, Path("r/static_compute.json")) == [
        "dsocr-nsys",
        "static",
        "--preset=full",
        "--mode=gundam",
        "--crops=6",
        "--image-size=1240x1754",
        "--max-new-tokens=64",
        "--dtype=bfloat16",
        "-o",
        "r/static_compute.json",
    ]


def test_static_argv_carries_the_resolved_variant() -> None:
    # a real run.json (tests/fixtures/traces/README.md): asked --decode cuda-graph, no --moe;
    # the model resolved moe device, and static must describe that
    fixture = (
        Path(__file__).parent / "fixtures/traces/dsocr_base16_cudagraph_h200_nsys2025.run.json"
    )
    record = json.loads(fixture.read_text(encoding="utf-8"))
    assert record["options"]["moe"] is None
    assert static_argv(record, Path("s.json"))[-6:] == [
        "--dtype=bfloat16",
        "--decode=cuda-graph",
        "--moe=device",
        "--batch=1",
        "-o",
        "s.json",
    ]


def test_report_commands_static_then_mfu(tmp_path: Path) -> None:
    commands = report_commands(tmp_path, GUNDAM, ("dsocr",))
    assert commands == [
        static_argv(GUNDAM, tmp_path / "static_compute.json", ("dsocr",)),
        [
            "dsocr",
            "mfu",
            str(tmp_path / "trace.sqlite"),
            "--static",
            str(tmp_path / "static_compute.json"),
            "--gpu=h100",
            "-o",
            str(tmp_path / "mfu"),
        ],
    ]


def test_report_commands_reuse_static_and_gpu_fallbacks(tmp_path: Path) -> None:
    (tmp_path / "static_compute.json").write_text("{}")
    no_arg = {**GUNDAM, "gpu": {"name": "NVIDIA H100 80GB HBM3", "mfu_name": None}}
    [mfu] = report_commands(tmp_path, no_arg)
    assert mfu[1] == "mfu" and mfu[5] == "--gpu=NVIDIA H100 80GB HBM3"
    [mfu] = report_commands(tmp_path, no_arg, gpu="h200")
    assert mfu[5] == "--gpu=h200"


def test_load_run_errors(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match=r"run\.json not found; profile first"):
        load_run(tmp_path)
    (tmp_path / "run.json").write_text("{")
    with pytest.raises(InputFileError, match=r"run\.json: not valid JSON .*; profile first"):
        load_run(tmp_path)
    # not UTF-8 (a binary file written over it): one line too, not a traceback
    (tmp_path / "run.json").write_bytes(b"\xff\xfe{}")
    with pytest.raises(InputFileError, match=r"run\.json: not valid JSON"):
        load_run(tmp_path)


def test_report_without_trace_is_one_line(tmp_path: Path) -> None:
    run = tmp_path / "tiny-3"
    run.mkdir()
    (run / "run.json").write_text(json.dumps(GUNDAM))
    (tmp_path / "latest").symlink_to("tiny-3")
    result = CliRunner().invoke(launch_main, ["report", str(tmp_path / "latest")])
    assert result.exit_code == 2
    expected = f"no {run.resolve()}/trace.sqlite (a --no-nsys run has no trace); profile with nsys"
    assert result.stderr == f"Error: {expected}\n"
