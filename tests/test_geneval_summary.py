"""GenEval summary against the official summary_scores.py's rules (golden values checked with the
official script), the official results.jsonl format, and the prompt-level bootstrap."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from rdmeval.errors import RdmevalError
from rdmeval.scorers.geneval import (
    OFFICIAL_COLUMNS,
    Verdict,
    bootstrap_ci,
    bootstrap_draws,
    format_official_summary,
    official_row,
    read_official_results,
    summarize,
    write_official_results,
)

# Golden case: 7 prompts x 4 images.
GOLDEN = [
    ("single_object", "p1", [1, 1, 1, 1]),
    ("two_object", "p2", [1, 0, 1, 0]),
    ("counting", "p3", [0, 0, 0, 0]),
    ("counting", "p4", [1, 1, 0, 0]),
    ("colors", "p5", [1, 1, 1, 0]),
    ("position", "p6", [0, 0, 0, 0]),
    ("color_attr", "p7", [0, 0, 0, 1]),
]

GOLDEN_TEXT = """\
Summary
=======
Total images: 28
Total prompts: 7
% correct images: 42.86%
% correct prompts: 71.43%

Task breakdown
==============
single_object    = 100.00% (4 / 4)
two_object       = 50.00% (2 / 4)
counting         = 25.00% (2 / 8)
colors           = 75.00% (3 / 4)
position         = 0.00% (0 / 4)
color_attr       = 25.00% (1 / 4)

Overall score (avg. over tasks): 0.45833
"""


def meta(tag: str, name: str) -> dict:
    return {"tag": tag, "include": [{"class": name, "count": 1}], "prompt": f"a photo of {name}"}


def golden_rows() -> list[dict]:
    rows = []
    for tag, name, outcomes in GOLDEN:
        m = meta(tag, name)
        for k, ok in enumerate(outcomes):
            verdict = Verdict(correct=bool(ok), reason="" if ok else "expected x>=1, found 0", details={})
            rows.append(official_row(f"out/{name}/samples/{k:05d}.png", m, verdict))
    return rows


def golden_df() -> pd.DataFrame:
    return pd.DataFrame(golden_rows())


def test_golden_numbers():
    s = summarize(golden_df())
    assert (s.n_images, s.n_prompts) == (28, 7)
    assert s.frac_correct_images == pytest.approx(12 / 28)
    assert s.frac_correct_prompts == pytest.approx(5 / 7)
    assert [(t.tag, t.n_correct, t.n_images, t.n_prompts) for t in s.tasks] == [
        ("single_object", 4, 4, 1),
        ("two_object", 2, 4, 1),
        ("counting", 2, 8, 2),
        ("colors", 3, 4, 1),
        ("position", 0, 4, 1),
        ("color_attr", 1, 4, 1),
    ]
    assert s.overall == pytest.approx((1 + 0.5 + 0.25 + 0.75 + 0 + 0.25) / 6)
    assert f"{s.overall:.5f}" == "0.45833"
    assert f"{s.frac_correct_images:.2%}" == "42.86%" and f"{s.frac_correct_prompts:.2%}" == "71.43%"
    assert s.task("counting").accuracy == 0.25
    # Overall is not the per-image mean
    assert s.overall != pytest.approx(s.frac_correct_images)


def test_golden_official_text():
    assert format_official_summary(golden_df()) == GOLDEN_TEXT


def test_task_order_is_first_appearance():
    df = golden_df()
    df = pd.concat([df[df.tag == "position"], df[df.tag != "position"]], ignore_index=True)
    text = format_official_summary(df)
    breakdown = text.split("==============\n")[1].splitlines()
    assert breakdown[0].startswith("position ") and breakdown[1].startswith("single_object ")
    assert text.endswith("Overall score (avg. over tasks): 0.45833\n")


def test_overall_ignores_absent_tags():
    df = golden_df()
    df = df[df.tag.isin(["single_object", "counting"])]
    assert summarize(df).overall == pytest.approx((1 + 0.25) / 2)


def test_correct_as_integers_is_accepted_and_garbage_refused():
    df = golden_df()
    df["correct"] = df["correct"].astype(int)
    assert format_official_summary(df) == GOLDEN_TEXT
    df["correct"] = df["correct"].astype(object)
    df.loc[3, "correct"] = "yes"
    with pytest.raises(RdmevalError, match="'correct'.*rows \\[3\\]"):
        summarize(df)
    with pytest.raises(RdmevalError, match="lack column"):
        summarize(golden_df().drop(columns=["metadata"]))
    with pytest.raises(RdmevalError, match="zero images"):
        summarize(golden_df().iloc[:0])


# ----------------------------------------------------------------------------- results.jsonl


def test_official_row_fields():
    m = meta("single_object", "bench")
    v = Verdict(correct=False, reason="expected bench>=1, found 0", details={"dog": [[1.0, 2.0, 3.0, 4.0, 0.5]]})
    row = official_row("imgs/00000/samples/00000.png", m, v)
    assert tuple(row) == OFFICIAL_COLUMNS
    assert row["metadata"] == json.dumps(m)
    assert row["metadata"].startswith('{"tag": "single_object", "include": [{"class": "bench"')
    assert row["details"] == '{"dog": [[1.0, 2.0, 3.0, 4.0, 0.5]]}'
    assert row["prompt"] == "a photo of bench" and row["tag"] == "single_object" and row["correct"] is False


def test_results_file_round_trip(tmp_path):
    path = tmp_path / "deep" / "results.jsonl"
    write_official_results(golden_rows(), path)
    lines = path.read_text().splitlines()
    assert len(lines) == 28
    first = json.loads(lines[0])
    assert tuple(first) == OFFICIAL_COLUMNS
    assert first["correct"] is True and isinstance(first["metadata"], str)
    assert lines[0].startswith('{"filename":"out\\/p1\\/samples\\/00000.png","tag":"single_object"')  # pandas' escaping
    assert path.read_text().endswith("\n")
    back = read_official_results(path)
    assert format_official_summary(back) == GOLDEN_TEXT
    assert not list(tmp_path.glob("deep/.*tmp"))  # the atomic write left no temporary file


def test_write_refuses_incomplete_rows(tmp_path):
    row = golden_rows()[0]
    del row["details"]
    with pytest.raises(RdmevalError, match="details"):
        write_official_results([row], tmp_path / "r.jsonl")
    assert not (tmp_path / "r.jsonl").exists()


def test_read_missing_file(tmp_path):
    with pytest.raises(RdmevalError, match="not found"):
        read_official_results(tmp_path / "nope.jsonl")


# ----------------------------------------------------------------------------- bootstrap


def synthetic_df(prompts_per_task: int, seed: int, equal_sizes: bool = True) -> pd.DataFrame:
    """Prompts with 4 images each (1-8 if not equal_sizes) and a prompt-specific success rate."""
    rng = np.random.default_rng(seed)
    rows = []
    for tag, rate in [("single_object", 0.95), ("two_object", 0.8), ("counting", 0.6), ("position", 0.3)]:
        for p in range(prompts_per_task):
            p_rate = float(np.clip(rate + rng.normal(0, 0.25), 0, 1))
            m = json.dumps(meta(tag, f"{tag}-{p}"))
            n_images = 4 if equal_sizes else int(rng.integers(1, 9))
            rows += [{"tag": tag, "metadata": m, "correct": bool(rng.random() < p_rate)} for _ in range(n_images)]
    return pd.DataFrame(rows)


def naive_draws(df: pd.DataFrame, n_resamples: int, seed: int) -> dict[str, np.ndarray]:
    """A loop-by-loop reference with the same random draws (one integers() call per task, in order)."""
    rng = np.random.default_rng(seed)
    out = {}
    for tag in dict.fromkeys(df["tag"]):
        task = df[df["tag"] == tag]
        prompts = list(dict.fromkeys(task["metadata"]))
        picks = rng.integers(0, len(prompts), size=(n_resamples, len(prompts)))
        values = []
        for b in range(n_resamples):
            images = pd.concat([task[task["metadata"] == prompts[i]] for i in picks[b]])
            values.append(images["correct"].mean())
        out[tag] = np.array(values)
    out["overall"] = np.mean(np.stack(list(out.values())), axis=0)
    return out


@pytest.mark.parametrize("equal_sizes", [True, False])
def test_bootstrap_draws_match_a_naive_loop(equal_sizes):
    # with unequal image counts, the task score of a resample is its per-image accuracy (like the
    # official task score), not the mean of per-prompt accuracies
    df = synthetic_df(5, seed=1, equal_sizes=equal_sizes)
    fast = bootstrap_draws(df, n_resamples=30, seed=3)
    slow = naive_draws(df, n_resamples=30, seed=3)
    assert list(fast) == list(slow)
    for key in slow:
        np.testing.assert_allclose(fast[key], slow[key], rtol=0, atol=1e-12)


def test_bootstrap_resamples_prompts_not_images():
    # every prompt is all-correct or all-wrong, so a resampled task score is a multiple of 1/P
    rows = []
    for p in range(7):
        m = json.dumps(meta("counting", f"c{p}"))
        rows += [{"tag": "counting", "metadata": m, "correct": p % 2 == 0}] * 4
    draws = bootstrap_draws(pd.DataFrame(rows), n_resamples=200, seed=0)["counting"]
    np.testing.assert_allclose(draws * 7, np.round(draws * 7), atol=1e-9)
    assert len(set(np.round(draws * 7).astype(int))) > 2


def test_bootstrap_ci_covers_the_estimate_and_shrinks_with_more_prompts():
    small, large = synthetic_df(10, seed=2), synthetic_df(160, seed=2)
    for df in (small, large):
        ci, s = bootstrap_ci(df, n_resamples=1000, seed=0), summarize(df)
        assert ci.overall[0] <= s.overall <= ci.overall[1]
        for t in s.tasks:
            lo, hi = ci.tasks[t.tag]
            assert lo <= t.accuracy <= hi
    width = lambda ci: ci.overall[1] - ci.overall[0]  # noqa: E731
    w_small, w_large = width(bootstrap_ci(small)), width(bootstrap_ci(large))
    assert 0 < w_large < w_small / 2  # ~ 1/sqrt(16) = 1/4 expected


def test_bootstrap_is_deterministic_and_level_matters():
    df = synthetic_df(20, seed=4)
    a, b = bootstrap_ci(df, seed=5), bootstrap_ci(df, seed=5)
    assert a == b
    assert bootstrap_ci(df, seed=6).overall != a.overall
    narrow = bootstrap_ci(df, seed=5, level=0.5)
    assert a.overall[0] < narrow.overall[0] < narrow.overall[1] < a.overall[1]
    assert a.to_dict()["level"] == 0.95 and a.to_dict()["n_resamples"] == 1000


def test_bootstrap_golden_single_prompt_tasks_are_degenerate():
    ci = bootstrap_ci(golden_df(), n_resamples=500, seed=0)
    assert ci.tasks["single_object"] == (1.0, 1.0)
    assert ci.tasks["position"] == (0.0, 0.0)
    assert ci.overall[0] <= 0.45833 <= ci.overall[1]


@pytest.mark.parametrize("kwargs, message", [({"n_resamples": 0}, "n_resamples"), ({"level": 1.0}, "level")])
def test_bootstrap_bad_arguments(kwargs, message):
    with pytest.raises(RdmevalError, match=message):
        bootstrap_ci(golden_df(), **kwargs)


# ----------------------------------------------------------------------------- the real metadata


def test_real_metadata_all_correct(shared_data, tmp_path):
    lines = (shared_data / "geneval" / "evaluation_metadata.jsonl").read_text().splitlines()
    assert len(lines) == 553
    rows = [
        official_row(f"run/{i:05d}/samples/{k:05d}.png", json.loads(line), Verdict(True, "", {}))
        for i, line in enumerate(lines)
        for k in range(4)
    ]
    df = pd.DataFrame(rows)
    s = summarize(df)
    assert (s.n_images, s.n_prompts) == (2212, 553)
    assert s.overall == 1.0 and s.frac_correct_images == 1.0 and s.frac_correct_prompts == 1.0
    assert [(t.tag, t.n_images, t.n_prompts) for t in s.tasks] == [
        ("single_object", 320, 80),
        ("two_object", 396, 99),
        ("counting", 320, 80),
        ("colors", 376, 94),
        ("position", 400, 100),
        ("color_attr", 400, 100),
    ]
    # one task entirely wrong costs exactly 1/6 of Overall, whatever its size
    df.loc[df.tag == "colors", "correct"] = False
    assert summarize(df).overall == pytest.approx(5 / 6)
    write_official_results(df.to_dict("records"), tmp_path / "results.jsonl")
    text = format_official_summary(read_official_results(tmp_path / "results.jsonl"))
    assert "colors           = 0.00% (0 / 376)\n" in text
    assert text.endswith("Overall score (avg. over tasks): 0.83333\n")
