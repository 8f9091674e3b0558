"""Trace engine behaviour beyond what nsys reports: busy time, warm-up, unclosed ranges,
stages, per-stage kernels, info and bad input. All on real exports (copies in tmp_path
where a test needs a table removed or a range added)."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

from dsocr_nsys.errors import InputFileError, StageNotFoundError, TraceContentError
from dsocr_nsys.trace import GpuInfo, Trace, TraceInfo, open_trace

TRACES = Path(__file__).resolve().parent / "fixtures" / "traces"
H100 = TRACES / "h100_matmul_nvtx_nsys2025.sqlite"
TWO_GPU = TRACES / "nsysai_mfu_2gpu_before.sqlite"
SAXPY = TRACES / "pipit_saxpy_a100_nsys2022.sqlite"
DSOCR = TRACES / "dsocr_base32_h100_nsys2025.sqlite"  # DeepSeek-OCR, base mode, 32 tokens


@pytest.fixture(scope="module")
def h100() -> Iterator[Trace]:
    with open_trace(H100) as trace:
        yield trace


@pytest.fixture(scope="module")
def two_gpu() -> Iterator[Trace]:
    with open_trace(TWO_GPU) as trace:
        yield trace


def edited_copy(tmp_path: Path, source: Path, *statements: str) -> Path:
    """A copy of a real export with a few SQL statements applied (the original is untouched)."""
    target = tmp_path / source.name
    shutil.copyfile(source, target)
    con = sqlite3.connect(target)
    try:
        for sql in statements:
            con.execute(sql)
        con.commit()
    finally:
        con.close()
    return target


def union_length(intervals: list[tuple[int, int]]) -> int:
    """Test oracle: length of the union of [start, end) intervals, by a plain sweep."""
    total, cur_start, cur_end = 0, None, None
    for start, end in sorted(intervals):
        if cur_end is None or start > cur_end:
            if cur_end is not None:
                total += cur_end - cur_start
            cur_start, cur_end = start, end
        else:
            cur_end = max(cur_end, end)
    if cur_end is not None:
        total += cur_end - cur_start
    return total


@pytest.fixture(scope="module")
def dsocr() -> Iterator[Trace]:
    with open_trace(DSOCR) as trace:
        yield trace


@pytest.mark.parametrize("which", ["two_gpu", "dsocr"])
def test_busy_time_is_the_union_of_op_intervals(request: pytest.FixtureRequest, which: str) -> None:
    """Per range, GPU busy = union of its ops' intervals, checked against a plain sweep over
    the export read with sqlite3 (op attribution as nsys: same thread, call inside range)."""
    trace: Trace = request.getfixturevalue(which)
    ranges = trace.ranges(include_warmup=True).filter(pl.col("gpu_launches") > 0)
    con = sqlite3.connect(f"file:{trace.path}?mode=ro", uri=True)
    try:
        ops = con.execute(
            "SELECT r.globalTid, r.start, r.end, o.start, o.end FROM ("
            " SELECT start, end, correlationId, globalPid FROM CUPTI_ACTIVITY_KIND_KERNEL"
            " UNION ALL SELECT start, end, correlationId, globalPid FROM CUPTI_ACTIVITY_KIND_MEMCPY"
            " UNION ALL SELECT start, end, correlationId, globalPid FROM CUPTI_ACTIVITY_KIND_MEMSET"
            ") o JOIN CUPTI_ACTIVITY_KIND_RUNTIME r ON r.correlationId = o.correlationId"
            " AND o.globalPid = (r.globalTid >> 24) << 24"
        ).fetchall()
    finally:
        con.close()
    # The ranges with the most ops (nested, overlapping streams) plus a spread of others.
    sample = pl.concat(
        [ranges.sort("gpu_launches", descending=True).head(12), ranges.gather_every(97)]
    ).unique("range_id")
    for row in sample.iter_rows(named=True):
        gtid = (row["pid"] << 24) | row["tid"]
        mine = [
            (s, e)
            for tid, cs, ce, s, e in ops
            if tid & 0xFFFFFFFFFFFF == gtid and row["start_ns"] <= cs and ce <= row["end_ns"]
        ]
        assert len(mine) >= row["gpu_launches"]
        assert row["busy_ns"] == union_length(mine), row["range_id"]
        assert row["gpu_start_ns"] == min(s for s, _ in mine)


def clip_kernels() -> tuple[list[tuple[int, int, int]], int]:
    """The H100 fixture's kernels launched inside `clip` (rowid, start, end; by start) and the
    rowid of the first kernel launched after it."""
    con = sqlite3.connect(f"file:{H100}?mode=ro", uri=True)
    try:
        clip_start, clip_end = con.execute(
            "SELECT start, end FROM NVTX_EVENTS WHERE text = 'clip'"
        ).fetchone()
        kernels = con.execute(
            "SELECT k.rowid, k.start, k.end FROM CUPTI_ACTIVITY_KIND_KERNEL k"
            " JOIN CUPTI_ACTIVITY_KIND_RUNTIME r USING (correlationId)"
            " WHERE r.start >= ? AND r.end <= ? ORDER BY k.start",
            (clip_start, clip_end),
        ).fetchall()
        (after,) = con.execute(
            "SELECT min(k.rowid) FROM CUPTI_ACTIVITY_KIND_KERNEL k"
            " JOIN CUPTI_ACTIVITY_KIND_RUNTIME r USING (correlationId) WHERE r.start > ?",
            (clip_end,),
        ).fetchone()
    finally:
        con.close()
    return kernels, after


def test_busy_counts_overlap_once(tmp_path: Path) -> None:
    """Two kernels of clip overlapping on two streams of two GPUs (as a multi-stream run
    records them): busy counts the overlap once, kernel time twice; the range spans both
    devices and stages then split per device set."""
    kernels, _ = clip_kernels()
    (_, s1, e1), (id2, s2, e2) = kernels[0], kernels[1]
    shift = s2 - (s1 + 10_000)  # the second kernel now starts 10 µs into the first
    path = edited_copy(
        tmp_path,
        H100,
        f"UPDATE CUPTI_ACTIVITY_KIND_KERNEL SET start = start - {shift}, end = end - {shift},"
        f" streamId = streamId + 1, deviceId = 1 WHERE rowid = {id2}",
    )
    intervals = [(s, e) for _, s, e in kernels]
    intervals[1] = (s2 - shift, e2 - shift)
    with open_trace(path) as trace:
        clip = trace.ranges(names=["clip"]).row(0, named=True)
        stages = trace.stages()
    assert clip["busy_ns"] == union_length(intervals)
    assert clip["kernel_ns"] == sum(e - s for s, e in intervals)
    assert clip["busy_ns"] == clip["kernel_ns"] - (e1 - (s2 - shift))
    assert clip["device_ids"] == [0, 1] and clip["gpus"] == 2
    assert stages.filter(pl.col("name") == "clip")["device_ids"].to_list() == [[0, 1]]


def test_swept_busy_equals_the_sorted_union() -> None:
    """Busy time read from the device sweep (ranges alone on their GPU) equals a plain
    merge of the range's own operation intervals, for every range of every real export; the
    fixtures exercise both of the engine's paths (one stream; several streams and GPUs, where
    ranges overlap other work)."""
    swept_total = sorted_total = 0
    for path in sorted(TRACES.glob("*.sqlite")):
        with open_trace(path) as trace:
            if not trace.has_table("NVTX_EVENTS"):
                continue
            ranges = trace.ranges(include_warmup=True).filter(pl.col("gpu_ops") > 0)
            placed, sweep, ops = trace._range_ops, trace._sweep, trace._ops
        assert placed is not None and sweep is not None
        start, end, device = ops["start_ns"].tolist(), ops["end_ns"].tolist(), ops["device_id"]
        expected = {}
        for i, range_id in enumerate(placed.range_id.tolist()):
            members = placed.members[placed.thread[i]][placed.lo[i] : placed.hi[i]]
            expected[range_id] = union_length(
                [(start[m], max(start[m], end[m])) for m in members.tolist()]
            )
            pos = sweep.pos[members]
            one_gpu = len(set(device[members].tolist())) == 1
            if one_gpu and pos.max() - pos.min() + 1 == len(pos) and sweep.opens[pos.min()]:
                swept_total += 1
            else:
                sorted_total += 1
        for range_id, members in placed.explicit.items():
            expected[range_id] = union_length(
                [(start[m], max(start[m], end[m])) for m in members.tolist()]
            )
        assert dict(zip(ranges["range_id"], ranges["busy_ns"], strict=True)) == expected, path
    assert swept_total > 1000 and sorted_total > 0, (swept_total, sorted_total)


def test_busy_with_other_work_on_the_same_gpu(tmp_path: Path) -> None:
    """A kernel launched after clip is moved to run inside clip's GPU span on the same device
    (as another thread's or stream's work would): clip's busy time is still the union of its
    own kernels only (the sweep does not apply there, the sorted union does)."""
    kernels, other = clip_kernels()
    mine = [(start, end) for _, start, end in kernels]
    at = mine[0][1] - 1_000  # from 1 µs before clip's first kernel ends, for 5 µs
    path = edited_copy(
        tmp_path,
        H100,
        f"UPDATE CUPTI_ACTIVITY_KIND_KERNEL SET start = {at}, end = {at + 5_000}"
        f" WHERE rowid = {other}",
    )
    with open_trace(path) as trace:
        clip = trace.ranges(names=["clip"]).row(0, named=True)
    assert len(mine) >= 2 and clip["kernels"] == len(mine)
    assert clip["busy_ns"] == union_length(mine)


def test_launches_recorded_twice_in_a_schema3_export(tmp_path: Path) -> None:
    """An export with META_DATA_EXPORT whose runtime table still holds every launch twice (the
    call and a nested versioned entry, as nsys 2022 wrote them) gives the same stages as the
    real file: the doubling is detected and merged, never counted twice."""
    path = edited_copy(
        tmp_path,
        H100,
        "INSERT INTO CUPTI_ACTIVITY_KIND_RUNTIME "
        "(start, end, eventClass, globalTid, correlationId, nameId, returnValue, callchainId) "
        "SELECT start + 1, end - 1, eventClass, globalTid, correlationId, nameId, returnValue, "
        "callchainId FROM CUPTI_ACTIVITY_KIND_RUNTIME WHERE correlationId IN "
        "(SELECT correlationId FROM CUPTI_ACTIVITY_KIND_KERNEL)",
    )
    with open_trace(H100) as real, open_trace(path) as doubled:
        assert doubled.has_table("META_DATA_EXPORT")
        assert doubled.stages().equals(real.stages())
        assert doubled.kernels(stage="clip").equals(real.kernels(stage="clip"))


def test_deepseek_ocr_stages(dsocr: Trace) -> None:
    """The real DeepSeek-OCR run: warm-up left out, stages in pipeline order, payloads kept."""
    stages = dsocr.stages()
    assert stages["name"].to_list() == ["request", "prefill", "sam", "clip", "projector", "decode"]
    decode = stages.row(5, named=True)
    assert decode["instances"] == decode["gpu_instances"] == 31  # 32 tokens, first from prefill
    assert decode["proj_total_ns"] == 1089346271  # nsys nvtx_gpu_proj_sum
    assert decode["gpu_launches"] == 35526
    assert decode["busy_min_ns"] <= decode["busy_median_ns"] <= decode["busy_p90_ns"]
    assert decode["busy_p90_ns"] <= decode["busy_max_ns"]
    every = dsocr.stages(include_warmup=True)
    assert every["name"].to_list()[0] == "warmup"
    ranges = dsocr.ranges()
    assert ranges.filter(pl.col("name") == "prefill")["payload"].to_list() == [282]
    assert ranges.filter(pl.col("name") == "decode")["payload"].to_list() == list(range(283, 314))
    assert set(ranges["domain"]) == {"dsocr"}
    nested = ranges.filter(pl.col("name").is_in(["sam", "clip", "projector"]))
    prefill_id = ranges.filter(pl.col("name") == "prefill")["range_id"][0]
    assert (
        nested["parent_id"].to_list() == [prefill_id] * 3 and nested["level"].to_list() == [2] * 3
    )
    # prefill and the decode steps are disjoint children of the request: its busy time holds
    # theirs (plus the gaps' few ops launched between them), and never exceeds its span.
    busy = dict(zip(stages["name"], stages["busy_total_ns"], strict=True))
    assert busy["request"] >= busy["prefill"] + busy["decode"]
    assert busy["prefill"] >= busy["sam"] + busy["clip"] + busy["projector"]
    assert (stages["busy_total_ns"] <= stages["proj_total_ns"]).all()


def test_ranges_columns_and_nesting(h100: Trace) -> None:
    ranges = h100.ranges()
    assert ranges["name"].to_list() == ["sam", "clip", "prefill"]
    assert ranges["domain"].to_list() == [None, None, None]
    assert ranges["style"].to_list() == ["PushPop"] * 3
    assert ranges["level"].to_list() == [0, 0, 0]
    assert ranges["kernels"].to_list() == [5, 5, 5]
    assert ranges["device_ids"].to_list() == [[0], [0], [0]]
    assert ranges["cpu_ns"].to_list() == [107665044, 169567, 144388]  # nsys nvtx_sum
    assert not ranges["in_warmup"].any()
    assert ranges["payload"].null_count() == 3


def test_ranges_name_filter_and_unknown_name(h100: Trace) -> None:
    assert h100.ranges(names=["clip"])["name"].to_list() == ["clip"]
    with pytest.raises(StageNotFoundError, match=r"decode.*known names: sam, clip, prefill"):
        h100.ranges(names=["decode"])


def test_domains_from_textid_and_inline_text() -> None:
    """nsys 2022 export: MPI ranges in a named domain via textId, saxpy inline in default."""
    with open_trace(SAXPY) as trace:
        ranges = trace.ranges(include_warmup=True)
    named = ranges.filter(pl.col("domain") == "MPI")
    assert set(named["name"]) >= {"MPI_Init", "MPI_Send", "MPI_Recv", "MPI_Finalize"}
    saxpy = ranges.filter(pl.col("name") == "saxpy")
    assert saxpy.height == 5 and saxpy["domain"].null_count() == 5
    assert saxpy["gpu_launches"].to_list() == [1] * 5  # two runtime rows per launch, one op


def test_stages_h100(h100: Trace) -> None:
    stages = h100.stages()
    assert stages["name"].to_list() == ["sam", "clip", "prefill"]
    sam = stages.row(0, named=True)
    assert sam["instances"] == 1 and sam["gpu_instances"] == 1
    assert sam["proj_total_ns"] == 770791  # nsys nvtx_gpu_proj_sum Total Proj Time
    assert sam["kernel_total_ns"] == 120192  # nsys nvtx_kern_sum Total Time
    assert sam["busy_total_ns"] == 120192  # one stream, kernels back to back
    assert sam["idle_total_ns"] == 770791 - 120192
    assert sam["cpu_total_ns"] == 107665044
    assert sam["first_start_ns"] == 5597768374
    assert sam["first_gpu_start_ns"] == 5704662332
    # Every kernel of the trace but the setup one lies in a stage: shares add up accordingly.
    whole = h100.kernels()["total_ns"].sum()
    assert stages["gpu_pct"].sum() == pytest.approx(100 * (whole - 12608) / whole)
    expected = {f"{x}_{s}_ns" for x in ("proj", "busy", "kernel", "cpu", "idle")
                for s in ("total", "mean", "median", "min", "max", "p90")}  # fmt: skip
    assert expected <= set(stages.columns)


def test_stages_split_per_process(two_gpu: Trace) -> None:
    """Two processes (one GPU each): one row per (stage, process), device set per row."""
    stages = two_gpu.stages()
    assert set(stages["pid"].drop_nulls()) == set(two_gpu.ranges()["pid"])
    per = stages.group_by("name").agg(pl.col("pid").n_unique().alias("n"))
    assert per["n"].max() == 2
    with_gpu = stages.filter(pl.col("gpu_instances") > 0)
    assert (with_gpu["device_ids"].list.len() == 1).all()
    assert with_gpu["busy_total_ns"].sum() > 0


def test_stages_stats_match_ranges(two_gpu: Trace) -> None:
    """Stage aggregates are the aggregates of the range table (mean, median, p90, min, max)."""
    stages = two_gpu.stages(names=["ncclGroupEnd"])  # 66 instances, in two processes
    ranges = two_gpu.ranges(names=["ncclGroupEnd"])
    assert stages.height == 2
    for row in stages.iter_rows(named=True):
        mine = ranges.filter(pl.col("pid") == row["pid"])
        busy = mine["busy_ns"].drop_nulls()
        assert row["instances"] == mine.height
        assert row["gpu_instances"] == busy.len() <= mine.height
        assert row["gpu_launches"] == mine["gpu_launches"].sum()
        assert row["busy_total_ns"] == busy.sum()
        assert row["busy_median_ns"] == pytest.approx(busy.median())
        assert row["busy_p90_ns"] == pytest.approx(busy.quantile(0.9, "linear"))
        assert row["busy_min_ns"] == busy.min() and row["busy_max_ns"] == busy.max()
        assert row["cpu_mean_ns"] == pytest.approx(mine["cpu_ns"].mean())


def test_stages_by_domain_names_like_nsys() -> None:
    with open_trace(SAXPY) as trace:
        names = trace.stages(by="domain")["name"].to_list()
    assert ":saxpy" in names and "MPI:MPI_Init" in names


def test_stage_kernels(h100: Trace) -> None:
    sam = h100.kernels(stage="sam")
    assert sam.height == 1
    row = sam.row(0, named=True)
    assert row["short_name"] == "nvjet_sm90_tst_256x128_64x4_1x2_h_bz_coopA_NNT"
    # nsys nvtx_kern_sum row for :sam
    assert (row["instances"], row["total_ns"], row["min_ns"], row["max_ns"]) == (
        5,
        120192,
        23744,
        24352,
    )
    assert row["share_pct"] == pytest.approx(100.0)
    with pytest.raises(StageNotFoundError, match="'decode'"):
        h100.kernels(stage="decode")


def test_kernels_top(two_gpu: Trace) -> None:
    top = two_gpu.kernels(top=3)
    assert top.height == 3
    assert top["share_pct"].sum() < 100.0


def test_warmup_ranges_left_out(tmp_path: Path) -> None:
    """A `warmup` range around sam and clip (same thread) hides both unless asked."""
    path = edited_copy(
        tmp_path,
        H100,
        "INSERT INTO NVTX_EVENTS (start, end, eventType, text, globalTid, domainId)"
        " SELECT min(start) - 10, (SELECT end FROM NVTX_EVENTS WHERE text = 'clip') + 10,"
        " 59, 'warmup', globalTid, domainId FROM NVTX_EVENTS WHERE text = 'sam'",
    )
    with open_trace(path) as trace:
        assert trace.stages()["name"].to_list() == ["prefill"]
        every = trace.stages(include_warmup=True)
        assert every["name"].to_list() == ["warmup", "sam", "clip", "prefill"]
        ranges = trace.ranges(include_warmup=True)
        warm = ranges.filter(pl.col("name") == "warmup").row(0, named=True)
        assert warm["gpu_launches"] == 10 and warm["level"] == 0
        nested = ranges.filter(pl.col("name").is_in(["sam", "clip"]))
        assert nested["level"].to_list() == [1, 1]
        assert nested["parent_id"].to_list() == [warm["range_id"]] * 2
        assert nested["in_warmup"].all()
        with pytest.raises(StageNotFoundError):
            trace.kernels(stage="nothing")
        assert trace.kernels(stage="sam").height == 0  # its only instance is warm-up
        assert trace.kernels(stage="sam", include_warmup=True)["instances"].sum() == 5


def test_unclosed_range_ends_at_trace_end(tmp_path: Path) -> None:
    path = edited_copy(tmp_path, H100, "UPDATE NVTX_EVENTS SET end = NULL WHERE text = 'prefill'")
    with open_trace(path) as trace:
        prefill = trace.ranges(names=["prefill"]).row(0, named=True)
        info = trace.info()
    assert prefill["unclosed"]
    assert prefill["end_ns"] == info.last_ns
    assert prefill["gpu_launches"] == 5 and prefill["proj_ns"] == 137409


def test_info_h100(h100: Trace) -> None:
    info = h100.info()
    assert isinstance(info, TraceInfo)
    assert info.exporter_version == "2025.3.2.0" and info.schema_version == "3.20.3"
    assert info.gpus == [
        GpuInfo(
            id=0,
            name="NVIDIA H100 80GB HBM3",
            sm_count=132,
            clock_hz=1_980_000_000,
            memory_bandwidth_bps=3_352_320_000_000,
            memory_bytes=85_017_493_504,
        )
    ]
    assert (info.nvtx_ranges, info.kernels, info.runtime_calls) == (3, 16, 1027)
    assert info.memcpy is None and info.memset is None  # tables absent
    assert info.duration_ns == info.last_ns - info.first_ns > 0


def test_info_2022_export_meta_data() -> None:
    with open_trace(SAXPY) as trace:
        info = trace.info()
    assert info.exporter_version == "2022.2.1.31" and info.schema_version == "2.9.1"
    assert info.gpus[0].name == "NVIDIA A100-SXM4-40GB" and info.gpus[0].sm_count == 108
    assert info.kernels == 5 and info.nvtx_ranges == 22


def test_info_four_gpus_no_nvtx() -> None:
    with open_trace(TRACES / "pipit_cloverleaf_a100_nsys2024.sqlite") as trace:
        info = trace.info()
    assert [g.id for g in info.gpus] == [0, 1, 2, 3]
    assert {g.memory_bandwidth_bps for g in info.gpus} == {2_039_040_000_000}
    assert info.nvtx_ranges is None and info.kernels == 1312


def test_info_without_target_info_gpu(two_gpu: Trace) -> None:
    info = two_gpu.info()
    assert info.gpus == []  # TARGET_INFO_GPU missing: not an error
    assert info.exporter_version == "2026.2.1.210"
    assert info.kernels == 4010


# --- bad input -----------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="no such file"):
        open_trace(tmp_path / "nope.sqlite")


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match=r"folder without \.parquet files"):
        open_trace(tmp_path)


def test_not_sqlite(tmp_path: Path) -> None:
    text = tmp_path / "trace.sqlite"
    text.write_text("hello\n")
    with pytest.raises(InputFileError, match="not an SQLite file"):
        open_trace(text)


def test_truncated(tmp_path: Path) -> None:
    data = H100.read_bytes()
    cut = tmp_path / "cut.sqlite"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputFileError, match="truncated"):
        open_trace(cut)


def test_sqlite_but_not_nsys(tmp_path: Path) -> None:
    other = tmp_path / "other.sqlite"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE x (a INTEGER)")
    con.commit()
    con.close()
    with pytest.raises(TraceContentError, match="not an Nsight Systems export"):
        open_trace(other)


def test_no_nvtx_table() -> None:
    with open_trace(TRACES / "nsysai_mock.sqlite") as trace:
        with pytest.raises(TraceContentError, match=r"no NVTX_EVENTS table.*-t cuda,nvtx"):
            trace.stages()
        assert trace.kernels().height == 2  # whole-trace kernels need no NVTX
        assert trace.info().kernels == 2


def test_no_kernel_table(tmp_path: Path) -> None:
    path = edited_copy(tmp_path, H100, "DROP TABLE CUPTI_ACTIVITY_KIND_KERNEL")
    with open_trace(path) as trace:
        with pytest.raises(TraceContentError, match="no CUDA kernels"):
            trace.stages()
        with pytest.raises(TraceContentError, match="no CUDA kernels"):
            trace.kernels()
        info = trace.info()
    assert info.kernels is None and info.nvtx_ranges == 3


def test_input_never_changed(tmp_path: Path) -> None:
    import hashlib

    path = tmp_path / H100.name
    shutil.copyfile(H100, path)
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    mtime = path.stat().st_mtime_ns
    with open_trace(path) as trace:
        trace.stages()
        trace.kernels(stage="sam")
        trace.info()
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    assert path.stat().st_mtime_ns == mtime
    assert sorted(p.name for p in tmp_path.iterdir()) == [H100.name]  # no journal left


def test_damaged_pages(tmp_path: Path) -> None:
    """Garbage in the data pages of a complete-looking file: one clear error, no traceback."""
    data = bytearray(TWO_GPU.read_bytes())
    for offset in range(len(data) // 2, len(data) - 4096, 8192):
        data[offset + 100 : offset + 2048] = b"\x07" * 1948
    damaged = tmp_path / "damaged.sqlite"
    damaged.write_bytes(bytes(data))
    with (
        pytest.raises(InputFileError, match=r"damaged or unreadable|cannot be read"),
        open_trace(damaged) as trace,
    ):
        trace.stages()


def test_results_larger_than_one_chunk_keep_their_order() -> None:
    # 16,782 ranges, one name each: results span many 2,048-row chunks, which DuckDB's Arrow
    # export reorders unless preserve_insertion_order is on while a frame is built.
    with open_trace(TRACES / "nsysai_h100_2gpu_1s.sqlite") as tr:
        ranges = tr.ranges(include_warmup=True)
        stages = tr.stages(include_warmup=True)
    assert ranges.height > 4 * 2048
    keys = list(zip(ranges["start_ns"], ranges["range_id"], strict=True))
    assert keys == sorted(keys)
    order = list(zip(stages["first_start_ns"], stages["name"], strict=True))
    assert stages.height > 4 * 2048 and order == sorted(order)


@pytest.mark.parametrize("path", [H100, TRACES / "cudagraph_decode_h200_node_nsys2025_parquet"])
def test_no_progress_bar_on_stdout(path: Path) -> None:
    """DuckDB's progress bar (drawn on stdout for queries over 2 s, as on large exports) is
    off, so a command's stdout holds only its report."""
    with open_trace(path) as trace:
        (on,) = trace._con.execute("SELECT current_setting('enable_progress_bar')").fetchone()
    assert on is False
