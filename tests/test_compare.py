"""`dsocr_nsys.compare` on real exports: per-stage deltas equal the difference of the two
`Trace.stages()` results to the ns, a run against itself changes nothing, and MFU, decode
and configuration come from the run folder's files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import polars as pl
import pytest
from compare_helpers import AFTER, BEFORE, DSOCR, DSOCR_STATIC, MATMUL, TRACES, run_folder

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
    with pytest.raises(InputFileError, match=r"without trace\.sqlite or \.parquet files"):
        compare_runs([DSOCR, tmp_path])
    with pytest.raises(InputFileError, match="not found"):
        compare_runs([DSOCR, tmp_path / "missing"])
    with pytest.raises(InputFileError, match="at least two"):
        compare_runs([DSOCR])
    with pytest.raises(StageNotFoundError, match="no stage in common"):
        compare_runs([DSOCR, BEFORE])


def test_parquet_exports_compare_as_their_sqlite_twins() -> None:
    """A Parquet folder is an export like its SQLite twin: the same rows, run labels aside."""
    graph, node = "cudagraph_decode_h200_graph_nsys2025", "cudagraph_decode_h200_node_nsys2025"
    sqlite = compare_runs([TRACES / f"{graph}.sqlite", TRACES / f"{node}.sqlite"])
    parquet = compare_runs([TRACES / f"{graph}_parquet", TRACES / f"{node}_parquet"])
    renamed = dict(zip(parquet.labels, sqlite.labels, strict=True))
    for table in ("stages", "times", "kernels"):
        ours = getattr(parquet, table).with_columns(pl.col("run").replace(renamed))
        assert ours.equals(getattr(sqlite, table)), table


def test_a_sweep_compares_every_run_with_the_first() -> None:
    result = compare_runs([BEFORE, AFTER, BEFORE], top=2, kernels=2)
    labels = ["nsysai_mfu_2gpu_before", "nsysai_mfu_2gpu_after", "nsysai_mfu_2gpu_before#2"]
    assert result.labels == labels
    assert result.stages.height == 2 * len(TIME_BASES) * 2  # 2 names, every base, 2 others
    assert result.times.height == 2 * 3 and result.times["run"].to_list()[:3] == labels
    again = result.stages.filter(pl.col("run") == labels[2])
    assert set(again["verdict"]) == {NO_CHANGE} and set(again["delta_ns"]) == {0}
    assert set(result.kernels["run"]) == set(labels[1:])


# --- eager vs CUDA-graph decode (the H200 base-16 exports; issue 13's DeepSeek-OCR pair) ---

STATIC = TRACES.parent / "static"
H200_RUNS = {
    "eager": "dsocr_base16_eager_h200",
    "cuda-graph": "dsocr_base16_cudagraph_h200",
}


def _h200_folder(where: Path, variant: str) -> Path:
    """A run folder of one H200 export: trace.sqlite, its run.json, its static file."""
    stem = H200_RUNS[variant]
    folder = where / variant
    folder.mkdir()
    (folder / "trace.sqlite").symlink_to(TRACES / f"{stem}_nsys2025.sqlite")
    shutil.copyfile(TRACES / f"{stem}_nsys2025.run.json", folder / "run.json")
    shutil.copyfile(STATIC / f"{stem}.json", folder / "static_compute.json")
    return folder


@pytest.fixture(scope="module")
def eager_vs_graph(tmp_path_factory: pytest.TempPathFactory):
    where = tmp_path_factory.mktemp("h200")
    eager, graph = _h200_folder(where, "eager"), _h200_folder(where, "cuda-graph")
    return eager, graph, compare_runs([eager, graph])


def test_eager_vs_cuda_graph_deltas_equal_the_difference_of_stages(eager_vs_graph) -> None:
    """Every per-stage delta is the CUDA-graph run's Trace.stages() total minus the eager
    run's, to the ns (vision: the sum of its parts; llm_prefill: prefill minus them)."""
    eager, graph, result = eager_vs_graph
    assert result.mode == STAGES_MODE and result.labels == ["eager", "cuda-graph"]
    a, b = (
        _stage_totals(eager / "trace.sqlite", False),
        _stage_totals(graph / "trace.sqlite", False),
    )

    def total(t: dict[str, dict[str, int]], stage: str, key: str) -> int:
        if stage == "vision":
            return sum(t[p][key] for p in VISION_PARTS)
        if stage == "llm_prefill":
            return t["prefill"][key] - sum(t[p][key] for p in VISION_PARTS)
        return t[stage][key]

    rows = result.stages.to_dicts()
    assert {r["stage"] for r in rows} == set(STAGE_ORDER)
    for row in rows:
        key = time_base(row["time_base"]).total
        assert row["baseline_ns"] == total(a, row["stage"], key), row
        assert row["value_ns"] == total(b, row["stage"], key), row
        assert row["delta_ns"] == row["value_ns"] - row["baseline_ns"]
        assert isinstance(row["delta_ns"], int)
    assert len(rows) == len(STAGE_ORDER) * len(TIME_BASES)
    cfg = {r["field"]: r for r in result.config.to_dicts()}
    assert (cfg["decode"]["eager"], cfg["decode"]["cuda-graph"]) == ("eager", "cuda-graph")
    assert cfg["peak"]["status"] == "same"
    assert cfg["peak"]["eager"] == "989 TFLOP/s, 4,800 GB/s (H200)"


def test_eager_vs_cuda_graph_decode_is_faster_outside_the_noise(eager_vs_graph) -> None:
    """15 decode steps a run: the graph's per-step median is faster on every time base, the
    bootstrap interval wholly above 1; one-instance stages have no noise estimate."""
    _eager, _graph, result = eager_vs_graph
    decode = result.stages.filter(pl.col("stage") == DECODE)
    assert decode["verdict"].to_list() == ["faster"] * len(TIME_BASES)
    assert set(decode["instances"]) == set(decode["baseline_instances"]) == {15}
    noise = result.noise.filter(pl.col("stage") == DECODE)
    assert noise["outside_noise"].all() and (noise["ci_low"] > 1).all()
    sam = result.stages.filter(pl.col("stage") == "sam")
    assert set(sam["verdict"]) == {"changed, noise unknown"}
    # GPU busy per step: 2.870 ms eager, 2.305 ms replayed (medians of the 15 steps)
    busy = noise.filter(pl.col("time_base") == BUSY).row(0, named=True)
    assert (
        round(busy["baseline_median_ns"] / 1e3) == 2870 and round(busy["median_ns"] / 1e3) == 2305
    )


def test_eager_vs_cuda_graph_kernels_that_vanish_and_appear(eager_vs_graph) -> None:
    """In decode, a kernel is `vanished` when only the eager run's decode launched it,
    `appeared` when only the graph's did: checked against each trace's own decode kernels."""
    eager, graph, result = eager_vs_graph
    assert result.kernel_scope == DECODE
    with open_trace(eager / "trace.sqlite") as tr:
        before = {r["name"]: r for r in tr.kernels(stage=DECODE, top=100_000).to_dicts()}
    with open_trace(graph / "trace.sqlite") as tr:
        after = {r["name"]: r for r in tr.kernels(stage=DECODE, top=100_000).to_dicts()}
    kernels = result.kernels.to_dicts()
    vanished = [k for k in kernels if k["status"] == "vanished"]
    appeared = [k for k in kernels if k["status"] == "appeared"]
    assert vanished and appeared
    for k in vanished:
        assert k["name"] in before and k["name"] not in after
        assert k["baseline_ns"] == before[k["name"]]["total_ns"] and k["value_ns"] is None
    for k in appeared:
        assert k["name"] in after and k["name"] not in before
        assert k["value_ns"] == after[k["name"]]["total_ns"] and k["baseline_ns"] is None
    names = {k["short_name"] for k in vanished + appeared}
    # eager's skinny GEMM is gone; the graph's device-side MoE routing (sort, index) is new
    assert "nvjet_sm90_tst_8x64_64x16_4x1_v_bz_TNN" in names
    assert {"radixSortKVInPlace", "indexFuncSmallIndex"} <= names


def test_eager_vs_cuda_graph_plot_names_runs_gpu_and_peak(eager_vs_graph) -> None:
    from dsocr_nsys.compare.plot import suptitle

    assert suptitle(eager_vs_graph[2]) == (
        "cuda-graph against eager · NVIDIA H200 · peak 989 TFLOP/s, 4,800 GB/s (H200)"
    )
