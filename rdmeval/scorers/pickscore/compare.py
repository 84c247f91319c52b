"""``compare_runs``: the paired comparison of two PickScore runs, which lives in the results layer
(:mod:`rdmeval.results.pickscore_compare`; it reads only what the scorer wrote); re-exported here."""

from rdmeval.results.pickscore_compare import RunComparison, ScoredRun, compare_runs, load_scored_run

__all__ = ["RunComparison", "ScoredRun", "compare_runs", "load_scored_run"]
