"""The DeepSeek-OCR graph: exact parameter counts (meta device), topology, image-token layout,
MoE routing, checkpoint names and loading."""

from __future__ import annotations

import pytest
import torch

from dsocr_nsys.errors import ModelError
from dsocr_nsys.model import build_model, get_config, parameter_counts, plan_request
from dsocr_nsys.model.deepseek_ocr import checkpoint_name
from dsocr_nsys.model.llm import MoE, SwiGLU

pytestmark = pytest.mark.usefixtures("one_cpu_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def full_meta():
    return build_model(get_config("full"), "meta")


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return build_model(get_config("tiny"), "cpu", torch.float32, seed=0)


def test_full_parameter_counts_match_the_published_checkpoint(full_meta) -> None:
    counts = parameter_counts(full_meta)
    # The published safetensors holds exactly 3,336,106,240 parameters (2,710 tensors).
    assert counts["total"] == 3_336_106_240
    assert round(counts["sam"] / 1e6, 2) == 95.57
    assert round(counts["clip"] / 1e6, 2) == 303.18
    assert round(counts["projector"] / 1e6, 2) == 2.62
    assert round(counts["llm"] / 1e9, 3) == 2.935
    # Exact parts (closed form in docs/model.md); the two layout vectors belong to no stage.
    assert counts == {
        "sam": 95_569_152,
        "clip": 303_177_728,  # includes the unused 14x14 patch conv (602,112)
        "projector": 2_622_720,
        "llm": 2_934_734_080,
        "layout": 2_560,
        "total": 3_336_106_240,
    }
    assert sum(1 for _ in full_meta.parameters()) == 2710
    assert all(p.is_meta for p in full_meta.parameters())


def test_full_topology(full_meta) -> None:
    sam = full_meta.sam
    windows = [b.window for b in sam.blocks]
    assert windows == [14, 14, 0, 14, 14, 0, 14, 14, 0, 14, 14, 0]
    assert tuple(sam.blocks[0].attn.rel_pos_h.shape) == (27, 64)
    assert tuple(sam.blocks[2].attn.rel_pos_w.shape) == (127, 64)
    assert tuple(sam.pos_embed.shape) == (1, 64, 64, 768)
    assert tuple(full_meta.clip.embeddings.position_embedding.weight.shape) == (257, 1024)
    llm = full_meta.llm
    assert isinstance(llm.layers[0].mlp, SwiGLU)
    assert llm.layers[0].mlp.gate_proj.out_features == 6848
    moe = llm.layers[1].mlp
    assert isinstance(moe, MoE) and len(moe.experts) == 64 and moe.top_k == 6
    assert moe.shared_experts.gate_proj.out_features == 1792
    assert tuple(moe.gate.weight.shape) == (64, 1280)
    assert llm.lm_head.weight is not llm.embed_tokens.weight
    assert tuple(llm.lm_head.weight.shape) == (129280, 1280)


def test_checkpoint_names_follow_the_published_layout(full_meta) -> None:
    names = {checkpoint_name(n) for n, _ in full_meta.named_parameters()}
    for published in (
        "lm_head.weight",
        "model.embed_tokens.weight",
        "model.image_newline",
        "model.view_seperator",
        "model.layers.0.mlp.gate_proj.weight",
        "model.layers.1.mlp.experts.63.down_proj.weight",
        "model.layers.11.mlp.gate.weight",
        "model.layers.11.mlp.shared_experts.up_proj.weight",
        "model.layers.5.self_attn.q_proj.weight",
        "model.norm.weight",
        "model.projector.layers.bias",
        "model.sam_model.blocks.2.attn.rel_pos_h",
        "model.sam_model.neck.3.bias",
        "model.sam_model.net_3.weight",
        "model.sam_model.patch_embed.proj.bias",
        "model.sam_model.pos_embed",
        "model.vision_model.embeddings.class_embedding",
        "model.vision_model.embeddings.patch_embedding.weight",
        "model.vision_model.pre_layrnorm.weight",
        "model.vision_model.transformer.layers.23.self_attn.qkv_proj.weight",
    ):
        assert published in names


def test_tiny_keeps_the_topology() -> None:
    full, tiny_cfg = get_config("full"), get_config("tiny")
    assert tiny_cfg.sam.depth == full.sam.depth
    assert tiny_cfg.sam.global_attn_indexes == full.sam.global_attn_indexes
    assert tiny_cfg.llm.first_k_dense == 1 and tiny_cfg.llm.layers > 1
    assert 1 < tiny_cfg.llm.experts_per_token < tiny_cfg.llm.routed_experts
    assert tiny_cfg.llm.shared_experts == full.llm.shared_experts
    with pytest.raises(ModelError, match="unknown model preset 'xl'; choose one of: full, tiny"):
        get_config("xl")


def test_random_init_is_seeded() -> None:
    a = build_model(get_config("tiny"), "cpu", seed=3)
    b = build_model(get_config("tiny"), "cpu", seed=3)
    c = build_model(get_config("tiny"), "cpu", seed=4)
    pa, pb, pc = (dict(m.named_parameters()) for m in (a, b, c))
    assert all(torch.equal(pa[k], pb[k]) for k in pa)
    assert not torch.equal(pa["llm.lm_head.weight"], pc["llm.lm_head.weight"])
    assert torch.all(pa["sam.blocks.0.norm1.weight"] == 1)
    assert torch.all(pa["llm.norm.weight"] == 1)
    assert torch.all(pa["projector.layers.bias"] == 0)


@torch.no_grad()
def test_image_token_layout_gundam(tiny) -> None:
    plan = plan_request("gundam", (1240, 1754))
    glob = torch.randn(1, 3, 1024, 1024)
    crops = torch.randn(6, 3, 640, 640)
    emb = tiny.encode_images(glob, crops, plan.crop_grid)
    assert emb.shape == (plan.image_tokens, tiny.cfg.llm.hidden)
    newline, sep = tiny.image_newline, tiny.view_seperator
    # Crops tiled: 30 rows of 20 tokens + newline, then global 16 rows of 16 + newline, then sep.
    local = emb[: 30 * 21].view(30, 21, -1)
    assert torch.equal(local[:, 20], newline.expand(30, -1))
    glob_part = emb[30 * 21 : 30 * 21 + 16 * 17].view(16, 17, -1)
    assert torch.equal(glob_part[:, 16], newline.expand(16, -1))
    assert not torch.equal(glob_part[:, :16], newline.expand(16, 16, -1))
    assert torch.equal(emb[-1], sep)
    # Crop 3 (row 1, col 1 of the 2x3 grid) lands in tiled rows 10..19, columns 10..19.
    only = tiny.encode_images(crops[3:4], None, None)[: 10 * 11].view(10, 11, -1)[:, :10]
    assert torch.allclose(local[10:20, 10:20], only, atol=1e-5)


@torch.no_grad()
def test_moe_matches_per_token_reference(tiny) -> None:
    moe: MoE = tiny.llm.layers[1].mlp
    x = torch.randn(2, 7, tiny.cfg.llm.hidden)
    out = moe(x)
    ref = torch.empty_like(x)
    for b in range(2):
        for t in range(7):
            v = x[b, t]
            scores = torch.softmax(moe.gate.weight @ v, dim=-1)
            w, ids = scores.topk(moe.top_k)  # no renormalisation
            y = sum(w[i] * moe.experts[int(ids[i])](v) for i in range(moe.top_k))
            ref[b, t] = y + moe.shared_experts(v)
    assert torch.allclose(out, ref, atol=1e-5)
    # The single-token (decode) path runs only the chosen experts and agrees too.
    assert torch.allclose(moe(x[:1, 3:4]), ref[:1, 3:4], atol=1e-5)


def _save_checkpoint(model, path, drop=(), extra=None):
    from safetensors.torch import save_file

    tensors = {
        checkpoint_name(n): p.detach().clone().contiguous()
        for n, p in model.named_parameters()
        if checkpoint_name(n) not in drop
    }
    tensors.update(extra or {})
    save_file(tensors, str(path / "model-00001-of-000001.safetensors"))


def test_weights_load_from_safetensors(tmp_path) -> None:
    source = build_model(get_config("tiny"), "cpu", seed=7)
    _save_checkpoint(source, tmp_path)
    loaded = build_model(get_config("tiny"), "cpu", seed=0, weights=tmp_path)
    ps = dict(source.named_parameters())
    assert all(torch.equal(p, ps[n]) for n, p in loaded.named_parameters())
    # Loaded in another dtype too.
    half = build_model(get_config("tiny"), "cpu", torch.bfloat16, weights=tmp_path)
    assert half.llm.lm_head.weight.dtype == torch.bfloat16


def test_weights_errors_name_the_tensors(tmp_path) -> None:
    source = build_model(get_config("tiny"), "cpu", seed=7)
    _save_checkpoint(
        source,
        tmp_path,
        drop={"model.view_seperator", "model.layers.2.mlp.experts.3.up_proj.weight"},
        extra={"model.sam_model.extra": torch.zeros(3)},
    )
    with pytest.raises(ModelError) as info:
        build_model(get_config("tiny"), "cpu", weights=tmp_path)
    msg = str(info.value)
    assert "missing 2 tensor(s): model.layers.2.mlp.experts.3.up_proj.weight, " in msg
    assert "model.view_seperator" in msg
    assert "unexpected 1 tensor(s): model.sam_model.extra" in msg
    assert "\n" not in msg
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelError, match=r"no \*\.safetensors files"):
        build_model(get_config("tiny"), "cpu", weights=empty)
    with pytest.raises(ModelError, match="does not exist"):
        build_model(get_config("tiny"), "cpu", weights=tmp_path / "nope")


def test_wrong_shapes_are_reported(tmp_path) -> None:
    source = build_model(get_config("tiny"), "cpu")
    _save_checkpoint(
        source, tmp_path, drop={"model.norm.weight"}, extra={"model.norm.weight": torch.ones(5)}
    )
    with pytest.raises(ModelError, match=r"1 of another shape: model\.norm\.weight \(5,\)"):
        build_model(get_config("tiny"), "cpu", weights=tmp_path)
