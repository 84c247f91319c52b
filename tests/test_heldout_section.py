"""The table's held-out section: present only with held-out runs, and its cells are heldout_gap's numbers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from rdmeval.api.layout import PER_IMAGE, RunLayout
from rdmeval.results.heldout_gap import heldout_gap
from rdmeval.results.heldout_section import heldout_section
from rdmeval.results.runroot import RunRoot
from rdmeval.results.table_model import ResultsTable, UNAVAILABLE
from rdmeval.results.table_render import to_markdown

from test_heldout_gap import verdicts


def _root(tmp_path: Path, with_heldout: bool) -> tuple[RunRoot, dict]:
    gen = np.random.default_rng(3)
    sizes = {"geneval": {"single_object": 5, "two_object": 6, "counting": 6, "colors": 6, "position": 6, "color_attr": 6},
             "geneval-heldout": {"two_object": 7, "counting": 7, "colors": 7, "position": 7, "color_attr": 7}}
    rows, runs, images = [], {}, {}
    for model, p in (("teacher", 0.5), ("student", 0.7)):
        for bench in ("geneval", "geneval-heldout") if with_heldout else ("geneval",):
            run = tmp_path / "runs" / model / bench
            df = verdicts({t: list(gen.binomial(4, p, size=n)) for t, n in sizes[bench].items()})
            folder = RunLayout(run).scores("geneval")
            folder.mkdir(parents=True)
            df.to_parquet(folder / PER_IMAGE)
            images[(model, bench)] = df
            runs[(model, bench)] = run
            rows.append({"_run_dir": str(run), "_model_key": model, "_bench_key": bench, "_scorer_dir": "geneval",
                         "model": model, "benchmark": bench, "scorer": "geneval-mmdet", "category": "overall"})
    return RunRoot(tmp_path, pd.DataFrame(rows), runs, {}), images


def test_section_holds_the_gap_numbers(tmp_path):
    rr, images = _root(tmp_path, with_heldout=True)
    section = heldout_section(rr, "student", "teacher", n_resamples=200, seed=0)
    expected = heldout_gap(images[("teacher", "geneval")], images[("student", "geneval")],
                           images[("teacher", "geneval-heldout")], images[("student", "geneval-heldout")],
                           n_resamples=200, seed=0)
    assert section.row_keys == [r.category for r in expected]
    for r in expected:
        gap = section.cell(r.category, "gap")
        if r.held_out:
            assert (gap.value, (gap.ci_low, gap.ci_high)) == (r.gap, r.gap_ci)  # the same numbers, copied
            assert section.cell(r.category, "diff_heldout").value == r.diff_heldout
        else:
            assert gap.status == UNAVAILABLE and "not held out" in gap.why
        assert section.cell(r.category, "diff_geneval").value == r.diff_geneval
    text = to_markdown(ResultsTable(run_root=str(tmp_path), published_version="-", sections=[section]))
    assert "In-distribution gap" in text and "not held out" in text


def test_no_section_without_heldout_runs(tmp_path):
    rr, _ = _root(tmp_path, with_heldout=False)
    assert heldout_section(rr, "student", "teacher", n_resamples=10, seed=0) is None
