"""The versioned normalizers: exact (NFKC + trim) and normalized (case, punctuation, whitespace)."""

from __future__ import annotations

import unicodedata

import pytest

from rdmeval.contamination.normalize import NORMALIZER_VERSION, exact_key, normalized_key, words


def test_version_is_recorded():
    assert NORMALIZER_VERSION == "1"


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("a photo of a dog", "  a photo of a dog\n"),  # surrounding whitespace
        ("a photo of a dog", "a photo of a dog\u00a0"),  # NBSP is whitespace after NFKC
        ("ａ photo of a dog", "a photo of a dog"),  # full-width letter -> ASCII under NFKC
        ("a ﬁsh", "a fish"),  # ligature
    ],
)
def test_exact_key_equal(a, b):
    assert exact_key(a) == exact_key(b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("a photo of a dog", "A photo of a dog"),  # case matters at the exact level
        ("a photo of a dog", "a photo of a dog."),  # punctuation matters
        ("a photo of a dog", "a photo of  a dog"),  # inner whitespace matters
    ],
)
def test_exact_key_different(a, b):
    assert exact_key(a) != exact_key(b)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("A Photo of a DOG.", "a photo of a dog"),
        ("a photo of a dog!!!", "a photo of a dog"),
        ("  a   photo\tof a\n dog ", "a photo of a dog"),
        ("a dog's bone", "a dogs bone"),  # apostrophe deleted, not split
        ("a dog\u2019s bone", "a dogs bone"),  # typographic apostrophe too
        ("a hot-dog, (left-of) a cat", "a hot dog left of a cat"),  # other punctuation -> space
        ("«Straße» ¿qué?", "strasse qué"),  # non-ASCII punctuation; casefold
        ("1+2=$3", "1+2=$3"),  # symbols and digits are kept
        ("", ""),
    ],
)
def test_normalized_key(text, expected):
    assert normalized_key(text) == expected


def test_ascii_fast_path_agrees_with_general_path():
    # Appending a non-ASCII letter forces the general (regex) path; the ASCII part must be the same.
    for cp in range(32, 127):
        ch = chr(cp)
        fast = normalized_key(f"x{ch}y")
        slow = normalized_key(f"x{ch}y \u00e9")
        assert slow == (fast + " é").strip(), repr(ch)


def test_punctuation_is_unicode_category_p():
    for ch in "!\"#%&()*,-./:;?@[\\]_{}¡§«»¿‐–—…":
        assert unicodedata.category(ch).startswith("P")
        assert normalized_key(f"a{ch}b") == "a b", repr(ch)


def test_words():
    assert words("A photo of a Dog, left-of a cat.") == ["a", "photo", "of", "a", "dog", "left", "of", "a", "cat"]
