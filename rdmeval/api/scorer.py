"""The scorer contract: a loaded model that scores a run directory and says what it wrote.

A scorer reads a run (:class:`rdmeval.api.RunLayout`), writes its outputs under
``scores/<name>/`` (at least ``summary.parquet``: result rows, see :mod:`rdmeval.api.rows`) and
returns a :class:`ScoreResult`. ``rdmeval reproduce`` builds each scorer a suite names once
(``build(options)``, from the scorer registry :data:`rdmeval.scorers.registry.SCORERS`) and calls
``score_run`` on every run that needs it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol, runtime_checkable


@dataclass(frozen=True)
class ScoreResult:
    """What one ``score_run`` call did: ``complete`` when it wrote the summary (a shard that left
    aggregation to another process is not complete); ``message`` is one line for a log;
    ``details`` is the scorer's own, richer result."""

    scorer: str
    run_dir: Path
    complete: bool
    message: str
    outputs: Mapping[str, Path] = field(default_factory=dict)
    seconds: float = 0.0
    details: Any = None


@runtime_checkable
class Scorer(Protocol):
    """A benchmark metric, with its models loaded."""

    #: Registry name and output folder (``scores/<name>/``).
    name: str
    #: Bumped when a change to the scorer could change a number.
    version: str

    def identity(self) -> dict[str, Any]:
        """Everything that determines the scores (models, weights, settings), JSON-serialisable."""
        ...

    def score_run(self, run: str | Path, *, allow_incomplete: bool = False, progress: bool = True) -> ScoreResult:
        """Score one run directory and write its outputs; refuse an incomplete run unless ``allow_incomplete``."""
        ...


@dataclass(frozen=True)
class ScorerOptions:
    """What building a scorer may use: the device, and scorer-specific ``settings`` by name
    (e.g. ``detector_checkpoint`` for GenEval, ``pickscore_model`` for PickScore); each scorer
    reads the settings it knows and ignores the others."""

    device: str | None = None
    progress: bool = True
    settings: Mapping[str, Any] = field(default_factory=dict)


#: How a scorer is registered: a function that loads its models and returns it.
ScorerFactory = Callable[[ScorerOptions], Scorer]
