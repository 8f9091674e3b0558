"""Closed-form multiply-add counts per stage, written from the architecture (no tracing).

Every function returns a list of :class:`Term`: one kind of operator in one place of the model,
with its multiply-adds (MACs, 1 per multiply-add; FLOPs are ``2 * macs``) and the number of
elements it writes (its output activation). Only operators with a contraction are counted here
(matmul, conv, attention); norms and element-wise work are reported from fvcore separately.

Conventions (the same in all three sources, see docs/static-compute.md):

* Linear ``in -> out`` on N rows: ``N * in * out`` MACs; biases are not counted (one add per
  output, as fvcore and FlopCounterMode do).
* Convolution: ``output elements * C_in * k_h * k_w`` MACs.
* Attention (softmax(QKᵀ)V): ``pairs * head_dim`` MACs for QKᵀ plus ``pairs * head_dim`` for
  the product with V, summed over heads, where ``pairs`` counts the (query, key) pairs a query
  actually attends. **Causal attention counts the unmasked pairs only**: query ``i`` of a causal
  prompt of ``S`` tokens attends ``i + 1`` keys, so ``S(S+1)/2`` pairs; a decode step's single
  query attends every cached position including its own (``ctx`` pairs).
* SAM's windowed blocks pad the token grid to a multiple of the window and run ``qkv``,
  attention and ``proj`` on the padded grid (as the model does); the MLP runs on the real grid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..model.config import ClipConfig, LlmConfig, ModelConfig, SamConfig

CATEGORIES = ("matmul", "conv", "attention")


@dataclass(frozen=True)
class Term:
    """One operator kind in one place: ``macs`` multiply-adds writing ``out_elems`` elements
    (both already multiplied by ``count``, the number of times it runs in the stage)."""

    name: str
    category: str
    macs: int
    out_elems: int
    count: int = 1


def _linear(name: str, rows: int, fin: int, fout: int, count: int = 1) -> Term:
    return Term(name, "matmul", rows * fin * fout * count, rows * fout * count, count)


def _conv(name: str, out_hw: int, cin: int, cout: int, k: int, count: int = 1) -> Term:
    return Term(name, "conv", out_hw * cout * cin * k * k * count, out_hw * cout * count, count)


def _attention(
    name: str, heads: int, queries: int, pairs: int, head_dim: int, count: int = 1
) -> Term:
    """QKᵀ and PV over ``pairs`` (query, key) pairs per head (``heads`` counts batch x heads);
    writes the context vectors (``heads * queries * head_dim``; fused SDPA keeps the scores)."""
    macs = 2 * heads * pairs * head_dim * count
    return Term(name, "attention", macs, heads * queries * head_dim * count, count)


def causal_pairs(queries: int, keys: int) -> int:
    """(query, key) pairs left unmasked by a causal mask aligned at the top-left
    (query ``i`` sees keys ``0..i``), as ``scaled_dot_product_attention(is_causal=True)``."""
    if queries <= keys:
        return queries * (queries + 1) // 2
    return keys * (keys + 1) // 2 + (queries - keys) * keys


def sam_grid(size_px: int, cfg: SamConfig) -> int:
    """Tokens per side after SAM's patch embedding."""
    return size_px // cfg.patch_size


def conv_out(size: int, k: int, stride: int, pad: int) -> int:
    return (size + 2 * pad - k) // stride + 1


def sam_terms(height_px: int, width_px: int, cfg: SamConfig, count: int = 1) -> list[Term]:
    """SAM ViT-B + neck + compressor on one view of ``height_px x width_px`` (``count`` views)."""
    gh, gw = sam_grid(height_px, cfg), sam_grid(width_px, cfg)
    n = gh * gw
    d, hd = cfg.width, cfg.width // cfg.heads
    terms = [_conv("sam.patch_embed", n, 3, d, cfg.patch_size, count)]
    for i in range(cfg.depth):
        p = f"sam.blocks.{i}"
        if i in cfg.global_attn_indexes:
            ah, aw, windows = gh, gw, 1
        else:
            w = cfg.window_size
            ah = aw = w
            windows = math.ceil(gh / w) * math.ceil(gw / w)
        a_tokens = windows * ah * aw  # tokens the attention (and qkv/proj) run on, padding incl.
        terms += [
            _linear(f"{p}.attn.qkv", a_tokens, d, 3 * d, count),
            # decomposed rel-pos: einsum bhwc,hkc->bhwk (k = h) and bhwc,wkc->bhwk (k = w)
            Term(
                f"{p}.attn.rel_pos",
                "attention",
                windows * cfg.heads * ah * aw * (ah + aw) * hd * count,
                windows * cfg.heads * ah * aw * (ah + aw) * count,
                count,
            ),
            _attention(f"{p}.attn.sdpa", windows * cfg.heads, ah * aw, (ah * aw) ** 2, hd, count),
            _linear(f"{p}.attn.proj", a_tokens, d, d, count),
            _linear(f"{p}.mlp.lin1", n, d, cfg.mlp_dim, count),
            _linear(f"{p}.mlp.lin2", n, cfg.mlp_dim, d, count),
        ]
    c = cfg.neck_channels
    d2, d3 = cfg.downsample_channels
    h2, w2 = conv_out(gh, 3, 2, 1), conv_out(gw, 3, 2, 1)
    h3, w3 = conv_out(h2, 3, 2, 1), conv_out(w2, 3, 2, 1)
    terms += [
        _conv("sam.neck.0", n, d, c, 1, count),
        _conv("sam.neck.2", n, c, c, 3, count),
        _conv("sam.net_2", h2 * w2, c, d2, 3, count),
        _conv("sam.net_3", h3 * w3, d2, d3, 3, count),
    ]
    return terms


def sam_out_grid(height_px: int, width_px: int, cfg: SamConfig) -> tuple[int, int]:
    """Feature grid after the 16x compressor (16x16 for 1024 px, 10x10 for 640 px)."""
    gh, gw = sam_grid(height_px, cfg), sam_grid(width_px, cfg)
    return (
        conv_out(conv_out(gh, 3, 2, 1), 3, 2, 1),
        conv_out(conv_out(gw, 3, 2, 1), 3, 2, 1),
    )


def clip_terms(tokens: int, cfg: ClipConfig, count: int = 1) -> list[Term]:
    """CLIP-L over ``tokens`` (CLS included: 257 for a 16x16 grid, 101 for 10x10)."""
    d, hd = cfg.width, cfg.width // cfg.heads
    terms: list[Term] = []
    for i in range(cfg.layers):
        p = f"clip.layers.{i}"
        terms += [
            _linear(f"{p}.self_attn.qkv_proj", tokens, d, 3 * d, count),
            _attention(f"{p}.self_attn.sdpa", cfg.heads, tokens, tokens * tokens, hd, count),
            _linear(f"{p}.self_attn.out_proj", tokens, d, d, count),
            _linear(f"{p}.mlp.fc1", tokens, d, cfg.mlp_dim, count),
            _linear(f"{p}.mlp.fc2", tokens, cfg.mlp_dim, d, count),
        ]
    return terms


def projector_terms(tokens: int, cfg: ModelConfig) -> list[Term]:
    """Linear (CLIP width + SAM channels) -> LLM hidden over every view's feature tokens."""
    return [_linear("projector", tokens, cfg.projector_in, cfg.llm.hidden)]


def llm_linear_terms(tokens: int, cfg: LlmConfig) -> list[Term]:
    """The LLM's per-token linear layers (attention projections, dense/MoE MLPs, router) for
    ``tokens`` rows; MoE counts the ``experts_per_token`` routed experts a token uses plus the
    shared experts -- never the experts it does not use."""
    h, inner = cfg.hidden, cfg.heads * cfg.head_dim
    terms: list[Term] = []
    for i in range(cfg.layers):
        p = f"llm.layers.{i}"
        terms += [
            _linear(f"{p}.self_attn.q_proj", tokens, h, inner),
            _linear(f"{p}.self_attn.k_proj", tokens, h, inner),
            _linear(f"{p}.self_attn.v_proj", tokens, h, inner),
            _linear(f"{p}.self_attn.o_proj", tokens, inner, h),
        ]
        if i < cfg.first_k_dense:
            for proj, fi, fo in _swiglu(h, cfg.dense_intermediate):
                terms.append(_linear(f"{p}.mlp.{proj}", tokens, fi, fo))
        else:
            terms.append(_linear(f"{p}.mlp.gate", tokens, h, cfg.routed_experts))
            k = cfg.experts_per_token
            for proj, fi, fo in _swiglu(h, cfg.moe_intermediate):
                terms.append(_linear(f"{p}.mlp.experts.{proj}", tokens * k, fi, fo))
            for proj, fi, fo in _swiglu(h, cfg.shared_intermediate):
                terms.append(_linear(f"{p}.mlp.shared_experts.{proj}", tokens, fi, fo))
    return terms


def _swiglu(hidden: int, inter: int) -> list[tuple[str, int, int]]:
    return [("gate_proj", hidden, inter), ("up_proj", hidden, inter), ("down_proj", inter, hidden)]


def llm_attention_terms(queries: int, pairs: int, cfg: LlmConfig) -> list[Term]:
    """Attention of ``queries`` new tokens over ``pairs`` (query, key) pairs per head, every
    layer."""
    return [
        _attention(f"llm.layers.{i}.self_attn.sdpa", cfg.heads, queries, pairs, cfg.head_dim)
        for i in range(cfg.layers)
    ]


def lm_head_terms(rows: int, cfg: LlmConfig) -> list[Term]:
    return [_linear("llm.lm_head", rows, cfg.hidden, cfg.vocab_size)]


def prefill_llm_terms(tokens: int, cfg: LlmConfig, lm_head_rows: int = 1) -> list[Term]:
    """The LLM's first forward over a ``tokens``-long prompt (causal, unmasked pairs), with
    ``lm_head`` on ``lm_head_rows`` positions (the model runs it on the last one only)."""
    return (
        llm_linear_terms(tokens, cfg)
        + llm_attention_terms(tokens, causal_pairs(tokens, tokens), cfg)
        + lm_head_terms(lm_head_rows, cfg)
    )


def decode_terms(context_tokens: int, cfg: LlmConfig) -> list[Term]:
    """One decode step: one new token attending ``context_tokens`` cached positions (its own
    included), and ``lm_head`` on that token."""
    return (
        llm_linear_terms(1, cfg)
        + llm_attention_terms(1, context_tokens, cfg)
        + lm_head_terms(1, cfg)
    )


def decode_attention_macs_per_context(cfg: LlmConfig) -> int:
    """MACs a decode step adds per unit of context (2 * layers * heads * head_dim)."""
    return 2 * cfg.layers * cfg.heads * cfg.head_dim


def total_macs(terms: list[Term], categories: tuple[str, ...] = CATEGORIES) -> int:
    return sum(t.macs for t in terms if t.category in categories)


def by_category(terms: list[Term]) -> dict[str, int]:
    out = dict.fromkeys(CATEGORIES, 0)
    for t in terms:
        out[t.category] += t.macs
    return out


def sam_reference_macs(size_px: int, cfg: SamConfig) -> int:
    """SAM MACs with every linear layer on the *real* token grid (no window padding): the
    convention of the published back-of-envelope totals (≈946 GFLOPs at 1024, ≈319 at 640)."""
    terms = sam_terms(size_px, size_px, cfg)
    g = sam_grid(size_px, cfg)
    d = cfg.width
    padded_extra = 0
    for i in range(cfg.depth):
        if i in cfg.global_attn_indexes:
            continue
        w = cfg.window_size
        padded = math.ceil(g / w) ** 2 * w * w
        padded_extra += (padded - g * g) * d * 4 * d  # qkv (3d) + proj (d)
    return total_macs(terms) - padded_extra
