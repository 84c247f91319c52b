"""``run_audit`` end to end on a hand-built benchmark and pool: every text level, mass, null, files."""

from __future__ import annotations

import json
from fractions import Fraction

import pandas as pd
import pytest

from rdmeval.contamination import AuditConfig, run_audit
from rdmeval.contamination.pool_spec import PoolSource, PoolSpec

BENCH = [
    ("single_object", "a photo of a dog"),
    ("two_object", "a photo of a dog and a cat"),
    ("position", "a photo of a bus left of a car"),
    ("color_attr", "a photo of a red car and a blue bus"),
    ("counting", "a photo of three cats"),
    ("caption", "a large brown dog is sitting on a wooden bench next to the river"),
    ("single_object", "a photo of a cat"),
]
POOL = [
    "a photo of a dog",  # r0: exact P0
    "A Photo of a Dog and a Cat!",  # r1: normalized P1 (and contains P0 whole)
    "a photo of a car right of a bus",  # r2: same structure as P2 (inverse relation, swapped)
    "a photo of a blue car and a red bus",  # r3: near miss of P3 (colours swapped): family only
    "There is a photo of three cats on the sofa",  # r4: P4 inside a longer caption (n-gram only)
    "a large brown dog is sitting on a wooden bench next to the river today",  # r5: near duplicate of P5
    "a photo of a dog sitting on a couch",  # r6: P0 inside a longer caption
    "An empty street at night.",  # r7: nothing
]
LEVELS = ["exact", "normalized", "structure", "template_family", "ngram8", "ngram13", "minhash"]
EXPECTED = {  # prompt -> levels flagged
    0: {"exact", "normalized", "structure", "template_family", "ngram8", "ngram13", "minhash"},
    1: {"normalized", "structure", "template_family", "ngram8", "ngram13", "minhash"},
    2: {"structure", "template_family"},
    3: {"template_family"},
    4: {"ngram8", "ngram13"},
    5: {"ngram8", "ngram13", "minhash"},
    6: {"template_family"},
}


@pytest.fixture()
def setup(tmp_path, shared_data):
    bench = tmp_path / "bench.jsonl"
    bench.write_text("".join(json.dumps({"prompt": p, "tag": t}) + "\n" for t, p in BENCH), encoding="utf-8")
    (tmp_path / "pool.txt").write_text("\n".join(POOL) + "\n", encoding="utf-8")
    (tmp_path / "extra.jsonl").write_text(json.dumps({"caption": "a photo of a dog", "id": "x"}) + "\n", encoding="utf-8")
    (tmp_path / "null.txt").write_text("a photo of a cat\nsomething else entirely\n", encoding="utf-8")
    (tmp_path / "pool.toml").write_text(
        '[[source]]\nname = "captions"\npath = "pool.txt"\nweight = 2\n\n'
        '[[source]]\nname = "extra"\npath = "extra.jsonl"\n', encoding="utf-8")
    (tmp_path / "null.toml").write_text('[[source]]\nname = "held-out"\npath = "null.txt"\n', encoding="utf-8")
    return tmp_path, shared_data / "geneval"


def _run(tmp_path, geneval, **kw):
    return run_audit(tmp_path / "bench.jsonl", tmp_path / "pool.toml", levels="exact,normalized,structure,ngram,minhash",
                     geneval_path=geneval, chunk_size=3, **kw)


def test_every_level_on_hand_built_cases(setup):
    tmp_path, geneval = setup
    r = _run(tmp_path, geneval, out_dir=tmp_path / "out", null_spec=tmp_path / "null.toml")
    df = r.prompts
    for p, want in EXPECTED.items():
        got = {lv for lv in LEVELS if bool(df.loc[p, lv])}
        assert got == want, (p, BENCH[p][1], got)
    assert df["dirty"].tolist() == [True, True, True, False, True, True, False]

    # per-prompt statistics
    assert df.loc[0, "exact_rows"] == 2 and df.loc[0, "exact_draws"] == 3  # r0 (weight 2) + extra (weight 1)
    assert df.loc[5, "ngram8_fraction"] == 1.0 and df.loc[5, "ngram8_span"] == 1.0
    assert df.loc[5, "minhash_max_jaccard"] == pytest.approx(14 / 17)
    assert bool(df.loc[4, "ngram8_short"]) and df.loc[4, "ngram8_span"] == 1.0
    assert df.loc[3, "template_family_rows"] == 1

    # sampling mass, weighted: 8 rows x 2 + 1 row x 1 = 17 draws
    mass = r.summary["pool"]["mass"]
    expected_mass = {"exact": 3, "normalized": 5, "structure": 7, "template_family": 9, "ngram8": 11, "minhash": 7}
    for level, draws in expected_mass.items():
        assert Fraction(mass[level]["exact"].replace(" ", "")) == Fraction(draws, 17), level

    # coverage, overall and per tag
    cov = r.summary["pool"]["coverage"]
    assert cov["exact"]["flagged"] == 1 and cov["template_family"]["flagged"] == 5
    assert cov["structure"]["by_tag"]["single_object"] == {"n": 2, "flagged": 1, "fraction": 0.5}

    # matching rows: source, row number, id, text and weight
    m = r.pool.matches
    ex = m[(m.level == "exact") & (m.prompt == 0)].sort_values("source")
    assert ex[["source", "row", "pool_id", "pool_text", "weight"]].values.tolist() == [
        ["captions", 0, "1", "a photo of a dog", 2.0], ["extra", 0, "x", "a photo of a dog", 1.0]]
    st = m[(m.level == "structure") & (m.prompt == 2)]
    assert st["pool_text"].tolist() == ["a photo of a car right of a bus"]

    # null calibration: "a photo of a cat" occurs in the held-out pool by chance
    null_cov = r.summary["null"]["coverage"]
    assert null_cov["exact"]["flagged"] == 1 and bool(r.null.prompts.loc[6, "exact"])
    comp = {c["level"]: c for c in r.summary["null_comparison"]}
    assert comp["exact"]["observed"] == pytest.approx(1 / 7) and comp["exact"]["null"] == pytest.approx(1 / 7)
    assert comp["exact"]["excess"] == pytest.approx(0.0)

    # files
    out = tmp_path / "out"
    for name in ("audit.json", "prompts.parquet", "matches.parquet", "null_prompts.parquet", "report.md"):
        assert (out / name).is_file(), name
    saved = json.loads((out / "audit.json").read_text())
    assert saved["normalizer"]["version"] == "1"
    assert saved["config"]["ngram_sizes"] == [8, 13]
    assert saved["pool"]["mass"]["exact"]["exact"] == "3 / 17"
    back = pd.read_parquet(out / "prompts.parquet")
    assert back["dirty"].tolist() == df["dirty"].tolist()
    md = (out / "report.md").read_text()
    assert "| `exact` |" in md and "3 / 17" in md and "null" in md
    assert not list(out.glob(".*.tmp"))  # atomic writes leave no temporaries


def test_worker_processes_give_the_same_result(setup):
    tmp_path, geneval = setup
    one = _run(tmp_path, geneval).prompts
    two = _run(tmp_path, geneval, workers=2).prompts
    pd.testing.assert_frame_equal(one, two)


def test_levels_subset_and_config_errors(setup):
    tmp_path, geneval = setup
    r = run_audit(tmp_path / "bench.jsonl", tmp_path / "pool.toml", levels=["ngram"], ngram_sizes=(3,))
    assert [c for c in r.prompts.columns if c in LEVELS or c == "ngram3"] == ["ngram3"]
    assert bool(r.prompts.loc[6, "ngram3"])  # "a photo of a cat" shares "a photo of"
    from rdmeval.errors import RdmevalError

    with pytest.raises(RdmevalError, match="unknown level"):
        AuditConfig(levels=("exact", "fuzzy"))
    with pytest.raises(RdmevalError, match="dirty-levels"):
        AuditConfig(levels=("exact",), dirty_levels=("minhash",))


def test_structure_without_geneval_classes_says_how_to_fix(setup, monkeypatch):
    tmp_path, _ = setup
    from rdmeval.errors import RdmevalError

    with pytest.raises(RdmevalError, match="--geneval-file"):
        run_audit(tmp_path / "bench.jsonl", tmp_path / "pool.toml", levels="structure")


def test_pool_spec_object_and_prompt_set_benchmark(shared_data, tmp_path):
    # a registered benchmark against an in-memory spec: the Pick-a-Pic prompts are not GenEval prompts
    spec = PoolSpec(name="geneval-as-pool", sources=(PoolSource("geneval", "prompt_set", prompt_set="geneval",
                                                                path=shared_data / "geneval"),))
    r = run_audit("pickapic-test", spec, levels="exact,normalized", benchmark_path=shared_data / "rdm-assets" / "pickapic_test_prompts.jsonl")
    assert r.summary["pool"]["coverage"]["exact"]["flagged"] == 0  # protocol section 8: no exact overlap
    assert r.summary["pool"]["coverage"]["normalized"]["n"] == 499
