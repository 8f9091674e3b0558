"""The two traced sources of FLOP counts: fvcore (``FlopCountAnalysis``,
``ActivationCountAnalysis``, through ``torch.jit`` tracing) and
``torch.utils.flop_counter.FlopCounterMode`` (dispatch-level, under ``FakeTensorMode``). Neither
needs weights or a GPU.

Both count what the model's own modules run, with two deliberate substitutions:

* **MoE.** The model routes each token to its top-k experts by a data-dependent choice (and
  crosses the per-expert counts to the host, which meta/fake tensors cannot). For counting, every
  MoE layer's ``mlp`` is swapped for :class:`StaticMoE`: the real router, the real shared
  experts, and the real expert 0 applied to every token ``top_k`` times -- exactly the routed
  multiply-adds any routing produces, since all routed experts have one shape.
* **SDPA.** fvcore has no handle for ``aten::scaled_dot_product_attention`` and FlopCounterMode
  none for the CPU kernel ``_scaled_dot_product_flash_attention_for_cpu``; both get handles here
  that count the unmasked (query, key) pairs (causal: ``S(S+1)/2``, see :mod:`.formulas`).

fvcore's jit trace runs on the meta device for transformer blocks; ``torch.jit`` cannot trace a
convolution on meta (its shape check receives traced tensors), so convolutional units are traced
on real CPU tensors (float32, random). Identical units (same module structure and parameter
shapes, same input shape) are traced once and multiplied by their number.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..model.llm import KVCache, MoE
from .formulas import causal_pairs

# fvcore operator name (by_operator key) -> operator category
FV_CATEGORY = {
    "linear": "matmul",
    "matmul": "matmul",
    "addmm": "matmul",
    "mm": "matmul",
    "conv": "conv",
    "_convolution": "conv",
    "einsum": "attention",  # SAM's decomposed rel-pos terms
    "bmm": "attention",
    "baddbmm": "attention",
    "scaled_dot_product_attention": "attention",
    "layer_norm": "norm",
    "group_norm": "norm",
    "batch_norm": "norm",
    "instance_norm": "norm",
    "upsample_bilinear2d": "elementwise",
    "upsample_nearest2d": "elementwise",
    "adaptive_avg_pool2d": "elementwise",
}
# FlopCounterMode op (str(op) without "aten.") -> category
FC_CATEGORY = {
    "mm": "matmul",
    "addmm": "matmul",
    "convolution": "conv",
    "bmm": "attention",
    "baddbmm": "attention",
    "_scaled_dot_product_flash_attention_for_cpu": "attention",
    "_scaled_dot_product_flash_attention": "attention",
    "_scaled_dot_product_efficient_attention": "attention",
    "_scaled_dot_product_cudnn_attention": "attention",
}


class StaticMoE(nn.Module):
    """Counting stand-in for :class:`~dsocr_nsys.model.llm.MoE` (see the module docstring):
    router + expert 0 on ``top_k`` copies of every token + shared experts."""

    def __init__(self, moe: MoE) -> None:
        super().__init__()
        self.gate = moe.gate
        self.expert = moe.experts[0]
        self.shared_experts = moe.shared_experts
        self.top_k = moe.top_k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        flat = x.reshape(-1, shape[-1])
        weights, _ids = self.gate(flat)
        rows = flat.repeat_interleave(self.top_k, dim=0)
        y = self.expert(rows).float().view(-1, self.top_k, shape[-1])
        routed = (y * weights[..., None]).sum(1)
        return routed.to(x.dtype).view(shape) + self.shared_experts(x)


@contextlib.contextmanager
def static_moe(llm: nn.Module) -> Iterator[None]:
    """Swap every MoE ``mlp`` of ``llm.layers`` for :class:`StaticMoE`, restoring on exit."""
    swapped = []
    for layer in llm.layers:
        if isinstance(layer.mlp, MoE):
            swapped.append((layer, layer.mlp))
            layer.mlp = StaticMoE(layer.mlp)
    try:
        yield
    finally:
        for layer, moe in swapped:
            layer.mlp = moe


class LlmForward(nn.Module):
    """One LLM forward as generation runs it, as a traceable module: a fresh KV cache of
    ``cache_len`` positions, the new tokens written from ``start``, lm_head on the last one."""

    def __init__(self, llm: nn.Module, cfg: Any, cache_len: int, start: int) -> None:
        super().__init__()
        self.llm = llm
        self.cfg = cfg
        self.cache_len = cache_len
        self.start = start

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cache = KVCache(self.cfg, x.shape[0], self.cache_len, x.device, x.dtype)
        return self.llm(x, cache, self.start)


# --- attention pair counting (shared by both sources) ---------------------------------------


def sdpa_macs(
    q_shape: tuple[int, ...], k_shape: tuple[int, ...], v_shape: tuple[int, ...], causal: bool
) -> int:
    """MACs of softmax(QKᵀ)V for (..., Lq, E) x (..., Lk, E) x (..., Lk, Ev), counting only the
    unmasked pairs when ``causal`` (top-left aligned, as torch's ``is_causal``)."""
    *batch, lq, e = q_shape
    lk, ev = k_shape[-2], v_shape[-1]
    b = 1
    for d in batch:
        b *= int(d)
    pairs = causal_pairs(int(lq), int(lk)) if causal else int(lq) * int(lk)
    return b * pairs * (int(e) + int(ev))


# --- fvcore ---------------------------------------------------------------------------------


def _fv_shape(value: Any) -> tuple[int, ...]:
    from fvcore.nn.jit_handles import get_shape

    return tuple(get_shape(value))


def _fv_sdpa(inputs: list[Any], outputs: list[Any]) -> Counter[str]:
    """fvcore handle for aten::scaled_dot_product_attention (MACs, fvcore's unit)."""
    q, k, v = (_fv_shape(i) for i in inputs[:3])
    causal = bool(inputs[5].toIValue()) if len(inputs) > 5 else False
    return Counter({"scaled_dot_product_attention": sdpa_macs(q, k, v, causal)})


def _fv_baddbmm(inputs: list[Any], outputs: list[Any]) -> Counter[str]:
    b, n, k = _fv_shape(inputs[1])
    m = _fv_shape(inputs[2])[-1]
    return Counter({"baddbmm": b * n * k * m})


def _fv_out_numel(name: str) -> Callable[[list[Any], list[Any]], Counter[str]]:
    def handle(inputs: list[Any], outputs: list[Any]) -> Counter[str]:
        n = 1
        for d in _fv_shape(outputs[0]):
            n *= d
        return Counter({name: n})

    return handle


def _fv_einsum(inputs: list[Any], outputs: list[Any]) -> Counter[str]:
    """Exact MACs of a two-operand einsum: the product of every index's size. (fvcore's own
    handle parses numpy's rounded ``einsum_path`` report, off by up to ~1e-4 relative.)"""
    equation = inputs[0].toIValue().replace(" ", "")
    operands = [_fv_shape(v) for v in inputs[1].node().inputs()]
    lhs = equation.split("->")[0].split(",")
    if len(lhs) != 2 or "." in equation:
        raise ValueError(f"unsupported einsum {equation!r}: only two operands without ellipsis")
    sizes: dict[str, int] = {}
    for letters, shape in zip(lhs, operands, strict=True):
        sizes.update(zip(letters, (int(d) for d in shape), strict=True))
    macs = 1
    for size in sizes.values():
        macs *= size
    return Counter({"einsum": macs})


FV_FLOP_HANDLES = {
    "aten::scaled_dot_product_attention": _fv_sdpa,
    "aten::einsum": _fv_einsum,
    "aten::baddbmm": _fv_baddbmm,
}
FV_ACT_HANDLES = {
    "aten::scaled_dot_product_attention": _fv_out_numel("scaled_dot_product_attention"),
}


@dataclass
class FvUnit:
    """One module traced by fvcore: ``inputs`` (meta or CPU tensors), run ``count`` times."""

    name: str
    module: nn.Module
    inputs: tuple[Any, ...]
    count: int = 1


@dataclass
class FvResult:
    """fvcore figures for one stage, summed over units (MACs: fvcore counts 1 per MAC)."""

    macs_by_operator: Counter[str] = field(default_factory=Counter)
    macs_by_module: Counter[str] = field(default_factory=Counter)
    activations: int = 0
    unsupported: Counter[str] = field(default_factory=Counter)
    traces: int = 0

    def by_category(self) -> dict[str, int]:
        out: Counter[str] = Counter()
        for op, macs in self.macs_by_operator.items():
            out[FV_CATEGORY.get(op, "other")] += macs
        return dict(out)


def _unit_key(unit: FvUnit) -> tuple[Any, ...]:
    params = tuple((n, tuple(p.shape)) for n, p in unit.module.named_parameters())
    shapes = tuple(tuple(x.shape) if isinstance(x, torch.Tensor) else repr(x) for x in unit.inputs)
    return (type(unit.module).__qualname__, repr(unit.module), params, shapes)


def _has_conv(module: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.conv._ConvNd) for m in module.modules())


def _on_cpu(module: nn.Module, inputs: tuple[Any, ...]) -> tuple[nn.Module, tuple[Any, ...]]:
    """A float32 CPU copy of a (meta) module and random CPU inputs of the same shapes."""
    gen = torch.Generator().manual_seed(0)
    cpu = copy.deepcopy(module).to_empty(device="cpu").float()
    with torch.no_grad():
        for p in cpu.parameters():
            p.normal_(0.0, 0.02, generator=gen)
    cpu_inputs = tuple(
        torch.randn(x.shape, generator=gen) if isinstance(x, torch.Tensor) else x for x in inputs
    )
    return cpu, cpu_inputs


@contextlib.contextmanager
def _quiet_fvcore() -> Iterator[None]:
    """fvcore logs a warning per unsupported operator; we collect them instead."""
    logger = logging.getLogger("fvcore.nn.jit_analysis")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def fvcore_count(units: list[FvUnit], progress: Callable[[str], None] | None = None) -> FvResult:
    """Run fvcore over ``units``; identical units are traced once and multiplied."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fvcore uses torch.jit.script
        from fvcore.nn import ActivationCountAnalysis, FlopCountAnalysis

    groups: dict[tuple[Any, ...], list[FvUnit]] = {}
    for unit in units:
        groups.setdefault(_unit_key(unit), []).append(unit)
    result = FvResult()
    for members in groups.values():
        unit = members[0]
        count = sum(m.count for m in members)
        module, inputs = unit.module, unit.inputs
        if _has_conv(module):
            module, inputs = _on_cpu(module, inputs)
        if progress:
            progress(f"fvcore: {unit.name} x{count}")
        with _quiet_fvcore(), torch.no_grad():
            flops = FlopCountAnalysis(module, inputs).set_op_handle(**FV_FLOP_HANDLES)
            flops.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
            flops.tracer_warnings("none")
            acts = ActivationCountAnalysis(module, inputs).set_op_handle(**FV_ACT_HANDLES)
            acts.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
            acts.tracer_warnings("none")
            by_op = flops.by_operator()
            by_mod = flops.by_module()
            total_acts = acts.total()
            unsupported = flops.unsupported_ops()
        result.traces += 1
        for op, macs in by_op.items():
            result.macs_by_operator[op] += int(macs) * count
        for m in members:
            for sub, macs in by_mod.items():
                if sub:  # "" is the unit itself
                    result.macs_by_module[f"{m.name}.{sub}"] += int(macs) * m.count
            result.macs_by_module[m.name] += int(by_mod.get("", 0)) * m.count
        result.activations += int(total_acts) * count
        for op, n in unsupported.items():
            result.unsupported[op] += n * count
    return result


# --- FlopCounterMode ------------------------------------------------------------------------


def _fc_sdpa(*args: Any, out_shape: Any = None, **kwargs: Any) -> int:
    """FlopCounterMode formula (FLOPs = 2 x MACs) for the flash-style SDPA kernels, whose
    signature is (query, key, value, dropout_p, is_causal, ...)."""
    q, k, v = args[:3]
    causal = bool(args[4]) if len(args) > 4 else bool(kwargs.get("is_causal", False))
    return 2 * sdpa_macs(tuple(q), tuple(k), tuple(v), causal)


def flop_counter_mapping() -> dict[Any, Callable[..., int]]:
    aten = torch.ops.aten
    mapping: dict[Any, Callable[..., int]] = {}
    for name in (
        "_scaled_dot_product_flash_attention_for_cpu",
        "_scaled_dot_product_flash_attention",
    ):
        op = getattr(aten, name, None)
        if op is not None:
            mapping[op] = _fc_sdpa
    return mapping


@dataclass
class FcResult:
    """FlopCounterMode FLOPs (2 per MAC) for one stage, by aten op."""

    flops_by_op: Counter[str] = field(default_factory=Counter)

    def by_category(self) -> dict[str, int]:
        out: Counter[str] = Counter()
        for op, flops in self.flops_by_op.items():
            out[FC_CATEGORY.get(op, "other")] += flops
        return dict(out)


@contextlib.contextmanager
def flop_counter(result: FcResult) -> Iterator[None]:
    """Count every op run inside the block into ``result`` (adds to what it holds)."""
    from torch.utils.flop_counter import FlopCounterMode

    mode = FlopCounterMode(display=False, custom_mapping=flop_counter_mapping())
    with mode:
        yield
    for op, flops in mode.get_flop_counts().get("Global", {}).items():
        name = str(op).removeprefix("aten.")
        result.flops_by_op[name.split(".")[0]] += int(flops)
