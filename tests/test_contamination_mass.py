"""The released student's pool specs reproduce the card's 17.6 % and 17.8 % GenEval sampling mass.

Uses the real GenEval file and a synthetic COCO train2014-shaped caption file with the real
number of images (82,783; some with several captions, annotations out of order).
"""

from __future__ import annotations

import json
import random
from fractions import Fraction
from pathlib import Path

import pytest

from rdmeval.contamination import run_audit

REPO = Path(__file__).resolve().parents[1]
POOLS = REPO / "benchmarks" / "pools"
N_COCO = 82_783


def _write_coco(path: Path, leak: str | None = None) -> Path:
    """82,783 images in random id order; every third image also has a second caption, placed
    after all first captions (so "first in annotation order" is well defined and not id order)."""
    rng = random.Random(0)
    image_ids = rng.sample(range(1, 600_000), N_COCO)
    firsts = [leak if (leak and k == 0) else f"A person standing near object number {i}." for k, i in enumerate(image_ids)]
    anns = [{"image_id": i, "caption": c} for i, c in zip(image_ids, firsts)]
    seconds = [{"image_id": i, "caption": f"Another view of item {i}."} for i in image_ids[::3]]
    rng.shuffle(seconds)
    anns += seconds
    for k, a in enumerate(anns):
        a["id"] = k + 1
    path.write_text(json.dumps({"images": [{"id": i} for i in image_ids], "annotations": anns}), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def coco(tmp_path_factory) -> Path:
    return _write_coco(tmp_path_factory.mktemp("coco") / "captions_train2014.json")


def audit(spec: str, coco: Path, shared_data: Path, geneval_source: str):
    return run_audit(
        "geneval",
        POOLS / f"{spec}.toml",
        levels="exact,normalized",
        benchmark_path=shared_data / "geneval",
        overrides=[f"coco-train2014.path={coco}", f"{geneval_source}.path={shared_data / 'geneval'}"],
    )


def test_generator_pool_geneval_mass_is_17_6_percent(coco, shared_data):
    r = audit("rdm-s180-generator", coco, shared_data, "geneval-x32")
    pool = r.summary["pool"]
    comp = {c["source"]: c for c in pool["composition"]}
    assert comp["coco-train2014"]["rows_read"] == 82_783 and comp["coco-train2014"]["draws"] == 82_783
    assert comp["geneval-x32"]["rows_read"] == 553 and comp["geneval-x32"]["draws"] == 17_696
    for level in ("exact", "normalized"):
        m = pool["mass"][level]
        assert (m["draws"], m["total"]) == (17_696, 100_479)
        assert m["exact"] == "17696 / 100479"
        assert m["fraction"] == pytest.approx(17_696 / 100_479)
        assert f"{100 * m['fraction']:.1f}" == "17.6"
        assert m["by_source"]["coco-train2014"]["rows"] == 0
    # coverage is a different number: every GenEval prompt is in the pool
    assert pool["coverage"]["exact"]["flagged"] == 553
    # ~587 training draws per GenEval prompt by step 180 (180 x 10,240 samples)
    assert r.prompts["expected_training_draws"].to_numpy() == pytest.approx(1_843_200 * 32 / 100_479)
    assert round(float(r.prompts["expected_training_draws"].iloc[0])) == 587


def test_reference_pool_geneval_mass_is_17_8_percent(coco, shared_data):
    r = audit("rdm-s180-reference", coco, shared_data, "geneval-correct")
    pool = r.summary["pool"]
    comp = {c["source"]: c for c in pool["composition"]}
    assert comp["coco-train2014"]["draws"] == 248_349
    assert comp["geneval-correct"]["draws"] == 53_800
    assert comp["geneval-correct"]["weight_per_row"] == pytest.approx(53_800 / 553)
    m = pool["mass"]["exact"]
    assert (m["draws"], m["total"]) == (53_800, 302_149)
    assert f"{100 * m['fraction']:.1f}" == "17.8"


def test_a_leaked_caption_adds_its_replication_weight(tmp_path, shared_data):
    # One COCO first caption equal (up to case/punctuation) to a GenEval prompt: the normalized
    # level gains that row's weight (1 in the generator pool, 3 in the reference), exact does not.
    coco = _write_coco(tmp_path / "captions_train2014.json", leak="A photo of a bench.")
    gen = audit("rdm-s180-generator", coco, shared_data, "geneval-x32").summary["pool"]["mass"]
    assert gen["exact"]["draws"] == 17_696
    assert gen["normalized"]["draws"] == 17_697
    assert gen["normalized"]["by_source"]["coco-train2014"] == {"rows": 1, "draws": 1}
    ref = audit("rdm-s180-reference", coco, shared_data, "geneval-correct").summary["pool"]["mass"]
    assert Fraction(ref["normalized"]["exact"].replace(" ", "")) == Fraction(53_803, 302_149)
