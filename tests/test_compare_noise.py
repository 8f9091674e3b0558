"""The bootstrap of `dsocr_nsys.compare.noise` on the real decode steps of the DeepSeek-OCR
export: seeded (the same input gives the same interval), a sample against itself holds 1,
and a real shift of the steps lies outside the interval."""

from __future__ import annotations

import numpy as np
import pytest
from compare_helpers import DSOCR

from dsocr_nsys.compare.noise import bootstrap, spread
from dsocr_nsys.trace import open_trace


@pytest.fixture(scope="module")
def steps() -> np.ndarray:
    with open_trace(DSOCR) as tr:
        return tr.ranges(names=["decode"])["cpu_ns"].to_numpy()


def test_spread_is_the_median_and_linear_percentiles(steps: np.ndarray) -> None:
    sp = spread(steps)
    ordered = np.sort(steps)
    assert sp.n == 31 and sp.median_ns == ordered[15]  # 31 values: the 16th
    # linear interpolation: rank 0.1 * 30 = 3 and 0.9 * 30 = 27 fall on values
    assert sp.p10_ns == ordered[3] and sp.p90_ns == ordered[27]


def test_seeded_and_keyed(steps: np.ndarray) -> None:
    a = bootstrap(steps, steps[::-1].copy(), "decode", "cpu", "b")
    b = bootstrap(steps, steps[::-1].copy(), "decode", "cpu", "b")
    c = bootstrap(steps, steps[::-1].copy(), "decode", "cpu", "c")
    assert (a.low, a.high) == (b.low, b.high)
    assert (a.low, a.high) != (c.low, c.high)  # another row draws its own resamples


def test_a_sample_against_itself_is_noise(steps: np.ndarray) -> None:
    check = bootstrap(steps, steps, "decode", "cpu", "self")
    assert check.median_ratio == 1.0
    assert check.low is not None and check.high is not None
    assert check.low < 1 < check.high and not check.outside


def test_a_shift_larger_than_the_spread_is_outside(steps: np.ndarray) -> None:
    faster = steps * 0.8  # every step 20 % shorter: a 1.25x speed-up
    check = bootstrap(steps, faster, "decode", "cpu", "shift")
    assert check.median_ratio == pytest.approx(1.25)
    assert check.low > 1 and check.outside
    slower = bootstrap(steps, steps * 1.25, "decode", "cpu", "shift")
    assert slower.high < 1 and slower.outside


def test_a_shift_inside_the_spread_is_noise(steps: np.ndarray) -> None:
    sp = spread(steps)
    # 0.5 % is far inside the steps' p10-p90 spread
    assert (sp.p90_ns - sp.p10_ns) / sp.median_ns > 0.05
    assert not bootstrap(steps, steps * 1.005, "decode", "cpu", "small").outside


def test_needs_two_instances(steps: np.ndarray) -> None:
    with pytest.raises(ValueError, match="two instances"):
        bootstrap(steps[:1], steps, "x")
