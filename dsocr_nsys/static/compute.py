"""``dsocr-nsys static``: per-stage parameters, FLOPs and bytes for one DeepSeek-OCR request,
from three sources side by side (closed-form formulas, fvcore, FlopCounterMode).

:func:`compute_static` returns a :class:`StaticReport`: the static-compute document (the JSON
contract read by ``dsocr-nsys mfu``, see :mod:`.format`), built once, and the tables the CLI
renders, read from it (:func:`document_tables`). The stage figures are the closed-form ones;
fvcore and FlopCounterMode count the same matmul + conv + attention FLOPs (the ``agreement``
table shows how closely, per stage; tests/test_static.py requires exact agreement). The
published totals the ``checks`` table compares with are data: ``known_totals.csv``.

Per-instance convention: every figure is for one instance of the stage's NVTX range. One
``sam``/``clip``/``projector`` range covers all views of the request; ``prefill`` encloses the
vision stages (the launcher nests them), so its figures include vision; one ``decode`` range is
one step.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import polars as pl

from .. import __version__
from ..errors import ModelError
from ..output import Report, render, write_atomic
from ..settings import InferenceSettings, variant
from ..vocab import (
    CLIP,
    DECODE,
    LLM_PREFILL,
    PREFILL,
    PROJECTOR,
    REQUEST,
    SAM,
    STAGE_ORDER,
    VISION,
    VISION_PARTS,
)
from . import formulas as F
from .format import SCHEMA_NAME, SCHEMA_VERSION, parse_static

CONTEXT_MODES = ("auto", "fixed", "max")
DTYPE_BYTES = {"bfloat16": 2, "float16": 2, "float32": 4}
#: The stages the static document has an entry for: every report row but the ones only a
#: trace gives (llm_prefill is the prefill entry's ``llm_flops``; request is the sum).
STAGES = tuple(s for s in STAGE_ORDER if s not in (LLM_PREFILL, REQUEST))
Progress = Callable[[str], None]


@dataclass(frozen=True)
class StaticOptions:
    """What to compute for (CLI flags)."""

    preset: str = "full"
    mode: str = "gundam"
    crops: int | None = None
    image_size: tuple[int, int] | None = None
    max_new_tokens: int = 256
    context_mode: str = "auto"
    context: int | None = None
    dtype: str = "bfloat16"
    sources: bool = True  # run fvcore and FlopCounterMode (formulas always run)
    # The launcher's variant (dsocr_nsys.settings.variant): decode attention and batch change
    # the figures, decode/moe/compile are recorded so that mfu can match the trace's run.json.
    decode: str = "eager"
    moe: str | None = None
    compile: bool = False
    batch: int = 1


@dataclass
class StaticReport:
    """The static-compute document and the tables shown to the user."""

    document: dict[str, Any]
    tables: dict[str, pl.DataFrame]
    notes: list[str] = field(default_factory=list)

    def report(self) -> Report:
        cfg = self.document["config"]
        meta = {
            k: cfg[k]
            for k in ("preset", "mode", "crops", "views", "image_tokens", "prefill_tokens")
        }
        meta["decode"] = (
            f"{cfg['decode_steps']} steps, context {cfg['decode_context_tokens']} "
            f"({cfg['decode_context_mode']})"
        )
        return Report(self.tables, self.notes, meta, "DeepSeek-OCR static compute")


def _params_by_stage(counts: Mapping[str, int], total_key: str) -> dict[str, int]:
    """Parameters per stage from per-module counts (the model's own or fvcore's, whose whole
    model sits under ``total_key``): vision = its three parts, prefill = the whole model (vision
    runs inside it), decode = the LLM."""
    # the model's modules are named like the vision stages (sam, clip, projector) and llm
    parts = {part: counts[part] for part in VISION_PARTS}
    return {
        **parts,
        VISION: sum(parts.values()),
        PREFILL: counts[total_key],
        DECODE: counts["llm"],
    }


def decode_context(
    mode: str, context: int | None, prefill: int, new_tokens: int, window: int
) -> int:
    """Context length (KV positions attended, the new token's included) assumed for a decode
    step when the trace does not carry it: ``auto`` = prefill + half the generated tokens
    (the mean over the run's steps), ``fixed`` = ``context``, ``max`` = the model window."""
    if mode not in CONTEXT_MODES:
        raise ModelError(
            f"unknown context mode {mode!r}; choose one of: {', '.join(CONTEXT_MODES)}"
        )
    if mode == "fixed":
        if context is None:
            raise ModelError("--context-mode fixed needs --context N (the decode context length)")
        return context
    if context is not None:
        raise ModelError(f"--context applies to --context-mode fixed only, not {mode!r}")
    return prefill + new_tokens // 2 if mode == "auto" else window


def _validate(opts: StaticOptions) -> None:
    if opts.max_new_tokens < 1:
        raise ModelError(f"--max-new-tokens must be at least 1, got {opts.max_new_tokens}")
    if opts.context is not None and opts.context < 1:
        raise ModelError(f"--context must be a positive number of tokens, got {opts.context}")
    if opts.batch < 1:
        raise ModelError(f"--batch must be at least 1, got {opts.batch}")
    if opts.dtype not in DTYPE_BYTES:
        raise ModelError(f"unknown dtype {opts.dtype!r}; choose one of: {', '.join(DTYPE_BYTES)}")
    if opts.image_size is not None and min(opts.image_size) < 1:
        raise ModelError(
            f"--image-size must be positive, got {opts.image_size[0]}x{opts.image_size[1]}"
        )


# --- bytes ----------------------------------------------------------------------------------


def _llm_param_split(cfg: Any) -> dict[str, int]:
    """LLM parameter groups (counts, not bytes), from the architecture."""
    c = cfg.llm
    h, inner = c.hidden, c.heads * c.head_dim
    attn = 4 * h * inner
    norms_layer = 2 * h
    expert = 3 * h * c.moe_intermediate
    moe_layers = c.layers - c.first_k_dense
    return {
        "embed": c.vocab_size * c.hidden,
        "lm_head": c.vocab_size * c.hidden,
        "final_norm": h,
        "attention": c.layers * (attn + norms_layer),
        "dense_mlp": c.first_k_dense * 3 * h * c.dense_intermediate,
        "gates": moe_layers * c.routed_experts * h,
        "shared": moe_layers * 3 * h * c.shared_intermediate,
        "expert": expert,
        "moe_layers": moe_layers,
    }


def _llm_weight_params(cfg: Any, embed_rows: int, experts_touched: float) -> int:
    """Parameters an LLM forward reads: everything but the embedding table (only the
    ``embed_rows`` looked up) and the routed experts no token uses (``experts_touched`` per
    MoE layer)."""
    s = _llm_param_split(cfg)
    experts = round(experts_touched * s["moe_layers"]) * s["expert"]
    return (
        embed_rows * cfg.llm.hidden
        + s["lm_head"]
        + s["final_norm"]
        + s["attention"]
        + s["dense_mlp"]
        + s["gates"]
        + s["shared"]
        + experts
    )


def expected_experts(tokens: int, cfg: Any) -> float:
    """Expected distinct routed experts per MoE layer among ``tokens`` tokens, each choosing
    top-k of E uniformly: E * (1 - (1 - k/E)^tokens) (64.0 for a ~900-token prompt)."""
    e, k = cfg.llm.routed_experts, cfg.llm.experts_per_token
    if tokens == 1:
        return float(k)
    return e * (1.0 - (1.0 - k / e) ** tokens)


# --- the three sources ----------------------------------------------------------------------


def _formula_terms(cfg: Any, plan: Any, ctx: int) -> dict[str, list[F.Term]]:
    sizes = Counter(plan.views)
    sam: list[F.Term] = []
    clip: list[F.Term] = []
    proj_tokens = 0
    for size, n in sizes.items():
        sam += F.sam_terms(size, size, cfg.sam, count=n)
        qh, qw = F.sam_out_grid(size, size, cfg.sam)
        clip += F.clip_terms(1 + qh * qw, cfg.clip, count=n)
        proj_tokens += n * qh * qw
    proj = F.projector_terms(proj_tokens, cfg)
    llm = F.prefill_llm_terms(plan.prefill_tokens, cfg.llm, lm_head_rows=1)
    return {
        SAM: sam,
        CLIP: clip,
        PROJECTOR: proj,
        VISION: sam + clip + proj,
        "prefill_llm": llm,
        PREFILL: sam + clip + proj + llm,
        DECODE: F.decode_terms(ctx, cfg.llm),
    }


def _fvcore_units(model: Any, plan: Any, ctx: int) -> dict[str, list[Any]]:
    """fvcore units per stage on the meta model (shapes taken from a meta forward)."""
    import torch

    from .sources import FvUnit, LlmForward

    units: dict[str, list[Any]] = {"sam": [], "clip": [], "projector": [], "prefill_llm": []}
    sam, clip = model.sam, model.clip
    sam_parts = [("patch_embed", sam.patch_embed)]
    sam_parts += [(f"blocks.{i}", b) for i, b in enumerate(sam.blocks)]
    sam_parts += [("neck", sam.neck), ("net_2", sam.net_2), ("net_3", sam.net_3)]
    clip_parts = [("embeddings", clip.embeddings), ("pre_layrnorm", clip.pre_layrnorm)]
    clip_parts += [(f"transformer.layers.{i}", m) for i, m in enumerate(clip.transformer.layers)]
    dtype = next(model.parameters()).dtype
    for size, n in Counter(plan.views).items():
        seen: dict[str, tuple[Any, ...]] = {}
        hooks = []
        for prefix, parts in (("sam", sam_parts), ("clip", clip_parts)):
            for name, mod in parts:
                key = f"{prefix}.{name}"
                hooks.append(
                    mod.register_forward_pre_hook(
                        lambda _m, a, key=key, seen=seen: seen.setdefault(key, a)
                    )
                )
        try:
            with torch.no_grad():
                pixels = torch.empty(1, 3, size, size, device="meta", dtype=dtype)
                feats = sam(pixels)
                clip(feats)
        finally:
            for h in hooks:
                h.remove()
        for prefix, parts in (("sam", sam_parts), ("clip", clip_parts)):
            for name, mod in parts:
                args = seen[f"{prefix}.{name}"]
                units[prefix].append(FvUnit(f"{prefix}.{name}", mod, tuple(args), n))
        q = feats.shape[-1] * feats.shape[-2]
        x = torch.empty(1, q, model.cfg.projector_in, device="meta", dtype=dtype)
        units["projector"].append(FvUnit("projector", model.projector, (x,), n))
    h = model.cfg.llm.hidden
    llm = model.llm
    units["prefill_llm"].append(
        FvUnit(
            "llm",
            LlmForward(llm, model.cfg.llm, plan.prefill_tokens, 0),
            (torch.empty(1, plan.prefill_tokens, h, device="meta", dtype=dtype),),
        )
    )
    units["decode"] = [
        FvUnit(
            "llm",
            LlmForward(llm, model.cfg.llm, ctx, ctx - 1),
            (torch.empty(1, 1, h, device="meta", dtype=dtype),),
        )
    ]
    return units


def _run_fvcore(model: Any, plan: Any, ctx: int, progress: Progress | None) -> dict[str, Any]:
    from .sources import fvcore_count, static_moe

    units = _fvcore_units(model, plan, ctx)
    out = {}
    with static_moe(model.llm):
        for stage, stage_units in units.items():
            out[stage] = fvcore_count(stage_units, progress)
    return out


def _run_flop_counter(cfg: Any, plan: Any, ctx: int, progress: Progress | None) -> dict[str, Any]:
    """FlopCounterMode over the real model code under FakeTensorMode (CPU device, no memory)."""
    import contextlib

    import torch
    from torch._subclasses.fake_tensor import FakeTensorMode

    from ..model.deepseek_ocr import DeepseekOCR
    from ..model.llm import KVCache
    from .sources import FcResult, flop_counter, static_moe

    results = {s: FcResult() for s in ("sam", "clip", "projector", "prefill_llm", "decode")}

    @contextlib.contextmanager
    def stage(name: str, _payload: int) -> Any:
        if progress:
            progress(f"FlopCounterMode: {name}")
        with flop_counter(results[name]):
            yield

    with FakeTensorMode(), torch.no_grad():
        model = DeepseekOCR(cfg).eval()
        g = plan.global_size
        glob = torch.empty(1, 3, g, g)
        crops = None
        if plan.crops:
            c = plan.crop_size
            crops = torch.empty(plan.crops, 3, c, c)
        model.encode_images(glob, crops, plan.crop_grid, stage=stage)
        h = cfg.llm.hidden
        with static_moe(model.llm):
            if progress:
                progress("FlopCounterMode: prefill (LLM)")
            cache = KVCache(cfg.llm, 1, plan.prefill_tokens + 1, "cpu", torch.float32)
            with flop_counter(results["prefill_llm"]):
                model.llm(torch.empty(1, plan.prefill_tokens, h), cache, 0)
            if progress:
                progress("FlopCounterMode: decode step")
            cache = KVCache(cfg.llm, 1, ctx, "cpu", torch.float32)
            with flop_counter(results["decode"]):
                model.llm(torch.empty(1, 1, h), cache, ctx - 1)
    return results


# --- assembling -----------------------------------------------------------------------------


def compute_static(opts: StaticOptions, progress: Progress | None = None) -> StaticReport:
    """Compute the static-compute document and report for ``opts``.

    Raises :class:`~dsocr_nsys.errors.ModelError` (one line) for bad options.
    """
    _validate(opts)
    from ..model.config import get_config
    from ..model.deepseek_ocr import build_model, parameter_counts, resolve_dtype
    from ..model.inputs import plan_request

    cfg = get_config(opts.preset)
    kwargs: dict[str, Any] = {"crops": opts.crops}
    if opts.image_size is not None:
        kwargs["image_size"] = tuple(opts.image_size)
    plan = plan_request(opts.mode, **kwargs)
    steps = opts.max_new_tokens - 1
    window = cfg.llm.max_position_embeddings
    ctx = decode_context(
        opts.context_mode, opts.context, plan.prefill_tokens, opts.max_new_tokens, window
    )
    if ctx > window:
        raise ModelError(f"decode context {ctx} exceeds the model window {window}")
    if plan.prefill_tokens + opts.max_new_tokens - 1 > window:
        raise ModelError(
            f"prefill {plan.prefill_tokens} + {opts.max_new_tokens} new tokens exceeds the "
            f"model window {window}; lower --max-new-tokens"
        )
    dbytes = DTYPE_BYTES[opts.dtype]
    var = variant(
        InferenceSettings(decode=opts.decode, moe=opts.moe, compile=opts.compile, batch=opts.batch)
    )
    # padded_cache: every decode step attends the whole cache (prefill + new tokens, masked);
    # context: the step's own context. n: sequences per step (pages per request).
    padded = var["decode_attention"] == "padded_cache"
    cache_len = plan.prefill_tokens + opts.max_new_tokens
    attn_ctx = cache_len if padded else ctx
    n = opts.batch
    if progress:
        progress(
            f"static: {opts.preset} preset, {opts.mode}, {plan.num_views} view(s), "
            f"{plan.prefill_tokens} prefill tokens, decode context {ctx}"
        )

    terms = _formula_terms(cfg, plan, attn_ctx)
    model = build_model(cfg, device="meta", dtype=resolve_dtype(opts.dtype))
    counts = parameter_counts(model)

    fv: dict[str, Any] = {}
    fc: dict[str, Any] = {}
    if opts.sources:
        fv = _run_fvcore(model, plan, attn_ctx, progress)
        from fvcore.nn import parameter_count

        fv_params = parameter_count(model)
        fv_params_by_stage = _params_by_stage(fv_params, total_key="")
        fc = _run_flop_counter(cfg, plan, attn_ctx, progress)
        for name in (VISION, PREFILL):
            parts = list(VISION_PARTS) + (["prefill_llm"] if name == PREFILL else [])
            fv[name] = _merge_fv([fv[p] for p in parts])
            fc[name] = _merge_fc([fc[p] for p in parts])

    # Weight bytes: each batched call reads the stage's weights once (crops and global view are
    # two calls in gundam). CLIP's patch convolution is never run, so never read.
    calls = len(set(plan.views))
    clip_unused = cfg.clip.width * 3 * cfg.clip.patch_size**2
    weights = {
        SAM: counts[SAM] * calls,
        CLIP: (counts[CLIP] - clip_unused) * calls,
        PROJECTOR: counts[PROJECTOR] * calls,
    }
    experts_prefill = expected_experts(n * plan.prefill_tokens, cfg)
    # prefill embeds the text tokens only (BOS + prompt text); image positions come from the
    # projector
    text_rows = plan.prefill_tokens - plan.image_tokens
    weights["prefill_llm"] = _llm_weight_params(cfg, text_rows, experts_prefill)
    # one step reads each expert any of its n tokens chose once (both MoE implementations)
    weights[DECODE] = _llm_weight_params(cfg, n, expected_experts(n, cfg))
    weights[VISION] = sum(weights[s] for s in VISION_PARTS)
    weights[PREFILL] = weights[VISION] + weights["prefill_llm"]
    kv_per_pos = 2 * cfg.llm.layers * cfg.llm.heads * cfg.llm.head_dim * dbytes
    params = _params_by_stage(counts, total_key="total")
    decode_active = weights[DECODE]

    # One entry per stage: what every stage has, then what only some have (the document is
    # built once; the tables below are read from it).
    # n pages: n times the work, activations and KV traffic; weights as above.
    acts = {name: n * sum(x.out_elems for x in terms[name]) for name in STAGES}
    kv_bytes = {  # (read, write): decode reads what it attends and writes one position
        DECODE: (n * kv_per_pos * attn_ctx, n * kv_per_pos),
        PREFILL: (0, n * kv_per_pos * plan.prefill_tokens),
    }
    view_fields = {"views": plan.num_views, "calls": calls}
    base_macs = n * F.total_macs(F.decode_terms(0, cfg.llm))
    per_ctx_macs = n * F.decode_attention_macs_per_context(cfg.llm)
    bytes_base = decode_active * dbytes + acts[DECODE] * dbytes + n * kv_per_pos
    per_ctx_bytes = n * kv_per_pos
    if padded:  # the step attends the whole cache: its work does not depend on its context
        base_macs, per_ctx_macs = base_macs + per_ctx_macs * cache_len, 0
        bytes_base, per_ctx_bytes = bytes_base + per_ctx_bytes * cache_len, 0
    coeff = {
        "flops_base": 2 * base_macs,
        "flops_per_context": 2 * per_ctx_macs,
        "bytes_base": bytes_base,
        "bytes_per_context": per_ctx_bytes,
    }
    sum_ctx = steps * plan.prefill_tokens + steps * (steps + 1) // 2
    extras: dict[str, dict[str, Any]] = {
        **{part: view_fields for part in VISION_PARTS},
        VISION: {**view_fields, "contains": list(VISION_PARTS), "nested_in": PREFILL},
        PREFILL: {
            "contains": [VISION],
            "llm_flops": 2 * n * F.total_macs(terms["prefill_llm"]),
            "vision_flops": 2 * n * F.total_macs(terms[VISION]),
            "tokens": plan.prefill_tokens,
            "lm_head_positions": 1,
            "experts_touched_per_layer": round(experts_prefill, 3),
        },
        DECODE: {
            "per_step": coeff,
            "context_tokens": attn_ctx,
            "params_active": decode_active,
            "steps": steps,
            "sequences": n,
            "total_flops": steps * coeff["flops_base"] + coeff["flops_per_context"] * sum_ctx,
            "total_bytes": steps * bytes_base + per_ctx_bytes * sum_ctx,
        },
    }
    stages: dict[str, Any] = {}
    for name in STAGES:
        macs = n * F.total_macs(terms[name])
        kv_read, kv_write = kv_bytes.get(name, (0, 0))
        w_bytes = weights[name] * dbytes
        a_bytes = acts[name] * dbytes
        entry: dict[str, Any] = {
            "flops": 2 * macs,
            "macs": macs,
            "bytes": w_bytes + a_bytes + kv_read + kv_write,
            "params": params[name],
            "weight_bytes": w_bytes,
            "activation_bytes": a_bytes,
            "activations": acts[name],
            "kv_read_bytes": kv_read,
            "kv_write_bytes": kv_write,
            "operators": {k: 2 * n * v for k, v in F.by_category(terms[name]).items()},
            **extras.get(name, {}),
        }
        entry["sources"] = {"formula": {"flops": 2 * macs, "macs": macs}}
        if opts.sources:
            _add_sources(entry, fv[name], fc[name], fv_params_by_stage[name], n)
        stages[name] = entry

    config = {
        "preset": opts.preset,
        "mode": plan.mode,
        "image_size": list(plan.image_size),
        "crops": plan.crops,
        "crop_grid": list(plan.crop_grid) if plan.crop_grid else None,
        "views": plan.num_views,
        "view_sizes": list(plan.views),
        "image_tokens": plan.image_tokens,
        "prefill_tokens": plan.prefill_tokens,
        "max_new_tokens": opts.max_new_tokens,
        "decode_steps": steps,
        "dtype": opts.dtype,
        "decode_context_mode": opts.context_mode,
        "decode_context_tokens": attn_ctx,
        **var,
        "causal_attention": "unmasked",
        "lm_head_positions_prefill": 1,
    }
    checks = _known_checks(cfg, opts.preset)
    notes = _notes(cfg, plan, opts, calls, padded)
    doc = {
        "schema": SCHEMA_NAME,
        "schema_version": SCHEMA_VERSION,
        "generated_by": f"dsocr-nsys {__version__} static",
        "config": config,
        "stages": stages,
        "checks": checks,
        "notes": notes,
    }
    parse_static(doc)  # the contract: never write what mfu cannot read
    return StaticReport(doc, document_tables(doc), notes)


def _add_sources(entry: dict[str, Any], fv: Any, fc: Any, fv_params: int, n: int = 1) -> None:
    """Put fvcore's and FlopCounterMode's figures for one stage into its entry (``sources``,
    ``unsupported_ops``, and the norm FLOPs only fvcore sees among the operators). Both trace
    one page: ``n`` pages (the batch) do ``n`` times its work."""
    fv_cat = fv.by_category()
    fv_macs = n * sum(fv_cat.get(c, 0) for c in F.CATEGORIES)
    fc_cat = fc.by_category()
    entry["sources"]["fvcore"] = {
        "flops": 2 * fv_macs,
        "macs": fv_macs,
        "norm_flops": 2 * n * fv_cat.get("norm", 0),
        "params": fv_params,
        "activations": n * fv.activations,
        "by_operator_macs": {k: n * v for k, v in fv.macs_by_operator.items()},
    }
    entry["sources"]["flop_counter"] = {
        "flops": n * sum(fc_cat.get(c, 0) for c in F.CATEGORIES),
        "by_op_flops": {k: n * v for k, v in fc.flops_by_op.items()},
    }
    entry["unsupported_ops"] = dict(sorted(fv.unsupported.items()))
    entry["operators"]["norm"] = 2 * n * fv_cat.get("norm", 0)
    # the document's key order: sources last
    entry["sources"] = entry.pop("sources")


def document_tables(doc: dict[str, Any]) -> dict[str, pl.DataFrame]:
    """The tables ``dsocr-nsys static`` shows, read from a static-compute document: per-stage
    figures, source agreement (when fvcore and FlopCounterMode ran), FLOPs per operator
    category, and the known-total checks."""
    rows, agree_rows, op_rows = [], [], []
    for name, entry in doc["stages"].items():
        src = entry["sources"]
        formula = src["formula"]["flops"]
        diffs: list[float] = []
        if "fvcore" in src:
            fv_flops, fc_flops = src["fvcore"]["flops"], src["flop_counter"]["flops"]
            diffs = [_pct(fv_flops, formula), _pct(fc_flops, formula)]
            agree_rows.append(
                {
                    "stage": name,
                    "formula_flops": formula,
                    "fvcore_flops": fv_flops,
                    "flop_counter_flops": fc_flops,
                    "fvcore_diff_pct": diffs[0],
                    "flop_counter_diff_pct": diffs[1],
                    "fvcore_activations": src["fvcore"]["activations"],
                    "formula_activations": entry["activations"],
                }
            )
        ops = entry["operators"]
        top = sorted(ops.items(), key=lambda kv: -kv[1])
        total_ops = sum(ops.values()) or 1
        rows.append(
            {
                "stage": name,
                "params_M": round(entry["params"] / 1e6, 2),
                # one range instance (decode: one step); mfu's total_flops sums the instances
                "per_instance_flops": entry["flops"],
                "per_instance_bytes": entry["bytes"],
                "weight_bytes": entry["weight_bytes"],
                "activation_bytes": entry["activation_bytes"],
                "kv_bytes": entry["kv_read_bytes"] + entry["kv_write_bytes"],
                "top_operators": ", ".join(
                    f"{k} {100 * v / total_ops:.0f}%" for k, v in top if v > 0
                )[:60],
                "max_source_diff_pct": max(abs(d) for d in diffs) if diffs else None,
            }
        )
        op_rows += [{"stage": name, "category": c, "category_flops": v} for c, v in ops.items()]
    tables = {"stages": pl.DataFrame(rows)}
    if agree_rows:
        tables["agreement"] = pl.DataFrame(agree_rows)
    tables["operators"] = pl.DataFrame(op_rows)
    tables["checks"] = pl.DataFrame(doc["checks"])
    return tables


def _merge_fv(parts: list[Any]) -> Any:
    from .sources import FvResult

    out = FvResult()
    for p in parts:
        out.macs_by_operator.update(p.macs_by_operator)
        out.macs_by_module.update(p.macs_by_module)
        out.unsupported.update(p.unsupported)
        out.activations += p.activations
        out.traces += p.traces
    return out


def _merge_fc(parts: list[Any]) -> Any:
    from .sources import FcResult

    out = FcResult()
    for p in parts:
        out.flops_by_op.update(p.flops_by_op)
    return out


def _pct(value: float, ref: float) -> float:
    return 0.0 if ref == 0 else round(100.0 * (value - ref) / ref, 4)


@cache
def known_totals() -> tuple[dict[str, str], ...]:
    """The published totals the checks compare with (``known_totals.csv`` beside this module:
    check, quantity, size, expected, unit, source), full-preset figures."""
    text = resources.files(__package__).joinpath("known_totals.csv").read_text("utf-8")
    return tuple(csv.DictReader(io.StringIO(text)))


def _known_checks(cfg: Any, preset: str) -> list[dict[str, Any]]:
    """Each published total of :func:`known_totals` next to ours: in the reference convention
    (SAM on the unpadded grid, as the published figures) and as the model runs it. GFLOPs,
    except the ``FLOP`` unit rows. The expected figure is the full preset's only."""
    llm = cfg.llm
    rows = []
    for known in known_totals():
        quantity, size = known["quantity"], int(known["size"] or 0)
        ndigits = 3
        if quantity == "sam_view":
            ours = 2 * F.total_macs(F.sam_terms(size, size, cfg.sam))
            ref = 2 * F.sam_reference_macs(size, cfg.sam)
        elif quantity == "clip_tokens":
            ours = ref = 2 * F.total_macs(F.clip_terms(size, cfg.clip))
        elif quantity == "llm_linear_per_token":
            ours = ref = 2 * F.total_macs(F.llm_linear_terms(1, llm))
            ndigits = 6
        elif quantity == "lm_head_per_token":
            ours = ref = 2 * F.total_macs(F.lm_head_terms(1, llm))
            ndigits = 6
        elif quantity == "attention_per_context":
            ours = ref = 2 * F.decode_attention_macs_per_context(llm)
            ndigits = 6
        else:
            raise ValueError(f"known_totals.csv: unknown quantity {quantity!r}")
        scale = 1.0 if known["unit"] == "FLOP" else 1e9
        rows.append(
            {
                "check": known["check"],
                "expected_gflops": float(known["expected"]) if preset == "full" else None,
                "reference_convention_gflops": round(ref / scale, ndigits),
                "model_runs_gflops": round(ours / scale, ndigits),
                "why": "model runs qkv/proj on the window-padded grid" if ours != ref else "same",
            }
        )
    return rows


def _notes(cfg: Any, plan: Any, opts: StaticOptions, calls: int, padded: bool) -> list[str]:
    return [
        f"Variant: batch {opts.batch} (every figure is for the {opts.batch} page(s) of one "
        "request: FLOPs, activations and KV traffic times the batch, weights read once per "
        "batched call or step, routed experts read = expected distinct experts among the "
        "batch's tokens); decode attention "
        + (
            "over the whole padded cache (prefill + new tokens, masked), as the static-shape "
            "step of --decode cuda-graph / --compile runs it: per-step figures do not depend "
            "on the context."
            if padded
            else "over each step's real context."
        ),
        "FLOPs are 2 per multiply-add; a stage's FLOPs count matmul, convolution and attention "
        "(norms and element-wise ops are listed apart and not included).",
        "Causal attention counts the unmasked (query, key) pairs: S(S+1)/2 for a prompt of S "
        "tokens; a decode step attends its context (KV positions, the new token's included).",
        "Per-instance figures: sam/clip/projector cover all views of the request (one range "
        "each); prefill encloses vision (vision_flops + llm_flops); decode is one step at "
        f"context {opts.context_mode} (per_step gives any context).",
        "MoE counts the top-k routed experts a token uses plus the shared experts; fvcore and "
        "FlopCounterMode trace the router, shared experts and one routed expert applied to "
        "every token top-k times (a deterministic stand-in for the data-dependent routing).",
        f"The model runs lm_head on the last prompt position only in prefill; weights are read "
        f"once per batched call ({calls} call(s) per vision stage: crops and global view differ "
        "in size).",
        "SAM's windowed blocks run qkv/proj on the window-padded grid (64->70 at 1024 px, "
        "40->42 at 640): +30.35 GFLOPs per 1024 view and +6.19 per 640 crop over the published "
        "back-of-envelope totals, which use the unpadded grid."
        if opts.preset == "full"
        else "SAM's windowed blocks run qkv/proj on the window-padded grid.",
        "Prefill weight bytes assume uniform routing: expected distinct experts per MoE layer "
        "E(1-(1-k/E)^S), and the embedding rows of the text tokens only (image positions come "
        "from the projector); decode reads k routed + shared experts per MoE layer and one "
        "embedding row.",
        "Not in bytes: element-wise traffic (norms, residual adds, SAM's n x n rel-pos bias, "
        "the prompt concatenation) and the zero-fill of the KV cache the launcher allocates "
        "inside the prefill range (2 x layers x heads x head_dim x (prefill + new tokens) x "
        "dtype bytes).",
    ]


def parse_image_size(text: str) -> tuple[int, int]:
    """``"WxH"`` -> (W, H) in pixels; ModelError for anything else."""
    parts = text.lower().split("x")
    try:
        if len(parts) != 2:
            raise ValueError
        width, height = int(parts[0]), int(parts[1])
    except ValueError:
        raise ModelError(
            f"--image-size must be WxH in pixels (e.g. 1240x1754), got {text!r}"
        ) from None
    if width < 1 or height < 1:
        raise ModelError(f"--image-size must be positive, got {text!r}")
    return width, height


def write_static(result: StaticReport, path: str | Path) -> list[Path]:
    """Write the JSON document to ``path`` and its Markdown twin (same name, ``.md``), each
    atomically. Returns the paths written."""
    target = Path(path)
    twin = target.with_suffix(".md") if target.suffix != ".md" else target.with_suffix(".md.md")
    text = json.dumps(result.document, indent=2) + "\n"
    return [write_atomic(target, text), write_atomic(twin, render(result.report(), "md"))]
