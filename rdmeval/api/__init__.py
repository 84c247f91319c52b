"""rdmeval's contracts, in one place: read these first.

- :class:`Generator`: prompts + noise latents -> uint8 images (``rdmeval.generators`` implements it);
- :class:`Benchmark` and :class:`SeedPolicy`: one benchmark's frozen protocol (a suite holds several);
- :class:`RunLayout` / :class:`RunRootLayout`: where a run's images, manifest and scores live;
- :class:`Scorer`, :class:`ScoreResult`, :class:`ScorerOptions`: scoring a run directory;
- :class:`Registry`: named plugins (generators, scorers, prompt sets, suites), lazy, with "did you mean";
- :mod:`rdmeval.api.rows`: ``ResultRow``, the result schema every scorer writes and the table reads, with
  its parquet/JSON I/O (import it from there: it needs pandas, which this package does not load).

This package imports nothing of rdmeval but its errors, so every layer may depend on it.
See docs/architecture.md.
"""

from rdmeval.api.benchmark import Benchmark, SeedPolicy
from rdmeval.api.generator import Generator
from rdmeval.api.layout import RunLayout, RunRootLayout, WorkItem, image_name
from rdmeval.api.registry import Registry, UnknownName
from rdmeval.api.scorer import ScoreResult, Scorer, ScorerFactory, ScorerOptions

__all__ = [
    "Benchmark",
    "Generator",
    "Registry",
    "RunLayout",
    "RunRootLayout",
    "ScoreResult",
    "Scorer",
    "ScorerFactory",
    "ScorerOptions",
    "SeedPolicy",
    "UnknownName",
    "WorkItem",
    "image_name",
]
