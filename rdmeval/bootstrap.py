"""The one percentile bootstrap of rdmeval: defaults, argument checks, prompt resampling, intervals.

Every interval rdmeval reports (GenEval and PickScore scores, paired comparisons of two runs, the
contamination audit's clean/dirty split) resamples *prompts* (the unit that was sampled) with
replacement from ``numpy.random.default_rng(seed)`` and takes the ``(1 - level) / 2`` and
``(1 + level) / 2`` quantiles of the resampled statistic. The arguments are named ``n_resamples``,
``level`` and ``seed`` everywhere, and the command line spells them ``--n-resamples`` and ``--seed``.

This module sits at the top of the package (not under ``scorers/`` or ``results/``) so that the
scorers, the results layer and the contamination audit all import it without importing each other.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np

from rdmeval.errors import RdmevalError

#: Resamples of every interval unless a caller asks for another number (PickScore, paired
#: comparisons, the table, the report, the contamination split).
N_RESAMPLES = 2000
#: Resamples of the GenEval scorer's own intervals (``rdmeval score geneval``, ``reproduce``). It has
#: always been 1000; the intervals already recorded in result rows (and the demo's) use it, and
#: changing it would change every GenEval interval, so it stays.
GENEVAL_N_RESAMPLES = 1000
#: Central coverage of every interval.
LEVEL = 0.95
#: Seed of ``numpy.random.default_rng`` for every bootstrap.
SEED = 0


def check_n_resamples(n_resamples: object) -> int:
    """``n_resamples`` as an int, or a clear error unless it is an integer >= 1."""
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, (int, np.integer)) or n_resamples < 1:
        raise RdmevalError(f"bootstrap n_resamples must be an integer >= 1, got {n_resamples!r}")
    return int(n_resamples)


def check_level(level: object) -> float:
    """``level`` as a float, or a clear error unless it is in (0, 1)."""
    if isinstance(level, bool) or not isinstance(level, (int, float, np.floating)) or not 0.0 < float(level) < 1.0:
        raise RdmevalError(f"bootstrap level must be in (0, 1), e.g. 0.95, got {level!r}")
    return float(level)


def resample_indices(rng: np.random.Generator, n: int, n_resamples: int) -> np.ndarray:
    """``(n_resamples, n)`` indices: each row draws ``n`` of ``n`` items with replacement."""
    return rng.integers(0, n, size=(int(n_resamples), n))


def percentile_interval(draws: np.ndarray, level: float) -> tuple[float, float]:
    """The central ``level`` percentile interval of the bootstrap replicates."""
    lo, hi = np.quantile(draws, [(1.0 - level) / 2.0, (1.0 + level) / 2.0])
    return float(lo), float(hi)


@dataclass(frozen=True)
class PairedComparison:
    """A vs B on the same prompts: ``mean_diff`` = mean(a - b) and its paired bootstrap interval.

    ``win_rate`` = (wins + ties / 2) / n, where a prompt is a win when a > b; its interval comes
    from the same resamples as the difference's.
    """

    n: int
    mean_a: float
    mean_b: float
    mean_diff: float
    ci_low: float
    ci_high: float
    win_rate: float
    win_rate_ci_low: float
    win_rate_ci_high: float
    wins: int
    losses: int
    ties: int
    level: float
    n_resamples: int
    seed: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def paired_bootstrap(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    n_resamples: int = N_RESAMPLES,
    seed: int = SEED,
    level: float = LEVEL,
) -> PairedComparison:
    """Paired comparison of per-prompt scores ``a[i]`` and ``b[i]`` (same prompt i in both).

    Resamples prompts (pairs kept together) ``n_resamples`` times with replacement; the interval of the mean
    difference and of the win rate are percentiles over those resamples.
    """
    n_resamples, level = check_n_resamples(n_resamples), check_level(level)
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if x.ndim != 1 or x.shape != y.shape or len(x) == 0:
        raise RdmevalError("paired bootstrap needs two non-empty 1-D arrays of equal length (one value per prompt), "
                           f"got {x.shape} and {y.shape}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise RdmevalError("paired bootstrap got NaN or infinite scores; check the per-prompt rows")
    diff = x - y
    win = (diff > 0).astype(np.float64) + 0.5 * (diff == 0)
    picks = resample_indices(np.random.default_rng(seed), len(diff), n_resamples)
    lo, hi = percentile_interval(diff[picks].mean(axis=1), level)
    wlo, whi = percentile_interval(win[picks].mean(axis=1), level)
    return PairedComparison(
        n=len(diff),
        mean_a=float(x.mean()),
        mean_b=float(y.mean()),
        mean_diff=float(diff.mean()),
        ci_low=lo,
        ci_high=hi,
        win_rate=float(win.mean()),
        win_rate_ci_low=wlo,
        win_rate_ci_high=whi,
        wins=int((diff > 0).sum()),
        losses=int((diff < 0).sum()),
        ties=int((diff == 0).sum()),
        level=level,
        n_resamples=n_resamples,
        seed=int(seed),
    )
