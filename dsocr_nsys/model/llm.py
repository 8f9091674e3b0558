"""DeepSeek-3B-MoE decoder (DeepseekV2 with plain multi-head attention, no MLA) and its KV cache.

Submodule names follow the published checkpoint: ``embed_tokens``, ``layers.{i}.{input_layernorm,
self_attn.{q,k,v,o}_proj,post_attention_layernorm,mlp}``, ``norm``, ``lm_head``. Layer 0's ``mlp``
is a dense SwiGLU (``gate_proj``, ``up_proj``, ``down_proj``); later layers' ``mlp`` is a
:class:`MoE` with ``gate.weight``, ``experts.{e}.*`` and ``shared_experts.*``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import LlmConfig


class RMSNorm(nn.Module):
    """RMSNorm computed in float32, cast back to the input dtype before the scale."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * xf.to(x.dtype)


class SwiGLU(nn.Module):
    """down(silu(gate(x)) * up(x)), no biases."""

    def __init__(self, hidden: int, intermediate: int) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(hidden, intermediate, bias=False)
        self.up_proj = nn.Linear(hidden, intermediate, bias=False)
        self.down_proj = nn.Linear(intermediate, hidden, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class KVCache:
    """Static per-layer key/value buffers of shape (batch, heads, max_len, head_dim).

    Allocated uninitialised: attention only ever reads positions already written.
    """

    def __init__(
        self,
        cfg: LlmConfig,
        batch: int,
        max_len: int,
        device: torch.device | str,
        dtype: torch.dtype,
    ) -> None:
        shape = (batch, cfg.heads, max_len, cfg.head_dim)
        self.max_len = max_len
        self.k = [torch.empty(shape, device=device, dtype=dtype) for _ in range(cfg.layers)]
        self.v = [torch.empty(shape, device=device, dtype=dtype) for _ in range(cfg.layers)]

    def update(
        self, layer: int, start: int, k: torch.Tensor, v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Write positions [start, start+T) and return keys/values for positions [0, start+T)."""
        end = start + k.shape[2]
        self.k[layer][:, :, start:end] = k
        self.v[layer][:, :, start:end] = v
        return self.k[layer][:, :, :end], self.v[layer][:, :, :end]


def _rope(
    positions: torch.Tensor, head_dim: int, theta: float, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin tables (T, head_dim) for the given positions (rotate-half convention)."""
    inv_freq = 1.0 / (
        theta
        ** (torch.arange(0, head_dim, 2, device=positions.device, dtype=torch.float32) / head_dim)
    )
    freqs = positions.float()[:, None] * inv_freq[None, :]
    emb = torch.cat([freqs, freqs], dim=-1)
    return emb.cos().to(dtype), emb.sin().to(dtype)


def _apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rotated * sin


class Attention(nn.Module):
    """Plain multi-head attention (10 heads x 128) with RoPE, SDPA, optional KV cache."""

    def __init__(self, cfg: LlmConfig, layer_idx: int) -> None:
        super().__init__()
        self.layer_idx = layer_idx
        self.heads = cfg.heads
        self.head_dim = cfg.head_dim
        inner = cfg.heads * cfg.head_dim
        self.q_proj = nn.Linear(cfg.hidden, inner, bias=False)
        self.k_proj = nn.Linear(cfg.hidden, inner, bias=False)
        self.v_proj = nn.Linear(cfg.hidden, inner, bias=False)
        self.o_proj = nn.Linear(inner, cfg.hidden, bias=False)

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        cache: KVCache | None,
        start: int,
    ) -> torch.Tensor:
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, self.heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, t, self.heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.heads, self.head_dim).transpose(1, 2)
        q = _apply_rope(q, cos, sin)
        k = _apply_rope(k, cos, sin)
        if cache is not None:
            k, v = cache.update(self.layer_idx, start, k, v)
        if t == 1:
            out = F.scaled_dot_product_attention(q, k, v)  # one query sees every cached key
        elif start == 0:
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            # Several new queries after a cached prefix: causal with an offset.
            kpos = torch.arange(k.shape[2], device=x.device)
            qpos = torch.arange(start, start + t, device=x.device)
            mask = kpos[None, :] <= qpos[:, None]
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.o_proj(out.transpose(1, 2).reshape(b, t, -1))


class MoEGate(nn.Module):
    """Softmax router over the routed experts (float32), greedy top-k, no renormalisation."""

    def __init__(self, cfg: LlmConfig) -> None:
        super().__init__()
        self.top_k = cfg.experts_per_token
        self.weight = nn.Parameter(torch.zeros(cfg.routed_experts, cfg.hidden))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, hidden) -> (weights, expert ids), both (N, top_k); weights float32."""
        scores = F.linear(x.float(), self.weight.float()).softmax(dim=-1)
        return torch.topk(scores, self.top_k, dim=-1, sorted=False)


class MoE(nn.Module):
    """Routed experts (top-k of E) plus always-on shared experts.

    Only selected experts run: a single-token (decode) step runs exactly its ``top_k`` experts;
    a multi-token (prefill) pass groups the tokens per expert and runs one GEMM-sized call per
    expert that received tokens. The chosen expert ids (decode) or per-expert token counts
    (prefill) cross to the host once per layer -- one device sync per MoE layer, as in the
    reference implementation's ``moe_infer``.
    """

    def __init__(self, cfg: LlmConfig) -> None:
        super().__init__()
        self.num_experts = cfg.routed_experts
        self.top_k = cfg.experts_per_token
        self.gate = MoEGate(cfg)
        self.experts = nn.ModuleList(
            SwiGLU(cfg.hidden, cfg.moe_intermediate) for _ in range(cfg.routed_experts)
        )
        self.shared_experts = SwiGLU(cfg.hidden, cfg.shared_intermediate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        flat = x.reshape(-1, shape[-1])
        weights, ids = self.gate(flat)
        if flat.shape[0] == 1:
            # Decode step: run just the top_k chosen experts on the one token.
            acc = torch.zeros_like(flat, dtype=torch.float32)
            for slot, expert_id in enumerate(ids[0].tolist()):
                acc += self.experts[expert_id](flat).float() * weights[:, slot : slot + 1]
            return acc.to(x.dtype).view(shape) + self.shared_experts(x)
        flat_ids = ids.reshape(-1)
        order = torch.argsort(flat_ids, stable=True)
        counts = torch.bincount(flat_ids, minlength=self.num_experts).tolist()
        token_of = order // self.top_k
        sorted_w = weights.reshape(-1)[order]
        acc = torch.zeros(flat.shape, device=flat.device, dtype=torch.float32)
        begin = 0
        for expert_id, count in enumerate(counts):
            if count == 0:
                continue
            tokens = token_of[begin : begin + count]
            y = self.experts[expert_id](flat[tokens])
            acc.index_add_(0, tokens, y.float() * sorted_w[begin : begin + count, None])
            begin += count
        routed = acc.to(x.dtype).view(shape)
        return routed + self.shared_experts(x)


class DecoderLayer(nn.Module):
    def __init__(self, cfg: LlmConfig, layer_idx: int) -> None:
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.hidden, cfg.norm_eps)
        self.self_attn = Attention(cfg, layer_idx)
        self.post_attention_layernorm = RMSNorm(cfg.hidden, cfg.norm_eps)
        self.mlp: nn.Module = (
            SwiGLU(cfg.hidden, cfg.dense_intermediate)
            if layer_idx < cfg.first_k_dense
            else MoE(cfg)
        )

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        cache: KVCache | None,
        start: int,
    ) -> torch.Tensor:
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, cache, start)
        return x + self.mlp(self.post_attention_layernorm(x))


class DeepseekLM(nn.Module):
    """Decoder-only LM: embeddings -> layers -> final RMSNorm -> untied lm_head."""

    def __init__(self, cfg: LlmConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden)
        self.layers = nn.ModuleList(DecoderLayer(cfg, i) for i in range(cfg.layers))
        self.norm = RMSNorm(cfg.hidden, cfg.norm_eps)
        self.lm_head = nn.Linear(cfg.hidden, cfg.vocab_size, bias=False)

    def forward(
        self,
        inputs_embeds: torch.Tensor,
        cache: KVCache | None = None,
        start: int = 0,
        last_only: bool = True,
    ) -> torch.Tensor:
        """Logits for positions [start, start+T) of ``inputs_embeds`` (B, T, hidden).

        With ``last_only`` only the last position goes through ``lm_head`` (what generation
        needs); the result is (B, 1, vocab) then, else (B, T, vocab).
        """
        t = inputs_embeds.shape[1]
        positions = torch.arange(start, start + t, device=inputs_embeds.device)
        cos, sin = _rope(positions, self.cfg.head_dim, self.cfg.rope_theta, inputs_embeds.dtype)
        x = inputs_embeds
        for layer in self.layers:
            x = layer(x, cos, sin, cache, start)
        if last_only:
            x = x[:, -1:]
        return self.lm_head(self.norm(x))
