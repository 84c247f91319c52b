"""GenEval scoring with the official semantics: detections, the pure judge, and the summary."""

from rdmeval.scorers.geneval.detections import (
    DETECTIONS_FORMAT,
    Detection,
    ImageDetections,
    detections_from_json,
    detections_to_json,
    from_pred_instances,
    load_object_names,
)
from rdmeval.scorers.geneval.judge import (
    ColorFn,
    JudgeOptions,
    Verdict,
    filter_detections,
    judge,
    relative_position,
)
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
    "ColorFn",
    "Detection",
    "GenevalSummary",
    "ImageDetections",
    "JudgeOptions",
    "TaskScore",
    "Verdict",
    "bootstrap_ci",
    "bootstrap_draws",
    "detections_from_json",
    "detections_to_json",
    "filter_detections",
    "format_official_summary",
    "from_pred_instances",
    "judge",
    "load_object_names",
    "official_row",
    "read_official_results",
    "relative_position",
    "summarize",
    "write_official_results",
]
