"""GenEval as a :class:`rdmeval.api.Scorer`: the detector and color classifier loaded once, then
:func:`~rdmeval.scorers.geneval.score.score_geneval_run` on each run."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rdmeval.api import ScoreResult, ScorerOptions
from rdmeval.scorers.geneval.cache import SCORES_FOLDER
from rdmeval.scorers.geneval.detector import Detector
from rdmeval.scorers.geneval.judge import JudgeOptions
from rdmeval.scorers.geneval.phases import ColorClassifier
from rdmeval.scorers.geneval.score import SCORER, SCORER_VERSION, score_geneval_run


@dataclass
class GenevalRunScorer:
    detector: Detector
    color: ColorClassifier | None
    options: JudgeOptions = field(default_factory=JudgeOptions)
    name: str = SCORES_FOLDER
    version: str = SCORER_VERSION

    def identity(self) -> dict[str, Any]:
        return {"scorer": SCORER, "version": self.version, "detector": self.detector.identity,
                "color_classifier": None if self.color is None else self.color.identity,
                "judge_options": asdict(self.options)}

    def score_run(self, run: str | Path, *, allow_incomplete: bool = False, progress: bool = True) -> ScoreResult:
        r = score_geneval_run(run, detector=self.detector, color=self.color, options=self.options,
                              allow_incomplete=allow_incomplete, progress=progress)
        return ScoreResult(self.name, Path(run), r.judged, r.message, dict(r.outputs), r.seconds, r)


def build(options: ScorerOptions) -> GenevalRunScorer:
    """The official detector (Mask2Former Swin-S) and CLIP ViT-L-14 color classifier.

    Settings: ``detector_config``, ``detector_checkpoint`` (default: the pinned official one),
    ``random_detector`` (smoke runs), ``detector_test_scale`` (smoke runs), ``clip_pretrained``
    ("openai", a file, or "random").
    """
    from rdmeval.scorers.geneval.colors import ClipColorClassifier
    from rdmeval.scorers.geneval.detector import CHECKPOINT_URL, MMDetDetector

    s = options.settings
    random_detector = bool(s.get("random_detector", False))
    detector = MMDetDetector(config=s.get("detector_config"),
                             checkpoint=None if random_detector else (s.get("detector_checkpoint") or CHECKPOINT_URL),
                             random_init=random_detector, device=options.device, progress=options.progress,
                             test_scale=s.get("detector_test_scale"))
    clip = s.get("clip_pretrained", "openai")
    color = ClipColorClassifier("ViT-L-14", None if clip == "random" else clip, device=options.device)
    return GenevalRunScorer(detector, color)
