"""``profile --ncu`` / calibrate steps (dsocr_nsys.hw.launch).

Metric choice and version parsing run on what the H200's ncu 2025.3.1 printed
(tests/fixtures/ncu/h200_query_metrics.txt). ncu itself is not installed here: as in
test_launch_profile, a stand-in executable plays its part: it answers --version and
--query-metrics with the H200's text, runs the application it is given (the real tiny model on
the CPU), and prints the real known-shape ncu CSV recorded on the H200, or fails on request.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from dsocr_nsys.cli import cli
from dsocr_nsys.errors import DsocrError, ToolNotFoundError
from dsocr_nsys.hw.launch import (
    NCU as NCU_TOOL,
)
from dsocr_nsys.hw.launch import (
    available_metrics,
    calibrate_step,
    choose_metrics,
    mfu_args,
    ncu_argv,
    ncu_version,
)
from dsocr_nsys.launch.nsys import find_tool
from dsocr_nsys.launch.report import report_commands

NCU = Path(__file__).resolve().parent / "fixtures" / "ncu"
QUERY = NCU / "h200_query_metrics.txt"
KNOWN = NCU / "known_shapes_h200_ncu.csv"

FAKE_NCU = """\
#!{python}
import os, subprocess, sys
args = sys.argv[1:]
query = open({query!r}).read()
if args == ["--version"]:
    print(query.split("\\n\\n")[0])
    sys.exit(0)
if args == ["--query-metrics"]:
    print(query)
    sys.exit(0)
if os.environ.get("STANDIN_NCU_FAIL") == "perm":
    print("==ERROR== ERR_NVGPUCTRPERM - The user does not have permission to access NVIDIA GPU "
          "Performance Counters on the target device 0.")
    sys.exit(1)
app = args[args.index("--metrics") + 2:]
status = subprocess.call(app, stdout=subprocess.DEVNULL)
sys.stdout.write(open({known!r}).read())
sys.exit(status)
"""

TINY = ["--preset=tiny", "--mode=tiny", "--device=cpu", "--dtype=float32", "--max-new-tokens=3"]


def test_query_metrics_and_choice():
    names = available_metrics(QUERY.read_text())
    assert "sm__ops_path_tensor_src_bf16_dst_fp32" in names and "gpu__time_duration" in names
    assert choose_metrics(names, "bfloat16") == [
        "sm__ops_path_tensor_src_bf16_dst_fp32.sum",
        "gpu__time_duration.sum",
    ]
    # Hopper names the FP16 aggregate without an accumulator suffix
    assert choose_metrics(names, "float16")[0] == "sm__ops_path_tensor_src_fp16.sum"
    assert choose_metrics(names, "float32")[0] == "sm__ops_path_tensor_src_tf32_dst_fp32.sum"
    with pytest.raises(DsocrError, match="no bf16 tensor counter"):
        choose_metrics({"gpu__time_duration"}, "bfloat16")


def test_version_and_argv(tmp_path: Path):
    assert ncu_version(QUERY.read_text()) == "2025.3.1.0"
    assert ncu_version("garbage") == "unknown"
    argv = ncu_argv(Path("/x/ncu"), ["a.sum", "b.sum"], ["python", "-m", "app"])
    assert argv == [
        "/x/ncu", "--cache-control", "none", "--clock-control", "none", "--nvtx",
        "--nvtx-include", "dsocr@request/", "--csv", "--page", "raw", "--print-kernel-base",
        "function", "--metrics", "a.sum,b.sum", "python", "-m", "app",
    ]  # fmt: skip
    with pytest.raises(ToolNotFoundError, match="ncu not found"):
        find_tool(NCU_TOOL, str(tmp_path / "nope"), {})
    with pytest.raises(ToolNotFoundError, match="not found on PATH"):
        find_tool(NCU_TOOL, None, {"PATH": str(tmp_path)})


def test_mfu_args_and_report_command(tmp_path: Path):
    assert mfu_args(tmp_path, {}) == []
    (tmp_path / "hw_flops.json").write_text("{}")
    (tmp_path / "static_compute.json").write_text("{}")
    record = {"mode": "base", "max_new_tokens": 2, "calibration": {"gemm_tflops": 1.0}}
    assert mfu_args(tmp_path, record) == [
        "--hw", str(tmp_path / "hw_flops.json"), "--ceiling", str(tmp_path / "run.json"),
    ]  # fmt: skip
    mfu = report_commands(tmp_path, record)[-1]
    assert mfu[mfu.index("--hw") + 1] == str(tmp_path / "hw_flops.json")


@pytest.fixture(scope="module")
def ncu(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bin") / "ncu"
    path.write_text(FAKE_NCU.format(python=sys.executable, query=str(QUERY), known=str(KNOWN)))
    path.chmod(0o755)
    return path


def _profile(run: Path, *extra: str) -> tuple[int, str, dict]:
    args = ["profile", *TINY, "--no-nsys", "--no-static", f"--out={run}", *extra]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    record = json.loads((run / "run.json").read_text()) if (run / "run.json").is_file() else {}
    return result.exit_code, result.stderr, record


def test_profile_ncu_writes_csv_and_hw_flops(tmp_path: Path, ncu: Path):
    run = tmp_path / "run"
    code, err, record = _profile(run, "--ncu", f"--ncu-path={ncu}")
    assert code == 0, err
    step = record["ncu"]
    assert step["version"] == "2025.3.1.0" and "error" not in step
    # the short request: 2 new tokens, no warm-up, one repeat, same configuration otherwise
    cmd = step["command"]
    assert cmd[0] == str(ncu) and "--max-new-tokens=2" in cmd and "--warmup=0" in cmd
    assert "--repeats=1" in cmd and "--preset=tiny" in cmd and "--dtype=float32" in cmd
    assert step["metrics"] == [
        "sm__ops_path_tensor_src_tf32_dst_fp32.sum",
        "gpu__time_duration.sum",
    ]
    assert not (run / ".ncu.csv.partial").exists()
    doc = json.loads((run / "hw_flops.json").read_text())
    assert doc["schema"] == "dsocr-nsys/hw_flops/1"
    sam = next(r for r in doc["stages"] if r["stage"] == "sam")
    assert sam["tensor_bf16_flops"] == 2 * 4096**3
    assert (
        record["files"]["ncu_csv"] == "ncu.csv" and record["files"]["hw_flops"] == "hw_flops.json"
    )
    assert "calibrate skipped (--device cpu)" in err
    assert record["calibration"] is None


def test_profile_ncu_failures_keep_the_run(tmp_path: Path, ncu: Path, monkeypatch):
    code, err, record = _profile(tmp_path / "a", "--ncu", f"--ncu-path={tmp_path / 'none'}")
    assert code == 0 and "warning: ncu step skipped (ncu not found at" in err
    assert "ncu not found" in record["ncu"]["error"] and (tmp_path / "a" / "result.json").is_file()
    monkeypatch.setenv("STANDIN_NCU_FAIL", "perm")
    code, err, record = _profile(tmp_path / "b", "--ncu", f"--ncu-path={ncu}")
    assert code == 0 and "ERR_NVGPUCTRPERM" in record["ncu"]["error"]
    assert not (tmp_path / "b" / "hw_flops.json").exists()


def test_calibrate_output_that_is_no_record_is_a_warning(tmp_path: Path, monkeypatch):
    """A calibrate child that exits 0 but prints no JSON record: one warning, no record."""
    import dsocr_nsys.hw.launch as hw_launch

    class Options:
        device = "cuda"

    said: list[str] = []
    for stdout in ("not json", '{"gemm_tflops": 1.0}'):
        child = [sys.executable, "-c", f"print({stdout!r})"]
        monkeypatch.setattr(hw_launch, "calibrate_argv", lambda child=child: child)
        assert calibrate_step(Options(), tmp_path, {}, said.append) is None
        assert said[-1] == "warning: calibrate failed: its output is not a calibration record"
