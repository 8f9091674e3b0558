"""CUDA-graph work: the engine on the two real H200 traces of one program
(tests/fixtures/programs/cuda_graph_decode.py), recorded with ``--cuda-graph-trace=graph``
(whole-graph records, no graph kernels) and ``=node`` (every graph kernel). See
docs/trace-engine.md, "CUDA graphs". Node-mode numbers equal ``nsys stats`` (the goldens in
test_trace_golden.py); graph-mode numbers, where nsys is wrong, equal an independent reading
of the raw tables here.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner
from test_trace_engine import union_length  # the same sweep oracle

from dsocr_nsys.cli import cli
from dsocr_nsys.trace import Trace, open_trace

TRACES = Path(__file__).resolve().parent / "fixtures" / "traces"
GRAPH = TRACES / "cudagraph_decode_h200_graph_nsys2025.sqlite"
NODE = TRACES / "cudagraph_decode_h200_node_nsys2025.sqlite"
GOLDEN = TRACES / "golden"
STEPS = 48  # decode ranges, one graph replay each (the program's default --steps)


@pytest.fixture(scope="module")
def graph() -> Iterator[Trace]:
    with open_trace(GRAPH) as trace:
        yield trace


@pytest.fixture(scope="module")
def node() -> Iterator[Trace]:
    with open_trace(NODE) as trace:
        yield trace


def raw_decode_ops(path: Path) -> dict[int, list[tuple[int, int]]]:
    """Independent reading with sqlite3: for each `decode` NVTX range, the (start, end) of every
    GPU operation (kernel, memcpy, memset, whole-graph record) whose launch call lies inside the
    range on the range's thread."""
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    op_tables = [
        t
        for t in (
            "CUPTI_ACTIVITY_KIND_KERNEL",
            "CUPTI_ACTIVITY_KIND_MEMCPY",
            "CUPTI_ACTIVITY_KIND_MEMSET",
            "CUPTI_ACTIVITY_KIND_GRAPH_TRACE",
        )
        if t in tables
    ]
    ops = " UNION ALL ".join(f'SELECT start, "end", correlationId FROM {t}' for t in op_tables)
    rows = con.execute(
        f"""SELECT e.rowid, o.start, o."end"
            FROM NVTX_EVENTS e JOIN StringIds s ON s.id = e.textId
            JOIN CUPTI_ACTIVITY_KIND_RUNTIME r
              ON r.globalTid = e.globalTid AND r.start >= e.start AND r."end" <= e."end"
            JOIN ({ops}) o ON o.correlationId = r.correlationId
            WHERE s.value = 'decode'"""
    ).fetchall()
    out: dict[int, list[tuple[int, int]]] = {}
    for range_id, start, end in rows:
        out.setdefault(range_id, []).append((start, end))
    return out


def raw_graph_records(path: Path) -> list[tuple[int, int]]:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    return con.execute(
        'SELECT start, "end" FROM CUPTI_ACTIVITY_KIND_GRAPH_TRACE ORDER BY start'
    ).fetchall()


def test_graph_mode_ranges_equal_raw_reading(graph: Trace) -> None:
    """Each decode range's busy and projected time: the union and the span of its graph record
    and its eager kernel, to the ns."""
    raw = raw_decode_ops(GRAPH)
    ours = graph.ranges(names=["decode"])
    assert ours.height == len(raw) == STEPS
    for row in ours.iter_rows(named=True):
        mine = raw[row["range_id"]]
        assert row["busy_ns"] == union_length(mine)
        assert row["proj_ns"] == max(e for _, e in mine) - min(s for s, _ in mine)
        assert row["idle_ns"] == row["proj_ns"] - row["busy_ns"]
        assert row["graph_launches"] == 1 and row["kernels"] == 1
        assert row["gpu_ops"] == 2 and row["gpu_launches"] == 2


def test_graph_mode_stage_totals(graph: Trace) -> None:
    records = raw_graph_records(GRAPH)
    assert len(records) == STEPS
    raw = raw_decode_ops(GRAPH)
    decode = graph.stages(names=["decode"]).row(0, named=True)
    assert decode["graph_launches"] == STEPS
    assert decode["graph_total_ns"] == sum(e - s for s, e in records) == 10_717_925
    assert decode["busy_total_ns"] == sum(union_length(v) for v in raw.values()) == 10_862_309
    assert decode["proj_total_ns"] == 30_628_045
    # The kernel base holds the eager kernels only: graph records have no kernels.
    assert decode["kernel_total_ns"] == decode["busy_total_ns"] - decode["graph_total_ns"]


def test_graph_mode_nsys_sees_only_the_eager_kernel(graph: Trace) -> None:
    """nsys stats ignores whole-graph records: its decode projection is the eager argmax
    kernel alone (3 us a step, 1 GPU op), which is our kernel base; our busy time is 75x that."""
    gold = pl.read_csv(GOLDEN / f"{GRAPH.stem}_nvtx_gpu_proj_sum.csv", infer_schema_length=0)
    row = gold.filter(pl.col("Range") == "dsocr:decode").row(0, named=True)
    decode = graph.stages(names=["decode"]).row(0, named=True)
    assert int(row["Total GPU Ops"]) == STEPS == decode["kernels"]
    assert int(row["Total Proj Time (ns)"]) == decode["kernel_total_ns"] == 144_384
    assert decode["busy_total_ns"] > 75 * decode["kernel_total_ns"]


def test_node_mode_counts_read_right(node: Trace) -> None:
    """One launch per step (nsys NumGPUOps: graph launch + argmax = 2), 126 operations run."""
    ranges = node.ranges(include_warmup=True)
    assert (ranges["gpu_ops"] >= ranges["kernels"]).all()
    decode = node.stages(names=["decode"]).row(0, named=True)
    assert decode["gpu_launches"] == 2 * STEPS
    assert decode["gpu_ops"] == decode["kernels"] == STEPS * 126
    assert decode["graph_launches"] == 0 and decode["graph_total_ns"] == 0


def test_graph_and_node_decode_busy_agree_within_node_overhead(graph: Trace, node: Trace) -> None:
    """The two traces of one program: decode busy time differs by less than node tracing
    stretched the graph executions (the node kernels' span per launch minus the graph records'
    duration, 19.5 us of 223 us a replay: docs/trace-engine.md)."""
    con = sqlite3.connect(f"file:{NODE}?mode=ro", uri=True)
    spans = con.execute(
        'SELECT max("end") - min(start) FROM CUPTI_ACTIVITY_KIND_KERNEL '
        "WHERE graphNodeId IS NOT NULL GROUP BY correlationId"
    ).fetchall()
    records = raw_graph_records(GRAPH)
    overhead_ns = sum(s[0] for s in spans) - sum(e - s for s, e in records)
    assert len(spans) == STEPS and overhead_ns == 934_464
    busy_graph = graph.stages(names=["decode"])["busy_total_ns"][0]
    busy_node = node.stages(names=["decode"])["busy_total_ns"][0]
    assert abs(busy_graph - busy_node) <= overhead_ns
    assert abs(busy_graph - busy_node) / busy_node < 0.07


def test_kernels_stage_on_graph_trace_says_kernels_not_traced() -> None:
    result = CliRunner().invoke(cli, ["kernels", str(GRAPH), "--stage", "decode", "-f", "md"])
    assert result.exit_code == 0, result.output
    lines = [ln for ln in result.output.splitlines() if "--cuda-graph-trace=node" in ln]
    assert len(lines) == 1 and "48 CUDA-graph launches" in lines[0]
    assert "kernels were not traced" in lines[0]
    node = CliRunner().invoke(cli, ["kernels", str(NODE), "--stage", "decode", "-f", "md"])
    assert node.exit_code == 0 and "--cuda-graph-trace" not in node.output


def test_stages_cli_on_graph_trace_names_the_graph_time() -> None:
    result = CliRunner().invoke(cli, ["stages", str(GRAPH), "-f", "json"])
    assert result.exit_code == 0, result.output
    assert "10.718 ms on the GPU" in result.output and "--cuda-graph-trace=node" in result.output


def test_program_is_committed() -> None:
    program = Path(__file__).resolve().parent / "fixtures" / "programs" / "cuda_graph_decode.py"
    text = program.read_text()
    assert "torch.cuda.CUDAGraph" in text and 'DOMAIN = "dsocr"' in text


def test_mfu_says_the_kernel_base_lacks_the_graphs(tmp_path: Path) -> None:
    """The kernel-sum base holds no whole-graph records: `mfu` says so, with the figures."""
    static = Path(__file__).resolve().parent / "fixtures" / "static" / "h100_matmul.json"
    out = tmp_path / "mfu"
    args = ["mfu", str(GRAPH), "--static", str(static), "--allow-mismatch"]
    result = CliRunner().invoke(cli, [*args, "-o", str(out)])
    assert result.exit_code == 0, result.output
    notes = [n for n in json.loads((out / "mfu.json").read_text())["notes"] if "CUDA-graph" in n]
    assert notes == [
        "48 CUDA-graph launches in decode were traced as whole graphs (10.718 ms): counted in "
        "busy and proj, not in kernel time, whose MFU is therefore too high there; profile with "
        "--cuda-graph-trace=node for the kernel base"
    ]
