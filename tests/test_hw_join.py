"""dsocr_nsys.hw.join: hardware FLOPs and the measured ceiling on mfu's stage frame.

The hardware figures are the H200 base-mode 2-token recording (tests/fixtures/ncu); the CLI
test joins them onto the bundled H100 base-mode trace only to exercise the wiring (the report
notes that the ceiling's GPU differs from the trace's).
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from dsocr_nsys.cli import cli
from dsocr_nsys.errors import InputFileError
from dsocr_nsys.hw.calibrate import Calibration
from dsocr_nsys.hw.join import join_hw, load_calibration, load_hw_flops, with_ceiling
from dsocr_nsys.hw.ncu import hw_flops, read_ncu_csv

ROOT = Path(__file__).resolve().parents[1]
NCU = ROOT / "tests" / "fixtures" / "ncu"
BASE2 = NCU / "dsocr_base2_h200_ncu.csv.xz"
CAL = NCU / "h200_calibrate.json"
TRACE = ROOT / "tests" / "fixtures" / "traces" / "dsocr_base32_h100_nsys2025.sqlite"
STATIC = ROOT / "examples" / "dsocr_base32_h100_static.json"


@pytest.fixture(scope="module")
def doc() -> dict:
    return hw_flops(read_ncu_csv(BASE2)).document()


def _hw(doc: dict, stage: str) -> int:
    return next(r["tensor_flops"] for r in doc["stages"] if r["stage"] == stage)


def test_join_scales_per_instance_and_rates(doc: dict):
    stages = pl.DataFrame(
        {
            "stage": ["sam", "prefill", "decode", "request"],
            "instances": [1, 1, 31, 1],
            "total_flops": [976_910_000_000, 2_000_000_000_000, 36_160_000_000, 1_409_370_000_000],
            "busy_total_ns": [11_000_000, 25_000_000, 92_000_000, 118_000_000],
        }
    )
    out, notes = join_hw(stages, doc, peak_tflops=989.0)
    rows = {r["stage"]: r for r in out.iter_rows(named=True)}
    assert rows["sam"]["hw_flops"] == _hw(doc, "sam") and rows["sam"]["hw_scaled"] is False
    assert rows["decode"]["hw_flops"] == 31 * _hw(doc, "decode") and rows["decode"]["hw_scaled"]
    # request = scaled prefill + scaled decode + what lies between them in the ncu request (0)
    assert rows["request"]["hw_flops"] == _hw(doc, "prefill") + 31 * _hw(doc, "decode")
    sam = rows["sam"]
    assert sam["hw_busy_tflops"] == pytest.approx(_hw(doc, "sam") / 11e-3 / 1e12)
    assert sam["hfu_busy_pct"] == pytest.approx(100 * sam["hw_busy_tflops"] / 989.0)
    assert sam["useful_pct"] == pytest.approx(100 * 976_910_000_000 / _hw(doc, "sam"))
    # prefill's model count here is above its hardware count: a finding, shown
    assert any(n.code == "hw_below_model" and n.data["stage"] == "prefill" for n in notes)
    assert not any(n.data.get("stage") == "sam" for n in notes)
    assert any(n.code == "hw_scaled" and "decode (1 -> 31)" in n.data["stages"] for n in notes)


def test_ceiling_columns():
    cal = Calibration.from_record(json.loads(CAL.read_text()))
    stages = pl.DataFrame({"stage": ["sam"], "busy_tflops": [100.0], "busy_gbps": [1000.0]})
    out = with_ceiling(stages, cal)
    assert out["mfu_busy_measured_pct"][0] == pytest.approx(100 * 100.0 / cal.gemm_tflops)
    assert out["mbu_busy_measured_pct"][0] == pytest.approx(100 * 1000.0 / cal.copy_gbps)


def test_loaders(tmp_path: Path, doc: dict):
    good = tmp_path / "hw_flops.json"
    good.write_text(json.dumps(doc))
    assert load_hw_flops(good)["schema"] == doc["schema"]
    bad = tmp_path / "other.json"
    bad.write_text('{"schema": "x"}')
    with pytest.raises(InputFileError, match="not an hw_flops document"):
        load_hw_flops(bad)
    with pytest.raises(InputFileError, match="not found"):
        load_hw_flops(tmp_path / "none.json")
    bad.write_text("{not json")
    with pytest.raises(InputFileError, match=r"^--hw .*other\.json: not valid JSON"):
        load_hw_flops(bad)
    with pytest.raises(InputFileError, match=r"^--ceiling .*other\.json: not valid JSON"):
        load_calibration(bad)
    run = tmp_path / "run.json"
    run.write_text(json.dumps({"calibration": json.loads(CAL.read_text())}))
    assert load_calibration(run).gpu_name == "NVIDIA H200"
    assert load_calibration(CAL).gemm_tflops == pytest.approx(745.055796301478)
    run.write_text(json.dumps({"calibration": None}))
    with pytest.raises(InputFileError, match="holds no calibration"):
        load_calibration(run)


def test_mfu_cli_with_hw_and_ceiling(tmp_path: Path, doc: dict):
    hw = tmp_path / "hw_flops.json"
    hw.write_text(json.dumps(doc))
    base = ["mfu", str(TRACE), "--static", str(STATIC), "--hw", str(hw), "--ceiling", str(CAL)]
    result = CliRunner().invoke(cli, base)
    assert result.exit_code == 0, result.stderr
    assert "[Hardware]" in result.stdout and "[Ceiling]" in result.stdout
    assert "Measured ceiling: 745.1 TFLOP/s" in result.stdout
    assert "against the datasheet peak" in result.stdout
    result = CliRunner().invoke(cli, [*base, "-f", "json"])
    data = json.loads(result.stdout)
    sam = next(r for r in data["stages"] if r["stage"] == "sam")
    assert sam["hw_flops"] == _hw(doc, "sam")
    assert sam["mfu_busy_measured_pct"] == pytest.approx(
        sam["busy_tflops"] / 745.055796301478 * 100
    )
    bad = CliRunner().invoke(cli, ["mfu", str(TRACE), "--static", str(STATIC), "--hw", str(CAL)])
    assert bad.exit_code == 2 and "not an hw_flops document" in bad.stderr
