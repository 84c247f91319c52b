"""Sampling-mass fractions: the share of pool draws that are (matches of) benchmark prompts.

A pool row drawn with probability proportional to its replication weight contributes its weight
to the level's mass when it matches some benchmark prompt at that level. Sums are exact
fractions, so ``17,696 / 100,479`` is reported as exactly that. This is a different quantity
from coverage (the share of benchmark prompts that appear in the pool at all): a pool can hold
100 % of the prompts at 17.6 % of its mass.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from fractions import Fraction
from typing import Any

from rdmeval.contamination.tally import PoolTally


def _num(x: Fraction) -> int | float:
    return int(x) if x.denominator == 1 else float(x)


def composition(tally: PoolTally) -> list[dict[str, Any]]:
    """Rows read, per-row weight and draws of every source, in spec order."""
    total = tally.total_weight()
    out = []
    for name, src in tally.sources.items():
        n = tally.rows_read[name]
        w = tally.weight_of(name) if n else (src.weight or Fraction(1))
        draws = w * n
        out.append({
            "source": name,
            "kind": src.kind,
            "rows_read": n,
            "weight_per_row": _num(w),
            "draws": _num(draws),
            "share": float(draws / total) if total else 0.0,
        })
    return out


def mass_fractions(tally: PoolTally, levels: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Per level: weighted draws of flagged rows, the pool total, their ratio, and per-source parts."""
    total = tally.total_weight()
    out: dict[str, dict[str, Any]] = {}
    for level in levels:
        counts: Counter[str] = tally.flagged_rows.get(level, Counter())
        flagged = tally.weighted(counts)
        out[level] = {
            "draws": _num(flagged),
            "total": _num(total),
            "fraction": float(flagged / total) if total else 0.0,
            "exact": f"{flagged} / {total}" if total else "0 / 0",
            "by_source": {
                name: {"rows": counts.get(name, 0), "draws": _num(tally.weight_of(name) * counts.get(name, 0)) if tally.rows_read[name] else 0}
                for name in tally.sources
            },
        }
    return out


def expected_draws(tally: PoolTally, level: str, prompt: int, total_draws: int | None) -> float | None:
    """Expected training draws of pool rows matching ``prompt`` at ``level`` (needs ``total_draws``)."""
    if not total_draws:
        return None
    total = tally.total_weight()
    if not total:
        return 0.0
    counts = tally.prompt_rows.get(level, {}).get(prompt, Counter())
    return float(total_draws * tally.weighted(counts) / total)
