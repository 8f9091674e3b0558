"""The shared renderer: units follow column suffixes; JSON/CSV keep raw integers."""

import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import click
import polars as pl
import pytest

from dsocr_nsys.errors import OutputFileError
from dsocr_nsys.output import (
    Report,
    check_output,
    clean_stale_temporaries,
    humanize,
    render,
    resolve_format,
    shorten_names,
    write_atomic,
    write_dir_atomic,
)


def _report() -> Report:
    frame = pl.DataFrame(
        {
            "stage": ["sam", "decode"],
            "gpu_busy_ns": [2_500_000, 1_250_000],
            "share_pct": [66.66, 33.3],
        }
    )
    return Report(tables={"stages": frame}, meta={"trace": "t.sqlite"})


def test_table_shows_ms_with_unit_in_header() -> None:
    text = render(_report(), "table")
    assert "GPU busy (ms)" in text
    assert "2.500" in text and "1.250" in text
    assert "66.7" in text


def test_small_times_shown_in_us() -> None:
    frame = pl.DataFrame({"total_ns": [1_500, 2_000]})
    text = render(Report(tables={"k": frame}), "md")
    assert "Total (µs)" in text and "1.5" in text and "---:" in text


def test_time_base_keys_read_as_their_vocabulary_label() -> None:
    """One vocabulary: a time-base column's header says what the time_base column's values
    say (vocab.TIME_BASES labels), in every command's table."""
    frame = pl.DataFrame(
        {
            "busy_total_ns": [2_000_000],
            "proj_p90_ns": [3_000_000],
            "kernel_total_ns": [1_000_000],
            "cpu_total_ns": [4_000_000],
            "idle_total_ns": [1_000_000],
            "gpu_idle_pct": [33.3],
            "mfu_busy_pct": [1.5],
            "hfu_busy_pct": [1.5],
            "proj_tflops": [1.5],
        }
    )
    headers, _rows, _num = humanize(frame)
    assert headers == [
        "GPU busy total (ms)",
        "GPU span p90 (ms)",
        "Kernel sum total (ms)",
        "CPU range total (ms)",
        "GPU idle total (ms)",
        "GPU idle (%)",
        "MFU GPU busy (%)",
        "HFU GPU busy (%)",
        "GPU span (TFLOP/s)",
    ]


def test_durations_of_one_table_share_one_unit() -> None:
    """Baseline 10.4 ms next to a value of 5,139.9 µs misreads: a table's durations take one
    unit; timeline positions keep their own."""
    frame = pl.DataFrame(
        {
            "baseline_ns": [10_414_000, 2_000_000],
            "value_ns": [5_139_900, 300],
            "delta_ns": [-5_274_100, -1_999_700],
            "first_start_ns": [900, 800],
        }
    )
    headers, rows, _num = humanize(frame)
    assert headers == ["Baseline (ms)", "Value (ms)", "Delta (ms)", "First start (µs)"]
    assert rows[0] == ["10.414", "5.140", "-5.274", "0.90"]


def test_spelled_words_and_verbatim_headers() -> None:
    frame = pl.DataFrame(
        {"tensor_bf16_flops": [2e9], "ci_low": [1.0], "dsocr_base32_h100_nsys2025": ["x"]}
    )
    report = Report(tables={"t": frame}, verbatim=frozenset({"dsocr_base32_h100_nsys2025"}))
    header = render(report, "table").splitlines()[0]
    assert header.split() == [
        "Tensor",
        "BF16",
        "(GFLOP)",
        "CI",
        "low",
        "dsocr_base32_h100_nsys2025",
    ]
    meta = render(Report(tables={}, meta={"hw_flops": "h.json", "nsys_rep": "r"}), "table")
    assert meta.startswith("HW FLOPs: h.json\n.nsys-rep: r")


def test_json_and_csv_keep_integer_ns() -> None:
    data = json.loads(render(_report(), "json"))
    assert data["stages"][0]["gpu_busy_ns"] == 2_500_000
    assert data["trace"] == "t.sqlite"
    assert render(_report(), "csv").splitlines()[1] == "sam,2500000,66.66"


def test_write_atomic_replaces_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "out" / "r.json"
    write_atomic(target, "one")
    write_atomic(target, "two")
    assert target.read_text() == "two"
    assert [p.name for p in target.parent.iterdir()] == ["r.json"]


def test_small_figures_keep_two_significant_digits() -> None:
    frame = pl.DataFrame({"mfu_pct": [66.66, 0.0391, 0.0]})
    text = render(Report(tables={"m": frame}), "table")
    assert "66.7" in text and "0.039" in text and "0.0\n" in text + "\n"


def test_plain_rows_render_as_the_frame_does() -> None:
    """The launcher's summaries are plain rows (no polars on the GPU image): same text."""
    rows = [
        {"stage": "sam", "busy_ns": 2_500_000, "share_pct": 66.66, "note": None},
        {"stage": "decode", "busy_ns": None, "share_pct": 33.3, "note": "x"},
    ]
    frame = pl.DataFrame(rows)
    for fmt in ("table", "md", "json", "csv"):
        ours = render(Report(tables={"stages": rows}, meta={"trace": "t"}), fmt)
        assert ours == render(Report(tables={"stages": frame}, meta={"trace": "t"}), fmt), fmt
    assert render(Report(tables={"empty": []}), "table").strip() == "(no rows)"


def test_directory_variant_of_the_output_option(tmp_path: Path) -> None:
    import click
    from click.testing import CliRunner

    from dsocr_nsys.output import output_options

    @click.command()
    @output_options(directory=True, help="Write the files into this directory.")
    def cmd(fmt: str, output: str | None) -> None:
        click.echo(f"{fmt} {output}")

    assert "Write the files into this directory." in CliRunner().invoke(cmd, ["--help"]).stdout
    assert CliRunner().invoke(cmd, ["-o", str(tmp_path)]).stdout == f"table {tmp_path}\n"
    a_file = tmp_path / "f.txt"
    a_file.write_text("x")
    refused = CliRunner().invoke(cmd, ["-o", str(a_file)])
    assert refused.exit_code == 2 and "is a file" in refused.stderr


# --- outputs: file modes, symlinks, temporaries, folder sets (issue 10, items 2, 9, 10) ------

REPO = Path(__file__).resolve().parent.parent


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_new_file_gets_the_mode_open_gives(tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        with open(tmp_path / "plain.txt", "w") as fh:  # the reference: a plain open()
            fh.write("x")
        write_atomic(tmp_path / "ours.txt", "x")
        write_dir_atomic(tmp_path / "set", {"a.md": "x"})
        os.mkdir(tmp_path / "plain_dir")
    finally:
        os.umask(old)
    assert _mode(tmp_path / "ours.txt") == _mode(tmp_path / "plain.txt") == 0o666 & ~umask
    assert _mode(tmp_path / "set" / "a.md") == 0o666 & ~umask
    assert _mode(tmp_path / "set") == _mode(tmp_path / "plain_dir")


def test_overwrite_keeps_the_files_mode(tmp_path: Path) -> None:
    target = tmp_path / "r.json"
    target.write_text("old")
    target.chmod(0o640)
    write_atomic(target, "new")
    assert target.read_text() == "new" and _mode(target) == 0o640


def test_symlink_is_written_through(tmp_path: Path) -> None:
    real = tmp_path / "data" / "real.json"
    real.parent.mkdir()
    real.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(real)
    write_atomic(link, "new")
    assert link.is_symlink() and real.read_text() == "new"


def test_unwritable_folder_is_one_typed_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputFileError, match="cannot write"):
        write_atomic(blocker / "out.json", "x")


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_stale_temporaries_of_dead_runs_are_removed(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    stale = tmp_path / f".out.json.dsocr-tmp-{_dead_pid()}-0"
    stale.write_text("half")
    stale_dir = tmp_path / f".out.json.dsocr-tmp-{_dead_pid()}-3"
    stale_dir.mkdir()
    live = tmp_path / f".out.json.dsocr-tmp-{os.getppid()}-0"  # a running process's
    live.write_text("busy")
    other = tmp_path / f".other.json.dsocr-tmp-{_dead_pid()}-0"  # another output's
    other.write_text("x")
    write_atomic(target, "new")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["out.json", live.name, other.name])
    assert clean_stale_temporaries(target) == []


_KILL_AT = """
import os, signal, sys
sys.path.insert(0, {repo!r})
import dsocr_nsys.output as out
def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)
{patch}
{call}
"""


def _killed(code: str) -> None:
    proc = subprocess.run([sys.executable, "-c", code], check=False)
    assert proc.returncode == -signal.SIGKILL


def test_kill_at_the_rename_leaves_a_temporary_the_next_run_removes(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    target.write_text("old")
    _killed(
        _KILL_AT.format(
            repo=str(REPO),
            patch="out.os.replace = die",
            call=f"out.write_atomic({str(target)!r}, 'new')",
        )
    )
    assert target.read_text() == "old"  # never half-written
    left = [p.name for p in tmp_path.iterdir() if p.name != "out.json"]
    assert len(left) == 1 and left[0].startswith(".out.json.dsocr-tmp-")
    write_atomic(target, "newer")
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]
    assert target.read_text() == "newer"


def test_folder_set_is_swapped_in_whole(tmp_path: Path) -> None:
    out = tmp_path / "mfu"
    write_dir_atomic(out, {"mfu.md": "old md", "mfu.json": "old json"})
    (out / "notes.txt").write_text("mine")  # a file the set does not name is kept
    write_dir_atomic(out, {"mfu.md": "new md", "mfu.json": "new json", "plot.png": b"\x89PNG"})
    assert {p.name: p.read_bytes() for p in out.iterdir()} == {
        "mfu.md": b"new md",
        "mfu.json": b"new json",
        "plot.png": b"\x89PNG",
        "notes.txt": b"mine",
    }
    assert [p.name for p in tmp_path.iterdir()] == ["mfu"]


def test_kill_before_the_swap_keeps_the_old_set(tmp_path: Path) -> None:
    out = tmp_path / "mfu"
    write_dir_atomic(out, {"mfu.md": "old", "mfu.json": "old"})
    call = f"out.write_dir_atomic({str(out)!r}, {{'mfu.md': 'new', 'mfu.json': 'new'}})"
    _killed(_KILL_AT.format(repo=str(REPO), patch="out._exchange = die", call=call))
    assert {p.name: p.read_text() for p in out.iterdir()} == {"mfu.md": "old", "mfu.json": "old"}
    write_dir_atomic(out, {"mfu.md": "new", "mfu.json": "new"})  # cleans the killed run's set
    assert [p.name for p in tmp_path.iterdir()] == ["mfu"]
    assert (out / "mfu.md").read_text() == "new"


def test_format_follows_the_output_suffix() -> None:
    assert resolve_format(None, None) == "table"
    assert resolve_format(None, "x.csv") == "csv"
    assert resolve_format(None, "x.JSON") == "json"
    assert resolve_format(None, "x.md") == "md"
    assert resolve_format(None, "x.txt") == "table"
    assert resolve_format(None, "x") == "table"
    assert resolve_format("md", "x.txt") == "md"  # .txt holds any text format
    assert resolve_format("json", "x.json") == "json"
    with pytest.raises(click.UsageError, match=r"-f csv but -o x\.json ends in \.json"):
        resolve_format("csv", "x.json")


def test_check_output_before_the_work(tmp_path: Path, read_only_dir: Path) -> None:
    assert check_output(tmp_path / "new" / "deeper" / "x.json") is None
    assert "is a folder" in (check_output(tmp_path) or "")
    (tmp_path / "f").write_text("x")
    assert "is not a folder" in (check_output(tmp_path / "f", directory=True) or "")
    assert "is not a folder" in (check_output(tmp_path / "f" / "x.json") or "")
    ro = read_only_dir  # chmod 555 (see the fixture for how root is stopped)
    assert check_output(ro / "out.json") == (
        f"cannot write into {ro} (permission denied); choose another -o path"
    )
    assert "permission denied" in (check_output(ro / "sub" / "out", directory=True) or "")


def test_thousands_separators_from_1000_but_not_in_identifiers() -> None:
    frame = pl.DataFrame({"pid": [12345], "gpu_ops": [5065], "instances": [31], "x": [12345.6]})
    text = render(Report(tables={"t": frame}), "table")
    assert "12345" in text and "5,065" in text and "12,346" in text and " 31" in text


def test_labels_spell_units_and_names() -> None:
    frame = pl.DataFrame(
        {"mbu_busy_pct": [1.0], "intensity_flop_per_byte": [295.25], "busy_tflops": [1.0]}
    )
    text = render(Report(tables={"t": frame}, meta={"open_in_nsight_systems": "t.nsys-rep"}), "md")
    assert "MBU GPU busy (%)" in text and "Intensity (FLOP/B)" in text and "295.2" in text
    assert "Open in Nsight Systems" in text


ELEMENTWISE = [  # four kernels that the old 70-character cut showed as one name
    "void at::native::elementwise_kernel<(int)128, (int)4, void at::native::gpu_kernel_impl_"
    "nocast<at::native::direct_copy_kernel_cuda(at::TensorIteratorBase &)::[lambda() (instance "
    "3)]::operator ()() const::[lambda() (instance 12)]::operator ()() const::[lambda(c10::"
    "BFloat16) (instance 1)]>(at::TensorIteratorBase &, const T1 &)::[lambda(int) (instance "
    "1)]>(int, T3)",
    "void at::native::elementwise_kernel<(int)128, (int)2, void at::native::gpu_kernel_impl_"
    "nocast<at::native::BinaryFunctor<float, float, float, at::native::binary_internal::"
    "MulFunctor<float>>>(at::TensorIteratorBase &, const T1 &)::[lambda(int) (instance 1)]>"
    "(int, T3)",
    "void at::native::elementwise_kernel<(int)128, (int)4, void at::native::gpu_kernel_impl_"
    "nocast<at::native::CUDAFunctor_add<c10::BFloat16>>(at::TensorIteratorBase &, const T1 &)"
    "::[lambda(int) (instance 1)]>(int, T3)",
    "void at::native::elementwise_kernel<(int)128, (int)4, void at::native::gpu_kernel_impl_"
    "nocast<at::native::neg_kernel_cuda(at::TensorIteratorBase &)::[lambda() (instance 2)]::"
    "operator ()() const::[lambda() (instance 9)]::operator ()() const::[lambda(c10::BFloat16)"
    " (instance 1)]>(at::TensorIteratorBase &, const T1 &)::[lambda(int) (instance 1)]>(int, T3)",
]


def test_kernel_names_shortened_from_the_middle_stay_distinct() -> None:
    short = shorten_names(ELEMENTWISE, 70)
    assert len(set(short)) == 4 and all(len(s) <= 70 for s in short)
    assert all(s.startswith("elementwise_kernel<128,") for s in short)
    for s, functor in zip(
        short,
        ["direct_copy_kernel_cuda lambda(BFloat16)", "MulFunctor<float>", "CUDAFunctor_add",
         "neg_kernel_cuda lambda(BFloat16)"],
        strict=True,
    ):  # fmt: skip
        assert functor in s, s
    assert shorten_names(["nvjet_sm90_tst_64x8", "sam"], 70) == ["nvjet_sm90_tst_64x8", "sam"]
    # names equal after simplification (lambda instance numbers differ): told apart by #n
    twins = [ELEMENTWISE[0], ELEMENTWISE[0].replace("instance 12", "instance 7")]
    assert shorten_names(twins, 70) == [
        shorten_names(twins, 70)[0].removesuffix(" #1") + " #1",
        shorten_names(twins, 70)[0].removesuffix(" #1") + " #2",
    ]


def test_folder_swap_without_renameat2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the C library has no renameat2, the old set moves aside, the new one in."""
    import dsocr_nsys.output as output_mod

    monkeypatch.setattr(output_mod.ctypes.util, "find_library", lambda _name: None)
    out = tmp_path / "mfu"
    write_dir_atomic(out, {"mfu.md": "old"})
    write_dir_atomic(out, {"mfu.md": "new"})
    assert (out / "mfu.md").read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["mfu"]
