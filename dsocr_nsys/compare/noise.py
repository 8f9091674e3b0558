"""Run-to-run noise of one stage: the per-instance distribution of each run and a percentile
bootstrap interval of the ratio of their medians (docs/compare.md, "Noise").

The ratio is ``baseline median / other median``: above 1 the other run is faster. A change is
outside the noise when the whole interval lies on one side of 1.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

#: Bootstrap resamples per comparison.
RESAMPLES = 2000
#: Two-sided confidence of the interval.
CONFIDENCE = 0.95
#: Base seed; each (stage, time base, run) derives its own from it and its names, so a row's
#: interval does not depend on which other rows were computed.
SEED = 20261201
# Resampled values held at once (float64): bounds memory for stages with many instances.
_CHUNK_VALUES = 4_000_000


@dataclass(frozen=True)
class Spread:
    """One run's per-instance distribution (ns): median (two middle values averaged) and the
    10th / 90th percentiles (linear interpolation, as DuckDB's quantile_cont)."""

    n: int
    median_ns: float
    p10_ns: float
    p90_ns: float


@dataclass(frozen=True)
class NoiseCheck:
    """The bootstrap interval ``[low, high]`` of ``baseline median / other median``."""

    baseline: Spread
    other: Spread
    median_ratio: float | None
    low: float | None
    high: float | None

    @property
    def outside(self) -> bool:
        """Whether the interval excludes 1 (a change larger than the noise)."""
        return self.low is not None and self.high is not None and (self.low > 1 or self.high < 1)


def spread(values: np.ndarray) -> Spread:
    """Median and p10/p90 of a non-empty sample."""
    p10, med, p90 = np.quantile(values, [0.1, 0.5, 0.9])
    return Spread(int(values.size), float(med), float(p10), float(p90))


def _seed(*names: str) -> int:
    return SEED ^ zlib.crc32("\x00".join(names).encode("utf-8"))


def _medians(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Medians of :data:`RESAMPLES` resamples (with replacement, same size) of ``values``."""
    n = values.size
    per_chunk = max(1, _CHUNK_VALUES // n)
    out = []
    done = 0
    while done < RESAMPLES:
        k = min(per_chunk, RESAMPLES - done)
        idx = rng.integers(0, n, size=(k, n))
        out.append(np.median(values[idx], axis=1))
        done += k
    return np.concatenate(out)


def bootstrap(baseline: np.ndarray, other: np.ndarray, *key: str) -> NoiseCheck:
    """Percentile bootstrap of the median ratio: each run's instances resampled on their own
    (the runs are independent samples), :data:`RESAMPLES` times, seeded from ``key``.

    Both samples need at least two values (ValueError otherwise)."""
    if baseline.size < 2 or other.size < 2:
        raise ValueError("a noise estimate needs at least two instances in each run")
    base_sp, other_sp = spread(baseline), spread(other)
    ratio = base_sp.median_ns / other_sp.median_ns if other_sp.median_ns else None
    rng_base = np.random.default_rng(_seed("baseline", *key))
    rng_other = np.random.default_rng(_seed("other", *key))
    mb = _medians(baseline.astype(np.float64), rng_base)
    mo = _medians(other.astype(np.float64), rng_other)
    valid = mo > 0
    if not valid.any():
        return NoiseCheck(base_sp, other_sp, ratio, None, None)
    ratios = mb[valid] / mo[valid]
    tail = (1 - CONFIDENCE) / 2
    low, high = np.quantile(ratios, [tail, 1 - tail])
    return NoiseCheck(base_sp, other_sp, ratio, float(low), float(high))
