"""GenEval judged by a stand-in detector: how to tell, and the words every output uses to say so.

Smoke runs (``rdmeval demo``, ``rdmeval reproduce --smoke``, ``score geneval --random-detector``) build
the Mask2Former detector with seeded random weights instead of the released checkpoint. Its scores stay
near 0.02, so it keeps no detection and every verdict is "incorrect": the GenEval numbers, verdicts and
gallery cards of such a run exercise the code path and mean nothing. The detector's identity (recorded
in each result row's ``protocol.geneval.detector`` and in the scores' ``summary.json``) then has the
checkpoint ``random-init(seed=0)``; wherever rdmeval shows those detections or verdicts (printed lines,
the table's notes, the report's gallery and charts, the audit's clean/dirty split) it says so with
:data:`STANDIN_NOTE`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

#: What a stand-in detector's checkpoint is recorded as (rdmeval.scorers.geneval.detector).
STANDIN_CHECKPOINT_PREFIX = "random-init"
#: The label: one sentence, the same everywhere.
STANDIN_NOTE = ("GenEval detections and verdicts here come from a stand-in detector with random weights (a smoke run "
                "such as `rdmeval demo`), not the Mask2Former checkpoint: they and every GenEval number made from them "
                "mean nothing.")
#: The short form for printed status lines.
STANDIN_SHORT = "stand-in detector with random weights: the verdicts mean nothing"


def is_standin_detector(detector: Any) -> bool:
    """Whether a detector identity (a dict with ``checkpoint``) is the random-weight stand-in."""
    return isinstance(detector, Mapping) and str(detector.get("checkpoint") or "").startswith(STANDIN_CHECKPOINT_PREFIX)


def protocol_has_standin(protocol: Any) -> bool:
    """Whether a result row's ``protocol`` records GenEval judged by the stand-in detector."""
    geneval = protocol.get("geneval") if isinstance(protocol, Mapping) else None
    return isinstance(geneval, Mapping) and is_standin_detector(geneval.get("detector"))


def rows_have_standin(protocols: Iterable[Any]) -> bool:
    """Whether any of the result rows' ``protocol`` values records the stand-in detector."""
    return any(protocol_has_standin(p) for p in protocols)


def scores_file_has_standin(path: str | Path) -> bool:
    """Whether a GenEval scores file (``per_image.parquet``, ``results.jsonl`` ...) was judged by the stand-in:
    read from the result rows (``summary.json``) in the same folder; False when there are none."""
    summary = Path(path).expanduser().with_name("summary.json")
    try:
        rows = json.loads(summary.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(rows, list) and rows_have_standin(r.get("protocol") for r in rows if isinstance(r, Mapping))
