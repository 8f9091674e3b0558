"""The two H200 runs of the decode variants (tests/fixtures/traces/dsocr_base16_*_h200_*):
base mode, 16 new tokens, one warm-up, batch 1; eager with the loop MoE and ``--decode
cuda-graph`` (made by launch/gpu_variants.sh, 2026-12-01). What they show -- the decode step's
GPU idle share with and without CUDA graphs -- pinned to an independent reading of the raw
tables, nsys' own projected times (goldens), and ``mfu``'s refusal of a static file of the
other variant."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from dsocr_nsys.errors import ConfigMismatchError
from dsocr_nsys.mfu.report import analyse
from dsocr_nsys.trace import open_trace

FIXTURES = Path(__file__).resolve().parent / "fixtures"
TRACES = FIXTURES / "traces"
RUNS = {
    "eager": "dsocr_base16_eager_h200_nsys2025",
    "cudagraph": "dsocr_base16_cudagraph_h200_nsys2025",
}
PREFILL = 282  # base mode, the A4 page: BOS + 273 image tokens + 8 text tokens
STEPS = 15


def _static(kind: str) -> Path:
    return FIXTURES / "static" / f"dsocr_base16_{kind}_h200.json"


def _raw_decode(path: Path) -> list[tuple[int, int, int]]:
    """Per timed ``decode`` range, from the raw tables: (payload, GPU busy ns, GPU span ns).
    GPU work of a range = kernels, copies and memsets whose runtime call (same thread) started
    inside it; busy = the union of their intervals."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    ranges = db.execute(
        """SELECT e.start, e."end", e.globalTid, e.int64Value FROM NVTX_EVENTS e
           LEFT JOIN StringIds s ON s.id = e.textId
           WHERE e.eventType = 59 AND coalesce(s.value, e.text) = 'decode' ORDER BY e.start"""
    ).fetchall()
    request = db.execute(
        """SELECT e.start, e."end" FROM NVTX_EVENTS e LEFT JOIN StringIds s ON s.id = e.textId
           WHERE e.eventType = 59 AND coalesce(s.value, e.text) = 'request'"""
    ).fetchone()
    ops = []
    for table in ("KERNEL", "MEMCPY", "MEMSET"):
        ops += db.execute(
            f"""SELECT r.start, r.globalTid, g.start, g."end" FROM CUPTI_ACTIVITY_KIND_{table} g
                JOIN CUPTI_ACTIVITY_KIND_RUNTIME r ON r.correlationId = g.correlationId"""
        ).fetchall()
    db.close()
    out = []
    for start, end, tid, payload in ranges:
        if not request[0] <= start <= request[1]:
            continue  # the warm-up request's steps
        spans = sorted((gs, ge) for rs, rt, gs, ge in ops if rt == tid and start <= rs <= end)
        busy, cur_s, cur_e = 0, None, None
        for gs, ge in spans:
            if cur_e is None or gs > cur_e:
                busy += (cur_e - cur_s) if cur_e is not None else 0
                cur_s, cur_e = gs, ge
            else:
                cur_e = max(cur_e, ge)
        busy += (cur_e - cur_s) if cur_e is not None else 0
        span = max(ge for _, ge in spans) - min(gs for gs, _ in spans)
        out.append((payload, busy, span))
    return out


@pytest.fixture(scope="module", params=sorted(RUNS))
def run(request: pytest.FixtureRequest) -> dict:
    kind = request.param
    path = TRACES / f"{RUNS[kind]}.sqlite"
    trace = open_trace(path)
    frame = trace.ranges(include_warmup=False)
    trace.close()
    decode = frame.filter(frame["name"] == "decode").sort("start_ns")
    return {"kind": kind, "path": path, "decode": decode, "raw": _raw_decode(path)}


def test_decode_ranges_equal_the_raw_tables(run: dict) -> None:
    decode, raw = run["decode"], run["raw"]
    assert decode["payload"].to_list() == [PREFILL + j for j in range(1, STEPS + 1)]
    assert [r[0] for r in raw] == decode["payload"].to_list()
    assert decode["busy_ns"].to_list() == [r[1] for r in raw]
    assert decode["proj_ns"].to_list() == [r[2] for r in raw]


def test_decode_projection_equals_nsys(run: dict) -> None:
    golden = TRACES / "golden" / f"{RUNS[run['kind']]}_nvtx_gpu_proj_sum.csv"
    row = next(
        line.split(",")
        for line in golden.read_text().splitlines()
        if line.startswith("dsocr:decode,")
    )
    # Range, Style, Total Proj Time (ns), Total Range Time (ns), Range Instances, ... (warm-up
    # excluded there too: only the timed request's steps carry ranges)
    assert int(row[2]) == int(run["decode"]["proj_ns"].sum())
    assert int(row[3]) == int(run["decode"]["cpu_ns"].sum())
    assert int(row[4]) == STEPS


def test_cuda_graphs_take_the_idle_out_of_decode(run: dict) -> None:
    """The issue's target: decode GPU-idle <= 15 % of the step with CUDA graphs (87 % eager)."""
    busy = sum(r[1] for r in run["raw"])
    span = sum(r[2] for r in run["raw"])
    idle_pct = 100 * (span - busy) / span
    if run["kind"] == "cudagraph":
        assert idle_pct == pytest.approx(14.878, abs=0.001)
        assert int(run["decode"]["kernels"].sum()) == STEPS * 876  # one graph of 876 kernels
    else:
        assert idle_pct == pytest.approx(87.057, abs=0.001)
        assert int(run["decode"]["kernels"].sum()) == 17010


@pytest.mark.parametrize("kind", sorted(RUNS))
def test_mfu_uses_the_variants_static_file(kind: str) -> None:
    result = analyse(TRACES / f"{RUNS[kind]}.sqlite", _static(kind), gpu="h200", env={})
    [row] = result.stages.filter(result.stages["stage"] == "decode").to_dicts()
    per_step = json.loads(_static(kind).read_text())["stages"]["decode"]["per_step"]
    contexts = [PREFILL + j for j in range(1, STEPS + 1)]
    expected = sum(per_step["flops_base"] + per_step["flops_per_context"] * c for c in contexts)
    assert row["total_flops"] == expected
    if kind == "cudagraph":  # padded cache: every step attends prefill + 16 positions
        assert per_step["flops_per_context"] == 0
        eager = json.loads(_static("eager").read_text())["stages"]["decode"]["per_step"]
        assert per_step["flops_base"] == eager["flops_base"] + eager["flops_per_context"] * 298


def test_mfu_refuses_the_other_variants_static_file() -> None:
    trace = TRACES / f"{RUNS['cudagraph']}.sqlite"
    with pytest.raises(
        ConfigMismatchError,
        match=r"static config decode=eager but the trace.s run\.json says cuda-graph",
    ):
        analyse(trace, _static("eager"), gpu="h200", env={})
    result = analyse(trace, _static("eager"), gpu="h200", env={}, allow_mismatch=True)
    assert any("decode_attention=context" in n and "padded_cache" in n for n in result.notes)
