"""``dsocr-nsys compare``: what changed between a baseline run and one or more others, per
stage and per kernel, and whether each change is larger than the run's own noise.

Definitions (docs/compare.md has the long form): ``delta_ns = other − baseline`` (integer
ns); ``speedup = baseline / other`` (above 1: the other run is faster); a stage's verdict
judges the per-instance median (see :mod:`.noise`), never the total alone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from ..errors import InputFileError, StageNotFoundError
from ..vocab import (
    BUSY,
    DECODE,
    RATE_BASES,
    REQUEST,
    STAGE_ORDER,
    TIME_BASES,
    TimeBase,
    time_base,
)
from .inputs import CONFIG_FIELDS, MFU_JSON, Run, check_input, load_run
from .kernels import KERNEL_SCHEMA, kernel_totals, match_kernels
from .noise import bootstrap

STAGES_MODE = "stages"  # every run has our NVTX stages: the vocabulary's stage rows
RANGES_MODE = "ranges"  # some export has none: every range name (per-call counters dropped)
#: ``--stage`` value for the whole trace's kernels.
WHOLE_TRACE = "all"

NO_CHANGE = "no change"
FASTER = "faster"
SLOWER = "slower"
WITHIN_NOISE = "within noise"
NOISE_UNKNOWN = "changed, noise unknown"


def only_in(label: str) -> str:
    return f"only in {label}"


@dataclass
class CompareResult:
    """Everything ``compare`` computed; frames only, no formatting.

    ``stages``: one row per (stage, time base, other run): baseline and other totals, delta,
    speed-up, verdict. ``times``: one row per (stage, run), every run's totals side by side.
    ``rates``: MFU/MBU per (stage, run). ``decode``: steps, per-step time
    and tokens/s per (run, rate base). ``noise``: per-instance distributions and the bootstrap
    interval per (stage, time base, other run). ``kernels``: per (other run, kernel).
    ``config``: one row per configuration field, one column per run.
    """

    labels: list[str]
    mode: str
    config: pl.DataFrame
    stages: pl.DataFrame
    times: pl.DataFrame
    rates: pl.DataFrame
    decode: pl.DataFrame
    noise: pl.DataFrame
    kernels: pl.DataFrame
    kernel_scope: str | None
    notes: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)


def _unique_labels(runs: Sequence[Run]) -> None:
    seen: dict[str, int] = {}
    for run in runs:
        n = seen.get(run.label, 0) + 1
        seen[run.label] = n
        if n > 1:
            run.label = f"{run.label}#{n}"


def _ratio(num: int | None, den: int | None) -> float | None:
    if num is None or not den:
        return None
    return float(Fraction(num, den))


# --- per-stage totals ---------------------------------------------------------------------


def _range_totals(instances: pl.DataFrame) -> pl.DataFrame:
    """Per range name: instances and the total per time base (GPU bases over the instances
    that launched GPU work, as ``Trace.stages()``)."""
    return (
        instances.group_by("stage")
        .agg(
            pl.len().alias("instances"),
            *(
                (pl.col(b.column).filter(pl.col("gpu")) if b.gpu else pl.col(b.column))
                .sum()
                .cast(pl.Int64)
                .alias(b.total)
                for b in TIME_BASES
            ),
        )
        .sort("stage")
    )


def _stage_rows(runs: Sequence[Run], mode: str) -> dict[str, pl.DataFrame]:
    """Per run label: one row per stage (stage, instances, a total per time base)."""
    out = {}
    for run in runs:
        if mode == RANGES_MODE and run.ranges is not None:
            out[run.label] = _range_totals(run.ranges)
        else:  # our stages, or an mfu.json's
            assert run.stages is not None
            out[run.label] = run.stages
    return out


#: Per run label, per stage name: that stage's row of :func:`_stage_rows` as a dict.
_StageLookup = dict[str, dict[str, dict[str, Any]]]


def _by_stage(rows: dict[str, pl.DataFrame]) -> _StageLookup:
    """:func:`_stage_rows` keyed by stage name, built once for every reader."""
    return {label: {r["stage"]: r for r in f.to_dicts()} for label, f in rows.items()}


def _order(names: set[str], mode: str, rows: dict[str, pl.DataFrame], top: int) -> list[str]:
    """Stage row order: the vocabulary's for our stages; for range names, the ``top`` with
    the largest absolute GPU-busy change against the baseline (any run), largest first."""
    if mode == STAGES_MODE:
        known = [s for s in STAGE_ORDER if s in names]
        return known + sorted(names - set(known))
    busy = time_base(BUSY).total
    frames = list(rows.values())
    base = dict(frames[0].select("stage", busy).iter_rows())
    change: dict[str, int] = {}
    for frame in frames[1:]:
        other = dict(frame.select("stage", busy).iter_rows())
        for name in names:
            d = abs((other.get(name) or 0) - (base.get(name) or 0))
            change[name] = max(change.get(name, 0), d)
    return sorted(names, key=lambda n: (-change.get(n, 0), n))[:top]


def _values(run: Run, mode: str, stage: str, base: TimeBase) -> np.ndarray | None:
    """The per-instance values of one stage on one time base (None: no instance data)."""
    frame = run.instances if mode == STAGES_MODE else run.ranges
    if frame is None:
        return None
    sel = frame.filter(pl.col("stage") == stage)
    if base.gpu:
        sel = sel.filter(pl.col("gpu"))
    return sel[base.column].drop_nulls().to_numpy()


def _verdict(delta: int, noise: Any) -> str:
    if delta == 0:
        return NO_CHANGE
    if noise is None or noise.low is None:
        return NOISE_UNKNOWN
    if noise.low > 1:
        return FASTER
    if noise.high < 1:
        return SLOWER
    return WITHIN_NOISE


_STAGE_SCHEMA = {
    "stage": pl.String,
    "time_base": pl.String,
    "run": pl.String,
    "baseline_instances": pl.Int64,
    "instances": pl.Int64,
    "baseline_ns": pl.Int64,
    "value_ns": pl.Int64,
    "delta_ns": pl.Int64,
    "speedup": pl.Float64,
    "verdict": pl.String,
}
_NOISE_SCHEMA = {
    "stage": pl.String,
    "time_base": pl.String,
    "run": pl.String,
    "baseline_n": pl.Int64,
    "baseline_median_ns": pl.Float64,
    "baseline_p10_ns": pl.Float64,
    "baseline_p90_ns": pl.Float64,
    "n": pl.Int64,
    "median_ns": pl.Float64,
    "p10_ns": pl.Float64,
    "p90_ns": pl.Float64,
    "median_speedup": pl.Float64,
    "ci_low": pl.Float64,
    "ci_high": pl.Float64,
    "outside_noise": pl.Boolean,
}


def _compare_stages(
    runs: Sequence[Run], mode: str, order: list[str], by_stage: _StageLookup
) -> tuple[pl.DataFrame, pl.DataFrame]:
    base_run = runs[0]
    base_rows = by_stage[base_run.label]
    out: list[dict[str, Any]] = []
    noise_rows: list[dict[str, Any]] = []
    for stage in order:
        b = base_rows.get(stage)
        for run in runs[1:]:
            o = by_stage[run.label].get(stage)
            for tb in TIME_BASES:
                bv = b[tb.total] if b else None
                ov = o[tb.total] if o else None
                row = {
                    "stage": stage,
                    "time_base": tb.key,
                    "run": run.label,
                    "baseline_instances": b["instances"] if b else None,
                    "instances": o["instances"] if o else None,
                    "baseline_ns": bv,
                    "value_ns": ov,
                    "delta_ns": None,
                    "speedup": None,
                }
                if b is None:
                    row["verdict"] = only_in(run.label)
                elif o is None:
                    row["verdict"] = only_in(base_run.label)
                elif bv is None or ov is None:  # an mfu.json row without this base
                    row["verdict"] = NOISE_UNKNOWN
                else:
                    row["delta_ns"] = ov - bv
                    row["speedup"] = _ratio(bv, ov)
                    noise = None
                    bx = _values(base_run, mode, stage, tb)
                    ox = _values(run, mode, stage, tb)
                    if bx is not None and ox is not None and bx.size > 1 and ox.size > 1:
                        noise = bootstrap(bx, ox, stage, tb.key, run.label)
                        noise_rows.append(
                            {
                                "stage": stage,
                                "time_base": tb.key,
                                "run": run.label,
                                "baseline_n": noise.baseline.n,
                                "baseline_median_ns": noise.baseline.median_ns,
                                "baseline_p10_ns": noise.baseline.p10_ns,
                                "baseline_p90_ns": noise.baseline.p90_ns,
                                "n": noise.other.n,
                                "median_ns": noise.other.median_ns,
                                "p10_ns": noise.other.p10_ns,
                                "p90_ns": noise.other.p90_ns,
                                "median_speedup": noise.median_ratio,
                                "ci_low": noise.low,
                                "ci_high": noise.high,
                                "outside_noise": noise.outside,
                            }
                        )
                    row["verdict"] = _verdict(row["delta_ns"], noise)
                out.append(row)
    return (
        pl.DataFrame(out, schema=_STAGE_SCHEMA, orient="row"),
        pl.DataFrame(noise_rows, schema=_NOISE_SCHEMA, orient="row"),
    )


# --- rates, decode, configuration ---------------------------------------------------------


def _times(runs: Sequence[Run], order: list[str], by_stage: _StageLookup) -> pl.DataFrame:
    """Every run's totals per stage (rows of one stage together, runs in argument order)."""
    cols = ["instances", *(b.total for b in TIME_BASES)]
    out = []
    for stage in order:
        for run in runs:
            row = by_stage[run.label].get(stage)
            out.append(
                {"stage": stage, "run": run.label, **{c: row[c] if row else None for c in cols}}
            )
    schema = {"stage": pl.String, "run": pl.String, **{c: pl.Int64 for c in cols}}
    return pl.DataFrame(out, schema=schema, orient="row")


def _rates(runs: Sequence[Run], order: list[str]) -> pl.DataFrame:
    """MFU and MBU per stage, runs side by side (rows for runs with a static file)."""
    cols = [b.mfu_pct for b in RATE_BASES] + [b.mbu_pct for b in RATE_BASES]
    frames = [
        r.stages.filter(pl.col("stage").is_in(order)).select(
            "stage", pl.lit(r.label).alias("run"), *cols
        )
        for r in runs
        if r.has_static and r.stages is not None
    ]
    if not frames:
        return pl.DataFrame(schema={"stage": pl.String, "run": pl.String})
    rank = {s: i for i, s in enumerate(order)}
    labels = {r.label: i for i, r in enumerate(runs)}
    return (
        pl.concat(frames)
        .with_columns(
            pl.col("stage").replace_strict(rank, return_dtype=pl.Int64).alias("_s"),
            pl.col("run").replace_strict(labels, return_dtype=pl.Int64).alias("_r"),
        )
        .sort("_s", "_r")
        .drop("_s", "_r")
    )


def _batch(run: Run) -> tuple[int, bool]:
    """Tokens per decode step (the run's batch; 1 when it does not say) and whether known."""
    value = run.config.get("batch")
    if isinstance(value, int) and value > 0:
        return value, True
    return 1, False


_DECODE_SCHEMA = {
    "run": pl.String,
    "time_base": pl.String,
    "steps": pl.Int64,
    "tokens_per_step": pl.Int64,
    "time_ns": pl.Int64,
    "step_mean_ns": pl.Float64,
    "step_median_ns": pl.Float64,
    "tokens_per_s": pl.Float64,
    "tokens_per_s_ratio": pl.Float64,
}


def _decode(runs: Sequence[Run], by_stage: _StageLookup, notes: list[str]) -> pl.DataFrame:
    """Decode per run and rate base: steps, mean and median step time, tokens/s, and tokens/s
    over the baseline's."""
    out: list[dict[str, Any]] = []
    base_rate: dict[str, float | None] = {}
    guessed = []
    for i, run in enumerate(runs):
        row = by_stage[run.label].get(DECODE)
        if row is None or not row["instances"]:
            continue
        steps = int(row["instances"])
        batch, known = _batch(run)
        if not known:
            guessed.append(run.label)
        for tb in RATE_BASES:
            time_ns = row[tb.total]
            values = _values(run, STAGES_MODE, DECODE, tb)
            rate = float(Fraction(batch * steps * 10**9, time_ns)) if time_ns else None
            if i == 0:
                base_rate[tb.key] = rate
            b = base_rate.get(tb.key)
            out.append(
                {
                    "run": run.label,
                    "time_base": tb.key,
                    "steps": steps,
                    "tokens_per_step": batch,
                    "time_ns": time_ns,
                    "step_mean_ns": time_ns / steps if time_ns is not None else None,
                    "step_median_ns": float(np.median(values))
                    if values is not None and values.size
                    else None,
                    "tokens_per_s": rate,
                    "tokens_per_s_ratio": rate / b if rate is not None and b else None,
                }
            )
    if guessed and out:
        notes.append(
            f"decode tokens/s counts one token per step (batch 1) for {', '.join(guessed)}: "
            "no batch recorded"
        )
    return pl.DataFrame(out, schema=_DECODE_SCHEMA, orient="row")


CONFIG_DIFFERS, CONFIG_PARTLY, CONFIG_SAME = "differs", "not known for every run", "same"


def _config(runs: Sequence[Run]) -> pl.DataFrame:
    """One row per configuration field any run knows: differing fields first, then those some
    run does not record (an older run.json, a bare export), then the equal ones."""
    rows = []
    for key in CONFIG_FIELDS:
        values = [r.config.get(key) for r in runs]
        if all(v is None for v in values):
            continue
        known = {str(v) for v in values if v is not None}
        status = (
            CONFIG_DIFFERS
            if len(known) > 1
            else (CONFIG_PARTLY if any(v is None for v in values) else CONFIG_SAME)
        )
        row: dict[str, Any] = {"field": key, "status": status}
        pairs = zip(runs, values, strict=True)
        row.update({r.label: None if v is None else str(v) for r, v in pairs})
        rows.append(row)
    schema = {"field": pl.String, "status": pl.String, **{r.label: pl.String for r in runs}}
    rank = {CONFIG_DIFFERS: 0, CONFIG_PARTLY: 1, CONFIG_SAME: 2}
    frame = pl.DataFrame(rows, schema=schema, orient="row")
    return frame.sort(pl.col("status").replace_strict(rank), maintain_order=True)


# --- kernels --------------------------------------------------------------------------------


def _kernel_scope(runs: Sequence[Run], stage: str | None, mode: str) -> str | None:
    """``--stage``: a range name, ``all`` (whole trace); default decode when every export has
    our decode ranges, else the whole trace. None: the whole trace."""
    if stage == WHOLE_TRACE:
        return None
    if stage is not None:
        return stage
    traced = [r for r in runs if r.instances is not None]
    if (
        mode == STAGES_MODE
        and traced
        and all(
            r.instances is not None and r.instances.filter(pl.col("stage") == DECODE).height
            for r in traced
        )
    ):
        return DECODE
    return None


def _kernels(
    runs: Sequence[Run], scope: str | None, top: int, include_warmup: bool, notes: list[str]
) -> pl.DataFrame:
    traced = [r for r in runs if r.trace is not None]
    skipped = [r.label for r in runs if r.trace is None]
    if skipped:
        notes.append(f"kernels not compared for {', '.join(skipped)}: no trace (an mfu.json)")
    schema = {"run": pl.String, **KERNEL_SCHEMA}
    if runs[0].trace is None or len(traced) < 2:
        return pl.DataFrame(schema=schema)
    base = kernel_totals(runs[0].trace, scope, include_warmup)
    frames = []
    where = f"stage {scope}" if scope else "the whole trace"
    for run in traced[1:]:
        assert run.trace is not None
        matched = match_kernels(base, kernel_totals(run.trace, scope, include_warmup))
        counts = dict(matched.group_by("status").agg(pl.len()).iter_rows())
        by_short = matched.filter(pl.col("matched_by").str.starts_with("short")).height
        notes.append(
            f"kernels in {where}, {run.label} vs {runs[0].label}: "
            f"{counts.get('in both', 0)} matched ({by_short} by short name), "
            f"{counts.get('appeared', 0)} appeared, {counts.get('vanished', 0)} vanished"
        )
        frames.append(matched.head(top).select(pl.lit(run.label).alias("run"), pl.all()))
    return pl.concat(frames) if frames else pl.DataFrame(schema=schema)


# --- entry ----------------------------------------------------------------------------------


def compare_runs(
    paths: Sequence[str | Path],
    *,
    stage: str | None = None,
    kernels: int = 15,
    top: int = 15,
    include_warmup: bool = False,
    progress: Callable[[str], None] | None = None,
) -> CompareResult:
    """Compare ``paths[1:]`` with the baseline ``paths[0]`` (see the module docstring).

    ``stage``: kernel scope (a range name, ``all``; default decode or the whole trace).
    ``kernels``: kernel rows per run (by absolute change). ``top``: range-name rows when the
    exports hold no stages of ours. Raises :class:`~dsocr_nsys.errors.InputFileError` for
    an input of no known kind, :class:`~dsocr_nsys.errors.StageNotFoundError` when a run has
    no stage in common with the baseline.
    """
    if len(paths) < 2:
        raise InputFileError("compare needs at least two runs: the baseline, then the others")
    for p in paths:  # every input checked first: a bad last one fails before any reading
        check_input(p)
    runs: list[Run] = []
    try:
        for p in paths:
            runs.append(load_run(p, include_warmup=include_warmup, progress=progress))
        _unique_labels(runs)
        return _compare(runs, stage, kernels, top, include_warmup)
    finally:
        for run in runs:
            run.close()


def _compare(
    runs: list[Run], stage: str | None, kernels: int, top: int, include_warmup: bool
) -> CompareResult:
    notes: list[str] = [n for r in runs for n in r.notes]
    mode = STAGES_MODE if all(r.stages is not None for r in runs) else RANGES_MODE
    if mode == RANGES_MODE and any(r.kind == MFU_JSON for r in runs):
        raise StageNotFoundError(
            "an mfu.json holds our stages only, and an export here has none of them; compare "
            "it with runs profiled by `dsocr-nsys profile`"
        )
    rows = _stage_rows(runs, mode)
    by_stage = _by_stage(rows)
    base_names = set(rows[runs[0].label]["stage"].to_list())
    for run in runs[1:]:
        names = set(rows[run.label]["stage"].to_list())
        if not names & base_names:
            raise StageNotFoundError(
                f"{run.label} and the baseline {runs[0].label} have no stage in common "
                f"({run.label}: {', '.join(sorted(names)[:5]) or 'none'}; {runs[0].label}: "
                f"{', '.join(sorted(base_names)[:5]) or 'none'}); compare runs of one program"
            )
    all_names = set().union(*(set(f["stage"].to_list()) for f in rows.values()))
    order = _order(all_names, mode, rows, top)
    stages, noise = _compare_stages(runs, mode, order, by_stage)
    for run in runs[1:]:
        mine = set(rows[run.label]["stage"].to_list())
        for name, where in ((base_names - mine, runs[0].label), (mine - base_names, run.label)):
            shown = [s for s in order if s in name]
            if shown:
                notes.append(
                    f"{run.label} against {runs[0].label}: only in {where}: {', '.join(shown)}"
                )
    if mode == STAGES_MODE:
        for run in runs:
            has_row = run.stages is not None and REQUEST in set(run.stages["stage"])
            if (
                has_row
                and run.instances is not None
                and not run.instances.filter(pl.col("stage") == REQUEST).height
            ):
                notes.append(
                    f"{run.label} has no request ranges: its request row is the sum of its "
                    "top-level stage ranges"
                )
    if mode == RANGES_MODE:
        notes.append(
            f"no stages of ours in every export: every NVTX range name compared (per-call "
            f"`seq`/`op_id`/`sizes` parts dropped), the {len(order)} of {len(all_names)} "
            "with the largest GPU-busy change shown (--top)"
        )
    scope = _kernel_scope(runs, stage, mode)
    kernel_frame = _kernels(runs, scope, kernels, include_warmup, notes)
    decode = _decode(runs, by_stage, notes) if mode == STAGES_MODE else pl.DataFrame()
    meta = {
        "baseline": runs[0].label,
        "runs": ", ".join(f"{r.label} ({r.kind}: {r.path})" for r in runs),
        "mode": mode,
        "kernel_scope": scope or "whole trace",
        "warmup": "included" if include_warmup else "excluded",
    }
    return CompareResult(
        labels=[r.label for r in runs],
        mode=mode,
        config=_config(runs),
        stages=stages,
        times=_times(runs, order, by_stage),
        rates=_rates(runs, order) if mode == STAGES_MODE else pl.DataFrame(),
        decode=decode,
        noise=noise,
        kernels=kernel_frame,
        kernel_scope=scope,
        notes=notes,
        meta=meta,
    )
