"""`dsocr-nsys stages | kernels | info` through click's CliRunner, on real exports."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from dsocr_nsys.cli import cli

TRACES = Path(__file__).resolve().parent / "fixtures" / "traces"
H100 = TRACES / "h100_matmul_nvtx_nsys2025.sqlite"
MOCK = TRACES / "nsysai_mock.sqlite"  # exported without -t nvtx


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


def assert_one_line_error(args: list[str], *needles: str) -> str:
    code, out, err = run(*args)
    assert code == 2, (code, out, err)
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def test_stages_table() -> None:
    code, out, _ = run("stages", H100)
    assert code == 0
    lines = out.splitlines()
    header = next(line for line in lines if line.startswith("Name"))
    assert "Proj total (µs)" in header and "Busy total (µs)" in header and "GPU (%)" in header
    sam = next(line for line in lines if line.startswith("sam "))
    assert "770.8" in sam and "120.2" in sam  # proj and busy, µs
    assert [ln.split()[0] for ln in lines if ln.split() and ln.split()[0] in
            ("sam", "clip", "prefill")] == ["sam", "clip", "prefill"]  # fmt: skip


def test_stages_json_integer_ns() -> None:
    code, out, _ = run("stages", H100, "-f", "json")
    assert code == 0
    payload = json.loads(out)
    sam = payload["stages"][0]
    assert sam["name"] == "sam" and sam["proj_total_ns"] == 770791
    assert isinstance(sam["busy_total_ns"], int) and sam["device_ids"] == [0]
    assert payload["gpu"] == "NVIDIA H100 80GB HBM3"


def test_stages_csv_and_stage_filter() -> None:
    code, out, _ = run("stages", H100, "-f", "csv", "--stage", "clip", "--stage", "prefill")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["name"] for r in rows] == ["clip", "prefill"]
    assert rows[0]["proj_total_ns"] == "147426" and rows[0]["device_ids"] == "0"


def test_stages_output_file(tmp_path: Path) -> None:
    target = tmp_path / "out" / "stages.md"
    code, out, err = run("stages", H100, "-f", "md", "-o", target)
    assert code == 0 and out == "" and "wrote" in err
    text = target.read_text(encoding="utf-8")
    assert text.startswith("# GPU time per stage") and "| sam |" in text
    assert [p.name for p in target.parent.iterdir()] == ["stages.md"]  # no temporary left


def test_stages_wide_shows_every_column() -> None:
    code, out, _ = run("stages", H100, "--wide")
    assert code == 0 and "Idle p90 (µs)" in out and "First GPU start (ms)" in out


def test_kernels_whole_trace_and_stage() -> None:
    code, out, _ = run("kernels", H100, "-f", "json")
    assert code == 0
    kernels = json.loads(out)["kernels"]
    assert [k["total_ns"] for k in kernels] == [358019, 12608]  # nsys cuda_gpu_kern_sum
    code, out, _ = run("kernels", H100, "--stage", "sam", "--top", "1")
    assert code == 0 and "nvjet_sm90_tst_256x128_64x4_1x2_h_bz_coopA_NNT" in out


def test_kernels_table_shortens_long_names() -> None:
    code, out, _ = run("kernels", H100)
    assert code == 0
    long_name = "void at::native::<unnamed>::distribution_elementwise_grid_stride_kernel<float"
    assert long_name not in out
    assert "…" in out


def test_info_table_and_json() -> None:
    code, out, _ = run("info", H100)
    assert code == 0
    assert "Exporter version: 2025.3.2.0" in out and "NVIDIA H100 80GB HBM3" in out
    assert "3,352.3" in out  # GB/s
    code, out, _ = run("info", TRACES / "pipit_saxpy_a100_nsys2022.sqlite", "-f", "json")
    payload = json.loads(out)
    assert payload["exporter_version"] == "2022.2.1.31" and payload["schema_version"] == "2.9.1"
    assert payload["gpus"][0]["memory_bandwidth_bps"] > 1e12
    assert payload["counts"][0]["kernels"] == 5


def test_export_without_nvtx() -> None:
    assert_one_line_error(["stages", MOCK], "no NVTX_EVENTS table", "nsys profile -t cuda,nvtx")
    code, out, _ = run("info", MOCK)
    assert code == 0 and "RTX 3080" in out
    code, out, _ = run("kernels", MOCK)
    assert code == 0 and "Total (µs)" in out
    assert_one_line_error(["kernels", MOCK, "--stage", "decode"], "no NVTX_EVENTS table")


def test_missing_path(tmp_path: Path) -> None:
    assert_one_line_error(["stages", tmp_path / "nope.sqlite"], "no such file")


def test_not_sqlite(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not a database\n")
    for command in ("stages", "kernels", "info"):
        assert_one_line_error([command, text], "not an SQLite file", "nsys export --type sqlite")


def test_truncated(tmp_path: Path) -> None:
    data = H100.read_bytes()
    cut = tmp_path / "cut.sqlite"
    cut.write_bytes(data[: len(data) // 2])
    assert_one_line_error(["stages", cut], "truncated")


def test_no_kernels(tmp_path: Path) -> None:
    path = tmp_path / "nokernels.sqlite"
    shutil.copyfile(H100, path)
    con = sqlite3.connect(path)
    con.execute("DROP TABLE CUPTI_ACTIVITY_KIND_KERNEL")
    con.commit()
    con.close()
    assert_one_line_error(["stages", path], "no CUDA kernels", "nsys profile -t cuda,nvtx")
    assert_one_line_error(["kernels", path], "no CUDA kernels")
    code, _, _ = run("info", path)
    assert code == 0


def test_stage_nomatch() -> None:
    assert_one_line_error(["stages", H100, "--stage", "nomatch"], "'nomatch'", "sam, clip, prefill")
    assert_one_line_error(["kernels", H100, "--stage", "nomatch"], "'nomatch'")


@pytest.mark.parametrize("command", [["stages"], ["kernels", "--stage", "sam"], ["info"]])
def test_input_unchanged(tmp_path: Path, command: list[str]) -> None:
    path = tmp_path / H100.name
    shutil.copyfile(H100, path)
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    code, _, _ = run(command[0], path, *command[1:])
    assert code == 0
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    assert [p.name for p in tmp_path.iterdir()] == [H100.name]


def test_trace_commands_import_neither_pandas_nor_pyarrow() -> None:
    pytest.importorskip("pandas")  # in the test extra, as on GPU hosts
    # Start-up cost is most of a command's time on a GPU host, where both are installed:
    # DuckDB imports pandas on the first bound parameter (0.5-0.7 s) unless the engine blocks
    # it, and DuckDB's .pl() imports pyarrow (0.1-0.2 s). Neither is needed to read a trace.
    script = (
        "import sys\n"
        "from dsocr_nsys.cli import cli\n"
        "for args in (['stages', sys.argv[1]], ['kernels', sys.argv[1], '--stage', 'sam'],"
        " ['info', sys.argv[1]]):\n"
        "    try:\n"
        "        cli.main(args, standalone_mode=False)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print('imported:', sorted(m for m in ('pandas', 'pyarrow') if sys.modules.get(m)))\n"
        # The block lasts only for the engine's calls: pandas imports afterwards, and DuckDB
        # (whose import cache retries) still binds pandas.NaT as NULL.
        "import duckdb, pandas\n"
        "print('NaT binds as:', duckdb.connect().execute('SELECT ?', [pandas.NaT]).fetchall())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(H100)], capture_output=True, text=True, check=True
    )
    last = done.stdout.strip().splitlines()[-2:]
    assert last == ["imported: []", "NaT binds as: [(None,)]"], done.stdout[-500:]
