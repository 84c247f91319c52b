"""Word n-gram overlap: hand-built cases and a brute-force reference on random word lists."""

from __future__ import annotations

import random

import pytest

from rdmeval.contamination.ngrams import NgramIndex, fraction_found
from rdmeval.contamination.normalize import words


def hits(prompts: list[str], row: str, n: int) -> dict[int, tuple[float, int]]:
    idx = NgramIndex([words(p) for p in prompts], n)
    return {h.prompt: (fraction_found(h.mask, idx.units[h.prompt]), h.span) for h in idx.match(words(row))}


LONG = "a large brown dog is sitting on a wooden bench next to the river"  # 14 words


def test_long_prompt_fraction_and_span():
    # The row holds words 0..9 of the prompt contiguously: 3 of its 7 8-grams, a 10-word span.
    row = "look at this: a large brown dog is sitting on a wooden bench, and more"
    got = hits([LONG], row, 8)
    assert got == {0: (3 / 7, 10)}


def test_full_copy_inside_a_longer_row():
    got = hits([LONG], "caption: " + LONG.upper() + "!", 8)
    assert got == {0: (1.0, 14)}


def test_two_separate_pieces_count_for_fraction_but_not_for_span():
    first, last = LONG.split()[:8], LONG.split()[6:]
    row = " ".join(first) + " xyz " + " ".join(last)  # 8-grams #0 and #6, not adjacent in the row
    got = hits([LONG], row, 8)
    assert got == {0: (2 / 7, 8)}


def test_pieces_from_different_rows_do_not_make_a_span():
    idx = NgramIndex([words(LONG)], 8)
    a = idx.match(LONG.split()[:9])  # 8-grams 0, 1
    b = idx.match(LONG.split()[5:])  # 8-grams 5, 6
    assert [h.span for h in a] == [9] and [h.span for h in b] == [9]
    assert fraction_found(a[0].mask | b[0].mask, idx.units[0]) == 4 / 7


def test_short_prompt_is_tested_whole_never_dropped():
    short = "a photo of a dog"  # 5 words < 8
    assert hits([short], "A photo of a dog.", 8) == {0: (1.0, 5)}
    assert hits([short], "here is a photo of a dog on a couch", 8) == {0: (1.0, 5)}
    # near misses: a word changed, a word missing, words out of order
    assert hits([short], "a photo of a cat", 8) == {}
    assert hits([short], "a photo of dog", 8) == {}
    assert hits([short], "a dog photo of a", 8) == {}
    assert hits([short], "a photo of a hot dog", 8) == {}  # "a hot dog" breaks the sequence


def test_prompt_exactly_n_words():
    p = "one two three four five six seven eight"
    assert hits([p], "zero " + p, 8) == {0: (1.0, 8)}
    assert hits([p], p.replace("eight", "nine"), 8) == {}


def test_secondary_n13_is_stricter():
    row = "look at this: a large brown dog is sitting on a wooden bench, and more"
    assert hits([LONG], row, 13) == {}  # only 10 contiguous words: no 13-gram
    assert hits([LONG], LONG, 13) == {0: (1.0, 14)}


def test_several_prompts_and_duplicates():
    prompts = ["a photo of a dog", "a photo of a dog", "a photo of a cat and a dog"]
    got = hits(prompts, "a photo of a cat and a dog", 8)
    assert set(got) == {2}
    got = hits(prompts, "a photo of a dog and a cat", 8)
    assert set(got) == {0, 1}  # the whole short prompt occurs at the start


def test_empty_inputs():
    idx = NgramIndex([[], words("a b c")], 8)
    assert idx.match([]) == []
    assert [h.prompt for h in idx.match(["a", "b", "c"])] == [1]


def _brute(prompt: list[str], row: list[str], n: int) -> tuple[float, int] | None:
    """Reference: enumerate all prompt n-grams and all common contiguous runs directly."""
    L = len(prompt)
    if L < n:
        for j in range(len(row) - L + 1):
            if row[j : j + L] == prompt:
                return 1.0, L
        return None
    grams = [tuple(prompt[i : i + n]) for i in range(L - n + 1)]
    row_grams = {tuple(row[j : j + n]) for j in range(len(row) - n + 1)}
    found = [g in row_grams for g in grams]
    if not any(found):
        return None
    best = 0
    for i in range(L):
        for j in range(len(row)):
            k = 0
            while i + k < L and j + k < len(row) and prompt[i + k] == row[j + k]:
                k += 1
            best = max(best, k)
    return sum(found) / len(grams), best


@pytest.mark.parametrize("n", [3, 8])
def test_matches_brute_force_on_random_rows(n):
    rng = random.Random(n)
    vocab = list("abcdefg")
    prompts = [[rng.choice(vocab) for _ in range(rng.randint(1, 14))] for _ in range(40)]
    idx = NgramIndex(prompts, n)
    for _ in range(300):
        row = [rng.choice(vocab + ["zz"]) for _ in range(rng.randint(0, 30))]
        got = {h.prompt: (fraction_found(h.mask, idx.units[h.prompt]), h.span) for h in idx.match(row)}
        want = {p: r for p, w in enumerate(prompts) if (r := _brute(w, row, n)) is not None}
        assert got.keys() == want.keys()
        for p in want:
            assert got[p][0] == pytest.approx(want[p][0])
            # the span counts contiguous n-gram chains; the brute force's longest common run is the
            # same whenever that run is at least n long (shorter common runs are not n-gram matches)
            if want[p][1] >= n or len(prompts[p]) < n:
                assert got[p][1] == want[p][1], (prompts[p], row)
