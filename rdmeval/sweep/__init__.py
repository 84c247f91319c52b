"""``rdmeval sweep``: a series of student checkpoints evaluated on a suite, one pipeline load, resumable.

- :mod:`rdmeval.sweep.checkpoints`: the series ``--weights DIR_OR_GLOB`` names, each with its step;
- :mod:`rdmeval.sweep.run`: generate -> score -> table (by step) -> report.

The table's by-step view and the best-step analysis live in :mod:`rdmeval.results.by_step`.
"""

from rdmeval.sweep.checkpoints import Checkpoint, CheckpointError, Series, find_checkpoints, parse_step
from rdmeval.sweep.run import SweepOptions, SweepResult, select_benchmarks, sweep

__all__ = ["Checkpoint", "CheckpointError", "Series", "SweepOptions", "SweepResult", "find_checkpoints", "parse_step",
           "select_benchmarks", "sweep"]
