"""MFU and MBU per DeepSeek-OCR stage: the trace engine's per-range GPU times joined with the
static FLOPs and bytes.

Everything here is computed from one frame of NVTX range instances (the trace engine's
``Trace.ranges()``), a :class:`~dsocr_nsys.static.format.StaticCompute` and a
:class:`~dsocr_nsys.mfu.peaks.PeakChoice`; no plotting and no printing.

Definitions (docs/mfu.md has the long form):

- time bases, each a total over the counted instances of a stage, in ns:
  ``busy`` (union of the GPU op intervals of the range), ``proj`` (projected GPU span, first
  op start to last op end, as ``nsys stats -r nvtx_gpu_proj_sum``), ``kernel`` (sum of kernel
  durations, as ``nvtx_kern_sum``), ``cpu`` (the range's own CPU duration, as ``nvtx_sum``);
- achieved TFLOP/s = FLOPs / time; MFU = FLOPs / (peak FLOP/s × time), FLOPs 2 per
  multiply-add, peak = dense BF16 tensor with FP32 accumulate;
- achieved GB/s = bytes / time; MBU = bytes / (peak B/s × time);
- arithmetic intensity = FLOPs / bytes; the ridge point = peak FLOP/s / peak B/s; a stage
  below the ridge is memory-bound, at or above it compute-bound.

Rates are rounded once from exact rational arithmetic (``fractions.Fraction``), so a value
equals the correctly rounded FLOPs / (peak × time) whatever the operand order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Any

import polars as pl

from ..errors import (
    ConfigMismatchError,
    StageNotFoundError,
    StaticFileError,
    TraceContentError,
)
from ..settings import VARIANT_FIELDS
from ..static.format import StageCompute, StaticCompute
from ..vocab import (
    BUSY,
    DECODE,
    DERIVED_STAGES,
    IDLE,
    LLM_PREFILL,
    NVTX_DOMAIN,
    NVTX_STAGES,
    PREFILL,
    PROJ,
    RATE_BASES,
    REQUEST,
    STAGE_BY_NAME,
    STAGE_ORDER,
    TIME_BASE_BY_KEY,
    TIME_BASES,
    VISION,
    VISION_PARTS,
)
from .checks import check_int64, impossible_findings, mark_impossible
from .notes import Finding, note
from .peaks import PeakChoice

TERA = 10**12
GIGA = 10**9

REQUIRED_COLUMNS = (
    "name",
    "pid",
    "tid",
    "start_ns",
    "end_ns",
    "gpu_start_ns",
    *(b.column for b in TIME_BASES),
)


def _zero_times() -> dict[str, int]:
    return {b.key: 0 for b in TIME_BASES}


@dataclass
class StageTimes:
    """Totals over a set of range instances and the FLOPs/bytes they computed.

    ``ns``: total ns per time-base key of :data:`dsocr_nsys.vocab.TIME_BASES`."""

    instances: int = 0
    ns: dict[str, int] = field(default_factory=_zero_times)
    gpu_ops: int = 0
    flops: int | None = None
    bytes: int | None = None
    first_start_ns: int | None = None
    first_gpu_start_ns: int | None = None

    def time(self, base: str) -> int:
        """Total ns on the time base ``base`` (a :class:`~dsocr_nsys.vocab.TimeBase` key)."""
        return self.ns[base]


@dataclass
class MfuResult:
    """What ``mfu`` computed.

    ``stages``: one row per stage (wide: every time base, rate and ratio; the JSON/CSV table).
    ``decode``: one row per time base for the decode stage (tokens/s, per-step time, MBU).
    ``peak``: the peak figures the rates are against and where they came from.
    ``findings``: what the notes tell (rendered by :func:`dsocr_nsys.mfu.notes.note`).
    ``meta``: the inputs' description (paths, configuration), set by the loader.
    """

    stages: pl.DataFrame
    decode: pl.DataFrame
    peak: PeakChoice
    findings: list[Finding] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def notes(self) -> list[str]:
        """The findings as note lines, in the order found."""
        return [note(f) for f in self.findings]


# --- exact ratios ----------------------------------------------------------------------------


def tflops_rate(flops: int | None, time_ns: int | None) -> float | None:
    """Achieved TFLOP/s = FLOPs / time (None when either is missing or time is 0)."""
    if flops is None or not time_ns:
        return None
    return float(Fraction(flops) / (Fraction(time_ns, 10**9) * 10**12))


def utilisation_pct(
    count: int | None, peak: float | None, unit: int, time_ns: int | None
) -> float | None:
    """100 × count / (peak × unit × time) in percent: MFU with FLOPs, peak TFLOP/s and
    ``unit=10**12``; MBU with bytes, peak GB/s and ``unit=10**9``."""
    if count is None or not time_ns or not peak:
        return None
    return float(100 * Fraction(count) / (Fraction(peak) * unit * Fraction(time_ns, 10**9)))


def gbps_rate(nbytes: int | None, time_ns: int | None) -> float | None:
    """Achieved GB/s = bytes / time (10^9 B/s)."""
    if nbytes is None or not time_ns:
        return None
    return float(Fraction(nbytes) / Fraction(time_ns))  # B/ns == GB/s


def tokens_per_s(tokens: int | None, time_ns: int | None) -> float | None:
    """Tokens per second = tokens / time (None when either is missing or 0)."""
    if not tokens or not time_ns:
        return None
    return float(Fraction(tokens * 10**9, time_ns))


# --- the range frame -------------------------------------------------------------------------


def select_ranges(ranges: pl.DataFrame, names: Sequence[str]) -> pl.DataFrame:
    """The range instances whose name is a stage name. When the launcher's ``dsocr`` domain
    holds any of them, ranges of other domains are ignored (a library's own ``prefill``
    range must not be counted)."""
    missing = [c for c in REQUIRED_COLUMNS if c not in ranges.columns]
    if missing:
        raise TraceContentError(f"trace engine frame lacks columns {missing}")
    sel = ranges.filter(pl.col("name").is_in(list(names)))
    if "domain" in sel.columns and sel.height:
        ours = sel.filter(pl.col("domain") == NVTX_DOMAIN)
        if ours.height:
            sel = ours
    return sel.sort("start_ns")


def _contained(inner: pl.DataFrame, outer: pl.DataFrame) -> list[int | None]:
    """For each row of ``inner``, the index (into ``outer``) of the range containing it on
    the same thread (CPU time), or None."""
    result: list[int | None] = []
    outer_rows = outer.select("pid", "tid", "start_ns", "end_ns").rows()
    for pid, tid, start, end in inner.select("pid", "tid", "start_ns", "end_ns").rows():
        hit = None
        for i, (opid, otid, ostart, oend) in enumerate(outer_rows):
            if opid == pid and otid == tid and ostart <= start and end <= oend:
                hit = i
                break
        result.append(hit)
    return result


def _top_level(frame: pl.DataFrame) -> list[bool]:
    """Whether each range lies inside no other range of the frame on its thread (of two
    with the same bounds, the first listed counts as the outer one)."""
    rows = frame.select("pid", "tid", "start_ns", "end_ns").rows()
    # sweep by (thread, start, longest first): a container always comes before what it holds
    order = sorted(
        range(len(rows)), key=lambda i: (rows[i][0], rows[i][1], rows[i][2], -rows[i][3], i)
    )
    flags = [True] * len(rows)
    thread, reach = None, None
    for i in order:
        pid, tid, _start, end = rows[i]
        if (pid, tid) != thread:
            thread, reach = (pid, tid), end
            continue
        if reach is not None and end <= reach:
            flags[i] = False
        else:
            reach = end
    return flags


def _payloads(frame: pl.DataFrame) -> list[int | None]:
    if "payload" not in frame.columns:
        return [None] * frame.height
    return [None if v is None else int(v) for v in frame["payload"].to_list()]


def _totals(frame: pl.DataFrame) -> StageTimes:
    if frame.height == 0:
        return StageTimes()
    sums = frame.select(
        pl.len().alias("_n"),
        *(pl.col(b.column).fill_null(0).sum().alias(b.key) for b in TIME_BASES),
        (pl.col("gpu_ops").fill_null(0).sum() if "gpu_ops" in frame.columns else pl.lit(0)).alias(
            "_ops"
        ),
        pl.col("start_ns").min().alias("_first"),
        pl.col("gpu_start_ns").min().alias("_first_gpu"),
    ).row(0, named=True)
    return StageTimes(
        instances=int(sums["_n"]),
        ns={b.key: int(sums[b.key]) for b in TIME_BASES},
        gpu_ops=int(sums["_ops"] or 0),
        first_start_ns=sums["_first"],
        first_gpu_start_ns=sums["_first_gpu"],
    )


def _sum_opt(values: Sequence[int | None]) -> int | None:
    return None if any(v is None for v in values) else sum(v for v in values if v is not None)


# --- configuration check ---------------------------------------------------------------------


def check_config(
    static: StaticCompute,
    stage_frames: dict[str, pl.DataFrame],
    requests: pl.DataFrame,
    run: dict[str, Any] | None = None,
) -> list[str]:
    """Compare the static configuration with the trace; return one line per mismatch.

    Checked where both sides know the value: prefill payload vs ``prefill_tokens``, vision
    payloads vs ``views`` x ``batch`` (the payload counts the views of every page), decode
    ranges per request vs ``decode_steps``, and the variant fields (decode, moe, compile, batch,
    decode_attention) vs ``run`` (the run.json beside the trace, when there is one)."""
    cfg = static.config
    problems: list[str] = []
    for key in VARIANT_FIELDS:
        ours, theirs = cfg.get(key), (run or {}).get(key)
        if ours is not None and theirs is not None and ours != theirs:
            problems.append(f"static config {key}={ours} but the trace's run.json says {theirs}")

    def compare(field_name: str, expected: Any, seen: set[int], what: str) -> None:
        seen = {v for v in seen if v is not None}
        if expected is None or not seen or seen == {expected}:
            return
        shown = ", ".join(str(v) for v in sorted(seen))
        problems.append(f"static config {field_name}={expected} but the trace's {what} say {shown}")

    prefill = stage_frames.get(PREFILL)
    if prefill is not None:
        compare(
            "prefill_tokens", cfg.get("prefill_tokens"), set(_payloads(prefill)), "prefill payloads"
        )
    for part in VISION_PARTS:
        frame = stage_frames.get(part)
        if frame is not None:
            views = cfg.get("views")
            if views is not None:
                views *= int(cfg.get("batch") or 1)
            compare("views", views, set(_payloads(frame)), f"{part} payloads")
    decode = stage_frames.get(DECODE)
    if decode is not None and cfg.get("decode_steps") is not None:
        counts = decode_steps_per_request(decode, requests, prefill)
        compare("decode_steps", cfg["decode_steps"], set(counts), "decode ranges per request")
    return problems


def decode_steps_per_request(
    decode: pl.DataFrame, requests: pl.DataFrame, prefill: pl.DataFrame | None
) -> list[int]:
    """Decode range count per request: per ``request`` range when the trace has them, else per
    ``prefill`` (each decode step belongs to the latest prefill that started before it)."""
    if requests.height:
        owners = _contained(decode, requests)
        counts = [0] * requests.height
        for o in owners:
            if o is not None:
                counts[o] += 1
        return counts
    if prefill is None or prefill.height == 0:
        return []
    starts = sorted(prefill["start_ns"].to_list())
    counts = [0] * len(starts)
    for s in decode["start_ns"].to_list():
        idx = max((i for i, p in enumerate(starts) if p <= s), default=None)
        if idx is not None:
            counts[idx] += 1
    return counts


# --- the computation -------------------------------------------------------------------------


def _own_figures(static: StaticCompute, findings: list[Finding]) -> StaticCompute:
    """The static file with each NVTX range's *own* figures: when its ``prefill`` entry
    ``contains`` vision (``dsocr-nsys static`` writes the whole range: vision + LLM), prefill
    becomes the LLM part (``llm_flops``; bytes = prefill − vision bytes), so that vision
    nested in a traced prefill is added back from the trace's own nesting and never twice."""
    pre = static.stage(PREFILL)
    if pre is None or VISION not in (pre.extra.get("contains") or []):
        return static
    vision = static.stage(VISION)
    llm_flops = pre.extra.get("llm_flops")
    if llm_flops is None and pre.extra.get("vision_flops") is not None:
        llm_flops = pre.flops - int(pre.extra["vision_flops"])
    if llm_flops is None and vision is not None:
        llm_flops = pre.flops - vision.flops
    if llm_flops is None:
        raise StaticFileError(
            "static prefill entry contains vision but gives no llm_flops/vision_flops and "
            "there is no vision entry; regenerate it with `dsocr-nsys static`"
        )
    llm_bytes = (
        pre.bytes - vision.bytes
        if pre.bytes is not None and vision is not None and vision.bytes is not None
        else None
    )
    findings.append(
        Finding(
            "prefill_contains_vision",
            {
                "prefill_flops": pre.flops,
                "llm_flops": int(llm_flops),
                "llm_bytes_known": llm_bytes is not None,
            },
        )
    )
    stages = dict(static.stages)
    stages[PREFILL] = replace(pre, flops=int(llm_flops), bytes=llm_bytes)
    return replace(static, stages=stages)


def _static_counts(
    stage: StageCompute | None,
    frame: pl.DataFrame,
    is_decode: bool,
    findings: list[Finding],
    static: StaticCompute,
) -> tuple[int | None, int | None, list[int | None] | None, list[int | None] | None]:
    """Total FLOPs and bytes over the instances in ``frame`` and the per-instance values."""
    if stage is None:
        return None, None, None, None
    n = frame.height
    per_flops: list[int | None] = [stage.flops] * n
    per_bytes: list[int | None] = [stage.bytes] * n
    if is_decode and n:
        payloads = _payloads(frame)
        with_payload = sum(p is not None for p in payloads)
        coeff = stage.per_step
        cfg = static.config
        mode = cfg.get("decode_context_mode", "unspecified")
        ctx = cfg.get("decode_context_tokens")
        if coeff is not None and with_payload:
            per_flops = [coeff.flops(p) if p is not None else stage.flops for p in payloads]
            has_bytes = coeff.bytes_base or coeff.bytes_per_context
            per_bytes = [
                coeff.bytes(p) if (p is not None and has_bytes) else stage.bytes for p in payloads
            ]
            ctxs = [p for p in payloads if p is not None]
            findings.append(
                Finding(
                    "decode_per_step",
                    {
                        "with_bytes": bool(has_bytes),
                        "with_payload": with_payload,
                        "steps": n,
                        "context_min": min(ctxs),
                        "context_max": max(ctxs),
                    },
                )
            )
            if with_payload < n:
                findings.append(
                    Finding(
                        "decode_steps_without_payload",
                        {"count": n - with_payload, "context_mode": mode},
                    )
                )
        else:
            findings.append(
                Finding(
                    "decode_static_figure",
                    {
                        "has_payloads": bool(with_payload),
                        "steps": n,
                        "context_mode": mode,
                        "context_tokens": ctx,
                    },
                )
            )
    return _sum_opt(per_flops), _sum_opt(per_bytes), per_flops, per_bytes


def _row(
    stage: str,
    kind: str,
    t: StageTimes,
    peak: PeakChoice,
    ridge: float | None,
    decode_steps: int | None = None,
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "stage": stage,
        "kind": kind,
        "instances": t.instances,
        "first_start_ns": t.first_start_ns,
        "first_gpu_start_ns": t.first_gpu_start_ns,
        "gpu_ops": t.gpu_ops,
        **{b.total: t.time(b.key) for b in TIME_BASES},
        "gpu_idle_pct": (100.0 * t.time(IDLE) / t.time(PROJ)) if t.time(PROJ) else None,
        "total_flops": t.flops,
        "total_bytes": t.bytes,
    }
    for b in RATE_BASES:
        time_ns = t.time(b.key)
        row[b.tflops] = tflops_rate(t.flops, time_ns)
        row[b.mfu_pct] = utilisation_pct(t.flops, peak.peak_tflops, TERA, time_ns)
    for b in RATE_BASES:
        time_ns = t.time(b.key)
        row[b.gbps] = gbps_rate(t.bytes, time_ns)
        row[b.mbu_pct] = utilisation_pct(t.bytes, peak.peak_gbps, GIGA, time_ns)
    intensity = float(Fraction(t.flops, t.bytes)) if t.flops is not None and t.bytes else None
    row["intensity_flop_per_byte"] = intensity
    row["ridge_flop_per_byte"] = ridge
    row["bound"] = (
        None
        if intensity is None or ridge is None
        else ("compute" if intensity >= ridge else "memory")
    )
    # Attainable rate under the roofline, and how much of it the busy time achieved.
    if intensity is not None and peak.peak_tflops and peak.peak_gbps:
        attainable = min(peak.peak_tflops, intensity * peak.peak_gbps / 1e3)
        row["attainable_tflops"] = attainable
        busy = row[TIME_BASE_BY_KEY[BUSY].tflops]
        row["attainable_busy_pct"] = 100.0 * busy / attainable if busy is not None else None
    else:
        row["attainable_tflops"] = None
        row["attainable_busy_pct"] = None
    row["decode_steps"] = decode_steps
    for b in RATE_BASES:
        time_ns = t.time(b.key)
        row[f"tokens_per_s_{b.key}"] = tokens_per_s(decode_steps, time_ns)
    return row


_SCHEMA: dict[str, Any] = {
    "stage": pl.String,
    "kind": pl.String,
    "instances": pl.Int64,
    "first_start_ns": pl.Int64,
    "first_gpu_start_ns": pl.Int64,
    "gpu_ops": pl.Int64,
    **{b.total: pl.Int64 for b in TIME_BASES},
    "gpu_idle_pct": pl.Float64,
    "total_flops": pl.Int64,
    "total_bytes": pl.Int64,
    **{b.tflops: pl.Float64 for b in RATE_BASES},
    **{b.mfu_pct: pl.Float64 for b in RATE_BASES},
    **{b.gbps: pl.Float64 for b in RATE_BASES},
    **{b.mbu_pct: pl.Float64 for b in RATE_BASES},
    "intensity_flop_per_byte": pl.Float64,
    "ridge_flop_per_byte": pl.Float64,
    "bound": pl.String,
    "attainable_tflops": pl.Float64,
    "attainable_busy_pct": pl.Float64,
    "decode_steps": pl.Int64,
    **{f"tokens_per_s_{b.key}": pl.Float64 for b in RATE_BASES},
}


def compute_mfu(
    ranges: pl.DataFrame,
    static: StaticCompute,
    peak: PeakChoice,
    *,
    allow_mismatch: bool = False,
    run: dict[str, Any] | None = None,
) -> MfuResult:
    """Per-stage MFU/MBU from a frame of counted NVTX range instances (``run``: the trace's
    run.json, when known, for :func:`check_config`).

    ``ranges`` has the trace engine's ``Trace.ranges()`` columns (warm-up already excluded or
    not, as the caller chose). Raises :class:`StageNotFoundError` when no stage name occurs,
    :class:`TraceContentError` for a stage whose every instance has zero length, and
    :class:`ConfigMismatchError` when the static configuration does not describe the trace
    (unless ``allow_mismatch``). The result carries ``peak`` as given; its ``meta`` is empty
    (the loader describes the inputs).
    """
    findings: list[Finding] = [Finding("peak", {"text": text}) for text in peak.notes]
    static = _own_figures(static, findings)
    stage_names = list(NVTX_STAGES) + [
        s for s in static.stages if s not in NVTX_STAGES and s not in DERIVED_STAGES
    ]
    sel = select_ranges(ranges, [*stage_names, REQUEST])
    requests = sel.filter(pl.col("name") == REQUEST)
    sel = sel.filter(pl.col("name") != REQUEST)
    present = [s for s in stage_names if sel.filter(pl.col("name") == s).height]
    if not present:
        found = sorted(set(ranges["name"].drop_nulls().to_list())) if ranges.height else []
        shown = ", ".join(found[:12]) + (", ..." if len(found) > 12 else "")
        raise StageNotFoundError(
            f"the trace has no NVTX range named {', '.join(stage_names)} "
            f"(ranges found: {shown or 'none'}); profile with `dsocr-nsys profile` so the "
            "launcher's ranges are recorded"
        )
    frames = {s: sel.filter(pl.col("name") == s).sort("start_ns") for s in present}

    for s, f in frames.items():
        if int(f["cpu_ns"].fill_null(0).sum()) == 0 and int(f["proj_ns"].fill_null(0).sum()) == 0:
            raise TraceContentError(
                f"stage {s!r} has zero length in all {f.height} counted instance(s) "
                "(CPU range and GPU span 0 ns): no rate can be computed; check the NVTX "
                "push/pop placement around the stage"
            )

    problems = check_config(static, frames, requests, run)
    if problems:
        if not allow_mismatch:
            raise ConfigMismatchError(
                f"{problems[0]}; regenerate the static file for this run "
                "(`dsocr-nsys static`) or pass --allow-mismatch"
            )
        findings.extend(Finding("config_mismatch_allowed", {"problem": p}) for p in problems)

    ridge = peak.ridge_flops_per_byte
    rows: list[dict[str, Any]] = []
    per_instance_flops: dict[str, list[int | None]] = {}
    per_instance_bytes: dict[str, list[int | None]] = {}
    totals: dict[str, StageTimes] = {}
    for s in present:
        frame = frames[s]
        t = _totals(frame)
        stage = static.stage(s)
        flops, nbytes, per_f, per_b = _static_counts(stage, frame, s == DECODE, findings, static)
        t.flops, t.bytes = flops, nbytes
        totals[s] = t
        if per_f is not None and per_b is not None:
            per_instance_flops[s] = per_f
            per_instance_bytes[s] = per_b
        if stage is None:
            findings.append(Finding("stage_not_in_static", {"stage": s}))
        else:
            zero = [b.key for b in RATE_BASES if t.time(b.key) == 0]
            if zero:
                findings.append(Finding("zero_time_bases", {"stage": s, "bases": zero}))
    missing = [s for s in static.stages if s not in present and s not in DERIVED_STAGES]
    if missing:
        findings.append(Finding("static_stages_not_traced", {"stages": missing}))
    # CUDA graphs traced as whole graphs (--cuda-graph-trace=graph): in busy/proj, not kernel.
    graphs = {s: frames[s] for s in present if "graph_launches" in frames[s].columns}
    graphs = {s: f for s, f in graphs.items() if f["graph_launches"].sum()}
    if graphs:
        findings.append(
            Finding(
                "graph_records",
                {
                    "stages": list(graphs),
                    "launches": int(sum(f["graph_launches"].sum() for f in graphs.values())),
                    "graph_ns": int(sum(f["graph_ns"].sum() for f in graphs.values())),
                },
            )
        )

    vision_present = [p for p in VISION_PARTS if p in totals]

    # vision nested in prefill: which vision instances sit inside a prefill range
    nested: dict[str, list[bool]] = {}
    if PREFILL in frames:
        for p in vision_present:
            owners = _contained(frames[p], frames[PREFILL])
            nested[p] = [o is not None for o in owners]
    any_nested = any(any(v) for v in nested.values())

    for s in present:
        if s == PREFILL:
            continue
        rows.append(
            _row(
                s,
                "range",
                totals[s],
                peak,
                ridge,
                decode_steps=totals[s].instances if s == DECODE else None,
            )
        )
    if vision_present:
        kind = "+".join(STAGE_BY_NAME[VISION].parts)
        rows.append(_row(VISION, kind, _vision_totals(totals, vision_present), peak, ridge))
    if PREFILL in totals:
        rows.extend(
            _prefill_rows(
                totals,
                frames,
                nested,
                per_instance_flops,
                per_instance_bytes,
                peak,
                ridge,
                findings,
            )
        )
    if vision_present and PREFILL in totals and not any_nested:
        findings.append(Finding("vision_not_nested"))
    # the vocabulary's report order; stages it does not know after them, then the total
    order = {name: i for i, name in enumerate(STAGE_ORDER) if name != REQUEST}
    rows.sort(key=lambda r: order.get(r["stage"], len(order)))

    total_row, total_finding = _total_row(sel, frames, totals, requests, peak, ridge)
    rows.append(total_row)
    findings.append(total_finding)

    check_int64(rows)
    stages = mark_impossible(pl.DataFrame(rows, schema=_SCHEMA, orient="row"))
    findings.extend(impossible_findings(stages))
    decode = decode_table(totals.get(DECODE), peak)
    return MfuResult(stages=stages, decode=decode, peak=peak, findings=findings)


def _sum_times(parts: Sequence[StageTimes]) -> dict[str, int]:
    return {b.key: sum(t.time(b.key) for t in parts) for b in TIME_BASES}


def _vision_totals(totals: dict[str, StageTimes], parts: Sequence[str]) -> StageTimes:
    """vision = sam + clip + projector: sums of the parts' totals (instances = the largest
    part's count, one vision pass runs each part once)."""
    ts = [totals[p] for p in parts]
    starts = [t.first_start_ns for t in ts if t.first_start_ns is not None]
    gstarts = [t.first_gpu_start_ns for t in ts if t.first_gpu_start_ns is not None]
    return StageTimes(
        instances=max(t.instances for t in ts),
        ns=_sum_times(ts),
        gpu_ops=sum(t.gpu_ops for t in ts),
        flops=_sum_opt([t.flops for t in ts]),
        bytes=_sum_opt([t.bytes for t in ts]),
        first_start_ns=min(starts) if starts else None,
        first_gpu_start_ns=min(gstarts) if gstarts else None,
    )


def _prefill_rows(
    totals: dict[str, StageTimes],
    frames: dict[str, pl.DataFrame],
    nested: dict[str, list[bool]],
    per_instance_flops: dict[str, list[int | None]],
    per_instance_bytes: dict[str, list[int | None]],
    peak: PeakChoice,
    ridge: float | None,
    findings: list[Finding],
) -> list[dict[str, Any]]:
    """``prefill`` (the NVTX range as measured) and, when vision ranges are nested in it,
    ``llm_prefill`` (the range minus its nested vision ranges).

    The static ``prefill`` entry is the LLM forward only, so the ``prefill`` row's FLOPs are
    the LLM's plus those of the vision instances nested in it: the range's time and the
    FLOPs done in it then cover the same work."""
    base = totals[PREFILL]
    rows = []
    nested_frames = {
        p: frames[p].filter(pl.Series(flags)) for p, flags in nested.items() if any(flags)
    }
    if not nested_frames:
        rows.append(_row(PREFILL, "range", base, peak, ridge))
        return rows
    nested_times = [_totals(f) for f in nested_frames.values()]
    vision_flops: list[int | None] = []
    vision_bytes: list[int | None] = []
    for p, flags in nested.items():
        per_f = per_instance_flops.get(p, [None] * len(flags))
        per_b = per_instance_bytes.get(p, [None] * len(flags))
        vision_flops.append(_sum_opt([f for f, k in zip(per_f, flags, strict=True) if k]))
        vision_bytes.append(_sum_opt([b for b, k in zip(per_b, flags, strict=True) if k]))
    nv_flops = _sum_opt(vision_flops)
    nv_bytes = _sum_opt(vision_bytes)
    incl = replace(
        base,
        flops=None if base.flops is None or nv_flops is None else base.flops + nv_flops,
        bytes=None if base.bytes is None or nv_bytes is None else base.bytes + nv_bytes,
    )
    rows.append(_row(PREFILL, "range incl. vision", incl, peak, ridge))
    # Every time base is a sum over instances, so prefill minus its nested ranges is exact on
    # each (idle too: it is proj - busy per instance).
    nested_sum = _sum_times(nested_times)
    llm = replace(
        base,
        ns={k: base.time(k) - nested_sum[k] for k in base.ns},
        gpu_ops=base.gpu_ops - sum(t.gpu_ops for t in nested_times),
    )
    rows.append(_row(LLM_PREFILL, "prefill minus nested vision", llm, peak, ridge))
    findings.append(Finding("prefill_rows"))
    if incl.flops is None and base.flops is not None:
        findings.append(Finding("prefill_flops_unknown"))
    return rows


def _total_row(
    sel: pl.DataFrame,
    frames: dict[str, pl.DataFrame],
    totals: dict[str, StageTimes],
    requests: pl.DataFrame,
    peak: PeakChoice,
    ridge: float | None,
) -> tuple[dict[str, Any], Finding]:
    """The whole request: times of the ``request`` ranges when the trace has them, else the
    sum over top-level stage ranges (those inside no other stage range). FLOPs are each
    counted stage instance's own static figure once (the static prefill is LLM-only, so
    nothing is counted twice)."""
    counted = [s for s, t in totals.items() if t.flops is not None]
    no_static = [s for s, t in totals.items() if t.flops is None]
    flops = sum(totals[s].flops or 0 for s in counted) if counted else None
    has_bytes = [s for s in counted if totals[s].bytes is not None]
    all_bytes = bool(counted) and has_bytes == counted
    nbytes = sum(totals[s].bytes or 0 for s in has_bytes) if all_bytes else None
    data: dict[str, Any] = {"requests": requests.height, "no_static": no_static}
    if requests.height:
        t = _totals(requests)
        name, kind = REQUEST, "request ranges"
        # stage instances outside every request would inflate FLOPs: count only those inside
        inside = 0
        for s in counted:
            owners = _contained(frames[s], requests)
            inside += sum(o is not None for o in owners)
        data["outside"] = sum(frames[s].height for s in counted) - inside
    else:
        top = sel.filter(pl.Series(_top_level(sel)))
        t = _totals(top)
        name, kind = "total", "sum of top-level stages"
        data["top_level"] = sorted(set(top["name"].to_list()))
    t.flops, t.bytes = flops, nbytes
    return _row(name, kind, t, peak, ridge), Finding("total_row", data)


def decode_table(t: StageTimes | None, peak: PeakChoice) -> pl.DataFrame:
    """Decode per time base: steps, mean step time, tokens/s (one token per step), achieved
    TFLOP/s and MFU, achieved GB/s and MBU."""
    schema = {
        "time_base": pl.String,
        "steps": pl.Int64,
        "time_ns": pl.Int64,
        "step_mean_ns": pl.Float64,
        "tokens_per_s": pl.Float64,
        "total_flops": pl.Int64,
        "achieved_tflops": pl.Float64,
        "mfu_pct": pl.Float64,
        "total_bytes": pl.Int64,
        "achieved_gbps": pl.Float64,
        "mbu_pct": pl.Float64,
    }
    if t is None or t.instances == 0:
        return pl.DataFrame(schema=schema)
    rows = []
    for b in RATE_BASES:
        time_ns = t.time(b.key)
        rows.append(
            {
                "time_base": b.key,
                "steps": t.instances,
                "time_ns": time_ns,
                "step_mean_ns": time_ns / t.instances,
                "tokens_per_s": tokens_per_s(t.instances, time_ns),
                "total_flops": t.flops,
                "achieved_tflops": tflops_rate(t.flops, time_ns),
                "mfu_pct": utilisation_pct(t.flops, peak.peak_tflops, TERA, time_ns),
                "total_bytes": t.bytes,
                "achieved_gbps": gbps_rate(t.bytes, time_ns),
                "mbu_pct": utilisation_pct(t.bytes, peak.peak_gbps, GIGA, time_ns),
            }
        )
    return pl.DataFrame(rows, schema=schema, orient="row")
