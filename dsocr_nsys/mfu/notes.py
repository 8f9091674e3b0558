"""What ``dsocr-nsys mfu`` tells the reader beside its tables: structured findings, and the one
function that turns them into note lines.

The computation (:mod:`.compute`) and the loader (:mod:`.report`) record :class:`Finding`
objects (a code and the figures it is about); :func:`note` is the only place a note's text is
written, so every note can be found, reworded or translated in one spot.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..vocab import TIME_BASE_BY_KEY


@dataclass(frozen=True)
class Finding:
    """One thing worth telling: ``code`` names it (see :func:`note`), ``data`` its figures."""

    code: str
    data: Mapping[str, Any] = field(default_factory=dict)


def note(finding: Finding) -> str:
    """The one-line note for ``finding`` (ValueError for an unknown code)."""
    d = finding.data
    code = finding.code
    if code == "peak":  # the peak chooser's own notes (mfu.peaks), passed through as written
        return str(d["text"])
    if code == "prefill_contains_vision":
        return (
            f"static prefill ({d['prefill_flops']:,} FLOPs) contains vision: the LLM part "
            f"({d['llm_flops']:,} FLOPs{'' if d['llm_bytes_known'] else ', bytes unknown'}) "
            "is prefill's own figure; vision FLOPs nested in a prefill range are added from the "
            "trace"
        )
    if code == "decode_per_step":
        return (
            f"decode FLOPs{' and bytes' if d['with_bytes'] else ''} computed per step from the "
            f"static per_step coefficients and each decode range's context-length payload "
            f"({d['with_payload']} of {d['steps']} steps, context "
            f"{d['context_min']}..{d['context_max']} tokens)"
        )
    if code == "decode_steps_without_payload":
        return (
            f"{d['count']} decode ranges carry no payload: the static per-step figure (context "
            f"mode {d['context_mode']}) is used for them"
        )
    if code == "decode_static_figure":
        why = (
            "have payloads but the static file has no per_step coefficients"
            if d["has_payloads"]
            else "carry no context-length payloads"
        )
        ctx = d["context_tokens"]
        return (
            f"decode ranges {why}: decode FLOPs/bytes = {d['steps']} steps × the static "
            f"per-step figure computed for context mode {d['context_mode']!r}"
            + (f" ({ctx} context tokens)" if ctx is not None else "")
        )
    if code == "config_mismatch_allowed":
        return f"--allow-mismatch: {d['problem']}"
    if code == "stage_not_in_static":
        return f"{d['stage']}: not in the static file, time only"
    if code == "zero_time_bases":
        labels = ", ".join(TIME_BASE_BY_KEY[k].label for k in d["bases"])
        return (
            f"{d['stage']}: {labels} 0 ns (no GPU work recorded in the range?): rates on those "
            "time bases are left empty"
        )
    if code == "static_stages_not_traced":
        return f"static stages not in the trace (no row): {', '.join(d['stages'])}"
    if code == "vision_not_nested":
        return (
            "vision ranges are not nested in prefill ranges: prefill's time and FLOPs are the "
            "LLM's only"
        )
    if code == "prefill_rows":
        return (
            "prefill row = the prefill NVTX range as measured (vision nested inside): its FLOPs "
            "are the static LLM prefill plus the nested vision stages'; llm_prefill = prefill "
            "minus the nested sam/clip/projector ranges on every time base, with the LLM-only "
            "FLOPs"
        )
    if code == "prefill_flops_unknown":
        return (
            "prefill (incl. vision): a nested vision stage has no static FLOPs, so the row's "
            "FLOPs are left empty; read llm_prefill"
        )
    if code == "total_row":
        if d["requests"]:
            text = (
                f"request row: {d['requests']} request range(s); FLOPs = sum over the stages "
                "with static figures"
            )
            if d["outside"]:
                text += f" ({d['outside']} stage instances lie outside request ranges)"
        else:
            text = (
                "no request ranges in the trace: the total row sums the top-level stage ranges "
                f"({', '.join(d['top_level'])}), gaps between them excluded"
            )
        if d["no_static"]:
            text += f"; {', '.join(d['no_static'])} have no static FLOPs and add time only"
        return text
    if code == "impossible":  # a row with MFU or MBU above 100 % (mfu.checks)
        shown = ", ".join(f"{c} {v:,.1f}" for c, v in d["columns"].items())
        return (
            f"{d['stage']}: {shown} (above 100 % of peak): the static file or the peak does "
            "not describe this run"
        )
    if code == "nsys_rep_missing":
        return (
            f"{d['name']} is not beside the export; open the .nsys-rep this export came from in "
            "Nsight Systems (a `dsocr-nsys profile` run folder holds trace.nsys-rep)"
        )
    if code == "dtype_not_bf16":
        return (
            f"static dtype is {d['dtype']}: MFU is still against the dense BF16 tensor peak; "
            "pass --peak-tflops for this dtype's peak"
        )
    if code == "warmup_included":
        return "--include-warmup: instances inside `warmup` ranges are counted"
    # hardware FLOPs and the measured ceiling (dsocr_nsys.hw.join; docs/hwflops.md)
    if code == "hw_source":
        return (
            f"hw_flops: tensor-core FLOPs from Nsight Compute ({', '.join(d['precisions'])}; "
            f"{d['source']}); HFU = hw_flops / GPU busy / datasheet peak; useful = model / "
            "hardware FLOPs"
        )
    if code == "hw_scaled":
        return (
            "hw_flops scaled per range instance from the ncu request to this trace's instances: "
            f"{', '.join(d['stages'])} (decode steps of other context lengths are taken at the "
            "ncu step's figure)"
        )
    if code == "hw_below_model":
        return (
            f"finding: {d['stage']} executed {d['hw_flops'] / 1e9:,.2f} GFLOP on the tensor "
            f"cores, less than its model count {d['model_flops'] / 1e9:,.2f} GFLOP: the static "
            "count is too high there, or part of the stage ran off the tensor cores (CUDA-core "
            "FP32, a precision not collected)"
        )
    if code == "ceiling_other_gpu":
        return (
            f"the ceiling was measured on {d['measured_on']}, the trace ran on {d['traced_on']}: "
            "calibrate on the traced GPU"
        )
    if code == "ceiling_columns":
        return (
            "mfu_*_pct / mbu_*_pct: against the datasheet peak; mfu_*_measured_pct / "
            "mbu_*_measured_pct: against the measured ceiling (dsocr-nsys calibrate)"
        )
    raise ValueError(f"no note text for finding {code!r}")
