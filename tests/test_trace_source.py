"""TRACE as a Parquet export folder or a .nsys-rep report (dsocr_nsys.trace.source, db), and
the integrity check on names. The Parquet/SQLite pairs are real: both exports of one report,
made on the H200 that recorded it (tests/fixtures/traces/README.md)."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import sys
import time
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from dsocr_nsys.cli import cli
from dsocr_nsys.errors import InputFileError, ToolNotFoundError, TraceContentError
from dsocr_nsys.trace import db, open_trace
from dsocr_nsys.trace.source import cache_dir, export_argv

TRACES = Path(__file__).resolve().parent / "fixtures" / "traces"
PAIRS = ["cudagraph_decode_h200_graph_nsys2025", "cudagraph_decode_h200_node_nsys2025"]

# Stand-in for nsys: `export --output=DIR REPORT` copies the real Parquet export named in
# $FAKE_EXPORT to DIR and appends its argv to $FAKE_LOG.
FAKE_NSYS = """#!{python}
import os, shutil, sys
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(" ".join(sys.argv[1:]) + "\\n")
out = next(a.split("=", 1)[1] for a in sys.argv if a.startswith("--output="))
shutil.copytree(os.environ["FAKE_EXPORT"], out)
"""


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


def without_trace(doc: str) -> dict:
    data = json.loads(doc)
    data.pop("trace", None)
    return data


@pytest.mark.parametrize("stem", PAIRS)
@pytest.mark.parametrize(
    "command",
    [
        ["stages", "--include-warmup", "--wide"],
        ["stages", "--stage", "decode"],
        ["kernels", "--top", "50"],
        ["kernels", "--stage", "decode"],
        ["kernels", "--stage", "prefill", "--include-warmup"],
        ["info"],
    ],
)
def test_parquet_and_sqlite_give_the_same_rows(stem: str, command: list[str]) -> None:
    outputs = []
    for trace in (TRACES / f"{stem}.sqlite", TRACES / f"{stem}_parquet"):
        code, out, err = invoke(command[0], str(trace), *command[1:], "-f", "json")
        assert code == 0, err
        outputs.append(without_trace(out))
    assert outputs[0] == outputs[1]


@pytest.mark.parametrize("stem", PAIRS)
def test_parquet_ranges_equal_sqlite(stem: str) -> None:
    with open_trace(TRACES / f"{stem}.sqlite") as a, open_trace(TRACES / f"{stem}_parquet") as b:
        ra, rb = a.ranges(include_warmup=True), b.ranges(include_warmup=True)
    assert ra.schema == rb.schema and ra.height == 51
    assert ra.equals(rb)


def test_parquet_folder_not_an_export(tmp_path: Path) -> None:
    pl.DataFrame({"a": [1]}).write_parquet(tmp_path / "foo.parquet")
    with pytest.raises(TraceContentError, match="not an Nsight Systems export"):
        open_trace(tmp_path)


def test_only_the_sqlite_reader_skips_the_extension_signature_check() -> None:
    """DuckDB's check hashes the pinned package's 35 MB binary on each LOAD (docs/trace-engine.md
    says why it guards nothing here); a Parquet folder loads no extension and keeps DuckDB's
    default, and neither installs or autoloads anything."""
    for path, unsigned in (
        (TRACES / f"{PAIRS[0]}.sqlite", True),
        (TRACES / f"{PAIRS[0]}_parquet", False),
    ):
        con = db.connect(path)
        try:
            settings = con.execute(
                "SELECT current_setting('allow_unsigned_extensions'), "
                "current_setting('autoinstall_known_extensions'), "
                "current_setting('autoload_known_extensions')"
            ).fetchone()
        finally:
            con.close()
        assert settings == (unsigned, False, False), path.name


def test_parquet_damaged(tmp_path: Path) -> None:
    folder = tmp_path / "x"
    shutil.copytree(TRACES / f"{PAIRS[0]}_parquet", folder)
    (folder / "NVTX_EVENTS.parquet").write_bytes(b"PAR1 not really")
    code, out, err = invoke("stages", folder)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, err
    assert "export it again" in err


@pytest.fixture()
def report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path, Path]:
    """A .nsys-rep (its bytes are never read by us) and a stand-in nsys that exports it."""
    rep = tmp_path / "run" / "trace.nsys-rep"
    rep.parent.mkdir()
    rep.write_bytes(b"report")
    nsys = tmp_path / "bin" / "nsys"
    nsys.parent.mkdir()
    nsys.write_text(FAKE_NSYS.format(python=sys.executable))
    nsys.chmod(0o755)
    log = tmp_path / "nsys.log"
    monkeypatch.setenv("FAKE_LOG", str(log))
    monkeypatch.setenv("FAKE_EXPORT", str(TRACES / f"{PAIRS[1]}_parquet"))
    monkeypatch.delenv("NSYS", raising=False)
    return rep, nsys, log


def test_report_exported_once_to_a_sibling_cache(report: tuple[Path, Path, Path]) -> None:
    rep, nsys, log = report
    code, first, err = invoke("stages", rep, "--nsys", nsys, "-f", "json")
    assert code == 0, err
    assert cache_dir(rep).is_dir() and cache_dir(rep).name == "trace.nsys-rep.parquetdir"
    calls = log.read_text().splitlines()
    assert len(calls) == 1
    assert calls[0].split() == export_argv(nsys, rep, Path("X"))[1:-2] + calls[0].split()[-2:]
    assert [p.name for p in rep.parent.iterdir() if p.name.endswith(".tmp")] == []
    code, second, _ = invoke("stages", rep, "--nsys", nsys, "-f", "json")
    assert code == 0 and len(log.read_text().splitlines()) == 1  # read from the cache
    assert second == first
    _, direct, _ = invoke("stages", TRACES / f"{PAIRS[1]}.sqlite", "-f", "json")
    assert without_trace(first) == without_trace(direct)


def test_stale_cache_is_exported_again(report: tuple[Path, Path, Path]) -> None:
    rep, nsys, log = report
    assert invoke("info", rep, "--nsys", nsys)[0] == 0
    later = time.time() + 10
    os.utime(rep, (later, later))
    assert invoke("info", rep, "--nsys", nsys)[0] == 0
    assert len(log.read_text().splitlines()) == 2


def test_nsys_from_environment(
    report: tuple[Path, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    rep, nsys, log = report
    monkeypatch.setenv("NSYS", str(nsys))
    assert invoke("info", rep)[0] == 0 and log.exists()


def test_fresh_sibling_sqlite_is_used_without_nsys(report: tuple[Path, Path, Path]) -> None:
    rep, _, log = report
    shutil.copy(TRACES / f"{PAIRS[0]}.sqlite", rep.with_suffix(".sqlite"))
    code, out, err = invoke("info", rep, "-f", "json")
    assert code == 0, err
    assert json.loads(out)["counts"][0]["graph_launches"] == 48
    assert not log.exists()


def test_report_without_nsys_says_how_to_export(
    report: tuple[Path, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    rep, _, _ = report
    monkeypatch.setenv("PATH", str(rep.parent))
    code, out, err = invoke("stages", rep)
    lines = err.strip().splitlines()
    assert code == 2 and out == "" and len(lines) == 1, err
    assert "nsys export --type sqlite" in lines[0] and "--nsys" in lines[0]
    with pytest.raises(ToolNotFoundError):
        open_trace(rep)


def test_failed_export_is_one_line(report: tuple[Path, Path, Path], tmp_path: Path) -> None:
    rep, _, _ = report
    bad = tmp_path / "bin" / "badnsys"
    bad.write_text("#!/bin/sh\necho 'Error: the report is damaged' >&2\nexit 1\n")
    bad.chmod(0o755)
    with pytest.raises(InputFileError, match="the report is damaged"):
        open_trace(rep, nsys=bad)
    assert not cache_dir(rep).exists()
    assert [p.name for p in rep.parent.iterdir()] == ["trace.nsys-rep"]


def damaged(tmp_path: Path, sql: str) -> Path:
    copy = tmp_path / "damaged.sqlite"
    shutil.copy(TRACES / f"{PAIRS[0]}.sqlite", copy)
    con = sqlite3.connect(copy)
    con.execute(sql)
    con.commit()
    con.close()
    return copy


@pytest.mark.parametrize(
    "command", [["stages"], ["kernels"], ["kernels", "--stage", "decode"], ["info"]]
)
def test_missing_string_ids_is_one_line_exit_2(tmp_path: Path, command: list[str]) -> None:
    """`delete from StringIds` (range names and kernel names are textIds there): never
    nameless rows with exit 0."""
    trace = damaged(tmp_path, "DELETE FROM StringIds")
    code, out, err = invoke(command[0], trace, *command[1:])
    lines = err.strip().splitlines()
    assert code == 2 and out == "" and len(lines) == 1, (code, out, err)
    assert "StringIds" in lines[0] and "export it again" in lines[0]
