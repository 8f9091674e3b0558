"""Peak dense BF16 tensor throughput and memory bandwidth per GPU model, and which peak a run uses.

The table is ``peaks.csv`` beside this module: one row per GPU model with its datasheet
figures and the document they come from. Peaks are *dense* (no 2:4 sparsity) BF16 tensor-core
rates with FP32 accumulation, in TFLOP/s (10^12 FLOP/s); bandwidth is the datasheet's DRAM
bandwidth in GB/s (10^9 B/s).

Detection matches the name nsys recorded in ``TARGET_INFO_GPU`` against each row's required
and excluded name tokens; when several rows match (``NVIDIA H100`` alone, ``NVIDIA A100``
alone) the SM count and then the recorded memory bandwidth pick one.

Precedence, per figure: ``--peak-tflops`` / ``--peak-gbps`` > ``--gpu NAME`` >
``MFU_PEAK_TFLOPS`` / ``MFU_PEAK_GBPS`` > the GPU detected in the trace.
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources

from ..errors import DsocrError, UnknownGpuError

ENV_TFLOPS = "MFU_PEAK_TFLOPS"
ENV_GBPS = "MFU_PEAK_GBPS"
# Words that vendors put in front of or around the model name and that identify nothing.
_NOISE = {"nvidia", "geforce", "tesla"}


@dataclass(frozen=True)
class GpuPeak:
    """One row of the peak table."""

    gpu: str
    peak_tflops: float  # dense BF16 tensor, FP32 accumulate, TFLOP/s
    peak_gbps: float  # DRAM bandwidth, GB/s (10^9 B/s)
    sm_count: int | None
    require: frozenset[str]
    exclude: frozenset[str]
    source: str

    def matches(self, tokens: set[str]) -> bool:
        """Whether a normalised GPU name (as tokens) names this model."""
        return self.require <= tokens and not (self.exclude & tokens)


@dataclass(frozen=True)
class PeakChoice:
    """The peak figures a run is measured against, and where each came from."""

    peak_tflops: float | None
    peak_gbps: float | None
    gpu: str | None  # table row used, if any
    tflops_source: str
    gbps_source: str
    detected_name: str | None = None
    citation: str | None = None
    notes: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()  # also in notes; the CLI repeats these on stderr

    @property
    def ridge_flops_per_byte(self) -> float | None:
        """Roofline ridge point: peak FLOP/s over peak B/s (FLOP per byte)."""
        if self.peak_tflops is None or not self.peak_gbps:
            return None
        return self.peak_tflops * 1e12 / (self.peak_gbps * 1e9)


@dataclass(frozen=True)
class TraceGpu:
    """What the trace says about one GPU (from ``TARGET_INFO_GPU``)."""

    name: str
    sm_count: int | None = None
    memory_bandwidth_bps: float | None = None


# Words users glue to the model number: ``rtx5090`` is ``rtx 5090``, ``h100sxm`` ``h100 sxm``.
_GLUED_PREFIX = re.compile(r"^(rtx|gtx)(\d.*)$")
_GLUED_SUFFIX = re.compile(r"^(.*\d)(sxm\d?|pcie|nvl)$")


def normalise_gpu_name(name: str) -> str:
    """One spelling for a GPU name as users type it and as nsys records it: lower case, words
    split at anything not a letter or digit (spaces, dashes), vendor words dropped, and a
    model number glued to its family or form factor split off (``RTX 5090``, ``rtx-5090``,
    ``rtx5090`` -> ``rtx 5090``; ``H100-SXM``, ``h100sxm`` -> ``h100 sxm``)."""
    words: list[str] = []
    for word in re.split(r"[^a-z0-9]+", name.lower()):
        if not word or word in _NOISE:
            continue
        for pattern in (_GLUED_PREFIX, _GLUED_SUFFIX):
            m = pattern.match(word)
            if m:
                words += [m.group(1), m.group(2)]
                break
        else:
            words.append(word)
    return " ".join(words)


def tokens_of(name: str) -> set[str]:
    """The words of :func:`normalise_gpu_name` as a set (what the table rows match)."""
    return set(normalise_gpu_name(name).split())


@cache
def peak_table() -> tuple[GpuPeak, ...]:
    """The packaged peak table (``peaks.csv``)."""
    text = resources.files(__package__).joinpath("peaks.csv").read_text("utf-8")
    rows = []
    for rec in csv.DictReader(io.StringIO(text)):
        rows.append(
            GpuPeak(
                gpu=rec["gpu"],
                peak_tflops=float(rec["peak_bf16_tflops"]),
                peak_gbps=float(rec["peak_gbps"]),
                sm_count=int(rec["sm_count"]) if rec["sm_count"] else None,
                require=frozenset(rec["require"].split()),
                exclude=frozenset(rec["exclude"].split()),
                source=rec["source"],
            )
        )
    return tuple(rows)


def known_gpus() -> list[str]:
    """Names accepted by ``--gpu`` (the table's ``gpu`` column)."""
    return [p.gpu for p in peak_table()]


def _known_list() -> str:
    return ", ".join(known_gpus())


def _narrow(
    hits: list[GpuPeak], sm_count: int | None, memory_bandwidth_bps: float | None
) -> list[GpuPeak]:
    """Several rows match a name (``H100`` alone): keep those with the recorded SM count,
    then those with the datasheet bandwidth nearest the recorded one."""
    if len(hits) > 1 and sm_count:
        hits = [h for h in hits if h.sm_count == sm_count] or hits
    if len(hits) > 1 and memory_bandwidth_bps:
        gbps = memory_bandwidth_bps / 1e9
        best = min(abs(h.peak_gbps - gbps) for h in hits)
        hits = [h for h in hits if abs(h.peak_gbps - gbps) == best]
    return hits


def lookup_gpu(name: str, trace_gpus: Iterable[TraceGpu] = ()) -> GpuPeak:
    """The table row for a user-given name (``--gpu``): the table name itself (case, spaces
    and dashes ignored), else the rows whose name tokens match, narrowed by the GPU the trace
    recorded when several match (``--gpu h100`` on a 132-SM trace is the H100 SXM)."""
    if not tokens_of(name):
        raise UnknownGpuError(
            f"--gpu {name!r} names no GPU; give a peak-table name (known: {_known_list()}) "
            "or leave --gpu out to use the GPU the trace recorded"
        )
    key = " ".join(sorted(tokens_of(name)))
    for row in peak_table():
        if " ".join(sorted(tokens_of(row.gpu))) == key:
            return row
    tokens = tokens_of(name)
    hits = [row for row in peak_table() if row.matches(tokens)]
    for g in trace_gpus:
        if len(hits) > 1:
            hits = _narrow(hits, g.sm_count, g.memory_bandwidth_bps)
    if len(hits) == 1:
        return hits[0]
    if hits:
        raise UnknownGpuError(
            f"--gpu {name!r} is ambiguous ({', '.join(h.gpu for h in hits)}); "
            "give one of these names"
        )
    raise UnknownGpuError(f"--gpu {name!r} is not in the peak table; known: {_known_list()}")


def validate_gpu_name(name: str) -> None:
    """Raise :class:`UnknownGpuError` unless ``name`` names at least one peak-table row (a
    name that several rows share, such as ``h100``, is settled later by the trace's SM
    count). ``profile --gpu`` calls this before it runs anything."""
    try:
        lookup_gpu(name)
    except UnknownGpuError:
        if not tokens_of(name) or not any(row.matches(tokens_of(name)) for row in peak_table()):
            raise


def _finite_positive(value: float) -> bool:
    return math.isfinite(value) and value > 0


def check_peak_override(value: float | None, flag: str) -> None:
    """A ``--peak-tflops`` / ``--peak-gbps`` value must be a finite positive number."""
    if value is not None and not _finite_positive(value):
        raise DsocrError(f"{flag} {value!r} is not a finite positive number; give e.g. 989")


def detect_gpu(
    name: str, sm_count: int | None = None, memory_bandwidth_bps: float | None = None
) -> GpuPeak | None:
    """The table row for a GPU as nsys recorded it, or None when no row matches.

    Several matching rows (a bare ``NVIDIA H100``) are narrowed by SM count, then by the
    nearest datasheet bandwidth to the recorded one; a tie left after that is None."""
    hits = [row for row in peak_table() if row.matches(tokens_of(name))]
    hits = _narrow(hits, sm_count, memory_bandwidth_bps)
    return hits[0] if len(hits) == 1 else None


def _env_float(env: Mapping[str, str], key: str) -> float | None:
    raw = env.get(key)
    if raw is None or raw.strip() == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not _finite_positive(value):
        raise DsocrError(f"{key}={raw!r} is not a positive number; set it to e.g. 989 or unset it")
    return value


def choose_peak(
    gpus: Iterable[TraceGpu],
    *,
    gpu: str | None = None,
    peak_tflops: float | None = None,
    peak_gbps: float | None = None,
    env: Mapping[str, str] | None = None,
) -> PeakChoice:
    """Decide the peak TFLOP/s and GB/s for a run (see the module docstring for precedence).

    Raises :class:`UnknownGpuError` when no TFLOP/s figure can be found, or when the trace
    holds GPUs of different models and nothing says which one to use."""
    env = os.environ if env is None else env
    check_peak_override(peak_tflops, "--peak-tflops")
    check_peak_override(peak_gbps, "--peak-gbps")
    gpus = list(gpus)
    notes: list[str] = []
    warnings: list[str] = []
    detected_name = ", ".join(sorted({g.name for g in gpus})) or None

    row: GpuPeak | None = None
    row_source = ""
    if gpu is not None:
        row = lookup_gpu(gpu, gpus)
        row_source = f"--gpu {gpu}"
        seen = {detect_gpu(g.name, g.sm_count, g.memory_bandwidth_bps) for g in gpus}
        seen_rows = sorted(r.gpu for r in seen if r is not None)
        if seen_rows and row.gpu not in seen_rows:
            warnings.append(
                f"--gpu {gpu} ({row.gpu}) is not the GPU the trace recorded ({detected_name}, "
                f"peak table {', '.join(seen_rows)}): figures are against the {row.gpu} peaks"
            )
    else:
        models = {}
        for g in gpus:
            models[g.name] = detect_gpu(g.name, g.sm_count, g.memory_bandwidth_bps)
        rows = {m.gpu for m in models.values() if m is not None}
        if len(rows) == 1 and all(models.values()):
            row = next(m for m in models.values() if m is not None)
            row_source = f"detected from TARGET_INFO_GPU {detected_name!r}"
            for g in gpus:
                if row.sm_count and g.sm_count and g.sm_count != row.sm_count:
                    notes.append(
                        f"{g.name} reports {g.sm_count} SMs, the {row.gpu} datasheet "
                        f"{row.sm_count} (MIG slice or cut-down part?): peaks are the full "
                        "GPU's; pass --peak-tflops/--peak-gbps to measure against a slice"
                    )
                    break
        elif len(rows) > 1 and peak_tflops is None and _env_float(env, ENV_TFLOPS) is None:
            raise UnknownGpuError(
                f"the trace holds GPUs of different models ({detected_name}); "
                "pass --gpu NAME or --peak-tflops"
            )

    def pick(
        flag: float | None,
        flag_name: str,
        env_key: str,
        table_value: float | None,
    ) -> tuple[float | None, str]:
        # the environment is read only when nothing before it in the precedence decides
        if flag is not None:
            return flag, flag_name
        if gpu is not None and row is not None:
            return table_value, f"peak table {row.gpu}, {row_source}"
        env_value = _env_float(env, env_key)
        if env_value is not None:
            return env_value, f"environment {env_key}"
        if row is not None:
            return table_value, f"peak table {row.gpu}, {row_source}"
        return None, "none"

    tflops, tflops_source = pick(
        peak_tflops, "--peak-tflops", ENV_TFLOPS, row.peak_tflops if row else None
    )
    gbps, gbps_source = pick(peak_gbps, "--peak-gbps", ENV_GBPS, row.peak_gbps if row else None)
    if tflops is None:
        what = (
            f"GPU {detected_name!r} is not in the peak table"
            if detected_name
            else ("the trace records no GPU (no TARGET_INFO_GPU)")
        )
        raise UnknownGpuError(
            f"{what}; pass --gpu NAME (known: {_known_list()}) or --peak-tflops X"
        )
    if gbps is None:
        notes.append("no peak bandwidth (pass --peak-gbps): MBU and the ridge point are left empty")
    return PeakChoice(
        peak_tflops=tflops,
        peak_gbps=gbps,
        gpu=row.gpu if row else None,
        tflops_source=tflops_source,
        gbps_source=gbps_source,
        detected_name=detected_name,
        citation=row.source if row else None,
        notes=tuple(notes + warnings),
        warnings=tuple(warnings),
    )
