"""dsocr_nsys.cli on wrong input, across commands: one stderr line (what is wrong, how to fix),
exit 2, nothing on stdout, no output file left behind."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from dsocr_nsys.cli import cli

FIXTURES = Path(__file__).resolve().parent / "fixtures"
TRACES = FIXTURES / "traces"
H100 = TRACES / "dsocr_base32_h100_nsys2025.sqlite"
H100_STATIC = Path(__file__).resolve().parents[1] / "examples" / "dsocr_base32_h100_static.json"
GRAPH_PARQUET = TRACES / "cudagraph_decode_h200_graph_nsys2025_parquet"
PYTORCH_TRACE = TRACES / "nsysai_h100_2gpu_1s.sqlite"  # 16,782 range names


@pytest.fixture(scope="module")
def bad(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Inputs of every wrong kind, once per module."""
    root = tmp_path_factory.mktemp("bad")
    made = {
        "missing": root / "missing.sqlite",
        "folder": root / "folder",
        "empty": root / "empty.sqlite",
        "text": root / "text.sqlite",
        "truncated": root / "truncated.sqlite",
        "not_nsys": root / "other.sqlite",
        "report": root / "run.nsys-rep",
    }
    made["folder"].mkdir()
    made["empty"].write_bytes(b"")
    made["text"].write_text("hello\n")
    made["truncated"].write_bytes(H100.read_bytes()[:20_000])
    with sqlite3.connect(made["not_nsys"]) as db:
        db.execute("CREATE TABLE t (a)")
    made["report"].write_bytes(b"not really a report")
    return made


def _run(args: list[str], env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, [str(a) for a in args], env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


def _one_line(args: list[str], env: dict[str, str] | None = None) -> str:
    code, out, err = _run(args, env)
    assert (code, out) == (2, ""), (code, out, err)
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), err
    assert "Traceback" not in err
    return lines[0]


# the command line around a TRACE, per command that reads one
TRACE_COMMANDS = {
    "stages": lambda t: ["stages", t],
    "kernels": lambda t: ["kernels", t],
    "info": lambda t: ["info", t],
    "mfu": lambda t: ["mfu", t, "--static", H100_STATIC],
    "compare (baseline)": lambda t: ["compare", t, H100],
    "compare (second run)": lambda t: ["compare", H100, t],
}


@pytest.mark.parametrize("command", list(TRACE_COMMANDS))
@pytest.mark.parametrize(
    ("kind", "needle"),
    [
        ("missing", "no such file|not found"),
        ("folder", "folder without"),
        ("empty", "not an SQLite file"),
        ("text", "not an SQLite file"),
        ("truncated", "truncated SQLite file"),
        ("not_nsys", "not an Nsight Systems export"),
        ("report", "Nsight Systems (nsys) not found on PATH"),
    ],
)
def test_a_bad_trace_is_one_line_before_any_progress(
    bad: dict[str, Path], command: str, kind: str, needle: str
) -> None:
    """`reading X` progress comes only once X is an export: the error is the only line, also
    when the bad input is compare's second run (every input is checked before reading); a
    report without nsys is worded as in the trace commands."""
    if command.startswith("compare") and kind in ("empty", "text"):
        needle = "neither a run folder, an mfu.json nor an nsys export"
    line = _one_line(TRACE_COMMANDS[command](str(bad[kind])), env={"PATH": "", "NSYS": ""})
    assert any(n in line for n in needle.split("|")), line


def test_kernels_of_a_parquet_folder_without_the_kernel_table(tmp_path: Path) -> None:
    folder = tmp_path / "pq"
    shutil.copytree(GRAPH_PARQUET, folder)
    (folder / "CUPTI_ACTIVITY_KIND_KERNEL.parquet").unlink()
    line = _one_line(["kernels", folder])
    assert "CUPTI_ACTIVITY_KIND_KERNEL table missing" in line and "nsys profile -t cuda" in line


@pytest.mark.parametrize("command", ["mfu", "compare"])
def test_format_beside_a_folder_output_is_refused_before_work(tmp_path: Path, command: str) -> None:
    """`-o DIR` writes every format: `-f` beside it, or a folder named like a file, is a usage
    error, and nothing is written."""
    head = ["mfu", H100, "--static", H100_STATIC] if command == "mfu" else ["compare", H100, H100]
    line = _one_line([*head, "-f", "csv", "-o", tmp_path / "out"])
    assert "-f csv with -o" in line and "drop -f" in line
    line = _one_line([*head, "-o", tmp_path / "out.json"])
    assert "names a .json file" in line and "give a folder name" in line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("option", ["--extra-nsys-args", "--command"])
def test_unbalanced_quotes_are_one_line(tmp_path: Path, option: str) -> None:
    line = _one_line(["profile", "--no-nsys", "--out", tmp_path / "run", option, "'x"])
    assert line == (
        f'Error: {option} "\'x": no closing quotation; balance its quotes (it is split by '
        "shell rules)"
    )
    assert not (tmp_path / "run").exists()


def test_stages_note_names_each_base_as_the_headers_do() -> None:
    """The note defines each time base by the label its columns carry, with the JSON key."""
    from dsocr_nsys.vocab import TIME_BASES

    code, out, _err = _run(["stages", TRACES / "h100_matmul_nvtx_nsys2025.sqlite"])
    assert code == 0
    note = next(line for line in out.splitlines() if line.startswith("note: GPU busy"))
    for base in TIME_BASES:
        assert f"{base.label} ({base.key}_*) = {base.definition}" in note
        assert f"{base.label[0].upper()}{base.label[1:]} total" in out  # the header


# --- the console entry point (cli.main): how the process ends ------------------------------


def _entry(args: list[object], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dsocr_nsys.cli", *map(str, args)],
        capture_output=True,
        text=True,
        **kwargs,  # type: ignore[call-overload]
    )


def test_the_entry_point_ends_with_complete_output_and_its_exit_code(tmp_path: Path) -> None:
    """Trace commands end the process without the interpreter's teardown (cli._end): what they
    wrote is still complete and the exit code still the command's."""
    expected = _run(["stages", H100, "-f", "csv"])[1]
    done = _entry(["stages", H100, "-f", "csv"])
    assert (done.returncode, done.stdout, done.stderr) == (0, expected, "")
    done = _entry(["stages", H100, "-o", tmp_path / "stages.csv"])
    assert done.returncode == 0 and (tmp_path / "stages.csv").read_text() == expected
    done = _entry(["stages", tmp_path / "missing.sqlite"])
    assert (done.returncode, done.stdout) == (2, "")
    assert len(done.stderr.splitlines()) == 1 and done.stderr.startswith("Error: ")


def test_the_entry_point_ends_quietly_when_its_reader_stops_early() -> None:
    """`dsocr-nsys stages ... -f csv | head -c 10` (2.6 MB of rows, many pipe buffers): the
    closed pipe is no traceback."""
    with subprocess.Popen(
        [sys.executable, "-m", "dsocr_nsys.cli", "stages", str(PYTORCH_TRACE), "-f", "csv"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        assert proc.stdout.read(10)
        proc.stdout.close()
        err = proc.stderr.read().decode()
        proc.wait(timeout=120)
    assert "Traceback" not in err and "BrokenPipe" not in err, err


def test_a_process_that_imported_torch_ends_normally(monkeypatch: pytest.MonkeyPatch) -> None:
    """CUDA and a profiler around the process (nsys) flush at the interpreter's exit."""
    from dsocr_nsys import cli as cli_module

    ended: list[int] = []
    monkeypatch.setattr(cli_module.os, "_exit", ended.append)
    monkeypatch.setitem(sys.modules, "torch", object())
    with pytest.raises(SystemExit) as raised:
        cli_module._end(SystemExit(3))
    assert raised.value.code == 3 and ended == []
    monkeypatch.delitem(sys.modules, "torch")
    for status, code in ((None, 0), (2, 2), ("message", 1)):
        cli_module._end(SystemExit(status))
        assert ended.pop() == code
