"""Near duplicates: shingles, exact Jaccard, LSH parameters and the candidate filters."""

from __future__ import annotations

import random

import pytest

from rdmeval.contamination.near_dup import NearDupIndex, candidate_probability, jaccard, lsh_params, shingles
from rdmeval.contamination.normalize import words


def sh(text: str) -> frozenset[str]:
    return shingles(words(text))


def test_shingles_have_boundary_markers():
    s = shingles(["a", "dog"])
    assert len(s) == 3  # <s> a, a dog, dog </s>
    assert "a dog" in s
    assert len(shingles(["dog"])) == 2
    assert shingles([]) == frozenset()


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("a photo of a dog", "A photo of a dog.", 1.0),
        ("a photo of a dog", "a photo of a cat", 4 / 8),  # last word: 2 of 6 bigrams differ
        ("a photo of a dog", "a photo of the dog", 4 / 8),  # an inner word costs the same (markers)
        ("a photo of a dog and a cat", "a photo of a cat and a dog", 7 / 11),  # order swap
    ],
)
def test_exact_jaccard(a, b, expected):
    assert jaccard(sh(a), sh(b)) == pytest.approx(expected)


def test_lsh_params_meet_the_recall_target():
    b, r = lsh_params(0.8, 128)
    assert b * r <= 128
    assert candidate_probability(0.8, b, r) >= 0.995
    # one more row per band would drop below the target
    assert candidate_probability(0.8, 128 // (r + 1), r + 1) < 0.995


PROMPTS = [
    "a photo of a dog and a cat",
    "a photo of a red car and a blue bus",
    "a large brown dog is sitting on a wooden bench next to the river",
    "a photo of a dog",
]


@pytest.fixture(scope="module")
def index():
    return NearDupIndex([sh(p) for p in PROMPTS], threshold=0.8)


def flagged(index, row: str) -> dict[int, float]:
    (hits,) = index.match_many([sh(row)])
    return {h.prompt: round(h.jaccard, 4) for h in hits if h.jaccard >= index.threshold}


def test_duplicates_up_to_case_and_punctuation_are_flagged(index):
    assert flagged(index, "A photo of a dog, and a cat!") == {0: 1.0}
    assert flagged(index, "A PHOTO OF A DOG") == {3: 1.0}


def test_one_word_change_in_a_long_prompt_is_a_near_duplicate(index):
    # 14 words = 15 bigrams; one inner word changed -> 13 shared of 17: 0.76 (not flagged);
    # one word appended at the end -> 14 shared of 17: 0.82 (flagged)
    assert flagged(index, "a large brown dog is sitting on a wooden chair next to the river") == {}
    assert flagged(index, "a large brown dog is sitting on a wooden bench next to the river today") == {2: round(14 / 17, 4)}


@pytest.mark.parametrize(
    "row",
    [
        "a photo of a cat and a dog",  # order swap: structure level, not near-duplicate
        "a photo of a blue car and a red bus",  # attribute swap
        "a photo of a cat",
        "a photo of a dog and a cat sitting on a sofa in the living room",
        "",
    ],
)
def test_near_misses_are_not_flagged(index, row):
    assert flagged(index, row) == {}


def test_filters_never_drop_a_pair_that_reaches_the_threshold():
    rng = random.Random(0)
    vocab = ["a", "photo", "of", "dog", "cat", "and", "red", "the", "x", "y"]
    prompts = [[rng.choice(vocab) for _ in range(rng.randint(2, 9))] for _ in range(60)]
    idx = NearDupIndex([shingles(p) for p in prompts], threshold=0.7)
    rows = [[rng.choice(vocab) for _ in range(rng.randint(1, 12))] for _ in range(3000)]
    rows += [p[:] for p in prompts]  # exact copies must all be found
    for row in rows:
        s = shingles(row)
        best = max(jaccard(s, shingles(p)) for p in prompts)
        if best >= idx.threshold:
            assert idx.could_match_words(row) and idx.could_match(s), row
    found = missed = 0
    for row, hits in zip(rows, idx.match_many([shingles(r) for r in rows])):
        s = shingles(row)
        truth = {i for i, p in enumerate(prompts) if jaccard(s, shingles(p)) >= 0.7}
        got = {h.prompt for h in hits if h.jaccard >= 0.7}
        assert got <= truth  # confirmed pairs are never false positives
        found += len(got)
        missed += len(truth - got)
    assert found > 60
    assert missed <= 0.02 * (found + missed)  # LSH recall at J >= t is >= 99.5 % per pair
