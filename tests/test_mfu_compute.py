"""MFU arithmetic on the real H100 export (five 2048³ BF16 matmuls per NVTX range) through the
real trace engine, and on edited copies of it (nesting, payloads, warm-up, zero length)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import polars as pl
import pytest
from mfu_helpers import (
    CLIP,
    H100,
    H100_STATIC,
    MATMUL_BYTES,
    MATMUL_FLOPS,
    PREFILL,
    SAM,
    TRACES,
    edited_trace,
    golden_times,
    static_file,
)

from dsocr_nsys.errors import ConfigMismatchError, StageNotFoundError, TraceContentError
from dsocr_nsys.mfu.compute import decode_table, utilisation_pct
from dsocr_nsys.mfu.report import analyse
from dsocr_nsys.vocab import RATE_BASES

PEAK_FLOPS = 989 * 10**12  # H100 SXM dense BF16, FLOP/s
PEAK_BYTES = 3350 * 10**9


def _row(result, stage: str) -> dict:
    rows = result.stages.filter(pl.col("stage") == stage).to_dicts()
    assert len(rows) == 1, f"expected one {stage!r} row, got {result.stages['stage'].to_list()}"
    return rows[0]


def _exact_mfu_pct(flops: int, time_ns: int) -> float:
    """100 × FLOPs / (peak × time), rounded once from the exact rational value."""
    return float(Fraction(100 * flops) / (PEAK_FLOPS * Fraction(time_ns, 10**9)))


@pytest.fixture(scope="module")
def h100():
    return analyse(H100, H100_STATIC, env={})


def test_mfu_equals_flops_over_peak_times_time_for_each_base(h100) -> None:
    times = golden_times()  # proj: nvtx_gpu_proj_trace, kernel: nvtx_kern_sum, cpu: nvtx_sum
    for stage in ("sam", "clip", "prefill"):
        row = _row(h100, stage)
        assert row["total_flops"] == MATMUL_FLOPS
        golden = dict(times[stage])
        golden["busy"] = golden["kernel"]  # one stream, kernels never overlap: union == sum
        for base in (b.key for b in RATE_BASES):
            t = golden[base]
            assert row[f"{base}_total_ns"] == t, (stage, base)
            assert row[f"mfu_{base}_pct"] == _exact_mfu_pct(MATMUL_FLOPS, t), (stage, base)
            # the same number the plain float formula gives, to the last few ulps
            assert row[f"mfu_{base}_pct"] == pytest.approx(
                100 * MATMUL_FLOPS / (989e12 * t * 1e-9), rel=1e-14
            )
            assert row[f"{base}_tflops"] == pytest.approx(MATMUL_FLOPS / (t * 1e-9) / 1e12, 1e-14)
            assert row[f"mbu_{base}_pct"] == pytest.approx(
                100 * MATMUL_BYTES / (3350e9 * t * 1e-9), rel=1e-14
            )


def test_known_figures_of_the_h100_export(h100) -> None:
    # sam: 5 × 2·2048³ FLOPs in 120,192 ns of kernels = 714.68 TFLOP/s = 72.26 % of 989
    sam = _row(h100, "sam")
    assert round(sam["busy_tflops"], 2) == 714.68
    assert round(sam["mfu_busy_pct"], 2) == 72.26
    assert sam["gpu_idle_pct"] == pytest.approx(100 * (770791 - 120192) / 770791)
    assert sam["bound"] == "compute"  # 682.7 FLOP/B > ridge 295.2 FLOP/B
    assert sam["intensity_flop_per_byte"] == pytest.approx(MATMUL_FLOPS / MATMUL_BYTES)
    assert sam["first_start_ns"] == SAM[0]
    assert h100.peak.gpu == "H100 SXM"


def test_vision_sums_its_parts_and_total_counts_each_instance_once(h100) -> None:
    times = golden_times()
    vision = _row(h100, "vision")
    assert vision["total_flops"] == 2 * MATMUL_FLOPS
    assert vision["proj_total_ns"] == times["sam"]["proj"] + times["clip"]["proj"]
    assert vision["mfu_proj_pct"] == _exact_mfu_pct(2 * MATMUL_FLOPS, vision["proj_total_ns"])
    total = _row(h100, "total")  # no request ranges: sum of the three top-level ranges
    assert total["instances"] == 3
    assert total["total_flops"] == 3 * MATMUL_FLOPS
    for base in ("proj", "kernel", "cpu"):
        assert total[f"{base}_total_ns"] == sum(times[s][base] for s in ("sam", "clip", "prefill"))
    # not nested here: prefill is the LLM's own range, no llm_prefill row
    assert "llm_prefill" not in h100.stages["stage"].to_list()
    assert any("not nested in prefill" in n for n in h100.notes)


def test_vision_nested_in_prefill(tmp_path: Path) -> None:
    # widen the prefill range to start with sam: sam and clip become its children
    trace = edited_trace(
        tmp_path, [("UPDATE NVTX_EVENTS SET start=? WHERE text='prefill'", (SAM[0],))]
    )
    result = analyse(trace, H100_STATIC, env={})
    times = golden_times()
    prefill, llm = _row(result, "prefill"), _row(result, "llm_prefill")
    # prefill = the range as measured (all 15 matmuls), FLOPs incl. the nested vision
    assert prefill["total_flops"] == 3 * MATMUL_FLOPS
    assert prefill["kernel_total_ns"] == sum(times[s]["kernel"] for s in ("sam", "clip", "prefill"))
    assert prefill["cpu_total_ns"] == PREFILL[1] - SAM[0]
    # llm_prefill = prefill minus its nested vision ranges, LLM FLOPs only
    assert llm["total_flops"] == MATMUL_FLOPS
    assert llm["kernel_total_ns"] == times["prefill"]["kernel"]
    assert llm["busy_total_ns"] == times["prefill"]["kernel"]
    assert llm["cpu_total_ns"] == (PREFILL[1] - SAM[0]) - times["sam"]["cpu"] - times["clip"]["cpu"]
    assert llm["mfu_kernel_pct"] == _exact_mfu_pct(MATMUL_FLOPS, times["prefill"]["kernel"])
    nested_proj = times["sam"]["proj"] + times["clip"]["proj"]
    assert llm["proj_total_ns"] == prefill["proj_total_ns"] - nested_proj
    # the request total is the prefill range itself, FLOPs not counted twice
    total = _row(result, "total")
    assert total["instances"] == 1 and total["total_flops"] == 3 * MATMUL_FLOPS
    assert total["cpu_total_ns"] == prefill["cpu_total_ns"]
    assert any("llm_prefill = prefill minus" in n for n in result.notes)


DECODE = {
    "flops": 1000,
    "bytes": 10,
    "per_step": {
        "flops_base": 7_000_000,
        "flops_per_context": 3_000,
        "bytes_base": 500_000,
        "bytes_per_context": 40,
    },
}


def _decode_trace(tmp_path: Path, payloads: bool) -> Path:
    # sam -> prefill (payload 900 tokens), clip and prefill -> two decode steps (901, 902)
    p = (900, 901, 902) if payloads else (None, None, None)
    return edited_trace(
        tmp_path,
        [
            ("UPDATE NVTX_EVENTS SET text='pf', int64Value=? WHERE text='prefill'", (p[2],)),
            ("UPDATE NVTX_EVENTS SET text='prefill', int64Value=? WHERE text='sam'", (p[0],)),
            ("UPDATE NVTX_EVENTS SET text='decode', int64Value=? WHERE text='clip'", (p[1],)),
            ("UPDATE NVTX_EVENTS SET text='decode' WHERE text='pf'", ()),
        ],
    )


def test_decode_flops_per_step_from_payloads(tmp_path: Path) -> None:
    trace = _decode_trace(tmp_path, payloads=True)
    static = static_file(
        tmp_path,
        {"prefill": {"flops": MATMUL_FLOPS}, "decode": DECODE},
        {"prefill_tokens": 900, "decode_steps": 2, "decode_context_mode": "auto"},
    )
    result = analyse(trace, static, env={})
    decode = _row(result, "decode")
    assert decode["total_flops"] == 2 * 7_000_000 + 3_000 * (901 + 902)
    assert decode["total_bytes"] == 2 * 500_000 + 40 * (901 + 902)
    assert decode["decode_steps"] == 2
    times = golden_times()
    steps_kernel_ns = times["clip"]["kernel"] + times["prefill"]["kernel"]
    assert decode["kernel_total_ns"] == steps_kernel_ns
    table = result.decode.filter(pl.col("time_base") == "kernel").to_dicts()[0]
    assert table["tokens_per_s"] == float(Fraction(2 * 10**9, steps_kernel_ns))
    assert table["step_mean_ns"] == steps_kernel_ns / 2
    assert table["mbu_pct"] == float(
        Fraction(100 * decode["total_bytes"]) / (PEAK_BYTES * Fraction(steps_kernel_ns, 10**9))
    )
    assert any("per step" in n and "context 901..902" in n for n in result.notes)


def test_decode_without_payloads_uses_the_static_mode_and_says_so(tmp_path: Path) -> None:
    trace = _decode_trace(tmp_path, payloads=False)
    static = static_file(
        tmp_path,
        {"prefill": {"flops": MATMUL_FLOPS}, "decode": DECODE},
        {"decode_context_mode": "fixed", "decode_context_tokens": 950},
    )
    result = analyse(trace, static, env={})
    assert _row(result, "decode")["total_flops"] == 2 * 1000
    note = next(n for n in result.notes if n.startswith("decode ranges carry no"))
    assert "'fixed'" in note and "950 context tokens" in note


@pytest.mark.parametrize(
    ("config", "field", "seen"),
    [
        ({"prefill_tokens": 899}, "prefill_tokens=899", "900"),
        ({"decode_steps": 3}, "decode_steps=3", "2"),
    ],
)
def test_config_mismatch(tmp_path: Path, config: dict, field: str, seen: str) -> None:
    trace = _decode_trace(tmp_path, payloads=True)
    static = static_file(tmp_path, {"prefill": {"flops": MATMUL_FLOPS}, "decode": DECODE}, config)
    with pytest.raises(ConfigMismatchError) as err:
        analyse(trace, static, env={})
    msg = str(err.value)
    assert field in msg and f"say {seen}" in msg and "--allow-mismatch" in msg
    result = analyse(trace, static, env={}, allow_mismatch=True)
    assert any(n.startswith("--allow-mismatch: ") and field in n for n in result.notes)


def test_views_mismatch(tmp_path: Path) -> None:
    trace = edited_trace(tmp_path, [("UPDATE NVTX_EVENTS SET int64Value=6 WHERE text='sam'", ())])
    static = static_file(tmp_path, {"sam": {"flops": MATMUL_FLOPS}}, {"views": 2})
    with pytest.raises(ConfigMismatchError, match="views=2 but the trace's sam payloads say 6"):
        analyse(trace, static, env={})


def test_stage_missing_from_static_is_time_only(tmp_path: Path) -> None:
    static = static_file(
        tmp_path, {"sam": {"flops": MATMUL_FLOPS}, "prefill": {"flops": MATMUL_FLOPS}}
    )
    result = analyse(H100, static, env={})
    clip = _row(result, "clip")
    assert clip["total_flops"] is None and clip["mfu_busy_pct"] is None
    assert clip["kernel_total_ns"] == golden_times()["clip"]["kernel"]
    assert "clip: not in the static file, time only" in result.notes
    assert _row(result, "vision")["total_flops"] is None  # a part without FLOPs: no total


def test_warmup_excluded_unless_asked(tmp_path: Path) -> None:
    # sam becomes a `warmup` range reaching over clip: clip is a warm-up instance
    trace = edited_trace(
        tmp_path, [("UPDATE NVTX_EVENTS SET text='warmup', end=? WHERE text='sam'", (CLIP[1] + 1,))]
    )
    counted = analyse(trace, H100_STATIC, env={})
    assert counted.stages["stage"].to_list() == ["prefill", "total"]
    assert any("static stages not in the trace" in n and "clip" in n for n in counted.notes)
    everything = analyse(trace, H100_STATIC, env={}, include_warmup=True)
    assert _row(everything, "clip")["instances"] == 1


def test_zero_length_stage_is_an_error(tmp_path: Path) -> None:
    trace = edited_trace(tmp_path, [("UPDATE NVTX_EVENTS SET end=start WHERE text='sam'", ())])
    with pytest.raises(TraceContentError, match="stage 'sam' has zero length"):
        analyse(trace, H100_STATIC, env={})


def test_no_gpu_time_on_a_base_gives_empty_rates_and_a_note(tmp_path: Path) -> None:
    # a stage with a CPU range but no GPU work: rates on the GPU bases are empty, not inf
    trace = edited_trace(
        tmp_path,
        [("UPDATE NVTX_EVENTS SET start=?, end=? WHERE text='sam'", (SAM[0], SAM[0] + 1000))],
    )
    result = analyse(trace, H100_STATIC, env={})
    sam = _row(result, "sam")
    assert sam["busy_total_ns"] == 0 and sam["mfu_busy_pct"] is None and sam["busy_tflops"] is None
    assert sam["cpu_total_ns"] == 1000 and sam["mfu_cpu_pct"] is not None
    assert any(
        n.startswith("sam: GPU busy, GPU span, kernel sum 0 ns") and "left empty" in n
        for n in result.notes
    )


def test_trace_without_stage_names(tmp_path: Path) -> None:
    with pytest.raises(StageNotFoundError, match="no NVTX range named sam, clip"):
        analyse(TRACES / "pipit_saxpy_a100_nsys2022.sqlite", H100_STATIC, env={})


def test_exact_ratio_helpers() -> None:
    assert utilisation_pct(989, 989.0, 10**12, 10**9) == 100 * 989 / (989 * 10**12)
    assert utilisation_pct(None, 989.0, 10**12, 5) is None
    assert utilisation_pct(1, 989.0, 10**12, 0) is None
    assert decode_table(None, None).height == 0  # type: ignore[arg-type]


def test_request_ranges_give_the_request_row(tmp_path: Path) -> None:
    # sam becomes a `request` range reaching over clip and prefill
    trace = edited_trace(
        tmp_path,
        [("UPDATE NVTX_EVENTS SET text='request', end=? WHERE text='sam'", (PREFILL[1] + 1,))],
    )
    result = analyse(trace, H100_STATIC, env={})
    request = _row(result, "request")
    assert request["instances"] == 1
    assert request["cpu_total_ns"] == PREFILL[1] + 1 - SAM[0]
    assert request["total_flops"] == 2 * MATMUL_FLOPS  # clip + prefill, each once
    assert request["kernel_total_ns"] == sum(golden_times()[s]["kernel"] for s in SAM_TO_PREFILL)
    assert "total" not in result.stages["stage"].to_list()


SAM_TO_PREFILL = ("sam", "clip", "prefill")  # the request range now holds all 15 matmuls


def test_launcher_domain_wins_over_other_domains() -> None:
    from dsocr_nsys.mfu.compute import select_ranges
    from dsocr_nsys.trace import open_trace

    frame = open_trace(H100).ranges()
    ours = frame.filter(pl.col("name") == "sam").with_columns(pl.lit("dsocr").alias("domain"))
    both = pl.concat([frame, ours], how="vertical_relaxed")
    sel = select_ranges(both, ["sam", "clip", "prefill"])
    assert sel["domain"].to_list() == ["dsocr"]
    assert select_ranges(frame, ["sam", "clip", "prefill"]).height == 3  # default domain only


# `dsocr-nsys static` writes prefill as the whole range (vision + LLM, `contains: ["vision"]`)
WHOLE_RANGE_STATIC = {
    "sam": {"flops": MATMUL_FLOPS, "bytes": MATMUL_BYTES},
    "clip": {"flops": MATMUL_FLOPS, "bytes": MATMUL_BYTES},
    "vision": {"flops": 2 * MATMUL_FLOPS, "bytes": 2 * MATMUL_BYTES, "nested_in": "prefill"},
    "prefill": {
        "flops": 3 * MATMUL_FLOPS,
        "bytes": 3 * MATMUL_BYTES,
        "contains": ["vision"],
        "llm_flops": MATMUL_FLOPS,
        "vision_flops": 2 * MATMUL_FLOPS,
    },
}


def test_static_prefill_containing_vision_nested_trace(tmp_path: Path) -> None:
    trace = edited_trace(
        tmp_path, [("UPDATE NVTX_EVENTS SET start=? WHERE text='prefill'", (SAM[0],))]
    )
    result = analyse(trace, static_file(tmp_path, WHOLE_RANGE_STATIC), env={})
    prefill, llm = _row(result, "prefill"), _row(result, "llm_prefill")
    assert (prefill["total_flops"], prefill["total_bytes"]) == (3 * MATMUL_FLOPS, 3 * MATMUL_BYTES)
    assert (llm["total_flops"], llm["total_bytes"]) == (MATMUL_FLOPS, MATMUL_BYTES)
    assert llm["mfu_kernel_pct"] == _exact_mfu_pct(
        MATMUL_FLOPS, golden_times()["prefill"]["kernel"]
    )
    assert _row(result, "total")["total_flops"] == 3 * MATMUL_FLOPS  # vision counted once
    assert _row(result, "vision")["total_flops"] == 2 * MATMUL_FLOPS
    assert not any("static stages not in the trace" in n for n in result.notes)
    assert any("contains vision: the LLM part" in n for n in result.notes)


def test_static_prefill_containing_vision_sibling_trace(tmp_path: Path) -> None:
    # in the unedited export vision is not inside prefill: prefill's range did the LLM part only
    result = analyse(H100, static_file(tmp_path, WHOLE_RANGE_STATIC), env={})
    assert _row(result, "prefill")["total_flops"] == MATMUL_FLOPS
    assert _row(result, "total")["total_flops"] == 3 * MATMUL_FLOPS
    assert "llm_prefill" not in result.stages["stage"].to_list()


def test_mfu_above_peak_is_flagged(tmp_path: Path) -> None:
    # 10^15 FLOPs in sam's 120 µs of kernels is ~8,300 TFLOP/s: not this run's figure
    result = analyse(H100, static_file(tmp_path, {"sam": {"flops": 10**15}}), env={})
    assert _row(result, "sam")["mfu_busy_pct"] > 100
    notes = result.notes
    assert any(n.startswith("sam: mfu_busy_pct") and "above 100 % of peak" in n for n in notes)
    flags = dict(zip(result.stages["stage"], result.stages["impossible"], strict=True))
    assert flags["sam"] and not flags["clip"]
