"""The shared renderer: units follow column suffixes; JSON/CSV keep raw integers."""

import json
from pathlib import Path

import polars as pl

from dsocr_nsys.output import Report, render, write_atomic


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
    frame = pl.DataFrame({"kernel_ns": [1_500, 2_000]})
    text = render(Report(tables={"k": frame}), "md")
    assert "Kernel (µs)" in text and "1.5" in text and "---:" in text


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
