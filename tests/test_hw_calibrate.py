"""dsocr_nsys.hw.calibrate: the no-GPU error, the polars-free import, the record round trip
(the record measured on an H200: tests/fixtures/ncu/h200_calibrate.json)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from dsocr_nsys.errors import DsocrError, NoGpuError
from dsocr_nsys.hw.calibrate import Calibration, calibrate
from dsocr_nsys.hw.report import calibration_report

RECORD = Path(__file__).resolve().parent / "fixtures" / "ncu" / "h200_calibrate.json"
ROOT = Path(__file__).resolve().parents[1]


def _has_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.mark.skipif(_has_gpu(), reason="a GPU is visible")
def test_no_gpu_is_a_typed_error():
    with pytest.raises(NoGpuError, match="no CUDA GPU visible"):
        calibrate()


def test_fewer_than_ten_repeats_rejected():
    with pytest.raises(DsocrError, match="at least 10"):
        calibrate(repeats=5)


@pytest.mark.skipif(_has_gpu(), reason="a GPU is visible")
def test_module_entry_without_polars():
    # The bare GPU image has torch but no polars: the entry must not import it.
    code = (
        "import sys, runpy\n"
        "sys.argv = ['calibrate']\n"
        "try:\n"
        "    runpy.run_module('dsocr_nsys.hw.calibrate', run_name='__main__')\n"
        "except SystemExit as e:\n"
        "    print('polars' in sys.modules, e.code)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.stdout.split() == ["False", "2"], done.stdout + done.stderr
    err = done.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("Error: no CUDA GPU visible"), done.stderr


def test_record_round_trip_and_report():
    record = json.loads(RECORD.read_text())
    cal = Calibration.from_record(record)
    assert cal.as_record() == record
    assert cal.gemm_tflops == max(p.tflops_median for p in cal.gemm)
    assert cal.copy_bytes == 2 * (1 << 31)
    report = calibration_report(cal)
    assert report.meta["datasheet_tflops"] == 989
    assert report.meta["datasheet_gbps"] == 4800
    gemm = report.tables["gemm"]
    assert gemm["datasheet_pct"].to_list() == pytest.approx(
        [100 * p.tflops_median / 989 for p in cal.gemm]
    )
    assert report.tables["copy"]["datasheet_pct"][0] == pytest.approx(100 * cal.copy_gbps / 4800)
