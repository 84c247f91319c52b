"""Text normalizers for the contamination audit, versioned because every match count depends on them.

Two keys are defined for a text:

- ``exact_key``: Unicode NFKC, then leading/trailing whitespace trimmed. Two prompts with the same
  exact key are the same string up to Unicode compatibility forms (full-width letters, ligatures,
  non-breaking spaces) and surrounding whitespace.
- ``normalized_key``: NFKC, lower case (``str.casefold``), apostrophes deleted (``dog's`` ->
  ``dogs``), every other punctuation character (Unicode category P*) replaced by a space, runs of
  whitespace collapsed to one space, trimmed. Symbols (``+``, ``$``) and digits are kept.

``words`` splits the normalized key on spaces; the n-gram, near-duplicate and structure levels all
work on these words. Bump ``NORMALIZER_VERSION`` whenever any of this changes: it is written into
every audit report next to the numbers it produced.
"""

from __future__ import annotations

import re
import string
import sys
import unicodedata
from functools import lru_cache

NORMALIZER_VERSION = "1"

NORMALIZER_DESCRIPTION = (
    f"v{NORMALIZER_VERSION}: exact = NFKC + strip; normalized = NFKC, casefold, apostrophes deleted, "
    "other Unicode punctuation (category P*) -> space, whitespace collapsed, strip"
)

APOSTROPHES = "'\u2019\u02bc\u2018`"

_DROP_APOSTROPHES = str.maketrans("", "", APOSTROPHES)
_ASCII_TABLE = str.maketrans(
    {
        **{
            ord(c): " "
            for c in string.punctuation
            if c not in APOSTROPHES and unicodedata.category(c).startswith("P")
        },
        **{ord(c): None for c in APOSTROPHES if c.isascii()},
    }
)


@lru_cache(maxsize=1)
def _punctuation() -> re.Pattern[str]:
    """A regex character class of every Unicode punctuation code point except the apostrophes."""
    ranges: list[tuple[int, int]] = []
    for cp in range(sys.maxunicode + 1):
        ch = chr(cp)
        if ch in APOSTROPHES or not unicodedata.category(ch).startswith("P"):
            continue
        if ranges and ranges[-1][1] == cp - 1:
            ranges[-1] = (ranges[-1][0], cp)
        else:
            ranges.append((cp, cp))
    body = "".join(re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in ranges)
    return re.compile(f"[{body}]")


def exact_key(text: str) -> str:
    """NFKC-normalized, whitespace-trimmed text: the key of the "exact" level."""
    return unicodedata.normalize("NFKC", text).strip()


def normalized_key(text: str) -> str:
    """Lower-cased, punctuation-free, whitespace-collapsed text: the key of the "normalized" level."""
    s = unicodedata.normalize("NFKC", text).casefold()
    if s.isascii():  # fast path, same result as the general one
        s = s.translate(_ASCII_TABLE)
    else:
        s = _punctuation().sub(" ", s.translate(_DROP_APOSTROPHES))
    return " ".join(s.split())


def words(text: str) -> list[str]:
    """The normalized text split into words (what n-grams, shingles and the structure parser see)."""
    return normalized_key(text).split()
