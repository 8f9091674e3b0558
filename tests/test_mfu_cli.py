"""`dsocr-nsys mfu` through click's CliRunner on the real H100 export: formats, -o DIR with
plots, and every bad input as one line on stderr with exit code 2."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from mfu_helpers import H100, H100_STATIC, MATMUL_FLOPS, TRACES, edited_trace, static_file

from dsocr_nsys.cli import cli


def _run(*args: str, env: dict[str, str] | None = None):
    runner = CliRunner()
    return runner.invoke(cli, ["mfu", *args], env={"MFU_PEAK_TFLOPS": "", **(env or {})})


def _one_line_error(result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    # progress lines ("reading ...") may come first; the error is one line, the last
    lines = result.stderr.strip().splitlines()
    err = [line for line in lines if line.startswith("Error: ")]
    assert len(err) == 1 and lines[-1] == err[0], result.stderr
    assert "Traceback" not in result.stderr
    for f in fragments:
        assert f in err[0], err[0]


def test_table_default() -> None:
    result = _run(str(H100), "--static", str(H100_STATIC))
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert "Peak: 989 TFLOP/s dense BF16, 3350 GB/s (peak table H100 SXM" in out
    assert "MFU GPU busy (%)" in out and "[Roofline]" in out and "[Timeline]" in out
    assert "h100_matmul_nvtx_nsys2025.nsys-rep" in out
    assert "reading" in result.stderr  # progress on stderr, data on stdout


def test_json_and_csv_carry_the_wide_table() -> None:
    data = json.loads(_run(str(H100), "--static", str(H100_STATIC), "-f", "json").stdout)
    assert data["peak_tflops"] == 989 and data["peak_gpu"] == "H100 SXM"
    sam = next(r for r in data["stages"] if r["stage"] == "sam")
    assert sam["total_flops"] == MATMUL_FLOPS and sam["proj_total_ns"] == 770791
    assert sam["mfu_proj_pct"] == pytest.approx(100 * MATMUL_FLOPS / (989e12 * 770791e-9))
    text = _run(str(H100), "--static", str(H100_STATIC), "-f", "csv").stdout
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["stage"] for r in rows] == ["sam", "clip", "vision", "prefill", "total"]
    assert int(rows[0]["kernel_total_ns"]) == 120192


def test_overrides_on_the_command_line() -> None:
    data = json.loads(
        _run(
            str(H100),
            "--static",
            str(H100_STATIC),
            "-f",
            "json",
            "--gpu",
            "H100 PCIe",
            "--peak-gbps",
            "1000",
            env={"MFU_PEAK_TFLOPS": "500"},
        ).stdout
    )
    assert (data["peak_tflops"], data["peak_gbps"]) == (756, 1000)
    assert data["peak_gbps_source"] == "--peak-gbps"
    data = json.loads(
        _run(
            str(H100), "--static", str(H100_STATIC), "-f", "json", env={"MFU_PEAK_TFLOPS": "500"}
        ).stdout
    )
    assert data["peak_tflops"] == 500 and data["peak_gbps"] == 3350


def test_output_dir_writes_reports_and_plots(tmp_path: Path) -> None:
    out = tmp_path / "mfu"
    result = _run(str(H100), "--static", str(H100_STATIC), "-o", str(out))
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    for name in (
        "mfu.md",
        "mfu.json",
        "mfu.csv",
        "mfu_time.png",
        "mfu_per_stage.png",
        "mfu_mbu.png",
        "mfu_roofline.png",
    ):
        path = out / name
        assert path.is_file() and path.stat().st_size > 0, name
        assert f"wrote {path}" in result.stderr
    for png in out.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (out / "mfu.md").read_text(encoding="utf-8")
    # the fixture has no .nsys-rep beside it: say where to find one, not "Open <missing file>"
    assert "Open the `.nsys-rep` this export was made from" in md
    assert "`h100_matmul_nvtx_nsys2025.nsys-rep` is not beside the export" in md
    assert "| sam | 5,597.768 | 5,704.662 |" in md  # first counted instance, ms on the timeline
    assert "![mfu_roofline](mfu_roofline.png)" in md
    assert not list(tmp_path.glob(".*dsocr-tmp*"))  # the set was swapped in, no temporaries
    assert json.loads((out / "mfu.json").read_text())["peak_gpu"] == "H100 SXM"


def test_output_dir_that_is_a_file(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    result = _run(str(H100), "--static", str(H100_STATIC), "-o", str(target))
    assert result.exit_code == 2 and "is a file" in result.stderr


def test_missing_static_file(tmp_path: Path) -> None:
    result = _run(str(H100), "--static", str(tmp_path / "nope.json"))
    _one_line_error(result, "nope.json not found", "dsocr-nsys static")


def test_static_file_not_json(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    _one_line_error(_run(str(H100), "--static", str(bad)), "not valid JSON")


def test_static_file_of_another_schema_version(tmp_path: Path) -> None:
    doc = json.loads(H100_STATIC.read_text())
    doc["schema_version"] = 2
    other = tmp_path / "v2.json"
    other.write_text(json.dumps(doc), encoding="utf-8")
    _one_line_error(_run(str(H100), "--static", str(other)), "schema_version 2", "version 1")


def test_static_file_for_another_configuration(tmp_path: Path) -> None:
    trace = edited_trace(
        tmp_path, [("UPDATE NVTX_EVENTS SET int64Value=913 WHERE text='prefill'", ())]
    )
    static = static_file(tmp_path, {"prefill": {"flops": MATMUL_FLOPS}}, {"prefill_tokens": 273})
    _one_line_error(
        _run(str(trace), "--static", str(static)), "prefill_tokens=273", "913", "--allow-mismatch"
    )
    ok = _run(str(trace), "--static", str(static), "--allow-mismatch")
    assert ok.exit_code == 0 and "note: --allow-mismatch: static config prefill_tokens" in ok.stdout


def test_trace_without_the_stage_names() -> None:
    result = _run(str(TRACES / "pipit_saxpy_a100_nsys2022.sqlite"), "--static", str(H100_STATIC))
    _one_line_error(result, "no NVTX range named", "ranges found:")


def test_trace_without_nvtx() -> None:
    result = _run(
        str(TRACES / "nsysai_mock.sqlite"), "--static", str(H100_STATIC), "--peak-tflops", "100"
    )
    _one_line_error(result)


def test_zero_length_stage(tmp_path: Path) -> None:
    trace = edited_trace(tmp_path, [("UPDATE NVTX_EVENTS SET end=start WHERE text='clip'", ())])
    _one_line_error(_run(str(trace), "--static", str(H100_STATIC)), "stage 'clip' has zero length")


def test_unknown_gpu(tmp_path: Path) -> None:
    # the H100 export as if recorded on the mock fixture's RTX 3080 (not in the peak table)
    trace = edited_trace(
        tmp_path,
        [("UPDATE TARGET_INFO_GPU SET name='NVIDIA GeForce RTX 3080', smCount=68", ())],
    )
    result = _run(str(trace), "--static", str(H100_STATIC))
    _one_line_error(result, "NVIDIA GeForce RTX 3080", "not in the peak table", "H100 SXM")
    ok = _run(str(trace), "--static", str(H100_STATIC), "--peak-tflops", "119", "-f", "json")
    assert ok.exit_code == 0 and json.loads(ok.stdout)["peak_tflops_source"] == "--peak-tflops"


def test_unknown_gpu_name_flag() -> None:
    result = _run(str(H100), "--static", str(H100_STATIC), "--gpu", "MI300X")
    _one_line_error(result, "--gpu 'MI300X' is not in the peak table")


def test_trace_file_missing(tmp_path: Path) -> None:
    _one_line_error(_run(str(tmp_path / "x.sqlite"), "--static", str(H100_STATIC)), "x.sqlite")


# --- issue 10: impossible figures, --strict, peaks, GPU names, huge counts, the set --------

DSOCR_STATIC = TRACES.parents[2] / "examples" / "dsocr_base32_h100_static.json"


def _impossible_static(tmp_path: Path) -> Path:
    # 10^15 FLOPs in sam's 120 µs of kernels: ~8.3 million % of peak, not this run's figure
    return static_file(tmp_path, {"sam": {"flops": 10**15}, "clip": {"flops": MATMUL_FLOPS}})


def test_impossible_figures_warn_mark_every_format_and_strict_exits_3(tmp_path: Path) -> None:
    static = str(_impossible_static(tmp_path))
    table = _run(str(H100), "--static", static)
    assert table.exit_code == 0
    warnings = [ln for ln in table.stderr.splitlines() if ln.startswith("warning: ")]
    assert len(warnings) == 3  # sam, vision, total
    busy_pct = 100 * 10**15 / (989e12 * 120192e-9)  # sam's 120,192 ns GPU busy (golden)
    assert warnings[0].startswith(f"warning: sam: mfu_busy_pct {busy_pct:,.1f}, ")
    assert "Impossible" in table.stdout
    rows = list(
        csv.DictReader(io.StringIO(_run(str(H100), "--static", static, "-f", "csv").stdout))
    )
    assert {r["stage"]: r["impossible"] for r in rows} == {
        "sam": "True", "clip": "False", "vision": "True", "prefill": "False", "total": "True"
    }  # fmt: skip
    data = json.loads(_run(str(H100), "--static", static, "-f", "json").stdout)
    assert [r["stage"] for r in data["stages"] if r["impossible"]] == ["sam", "vision", "total"]
    md = _run(str(H100), "--static", static, "-f", "md").stdout
    assert "| sam | 1 |" in md and "| yes |" in md
    strict = _run(str(H100), "--static", static, "--strict", "-o", str(tmp_path / "out"))
    assert strict.exit_code == 3
    assert strict.stderr.strip().splitlines()[-1] == (
        "Error: --strict: 3 row(s) above 100 % of peak (marked `impossible`)"
    )
    assert (tmp_path / "out" / "mfu.json").is_file()  # written first, then the exit status
    ok = _run(str(H100), "--static", str(H100_STATIC), "--strict")
    assert ok.exit_code == 0 and "Impossible" not in ok.stdout and "warning" not in ok.stderr


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--peak-tflops", "nan"], "--peak-tflops nan is not a finite positive number"),
        (["--peak-tflops", "inf"], "--peak-tflops inf is not a finite positive number"),
        (["--peak-gbps", "inf"], "--peak-gbps inf is not a finite positive number"),
        (["--gpu", ""], "--gpu '' names no GPU"),
    ],
)
def test_bad_peak_and_gpu_flags_one_line(args: list[str], needle: str) -> None:
    _one_line_error(_run(str(H100), "--static", str(H100_STATIC), *args), needle)


def test_gpu_spellings_and_the_mismatch_warning() -> None:
    for spelling in ("h100sxm", "H100-SXM", "h100 sxm"):
        result = _run(str(H100), "--static", str(H100_STATIC), "--gpu", spelling, "-f", "json")
        assert (
            json.loads(result.stdout)["peak_gpu"] == "H100 SXM" and "warning" not in result.stderr
        )
    other = _run(str(H100), "--static", str(H100_STATIC), "--gpu", "rtx5090", "-f", "json")
    assert json.loads(other.stdout)["peak_gpu"] == "RTX 5090"
    assert "warning: --gpu rtx5090 (RTX 5090) is not the GPU the trace recorded" in other.stderr


def test_bad_environment_ignored_when_flags_decide() -> None:
    result = _run(
        str(H100), "--static", str(H100_STATIC), "--peak-tflops", "500", "--peak-gbps", "900",
        "-f", "json", env={"MFU_PEAK_TFLOPS": "fast", "MFU_PEAK_GBPS": "-1"},
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["peak_tflops"] == 500


@pytest.mark.parametrize("flops", [2**63 - 1, 1e30])
def test_huge_counts_in_the_static_file_are_one_line(tmp_path: Path, flops: float) -> None:
    static = static_file(tmp_path, {"sam": {"flops": flops}})
    _one_line_error(
        _run(str(H100), "--static", str(static)), "invalid at stages/sam/flops", "maximum"
    )


def test_totals_past_int64_are_one_line(tmp_path: Path) -> None:
    # counts within the schema's 2^53 whose per-step sum over 31 decode steps passes 2^63
    doc = json.loads(DSOCR_STATIC.read_text())
    doc["stages"]["decode"]["per_step"] = {"flops_base": 2**53, "flops_per_context": 2**53}
    static = tmp_path / "huge.json"
    static.write_text(json.dumps(doc), encoding="utf-8")
    result = _run(str(TRACES / "dsocr_base32_h100_nsys2025.sqlite"), "--static", str(static))
    _one_line_error(result, "decode: total_flops", "exceeds 2^63 - 1")


def test_open_in_nsight_systems_only_when_the_report_exists(tmp_path: Path) -> None:
    trace = tmp_path / "t.sqlite"
    shutil.copyfile(H100, trace)
    absent = _run(str(trace), "--static", str(H100_STATIC)).stdout
    assert "Open in Nsight Systems" not in absent and ".nsys-rep: not beside the export" in absent
    (tmp_path / "t.nsys-rep").write_text("report")
    present = _run(str(trace), "--static", str(H100_STATIC)).stdout
    assert f"Open in Nsight Systems: {tmp_path / 't.nsys-rep'}" in present
    md = _run(str(trace), "--static", str(H100_STATIC), "-o", str(tmp_path / "m"))
    assert md.exit_code == 0
    assert (
        f"Open `{tmp_path / 't.nsys-rep'}` in the Nsight Systems GUI"
        in (tmp_path / "m" / "mfu.md").read_text()
    )


def test_unreadable_static_file_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """A static file the user may not read (chmod 000; root reads anything, so the read is
    made to fail as it does for an unprivileged user)."""
    real_read = Path.read_text

    def denied(self: Path, *args: object, **kwargs: object) -> str:
        if self == H100_STATIC:
            raise PermissionError(13, "Permission denied", str(self))
        return real_read(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "read_text", denied)
    _one_line_error(
        _run(str(H100), "--static", str(H100_STATIC)), "cannot be read (Permission denied)"
    )


def test_output_dir_with_subfolders_is_refused_before_the_work(tmp_path: Path) -> None:
    out = tmp_path / "run"
    (out / "logs").mkdir(parents=True)
    result = _run(str(H100), "--static", str(H100_STATIC), "-o", str(out))
    _one_line_error(result, "holds folders (logs)", "give an empty or new folder")
    assert "reading" not in result.stderr  # refused while the options were parsed
