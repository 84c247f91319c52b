"""GenEval scoring with the official semantics (docs/geneval.md, "The official scoring rules").

- scoring a run: :func:`score_geneval_run` (detect once into a per-image cache, classify colors,
  judge, write ``results.jsonl`` / parquet / summary), with :class:`MMDetDetector` and
  :class:`ClipColorClassifier` as the real detector and color classifier;
- the pure judge: :func:`judge` of (metadata, detections, colors, :class:`JudgeOptions`), built on
  :func:`filter_detections` and :func:`relative_position`;
- detections: :class:`Detection`, the mmdet-3 adapter :func:`from_pred_instances`, the JSON form;
- the summary: :func:`summarize`, :func:`format_official_summary`, bootstrap intervals, and the
  official ``results.jsonl`` rows.

Importing this package needs neither torch, mmdet nor open_clip; they load when a model is built.
"""

from rdmeval.scorers.geneval.colors import ClipColorClassifier, ColorRequest, crop_for_color
from rdmeval.scorers.geneval.detections import (
    DETECTIONS_FORMAT,
    Detection,
    ImageDetections,
    detections_from_json,
    detections_to_json,
    from_pred_instances,
    load_object_names,
)
from rdmeval.scorers.geneval.detector import DetectedImage, Detector, MMDetDetector, geneval_object_names
from rdmeval.scorers.geneval.judge import (
    ColorFn,
    JudgeOptions,
    Verdict,
    filter_detections,
    judge,
    relative_position,
)
from rdmeval.scorers.geneval.score import ColorClassifier, GenevalScoreResult, score_geneval_run
from rdmeval.scorers.geneval.summary import (
    OFFICIAL_COLUMNS,
    BootstrapCI,
    GenevalSummary,
    TaskScore,
    bootstrap_ci,
    bootstrap_draws,
    format_official_summary,
    official_row,
    read_official_results,
    summarize,
    write_official_results,
)

__all__ = [
    "DETECTIONS_FORMAT",
    "OFFICIAL_COLUMNS",
    "BootstrapCI",
    "ClipColorClassifier",
    "ColorClassifier",
    "ColorFn",
    "ColorRequest",
    "DetectedImage",
    "Detection",
    "Detector",
    "GenevalScoreResult",
    "GenevalSummary",
    "ImageDetections",
    "JudgeOptions",
    "MMDetDetector",
    "TaskScore",
    "Verdict",
    "bootstrap_ci",
    "bootstrap_draws",
    "crop_for_color",
    "detections_from_json",
    "detections_to_json",
    "filter_detections",
    "format_official_summary",
    "from_pred_instances",
    "geneval_object_names",
    "judge",
    "load_object_names",
    "official_row",
    "read_official_results",
    "relative_position",
    "score_geneval_run",
    "summarize",
    "write_official_results",
]
