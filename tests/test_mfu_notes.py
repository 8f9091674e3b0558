"""dsocr_nsys.mfu.notes: every note text written in one function, from structured findings."""

from __future__ import annotations

import pytest

from dsocr_nsys.mfu.notes import Finding, note


def test_figures_go_into_the_text() -> None:
    zero = Finding("zero_time_bases", {"stage": "sam", "bases": ["busy", "proj"]})
    assert note(zero).startswith("sam: GPU busy, GPU span 0 ns")
    total = Finding(
        "total_row", {"requests": 2, "outside": 3, "no_static": ["ocr_head"], "top_level": []}
    )
    assert note(total) == (
        "request row: 2 request range(s); FLOPs = sum over the stages with static figures "
        "(3 stage instances lie outside request ranges); ocr_head have no static FLOPs and add "
        "time only"
    )
    per_step = Finding(
        "decode_static_figure",
        {"has_payloads": False, "steps": 31, "context_mode": "auto", "context_tokens": None},
    )
    assert note(per_step) == (
        "decode ranges carry no context-length payloads: decode FLOPs/bytes = 31 steps × the "
        "static per-step figure computed for context mode 'auto'"
    )


def test_unknown_finding_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="no note text for finding 'nope'"):
        note(Finding("nope"))
