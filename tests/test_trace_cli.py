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
    assert (
        "GPU span total (µs)" in header and "GPU busy total (µs)" in header and "GPU (%)" in header
    )
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
    assert code == 0 and "GPU idle p90 (µs)" in out and "First GPU start (ms)" in out


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


# --- issue 10: usage errors, -o, warm-up, --top -----------------------------------------

DSOCR = TRACES / "dsocr_base32_h100_nsys2025.sqlite"
PYTORCH = TRACES / "nsysai_h100_2gpu_1s.sqlite"  # 16,782 range names


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["kernels", H100, "--top", "0"], "'--top': 0 is not in the range x>=1"),
        (["kernels", H100, "--top", "-3"], "'--top': -3 is not in the range x>=1"),
        (["kernels", H100, "--top", "many"], "'--top': 'many' is not a valid integer"),
        (["stages", H100, "--top", "0"], "'--top': 0 is not in the range x>=1"),
        (["kernels"], "Missing argument 'TRACE'"),
        (["kernels", H100, "--bogus"], "No such option '--bogus'"),
        (["nosuchcommand"], "No such command 'nosuchcommand'"),
        (["info", H100, "-o", TRACES], "is a directory"),
        (["info", H100, "-f", "csv", "-o", "x.json"], "-f csv but -o x.json ends in .json"),
    ],
)
def test_usage_errors_are_one_line(args: list, needle: str) -> None:
    line = assert_one_line_error(args, needle)
    assert line.endswith("--help)")  # (see dsocr-nsys CMD --help)


def test_output_suffix_sets_the_format(tmp_path: Path) -> None:
    for suffix, check in (
        (".csv", lambda t: t.startswith("name,")),
        (".json", lambda t: json.loads(t)["stages"][0]["name"] == "sam"),
        (".md", lambda t: t.startswith("# GPU time per stage")),
        (".txt", lambda t: t.startswith("GPU time per stage\n")),
    ):
        target = tmp_path / f"stages{suffix}"
        code, _, _ = run("stages", H100, "-o", target)
        assert code == 0 and check(target.read_text(encoding="utf-8")), suffix


def test_unwritable_output_folder_fails_before_the_work(
    read_only_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chmod 555 folder (the fixture says how root is stopped). `infer` must fail before it
    builds the model: the trace engine is never opened, nor the model built."""
    ro = read_only_dir
    import dsocr_nsys.launch.infer as infer_mod
    import dsocr_nsys.trace as trace_mod

    def boom(*args: object, **kwargs: object) -> None:
        raise AssertionError("the work started")

    monkeypatch.setattr(trace_mod, "open_trace", boom)
    monkeypatch.setattr(infer_mod, "execute_infer", boom)
    for args in (
        ["stages", H100, "-o", ro / "out.json"],
        ["info", H100, "-o", ro / "out.json"],
        ["static", "--preset", "tiny", "--formulas-only", "-o", ro / "s.json"],
        ["mfu", H100, "--static", "s.json", "-o", ro / "mfu"],
        ["infer", "--preset", "tiny", "--device", "cpu", "-o", ro / "infer.json"],
    ):
        assert_one_line_error(args, f"cannot write into {ro} (permission denied)")
    assert list(ro.iterdir()) == []


def test_kernels_says_what_it_counts_and_hints_the_warmup_flag() -> None:
    code, out, _ = run("kernels", DSOCR, "--top", "1")
    assert code == 0 and "Counted: every kernel in the trace, warm-up included" in out
    code, out, _ = run("kernels", DSOCR, "--top", "1", "--include-warmup")
    assert "--include-warmup changes nothing here" in out
    code, out, _ = run("kernels", DSOCR, "--stage", "warmup")
    assert code == 0 and "(no rows)" in out and "pass --include-warmup to count them" in out
    code, out, _ = run("kernels", DSOCR, "--stage", "warmup", "--include-warmup", "-f", "json")
    assert json.loads(out)["kernels"][0]["instances"] == 9176


def test_kernel_names_in_tables_stay_distinct() -> None:
    _, out, _ = run("kernels", DSOCR, "-f", "csv")
    full = [r["name"] for r in csv.DictReader(io.StringIO(out))]
    _, out, _ = run("kernels", DSOCR)
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("-----")) + 1
    rows = lines[start : start + len(full)]
    width = lines[start - 1].index("  ")  # the name column's dashes
    names = [line[:width].rstrip() for line in rows]
    assert len(set(full)) == len(full) == 20
    assert len(set(names)) == len(names) == 20  # was four alike `elementwise_kernel<(int)128,…`
    assert any("CUDAFunctor_add<BFloat16>" in n for n in names)


def test_stages_top_by_gpu_time_with_a_hint() -> None:
    _, out, _ = run("stages", PYTORCH, "-f", "json")
    every = json.loads(out)["stages"]
    assert len(every) == 16_782
    busiest = sorted(every, key=lambda r: -(r["busy_total_ns"] or 0))[:3]
    _, out, _ = run("stages", PYTORCH, "--top", "3", "-f", "json")
    shown = json.loads(out)
    assert {r["name"] for r in shown["stages"]} == {r["name"] for r in busiest}
    assert "showing the 3 of 16,782 stages with the most GPU busy time" in shown["notes"][-1]
    _, out, _ = run("stages", PYTORCH)  # table: 50 rows by default, and says so
    assert "showing the 50 of 16,782 stages" in out and len(out) < 30_000
