"""DeepSeek-3B-MoE decoder (DeepseekV2 with plain multi-head attention, no MLA) and its KV cache.

Submodule names follow the published checkpoint: ``embed_tokens``, ``layers.{i}.{input_layernorm,
self_attn.{q,k,v,o}_proj,post_attention_layernorm,mlp}``, ``norm``, ``lm_head``. Layer 0's ``mlp``
is a dense SwiGLU (``gate_proj``, ``up_proj``, ``down_proj``); later layers' ``mlp`` is a
:class:`MoE` with ``gate.weight``, ``experts.{e}.*`` and ``shared_experts.*``.

Two decode regimes share these modules. ``start`` an ``int``: attention reads the cache's first
``start + T`` positions (the real context; shapes change every step). ``start`` a 0-d device
tensor (one new token per sequence): the new keys/values are written at that position and
attention reads the whole cache with a mask, so every step has the same shapes and no host value
-- what a CUDA graph or a compiled step needs (``decode_attention: padded_cache``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..settings import MOE_IMPLS
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

    def write_at(
        self, layer: int, pos: torch.Tensor, k: torch.Tensor, v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Write one position (``pos``: 0-d long tensor on the device, no host read) and return
        the whole buffers (batch, heads, max_len, head_dim)."""
        index = pos.reshape(1)
        self.k[layer].index_copy_(2, index, k)
        self.v[layer].index_copy_(2, index, v)
        return self.k[layer], self.v[layer]


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
        start: int | torch.Tensor,
    ) -> torch.Tensor:
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, self.heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, t, self.heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.heads, self.head_dim).transpose(1, 2)
        q = _apply_rope(q, cos, sin)
        k = _apply_rope(k, cos, sin)
        if isinstance(start, torch.Tensor):
            if cache is None or t != 1:
                raise ValueError("a tensor start needs a KV cache and one new token per sequence")
            # Static shapes: attend the whole cache, masking the positions not yet written.
            k, v = cache.write_at(self.layer_idx, start, k, v)
            mask = (torch.arange(k.shape[2], device=x.device) <= start)[None, :]  # (1, max_len)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
            return self.o_proj(out.transpose(1, 2).reshape(b, t, -1))
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
    """Routed experts (top-k of E) plus always-on shared experts; two implementations.

    ``impl = "loop"`` (the published reference's ``moe_infer``): only selected experts run; a
    single-token step runs its ``top_k`` experts one by one; a multi-token pass groups the tokens
    per expert and runs one GEMM-sized call per expert that received tokens. The chosen expert
    ids (single token) or per-expert token counts cross to the host once per layer: one device
    sync per MoE layer, which a CUDA graph cannot hold.

    ``impl = "device"``: no host read, so the step is capturable. In bfloat16 the (token,
    expert) pairs are sorted by expert on the device and the routed experts run as two grouped
    GEMMs (gate+up, down) over the stacked expert weights (``torch._grouped_mm``, group ends
    from a device-side count): each chosen expert's weights are read once per step however many
    tokens chose it. Other dtypes gather the chosen weights per pair (:attr:`device_kernel`).
    The stacked weights are the experts' own storage (:meth:`stack_experts`), not a copy.
    """

    def __init__(self, cfg: LlmConfig) -> None:
        super().__init__()
        self.num_experts = cfg.routed_experts
        self.top_k = cfg.experts_per_token
        self.impl = "loop"
        self.gate = MoEGate(cfg)
        self.experts = nn.ModuleList(
            SwiGLU(cfg.hidden, cfg.moe_intermediate) for _ in range(cfg.routed_experts)
        )
        self.shared_experts = SwiGLU(cfg.hidden, cfg.shared_intermediate)
        # (E, 2 * I, hidden): gate rows then up rows of each expert; (E, hidden, I): down.
        self.w13: torch.Tensor | None = None
        self.w2: torch.Tensor | None = None
        self.kernel: str | None = None  # None: by dtype (:attr:`device_kernel`)

    @torch.no_grad()
    def stack_experts(self) -> None:
        """Re-home every routed expert's weights into two stacked tensors and make each
        expert's parameters views of them (same names, counts and values; loading or
        initialising the parameters fills the stacks)."""
        first = self.experts[0].gate_proj.weight
        if first.device.type == "meta":
            return
        inter, hidden = first.shape
        w13 = torch.empty(
            self.num_experts, 2 * inter, hidden, device=first.device, dtype=first.dtype
        )
        w2 = torch.empty(self.num_experts, hidden, inter, device=first.device, dtype=first.dtype)
        for e, expert in enumerate(self.experts):
            w13[e, :inter].copy_(expert.gate_proj.weight)
            w13[e, inter:].copy_(expert.up_proj.weight)
            w2[e].copy_(expert.down_proj.weight)
            expert.gate_proj.weight = nn.Parameter(w13[e, :inter], requires_grad=False)
            expert.up_proj.weight = nn.Parameter(w13[e, inter:], requires_grad=False)
            expert.down_proj.weight = nn.Parameter(w2[e], requires_grad=False)
        self.w13, self.w2 = w13, w2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        flat = x.reshape(-1, shape[-1])
        weights, ids = self.gate(flat)
        if self.impl == "device":
            routed = self._routed_device(flat, weights, ids)
        else:
            routed = self._routed_loop(flat, weights, ids)
        return routed.to(x.dtype).view(shape) + self.shared_experts(x)

    def _routed_loop(
        self, flat: torch.Tensor, weights: torch.Tensor, ids: torch.Tensor
    ) -> torch.Tensor:
        """Routed output (N, hidden) in float32; one host read of the routing per call."""
        if flat.shape[0] == 1:
            # Decode step: run just the top_k chosen experts on the one token.
            acc = torch.zeros_like(flat, dtype=torch.float32)
            for slot, expert_id in enumerate(ids[0].tolist()):
                acc += self.experts[expert_id](flat).float() * weights[:, slot : slot + 1]
            return acc
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
        return acc

    @property
    def device_kernel(self) -> str:
        """The routed-expert kernel of the ``device`` path: ``grouped_mm`` (one grouped GEMM per
        projection over the stacked weights; torch implements it for bfloat16 only) or
        ``gather_bmm`` (the chosen experts' weights gathered per (token, expert) pair, then one
        batched GEMM: any dtype, but it copies the weights it reads; a pass with more pairs than
        experts runs the loop instead). ``kernel`` forces one. Measured inside the captured
        decode step on an H200 (docs/benchmarks.md): gather 8 % faster at batch 1, grouped
        1.3x faster at batch 4 and 2.3x at batch 16, so grouped is the bfloat16 kernel."""
        if self.kernel is not None:
            return self.kernel
        return (
            "grouped_mm"
            if self.w13 is not None and self.w13.dtype == torch.bfloat16
            else ("gather_bmm")
        )

    def _routed_device(
        self, flat: torch.Tensor, weights: torch.Tensor, ids: torch.Tensor
    ) -> torch.Tensor:
        """Routed output (N, hidden) in float32, without reading anything on the host."""
        if self.w13 is None or self.w2 is None:
            raise ValueError("MoE impl 'device' needs stack_experts() (build_model calls it)")
        inter = self.w2.shape[-1]
        gather = self.device_kernel == "gather_bmm"
        if gather and ids.numel() > self.num_experts:
            # More pairs than experts (a prompt): the gathered weights would outgrow memory
            # (374 GiB for gundam batch 16 on an H200), so the loop's per-expert GEMMs run
            # instead; only passes that no graph captures are this large.
            return self._routed_loop(flat, weights, ids)
        acc = torch.zeros(flat.shape, device=flat.device, dtype=torch.float32)
        if gather:
            flat_ids = ids.reshape(-1)  # pair p = (token p // top_k, its expert)
            xs = flat.repeat_interleave(self.top_k, dim=0)[:, None]  # (N * top_k, 1, hidden)
            gate_up = torch.bmm(xs, self.w13[flat_ids].transpose(1, 2))[:, 0]
            h = (F.silu(gate_up[:, :inter]) * gate_up[:, inter:])[:, None]
            y = torch.bmm(h, self.w2[flat_ids].transpose(1, 2))[:, 0]  # (N * top_k, hidden)
            routed = (y.float().view(-1, self.top_k, flat.shape[-1]) * weights[..., None]).sum(1)
            return acc + routed
        flat_ids = ids.reshape(-1)
        order = torch.argsort(flat_ids, stable=True)
        token_of = order // self.top_k
        ones = torch.ones_like(flat_ids, dtype=torch.int32)
        counts = torch.zeros(self.num_experts, device=flat.device, dtype=torch.int32)
        counts.index_add_(0, flat_ids, ones)  # bincount reads its maximum on the host
        ends = counts.cumsum(0, dtype=torch.int32)
        xs = flat[token_of]  # (N * top_k, hidden), grouped by expert
        gate_up = torch._grouped_mm(xs, self.w13.transpose(1, 2), offs=ends)
        h = F.silu(gate_up[:, :inter]) * gate_up[:, inter:]
        y = torch._grouped_mm(h, self.w2.transpose(1, 2), offs=ends)
        acc.index_add_(0, token_of, y.float() * weights.reshape(-1)[order, None])
        return acc


def set_moe_impl(module: nn.Module, impl: str) -> None:
    """Switch every :class:`MoE` under ``module`` to ``impl`` (``loop`` or ``device``)."""
    if impl not in MOE_IMPLS:
        raise ValueError(f"unknown MoE implementation {impl!r}; choose one of {MOE_IMPLS}")
    for m in module.modules():
        if isinstance(m, MoE):
            m.impl = impl


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
        start: int | torch.Tensor,
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
        start: int | torch.Tensor = 0,
        last_only: bool = True,
    ) -> torch.Tensor:
        """Logits for positions [start, start+T) of ``inputs_embeds`` (B, T, hidden).

        With ``last_only`` only the last position goes through ``lm_head`` (what generation
        needs); the result is (B, 1, vocab) then, else (B, T, vocab). ``start`` a 0-d device
        tensor: the static-shape decode step (module docstring).
        """
        t = inputs_embeds.shape[1]
        positions = start + torch.arange(t, device=inputs_embeds.device)
        cos, sin = _rope(positions, self.cfg.head_dim, self.cfg.rope_theta, inputs_embeds.dtype)
        x = inputs_embeds
        for layer in self.layers:
            x = layer(x, cos, sin, cache, start)
        if last_only:
            x = x[:, -1:]
        return self.lm_head(self.norm(x))
