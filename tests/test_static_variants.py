"""``dsocr-nsys static`` for the launcher's variants: a batch of N pages and decode attention
over the padded cache (formulas only: the sources are checked per page in test_static.py)."""

from __future__ import annotations

import pytest

from dsocr_nsys.errors import ModelError
from dsocr_nsys.model.config import get_config
from dsocr_nsys.static.compute import StaticOptions, compute_static, expected_experts

BASE = dict(preset="full", mode="base", max_new_tokens=16, sources=False)


def _doc(**kw):
    return compute_static(StaticOptions(**{**BASE, **kw})).document


@pytest.fixture(scope="module")
def one():
    return _doc()


def test_config_carries_the_variant(one) -> None:
    assert {
        k: one["config"][k] for k in ("decode", "moe", "compile", "batch", "decode_attention")
    } == {
        "decode": "eager",
        "moe": "loop",
        "compile": False,
        "batch": 1,
        "decode_attention": "context",
    }
    graph = _doc(decode="cuda-graph")["config"]
    assert (graph["moe"], graph["decode_attention"]) == ("device", "padded_cache")


def test_batch_multiplies_work_not_weights(one) -> None:
    n = 16
    many = _doc(batch=n)
    cfg = get_config("full")
    for stage in ("sam", "clip", "projector", "vision", "prefill"):
        a, b = one["stages"][stage], many["stages"][stage]
        assert b["flops"] == n * a["flops"]
        assert b["activation_bytes"] == n * a["activation_bytes"]
        assert b["kv_write_bytes"] == n * a["kv_write_bytes"]
    for stage in ("sam", "clip", "projector"):
        assert many["stages"][stage]["weight_bytes"] == one["stages"][stage]["weight_bytes"]
    d1, dn = one["stages"]["decode"], many["stages"]["decode"]
    assert dn["flops"] == n * d1["flops"]
    assert dn["per_step"]["flops_per_context"] == n * d1["per_step"]["flops_per_context"]
    assert dn["kv_read_bytes"] == n * d1["kv_read_bytes"]
    # Weights once per step: the routed experts the 16 tokens touch (50.7 of 64 per layer, not
    # 16 x 6), so bytes per FLOP fall and MBU moves.
    expert_bytes = 3 * cfg.llm.hidden * cfg.llm.moe_intermediate * 2
    moe_layers = cfg.llm.layers - cfg.llm.first_k_dense
    extra_experts = round(expected_experts(n, cfg) * moe_layers) - 6 * moe_layers
    embed_rows = (n - 1) * cfg.llm.hidden * 2
    assert dn["weight_bytes"] - d1["weight_bytes"] == extra_experts * expert_bytes + embed_rows
    assert dn["weight_bytes"] < n * d1["weight_bytes"] / 3  # not once per sequence


def test_padded_cache_attends_the_whole_cache(one) -> None:
    padded = _doc(decode="cuda-graph")
    d, p = one["stages"]["decode"], padded["stages"]["decode"]
    cache = 282 + 16
    assert p["context_tokens"] == cache and d["context_tokens"] == 282 + 16 // 2
    base, per_ctx = d["per_step"]["flops_base"], d["per_step"]["flops_per_context"]
    assert p["per_step"] == {
        "flops_base": base + per_ctx * cache,
        "flops_per_context": 0,
        "bytes_base": d["per_step"]["bytes_base"] + d["per_step"]["bytes_per_context"] * cache,
        "bytes_per_context": 0,
    }
    assert p["flops"] == base + per_ctx * cache
    assert p["total_flops"] == 15 * (base + per_ctx * cache)
    assert _doc(compile=True)["stages"]["decode"]["per_step"] == p["per_step"]


def test_bad_batch() -> None:
    with pytest.raises(ModelError, match="--batch must be at least 1"):
        _doc(batch=0)
