"""Pre-registration statistics for claims: paired differences with a CI, robust peaks and finals, power and seeds.

The rules they serve (README, "Claims, verdicts and pre-registration"):
- methods are compared as paired differences over the same seeds, d_s = a_s − b_s, with a two-sided 95% Student-t CI;
- a peak is the maximum of a moving average (window 3 by default), never the max of single noisy evaluations;
  a final value is the mean over the last evaluations;
- the evaluation seeds are chosen from a pilot on development seeds: with the pilot's paired SD σ_d, n seeds give
  a one-sided paired t-test at level α power 1 − β against an effect δ when the non-central t with n − 1 degrees of
  freedom and non-centrality δ√n / σ_d exceeds t_{1−α, n−1} with probability ≥ 1 − β.
  ALPHA = 0.025 by default: a claim decided by "the two-sided 95% CI lies above the bound" is that one-sided test.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

ALPHA = 0.025
"""One-sided level of the decision "the two-sided 95% CI excludes the bound": power and MDEs are computed at it."""


@dataclass(frozen=True)
class PairedDiff:
    """Mean of the paired differences a − b over seeds, the 95% CI half-width, the SD of the differences, n."""

    mean: float
    ci95: float
    sd: float
    n: int

    @property
    def low(self) -> float:
        return self.mean - self.ci95

    @property
    def high(self) -> float:
        return self.mean + self.ci95

    def as_observed(self, prefix: str = "diff") -> dict[str, float]:
        """{diff, diff_ci95, diff_low, diff_high, n_seeds} for a claim's `observed`."""
        return {
            prefix: self.mean,
            f"{prefix}_ci95": self.ci95,
            f"{prefix}_low": self.low,
            f"{prefix}_high": self.high,
            "n_seeds": self.n,
        }


def paired_diff(a: dict[int, float], b: dict[int, float]) -> PairedDiff:
    """d_s = a_s − b_s over the seeds both have; mean ± t_{0.975, n−1} · sd(d) / √n (half-width 0 for one seed).

    a, b: {seed: value}. Seeds present in only one of them are an error (the comparison would not be paired)."""
    if set(a) != set(b):
        raise ValueError(f"paired_diff: the seeds differ ({sorted(set(a) ^ set(b))} are in only one)")
    if not a:
        raise ValueError("paired_diff of no seeds")
    d = np.array([a[s] - b[s] for s in sorted(a)], dtype=float)
    n = d.size
    sd = float(np.std(d, ddof=1)) if n > 1 else 0.0
    half = float(stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n)) if n > 1 else 0.0
    return PairedDiff(mean=float(d.mean()), ci95=half, sd=sd, n=n)


def moving_average(curve: Sequence[float], window: int = 3) -> np.ndarray:
    """Means of `window` consecutive evaluations (len(curve) − window + 1 values; the curve itself if shorter)."""
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    x = np.asarray(curve, dtype=float)
    if x.size < window:
        return np.array([x.mean()]) if x.size else x
    return np.convolve(x, np.ones(window) / window, mode="valid")


def smoothed_peak(curve: Sequence[float], window: int = 3) -> float:
    """max over t of the moving average of `window` evaluations: a peak that one lucky evaluation cannot make."""
    return float(moving_average(curve, window).max())


def final_mean(curve: Sequence[float], last: int = 3) -> float:
    """Mean of the last `last` evaluations."""
    if last < 1:
        raise ValueError(f"last must be >= 1, got {last}")
    return float(np.mean(np.asarray(curve, dtype=float)[-last:]))


def power(effect: float, sd: float, n: int, alpha: float = ALPHA) -> float:
    """Power of the one-sided paired t-test at level α with n seeds against a true mean difference `effect` > 0."""
    if n < 2:
        return 0.0
    if sd <= 0:
        return 1.0 if effect > 0 else 0.0
    crit = stats.t.ppf(1 - alpha, n - 1)
    return float(stats.nct.sf(crit, n - 1, effect * math.sqrt(n) / sd))


def seeds_for_power(effect: float, sd: float, target: float = 0.8, alpha: float = ALPHA, max_seeds: int = 200) -> int:
    """The smallest n ≥ 2 with power(effect, sd, n) ≥ target; raises if even `max_seeds` seeds are not enough."""
    if effect <= 0:
        raise ValueError(f"effect must be > 0, got {effect}")
    for n in range(2, max_seeds + 1):
        if power(effect, sd, n, alpha) >= target:
            return n
    raise ValueError(f"effect {effect:g} with paired SD {sd:g} needs more than {max_seeds} seeds for power {target}")


def min_detectable_effect(sd: float, n: int, target: float = 0.8, alpha: float = ALPHA) -> float:
    """The smallest effect detected with power ≥ target by n seeds (bisection on `power`)."""
    if n < 2:
        return math.inf
    if sd <= 0:
        return 0.0
    lo, hi = 0.0, sd * 20
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if power(mid, sd, n, alpha) < target else (lo, mid)
    return hi
