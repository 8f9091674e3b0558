"""`dsocr_nsys.compare` on real exports: per-stage deltas equal the difference of the two
`Trace.stages()` results to the ns, a run against itself changes nothing, and MFU, decode
and configuration come from the run folder's files."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from compare_helpers import AFTER, BEFORE, DSOCR, DSOCR_STATIC, MATMUL, run_folder

from dsocr_nsys.compare import compare_runs
from dsocr_nsys.compare.core import NO_CHANGE, RANGES_MODE, STAGES_MODE, WITHIN_NOISE
from dsocr_nsys.compare.inputs import range_group
from dsocr_nsys.errors import InputFileError, StageNotFoundError
from dsocr_nsys.trace import open_trace
from dsocr_nsys.vocab import (
    BUSY,
    DECODE,
    STAGE_BY_NAME,
    STAGE_ORDER,
    TIME_BASES,
    VISION_PARTS,
    time_base,
)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return run_folder(tmp_path_factory.mktemp("runs"))


@pytest.fixture(scope="module")
def self_vs_self(folder: Path):
    return compare_runs([folder, folder])


@pytest.fixture(scope="module")
def before_after():
    return compare_runs([BEFORE, AFTER], top=10_000)


def _stage_totals(path: Path, group: bool) -> dict[str, dict[str, int]]:
    """Trace.stages() per stage name (rows of one name summed: per-process rows, and
    per-call names when ``group``), one total per time base."""
    with open_trace(path) as tr:
        frame = tr.stages()
    name = range_group(pl.col("name")) if group else pl.col("name")
    summed = frame.group_by(name.alias("stage")).agg(
        pl.col(b.total).fill_null(0).sum() for b in TIME_BASES
    )
    return {r["stage"]: r for r in summed.to_dicts()}


def test_deltas_equal_the_difference_of_stages(before_after) -> None:
    result = before_after
    assert result.mode == RANGES_MODE
    before, after = _stage_totals(BEFORE, True), _stage_totals(AFTER, True)
    assert set(result.stages["stage"]) == set(before) | set(after)
    checked = 0
    for row in result.stages.to_dicts():
        total = next(b.total for b in TIME_BASES if b.key == row["time_base"])
        b, a = before.get(row["stage"]), after.get(row["stage"])
        if b is None or a is None:
            assert row["delta_ns"] is None and row["verdict"].startswith("only in ")
            continue
        assert row["baseline_ns"] == b[total] and row["value_ns"] == a[total]
        assert row["delta_ns"] == a[total] - b[total]
        assert isinstance(row["delta_ns"], int)
        checked += 1
    assert checked > 300


def test_two_programs_with_our_stages(folder: Path) -> None:
    """The H100 matmul export has sam, clip and prefill ranges only: those rows compare,
    projector / llm_prefill / decode are only in the DeepSeek-OCR run."""
    result = compare_runs([MATMUL, folder])
    assert result.mode == STAGES_MODE and result.kernel_scope is None  # no decode in MATMUL
    before, after = _stage_totals(MATMUL, False), _stage_totals(DSOCR, False)
    rows = {(r["stage"], r["time_base"]): r for r in result.stages.to_dicts()}
    for b in TIME_BASES:
        for name in ("sam", "clip", "prefill"):
            row = rows[(name, b.key)]
            assert row["delta_ns"] == after[name][b.total] - before[name][b.total]
            assert row["verdict"] == "changed, noise unknown"  # one instance each
        for name in ("projector", "llm_prefill", "decode"):
            assert rows[(name, b.key)]["verdict"] == "only in base-32"
            assert rows[(name, b.key)]["delta_ns"] is None
    assert any("h100_matmul_nvtx_nsys2025 has no request ranges" in n for n in result.notes)
    assert any("1 matched" in n and "appeared" in n for n in result.notes)


def test_ranges_mode_shows_the_top_changes_first() -> None:
    result = compare_runs([BEFORE, AFTER], top=3)
    names = list(dict.fromkeys(result.stages["stage"].to_list()))
    assert len(names) == 3
    busy = result.stages.filter(pl.col("time_base") == "busy")
    assert busy["delta_ns"].abs().to_list() == sorted(
        busy["delta_ns"].abs().to_list(), reverse=True
    )
    # FlashAttnFunc: 67 -> 60 calls (sum of its per-call `stages` rows, read with sqlite/nsys
    # names); the total moved with the call count, the per-call median within its noise
    flash = busy.filter(pl.col("stage") == "FlashAttnFunc").row(0, named=True)
    assert flash["delta_ns"] == 240755667 - 256586234 and flash["verdict"] == WITHIN_NOISE


def test_a_run_against_itself_changes_nothing(self_vs_self) -> None:
    result = self_vs_self
    assert result.mode == STAGES_MODE
    assert result.labels == ["base-32", "base-32#2"]
    assert result.stages["delta_ns"].to_list() == [0] * result.stages.height
    assert set(result.stages["verdict"]) == {NO_CHANGE}
    assert result.noise.height and not result.noise["outside_noise"].any()
    # every interval holds 1 and the medians are the same numbers
    assert (result.noise["ci_low"] <= 1).all() and (result.noise["ci_high"] >= 1).all()
    assert result.noise["median_speedup"].to_list() == [1.0] * result.noise.height
    assert set(result.config["status"]) == {"same"}
    assert result.kernels.height == 15 and set(result.kernels["delta_ns"]) == {0}
    assert result.kernel_scope == DECODE


def test_stage_rows_are_the_vocabulary_and_equal_stages(folder: Path, self_vs_self) -> None:
    result = self_vs_self
    assert list(dict.fromkeys(result.stages["stage"])) == list(STAGE_ORDER)
    totals = _stage_totals(DSOCR, False)
    times = {r["stage"]: r for r in result.times.filter(pl.col("run") == "base-32").to_dicts()}
    for b in TIME_BASES:
        for name in ("sam", "clip", "projector", "prefill", "decode", "request"):
            assert times[name][b.total] == totals[name][b.total], (name, b.key)
        assert times["vision"][b.total] == sum(totals[p][b.total] for p in VISION_PARTS)
    assert STAGE_BY_NAME["llm_prefill"].kind == "difference"
    assert times["llm_prefill"]["busy_total_ns"] == 13105083  # prefill minus its nested vision
    assert times["decode"]["instances"] == 31


def test_noise_on_decode_steps(self_vs_self) -> None:
    decode = self_vs_self.noise.filter(
        (pl.col("stage") == DECODE) & (pl.col("time_base") == "busy")
    ).row(0, named=True)
    with open_trace(DSOCR) as tr:
        steps = tr.ranges(names=["decode"])[time_base(BUSY).column]
    assert decode["n"] == decode["baseline_n"] == 31
    assert decode["median_ns"] == steps.median()
    assert decode["p10_ns"] == pytest.approx(steps.quantile(0.1, interpolation="linear"))
    assert decode["p90_ns"] == pytest.approx(steps.quantile(0.9, interpolation="linear"))


def test_rates_decode_and_config_from_the_run_folder(folder: Path) -> None:
    result = compare_runs([folder, DSOCR])
    # MFU only where a static file is: the folder
    assert set(result.rates["run"]) == {"base-32"}
    from dsocr_nsys.mfu.report import analyse

    decode = result.rates.filter(pl.col("stage") == DECODE).row(0, named=True)
    own = analyse(DSOCR, DSOCR_STATIC).stages.filter(pl.col("stage") == DECODE).row(0, named=True)
    for key in ("mfu_busy_pct", "mfu_cpu_pct", "mbu_busy_pct", "mbu_proj_pct"):
        assert decode[key] == own[key]  # the MFU library's figures, passed through
    # decode MFU = FLOPs / (peak 989 TFLOP/s x GPU busy time)
    assert decode["mfu_busy_pct"] == pytest.approx(
        100 * own["total_flops"] / (989e12 * 92740349e-9), rel=1e-12
    )
    cfg = {r["field"]: r for r in result.config.to_dicts()}
    assert cfg["gpu"]["base-32"] == cfg["gpu"]["dsocr_base32_h100_nsys2025"]
    assert cfg["mode"]["base-32"] == "base" and cfg["mode"]["dsocr_base32_h100_nsys2025"] is None
    assert cfg["nsys_cli"]["base-32"] == "2025.3.1.0"  # run.json
    assert cfg["nsys_export"]["base-32"] == "2025.3.2.0"  # the export's own META_DATA_EXPORT
    busy = result.decode.filter(pl.col("time_base") == "busy")
    assert busy["steps"].to_list() == [31, 31]
    assert busy["step_mean_ns"][0] == pytest.approx(92740349 / 31)
    assert busy["tokens_per_s"][0] == pytest.approx(31 / 0.092740349)
    assert any("batch 1" in n for n in result.notes)


def test_launch_fields_are_read_when_present(tmp_path: Path) -> None:
    a = run_folder(tmp_path, "eager", static=False)
    b = run_folder(tmp_path, "graphs", static=False)
    for folder, fields in ((a, {"decode": "eager"}), (b, {"decode": "cuda_graph", "batch": 1})):
        record = json.loads((folder / "run.json").read_text())
        record.update(fields)
        (folder / "run.json").write_text(json.dumps(record))
    result = compare_runs([a, b], kernels=1)
    cfg = result.config.to_dicts()
    assert cfg[0] == {
        "field": "decode",
        "status": "differs",
        "eager": "eager",
        "graphs": "cuda_graph",
    }
    assert cfg[1] == {
        "field": "batch",
        "status": "not known for every run",
        "eager": None,
        "graphs": "1",
    }
    assert {r["status"] for r in cfg[2:]} == {"same"}
    assert result.rates.height == 0
    assert any("no static_compute.json" in n for n in result.notes)


def test_an_mfu_json_compares_by_totals(tmp_path: Path, folder: Path) -> None:
    from dsocr_nsys.mfu.report import analyse, write_dir

    write_dir(analyse(DSOCR, DSOCR_STATIC), tmp_path / "mfu", plots=False)
    result = compare_runs([folder, tmp_path / "mfu" / "mfu.json"])
    assert set(result.stages["verdict"]) == {NO_CHANGE}
    assert result.noise.height == 0 and result.kernels.height == 0
    assert any("no trace" in n for n in result.notes)


def test_bad_inputs(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(InputFileError, match="neither a run folder"):
        compare_runs([DSOCR, text])
    with pytest.raises(InputFileError, match=r"without trace\.sqlite"):
        compare_runs([DSOCR, tmp_path])
    with pytest.raises(InputFileError, match="not found"):
        compare_runs([DSOCR, tmp_path / "missing"])
    with pytest.raises(InputFileError, match="at least two"):
        compare_runs([DSOCR])
    with pytest.raises(StageNotFoundError, match="no stage in common"):
        compare_runs([DSOCR, BEFORE])


def test_a_sweep_compares_every_run_with_the_first() -> None:
    result = compare_runs([BEFORE, AFTER, BEFORE], top=2, kernels=2)
    labels = ["nsysai_mfu_2gpu_before", "nsysai_mfu_2gpu_after", "nsysai_mfu_2gpu_before#2"]
    assert result.labels == labels
    assert result.stages.height == 2 * len(TIME_BASES) * 2  # 2 names, every base, 2 others
    assert result.times.height == 2 * 3 and result.times["run"].to_list()[:3] == labels
    again = result.stages.filter(pl.col("run") == labels[2])
    assert set(again["verdict"]) == {NO_CHANGE} and set(again["delta_ns"]) == {0}
    assert set(result.kernels["run"]) == set(labels[1:])
