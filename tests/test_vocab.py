"""dsocr_nsys.vocab: the one vocabulary, and the trace engine's frames spelled by it."""

from __future__ import annotations

from pathlib import Path

import pytest

from dsocr_nsys import vocab
from dsocr_nsys.trace import open_trace

TRACES = Path(__file__).resolve().parent / "fixtures" / "traces"


def test_column_scheme() -> None:
    busy = vocab.time_base("busy")
    assert (busy.column, busy.total, busy.stat("median")) == (
        "busy_ns",
        "busy_total_ns",
        "busy_median_ns",
    )
    assert (busy.tflops, busy.mfu_pct, busy.gbps, busy.mbu_pct) == (
        "busy_tflops",
        "mfu_busy_pct",
        "busy_gbps",
        "mbu_busy_pct",
    )
    with pytest.raises(ValueError, match="unknown statistic 'p50'"):
        busy.stat("p50")
    with pytest.raises(ValueError, match="unknown time base 'wall'"):
        vocab.time_base("wall")


def test_time_bases_are_spelled_once() -> None:
    keys = [b.key for b in vocab.TIME_BASES]
    labels = [b.label for b in vocab.TIME_BASES]
    assert len(set(keys)) == len(keys) and len(set(labels)) == len(labels)
    # idle is a share of the span, not a denominator for a rate
    assert [b.key for b in vocab.RATE_BASES] == ["busy", "proj", "kernel", "cpu"]


def test_stages_and_their_nesting() -> None:
    names = set(vocab.STAGE_ORDER)
    for stage in vocab.STAGES:
        assert stage.kind in ("range", "sum", "difference", "request")
        assert set(stage.parts) <= names
        assert stage.parent is None or stage.parent in names
    assert vocab.STAGE_BY_NAME[vocab.VISION].parts == vocab.VISION_PARTS
    assert vocab.DERIVED_STAGES == (vocab.VISION, vocab.LLM_PREFILL)
    # every NVTX stage the launcher opens is a report row
    assert set(vocab.NVTX_STAGES) <= names


def test_the_engine_frames_carry_every_time_base_column() -> None:
    """Adding a time base means its row here and its SQL: this fails until both exist."""
    with open_trace(TRACES / "h100_matmul_nvtx_nsys2025.sqlite") as trace:
        ranges = trace.ranges()
        stages = trace.stages()
    for base in vocab.TIME_BASES:
        assert base.column in ranges.columns, base.key
        for stat in vocab.STATS:
            assert base.stat(stat) in stages.columns, (base.key, stat)
    with_ops = ranges.filter(ranges["gpu_start_ns"].is_not_null())
    assert (with_ops["idle_ns"] == with_ops["proj_ns"] - with_ops["busy_ns"]).all()
