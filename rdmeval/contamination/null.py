"""Null calibration: the same statistics against a same-domain pool known not to be trained on.

Formulaic prompts overlap by chance: any pool of GenEval-template prompts shares every n-gram of
"a photo of a ..." and, for single objects, whole prompts. Running the audit against such a pool
(for example GenEval templates drawn with another seed, ``geneval_templates_spec``, or a caption
split that was not used) shows how much of each level's coverage is chance; the report prints
observed, null and their difference side by side.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rdmeval.contamination.pool_spec import PoolSource, PoolSpec


def geneval_templates_spec(seed: int = 1, n_per_task: int = 100, geneval_path: str | Path | None = None) -> PoolSpec:
    """A null pool of GenEval-template prompts drawn with ``seed`` (classes from the GenEval set)."""
    src = PoolSource(
        name=f"geneval-templates-seed{seed}",
        kind="geneval_templates",
        path=Path(geneval_path) if geneval_path else None,
        seed=seed,
        n_per_task=n_per_task,
        note="GenEval templates (rdmeval.contamination.templates) drawn by rdmeval with another seed: same domain, never trained on",
    )
    return PoolSpec(name=f"geneval-templates-seed{seed}", sources=(src,),
                    description=f"null pool: GenEval-template prompts, seed {seed}, {n_per_task} draws per task")


def compare(observed: Mapping[str, Mapping[str, Any]], null: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per level: observed and null coverage (share of prompts flagged), and observed minus null."""
    rows = []
    for level, obs in observed.items():
        nul = null.get(level)
        o = float(obs["fraction"])
        n = float(nul["fraction"]) if nul is not None else float("nan")
        rows.append({"level": level, "observed": o, "null": n, "excess": o - n})
    return rows
