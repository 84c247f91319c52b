"""Word n-gram overlap between benchmark prompts and pool rows (on normalized words).

For a prompt of at least ``n`` words its n-grams are looked up in every pool row; a prompt shorter
than ``n`` words is tested as a whole (its full word sequence must occur in a pool row), never
dropped. Per prompt the audit reports:

- ``any``: at least one of its n-grams (or the whole short prompt) occurs in some pool row;
- ``fraction``: the share of its n-gram positions found anywhere in the pool (1.0 or 0.0 for a
  short prompt);
- ``span``: the longest run of prompt words that occurs contiguously in a single pool row
  (consecutive matching n-grams on the same diagonal), divided by the prompt length.

The index is a hash table from word tuples to (prompt, position). Pool rows are first cut into
runs of words that occur in some benchmark prompt: a window holding any other word cannot match,
so most of a caption pool is skipped without building a single tuple.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class NgramHit:
    """The match of one pool row against one prompt at one n."""

    prompt: int
    mask: int  # bit i set: prompt n-gram i occurs in this row (bit 0 only, for a short prompt)
    span: int  # longest contiguous matched run of prompt words in this row


class NgramIndex:
    """Index of the n-grams (and whole short prompts) of the benchmark prompts for one ``n``."""

    def __init__(self, prompt_words: Sequence[Sequence[str]], n: int):
        if n < 1:
            raise ValueError(f"n-gram size must be >= 1, got {n}")
        self.n = n
        self.lengths = [len(w) for w in prompt_words]
        self.units = [max(1, L - n + 1) if L >= n else 1 for L in self.lengths]
        tables: dict[int, dict[tuple[str, ...], list[tuple[int, int]]]] = {}
        vocab: set[str] = set()
        for p, w in enumerate(prompt_words):
            if not w:
                continue
            vocab.update(w)
            k = min(n, len(w))
            table = tables.setdefault(k, {})
            for i in range(len(w) - k + 1):
                table.setdefault(tuple(w[i : i + k]), []).append((p, i))
        self.vocab = frozenset(vocab)
        # Window sizes to scan, largest first; k < n only holds whole short prompts.
        self.tables = sorted(tables.items(), reverse=True)
        self.min_k = min(tables) if tables else 0

    def match(self, words: Sequence[str]) -> list[NgramHit]:
        """All prompts with at least one n-gram (or whole short prompt) in this row."""
        if not self.tables or len(words) < self.min_k:
            return []
        vocab = self.vocab
        hits: dict[int, list[tuple[int, int]]] = {}
        run_start = 0
        L = len(words)
        for end in range(L + 1):
            if end < L and words[end] in vocab:
                continue
            run_len = end - run_start
            if run_len >= self.min_k:
                for k, table in self.tables:
                    if k > run_len:
                        continue
                    for j in range(run_start, end - k + 1):
                        entry = table.get(tuple(words[j : j + k]))
                        if entry:
                            for p, i in entry:
                                hits.setdefault(p, []).append((i, j))
            run_start = end + 1
        return [self._hit(p, pairs) for p, pairs in hits.items()]

    def _hit(self, p: int, pairs: list[tuple[int, int]]) -> NgramHit:
        L = self.lengths[p]
        if L < self.n:
            return NgramHit(p, 1, L)
        mask = 0
        diagonals: dict[int, set[int]] = {}
        for i, j in pairs:
            mask |= 1 << i
            diagonals.setdefault(j - i, set()).add(i)
        best = 0
        for starts in diagonals.values():
            for i in starts:
                if i - 1 in starts:
                    continue
                run = 1
                while i + run in starts:
                    run += 1
                best = max(best, run)
        return NgramHit(p, mask, best + self.n - 1)


def fraction_found(mask: int, units: int) -> float:
    """Share of a prompt's n-gram positions set in ``mask``."""
    return bin(mask).count("1") / units if units else 0.0
