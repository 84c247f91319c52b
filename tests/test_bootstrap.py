"""One bootstrap (rdmeval.bootstrap) behind every interval, and one flag for it on every command line.

The cross-check: on data where the statistics coincide (one image per prompt, one GenEval task,
0/1 scores, B all zero for the paired comparisons), the GenEval, PickScore, paired and
contamination-split intervals are all the mean of the same resampled prompts, so with the same
seed they must be equal exactly (sums of 0/1 values divided by the same count).
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import pandas as pd
import pytest

from rdmeval.bootstrap import GENEVAL_N_RESAMPLES, LEVEL, N_RESAMPLES, SEED, percentile_interval
from rdmeval.cli.main import build_parser
from rdmeval.contamination.split import paired_difference, split_scores
from rdmeval.results.paired import paired_geneval
from rdmeval.scorers.geneval.summary import bootstrap_ci as geneval_ci
from rdmeval.scorers.pickscore.functional import bootstrap_ci as pickscore_ci
from rdmeval.scorers.pickscore.functional import paired_bootstrap

N_PROMPTS, RESAMPLES, SEED_USED = 37, 300, 11


@pytest.fixture(scope="module")
def hits() -> np.ndarray:
    return (np.random.default_rng(2).random(N_PROMPTS) < 0.6).astype(np.int64)


def test_every_interval_is_the_same_prompt_bootstrap(hits):
    ref_draws = hits[np.random.default_rng(SEED_USED).integers(0, N_PROMPTS, size=(RESAMPLES, N_PROMPTS))].mean(axis=1)
    # independent of rdmeval.bootstrap; the quantile positions written as the documented (1 -/+ level) / 2
    ref = tuple(float(x) for x in np.quantile(ref_draws, [(1 - 0.95) / 2, (1 + 0.95) / 2]))
    assert percentile_interval(ref_draws, 0.95) == ref

    geneval_rows = pd.DataFrame({"tag": "counting", "metadata": [json.dumps({"i": int(i)}) for i in range(N_PROMPTS)],
                                 "correct": hits.astype(bool)})
    assert geneval_ci(geneval_rows, n_resamples=RESAMPLES, seed=SEED_USED).overall == ref
    assert pickscore_ci(hits.astype(float), n_resamples=RESAMPLES, seed=SEED_USED) == ref

    scores = pd.DataFrame({"prompt_index": np.arange(N_PROMPTS), "score": hits.astype(float)})
    zeros = scores.assign(score=0.0)
    dirty = {i: False for i in range(N_PROMPTS)}
    split = {s.subset: s for s in split_scores(scores, dirty, n_resamples=RESAMPLES, seed=SEED_USED)}
    assert (split["all"].ci_low, split["all"].ci_high) == ref
    paired_split = {s.subset: s for s in paired_difference(scores, zeros, dirty, n_resamples=RESAMPLES, seed=SEED_USED)}
    assert (paired_split["all"].ci_low, paired_split["all"].ci_high) == ref

    p = paired_bootstrap(hits.astype(float), np.zeros(N_PROMPTS), n_resamples=RESAMPLES, seed=SEED_USED)
    assert (p.ci_low, p.ci_high) == ref
    images = pd.DataFrame({"prompt_index": np.arange(N_PROMPTS), "tag": "counting", "prompt": "", "correct": hits.astype(bool)})
    (task, overall) = paired_geneval(images, images.assign(correct=False), n_resamples=RESAMPLES, seed=SEED_USED)
    assert (task.ci_low, task.ci_high) == ref and (overall.ci_low, overall.ci_high) == ref


def _subparsers(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()):
    yield prefix, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _subparsers(sub, prefix + (name,))


def test_one_resamples_flag_on_every_command_line():
    seen = {}
    for path, parser in _subparsers(build_parser()):
        flags = {s for a in parser._actions for s in a.option_strings}
        assert not {f for f in flags if "boot" in f}, f"rdmeval {' '.join(path)}: a bootstrap flag other than --n-resamples"
        if "--n-resamples" in flags:
            defaults = {a.dest: a.default for a in parser._actions}
            seen[" ".join(path)] = (defaults["n_resamples"], defaults["seed"])
    assert {"score geneval", "score pickscore", "score pickscore-compare", "audit", "table", "report"} <= set(seen)
    # one default everywhere, except the GenEval scorer's own intervals (kept at 1000 so recorded intervals do not change)
    assert seen.pop("score geneval") == (GENEVAL_N_RESAMPLES, SEED)
    assert set(seen.values()) == {(N_RESAMPLES, SEED)}
    assert LEVEL == 0.95
