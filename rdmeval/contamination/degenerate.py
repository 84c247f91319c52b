"""An empty or degenerate pool is not a clean audit: "0.0 % contamination" of nothing means nothing.

Three cases are failures: a benchmark with zero prompts, a pool source that yields zero rows (a
wrong path, an empty file, a filter that matched nothing) and a pool whose rows carry zero total
weight (every row weighted 0, so no mass fraction exists). By default each is an
:class:`EmptyPoolError` naming the benchmark, pool or source; with ``allow_empty`` the audit runs on,
records the failures in ``audit.json`` (``failures``) and ``rdmeval audit`` prints them as loud
FAILED lines and exits non-zero.
"""

from __future__ import annotations

from rdmeval.contamination.pool_spec import PoolSpec
from rdmeval.contamination.tally import PoolTally
from rdmeval.errors import RdmevalError
from rdmeval.prompts.schema import PromptSet

ALLOW_HINT = "pass --allow-empty to write the report anyway (the audit then exits non-zero)"


class EmptyPoolError(RdmevalError):
    """The benchmark or a pool is empty or has zero weight; the message names which."""


def benchmark_failures(ps: PromptSet) -> list[str]:
    if len(ps) == 0:
        return [f"benchmark '{ps.name}' ({ps.source}) has zero prompts: there is nothing to audit"]
    return []


def pool_failures(spec: PoolSpec, tally: PoolTally, role: str = "pool") -> list[str]:
    """What makes the scanned pool ``spec`` degenerate (empty list: none)."""
    out = []
    for src in spec.sources:
        if tally.rows_read[src.name] == 0:
            origin = src.path or src.prompt_set or src.kind
            out.append(f"{role} '{spec.name}': source '{src.name}' ({origin}) has zero rows; "
                       f"check its file (or --set {src.name}.path=FILE)")
    if tally.total_weight() == 0:
        out.append(f"{role} '{spec.name}': its {sum(tally.rows_read.values())} rows have zero total weight, "
                   "so no contamination fraction exists; give its sources a weight > 0")
    return out


def check(failures: list[str], allow_empty: bool) -> None:
    """Raise :class:`EmptyPoolError` listing ``failures`` unless ``allow_empty``."""
    if failures and not allow_empty:
        raise EmptyPoolError("; ".join(failures) + f". Not a clean audit: {ALLOW_HINT}")
