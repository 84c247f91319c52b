"""PickScore as a :class:`rdmeval.api.Scorer`: the CLIP model loaded once, then
:func:`~rdmeval.scorers.pickscore.score.score_pickscore_run` on each run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rdmeval.api import ScoreResult, ScorerOptions
from rdmeval.api.layout import PER_IMAGE, PER_PROMPT, SUMMARY
from rdmeval.scorers.pickscore.model import DEFAULT_MODEL, DEFAULT_PROCESSOR, PickScorer
from rdmeval.scorers.pickscore.score import SCORER, SCORER_VERSION, score_pickscore_run


@dataclass
class PickScoreRunScorer:
    model: PickScorer
    name: str = SCORER
    version: str = SCORER_VERSION

    def identity(self) -> dict[str, Any]:
        return {"scorer": SCORER, "version": self.version, **self.model.identity()}

    def score_run(self, run: str | Path, *, allow_incomplete: bool = False, progress: bool = True) -> ScoreResult:
        r = score_pickscore_run(run, self.model, allow_incomplete=allow_incomplete, progress=progress)
        out = Path(r.out_dir)
        outputs = {"summary": out / SUMMARY, "per_image": out / PER_IMAGE, "per_prompt": out / PER_PROMPT} if r.aggregated else {}
        return ScoreResult(self.name, Path(run), r.aggregated, r.message, outputs, r.seconds, r)


def build(options: ScorerOptions) -> PickScoreRunScorer:
    """Settings: ``pickscore_model`` and ``pickscore_processor`` (hub ids or local folders)."""
    s = options.settings
    model = PickScorer.from_pretrained(s.get("pickscore_model") or DEFAULT_MODEL,
                                       s.get("pickscore_processor") or DEFAULT_PROCESSOR, device=options.device)
    return PickScoreRunScorer(model)
