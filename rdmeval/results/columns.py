"""The table's columns and rows: the card's models and benchmarks, scorer families, the model order.

Shared by the section builder (:mod:`rdmeval.results.sections`), the run-root reader's users and the
report, so the card's layout is stated once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

from rdmeval.results.steps import label_step

if TYPE_CHECKING:
    from rdmeval.results.runroot import RunRoot

#: The card's rows, in the order the table prints them, and their labels.
CARD_MODELS: tuple[str, ...] = ("teacher", "naive", "student")
MODEL_LABELS: dict[str, str] = {
    "teacher": "4-step FLUX.2 klein teacher",
    "naive": "naive klein @ 1 step (no distillation)",
    "student": "1-step RDM student (s180)",
    # the one-step field (benchmarks/one-step-field.toml; rdmeval/generators/diffusers_presets.py)
    "flux1-schnell": "FLUX.1 [schnell] @ 4 steps",
    "sd35-large-turbo": "SD 3.5 Large Turbo @ 4 steps",
    "sdxl-turbo": "SDXL-Turbo @ 1 step (512 px)",
    "sana-sprint-1step": "SANA-Sprint 1.6B @ 1 step",
    "sana-sprint-2step": "SANA-Sprint 1.6B @ 2 steps",
    "dmd2-sdxl-1step": "DMD2 SDXL @ 1 step",
    "sdxl-lightning-1step": "SDXL-Lightning @ 1 step",
}
#: Full prompt counts of the card's benchmarks: fewer prompts make a "subset" cell.
FULL_PROMPTS: dict[str, int] = {"geneval": 553, "pickapic-test": 499}


@dataclass(frozen=True)
class ColumnSpec:
    """One column of the main table: which rows fill it and how its numbers print."""

    key: str
    label: str
    benchmark: str
    family: str  # "geneval" or "pickscore": the scorer name's prefix
    category: str
    metric: str
    decimals: int
    card: bool = True
    scorer: str | None = None  # a specific scorer name (None: the family's only scorer)


CARD_COLUMNS: tuple[ColumnSpec, ...] = (
    ColumnSpec("geneval", "GenEval", "geneval", "geneval", "overall", "overall", 4),
    ColumnSpec("coco-val", "PickScore COCO-val", "coco-val", "pickscore", "all", "pickscore_mean", 3),
    ColumnSpec("pickapic-test", "PickScore Pick-a-Pic", "pickapic-test", "pickscore", "all", "pickscore_mean", 3),
)
FAMILY_LABELS = {"geneval": "GenEval", "pickscore": "PickScore"}
FAMILY_CELL = {"geneval": ("overall", "overall", 4), "pickscore": ("all", "pickscore_mean", 3)}


def scorer_family(scorer: str) -> str | None:
    for fam in FAMILY_LABELS:
        if str(scorer).startswith(fam) and not str(scorer).endswith("-paired"):
            return fam
    return None



def table_models(rr: RunRoot, models: Sequence[str] | None = None) -> list[str]:
    """The table's model order for a run root: ``models`` if given, else the card's three, then any other."""
    if models:
        return list(models)
    found = dict.fromkeys(rr.rows["_model_key"].astype(str).tolist() + [k[0] for k in rr.runs])
    steps = {m: label_step(m) for m in found}
    if found and all(s is not None for s in steps.values()):  # a checkpoint sweep: its steps, in order
        return sorted(found, key=lambda m: steps[m])
    return list(CARD_MODELS) + sorted(m for m in found if m not in CARD_MODELS)
