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
