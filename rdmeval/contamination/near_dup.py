"""Near duplicates: MinHash LSH (datasketch) proposes candidates, exact Jaccard confirms them.

Texts are compared as sets of word shingles of the normalized text (default: word bigrams, with
begin/end markers so that a change of the first or last word costs as much as one in the middle;
a one-word text becomes its two marker bigrams). A pair is flagged when the exact Jaccard
similarity of the two shingle sets is >= ``threshold`` (default 0.8).

LSH banding is chosen for recall at the flag threshold: among all ``(bands b, rows r)`` with
``b * r <= num_perm``, the largest ``r`` whose probability of proposing a pair of Jaccard
``threshold`` (``1 - (1 - t**r)**b``) is at least ``min_recall`` (default 0.995). Formulaic prompts
("a photo of a ...") make LSH propose many candidates around J = 0.5; the MinHash signatures
estimate each candidate's Jaccard first, and only candidates estimated at >= ``threshold - 0.2``
(over 5 standard errors below the threshold at 128 permutations) get the exact Jaccard.

Two exact filters (they never drop a pair that could reach the threshold) skip most pool rows
before any hashing: since J(A, B) <= |A & B| / |A| and J <= |small| / |large|, a row A can reach
Jaccard ``t`` with some prompt only if at least ``t * |A|`` of its shingles occur in some prompt
and ``|A|`` lies in ``[t * min, max / t]`` of the prompts' shingle counts. The reported
per-prompt best Jaccard is therefore the best among rows that pass the filters and are proposed
by LSH and the estimate: exact at and above the threshold, a lower bound below it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rdmeval.errors import require

import numpy as np

BEGIN, END = "\x02", "\x03"
ESTIMATE_MARGIN = 0.2


def shingles(words: Sequence[str], k: int = 2) -> frozenset[str]:
    """Word k-shingles of a word list, with begin/end markers (empty text: empty set)."""
    if not words:
        return frozenset()
    if k <= 1:
        return frozenset(words)
    padded = [BEGIN, *words, END]
    return frozenset(" ".join(padded[i : i + k]) for i in range(len(padded) - k + 1))


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    if not a and not b:
        return 1.0
    inter = len(a & b)
    return inter / (len(a) + len(b) - inter)


def lsh_params(threshold: float, num_perm: int, min_recall: float = 0.995) -> tuple[int, int]:
    """(bands, rows per band) with the most rows per band that keeps recall >= min_recall at threshold."""
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"Jaccard threshold must be in (0, 1], got {threshold}")
    best = (num_perm, 1)
    for r in range(1, num_perm + 1):
        b = num_perm // r
        if b < 1:
            break
        if candidate_probability(threshold, b, r) >= min_recall:
            best = (b, r)
    return best


def candidate_probability(j: float, bands: int, rows: int) -> float:
    """Probability that LSH with ``bands`` x ``rows`` proposes a pair of Jaccard ``j``."""
    return 1.0 - (1.0 - j**rows) ** bands


@dataclass(frozen=True)
class NearDupHit:
    prompt: int
    jaccard: float


class NearDupIndex:
    """MinHash LSH index over the benchmark prompts' shingle sets."""

    def __init__(
        self,
        prompt_shingles: Sequence[frozenset[str]],
        *,
        threshold: float = 0.8,
        num_perm: int = 128,
        seed: int = 1,
        min_recall: float = 0.995,
        shingle_size: int = 2,
    ):
        datasketch = require("datasketch", "audit", "The near-duplicate (minhash) level")
        self._MinHash = datasketch.MinHash
        self.threshold = threshold
        self.num_perm = num_perm
        self.seed = seed
        self.bands, self.rows = lsh_params(threshold, num_perm, min_recall)
        self.recall_at_threshold = candidate_probability(threshold, self.bands, self.rows)
        self.prompt_shingles = list(prompt_shingles)
        self.shingle_size = shingle_size
        self.vocab = frozenset().union(*self.prompt_shingles) if self.prompt_shingles else frozenset()
        self.word_vocab = frozenset(w for sh in self.prompt_shingles for x in sh for w in x.split(" ")) - {BEGIN, END}
        sizes = [len(s) for s in self.prompt_shingles if s]
        self.min_size = threshold * min(sizes) if sizes else 0.0
        self.max_size = max(sizes) / threshold if sizes else 0.0
        self._lsh = datasketch.MinHashLSH(num_perm=num_perm, params=(self.bands, self.rows))
        self._template = self._MinHash(num_perm=num_perm, seed=seed)
        self._signatures = np.zeros((len(self.prompt_shingles), num_perm), dtype=self._template.hashvalues.dtype)
        for p, m in enumerate(self._minhashes(self.prompt_shingles)):
            if m is not None:
                self._lsh.insert(p, m)
                self._signatures[p] = m.hashvalues

    def _minhashes(self, sets: Sequence[frozenset[str]]):
        nonempty = [s for s in sets if s]
        made = self._MinHash.generator(
            ([x.encode("utf-8") for x in s] for s in nonempty),
            num_perm=self.num_perm,
            seed=self.seed,
            permutations=self._template.permutations,
            scheme=self._template.scheme,
        )
        it = iter(made)
        return [next(it) if s else None for s in sets]

    def could_match(self, shingle_set: frozenset[str]) -> bool:
        """False when Jaccard >= threshold with every prompt is ruled out (size, shared shingles)."""
        a = len(shingle_set)
        if not a or not self.min_size <= a <= self.max_size:
            return False
        vocab = self.vocab
        shared = sum(1 for x in shingle_set if x in vocab)
        return shared >= self.threshold * a - 1e-9

    def could_match_words(self, words: Sequence[str]) -> bool:
        """``could_match`` decided from word tuples, before building any shingle string: a shingle
        can only be shared if each of its words occurs in some prompt (markers always can)."""
        if not words:
            return False
        k = self.shingle_size
        if k <= 1:
            return self.could_match(frozenset(words))
        padded = [BEGIN, *words, END]
        windows = set(zip(*(padded[i:] for i in range(k))))
        a = len(windows)
        if not self.min_size <= a <= self.max_size:
            return False
        ok = self.word_vocab
        possible = sum(1 for win in windows if all(w in ok or w == BEGIN or w == END for w in win))
        return possible >= self.threshold * a - 1e-9

    def match_many(self, shingle_sets: Sequence[frozenset[str]]) -> list[list[NearDupHit]]:
        """For each set: every LSH candidate prompt with its exact Jaccard (flagged or not)."""
        out: list[list[NearDupHit]] = [[] for _ in shingle_sets]
        todo = [i for i, s in enumerate(shingle_sets) if self.could_match(s)]
        if not todo:
            return out
        minhashes = self._minhashes([shingle_sets[i] for i in todo])
        floor = self.threshold - ESTIMATE_MARGIN
        for i, m in zip(todo, minhashes):
            cands = self._lsh.query(m)
            if not cands:
                continue
            idx = np.fromiter(cands, dtype=np.int64, count=len(cands))
            estimate = (self._signatures[idx] == m.hashvalues).mean(axis=1)
            s = shingle_sets[i]
            out[i] = [NearDupHit(p, jaccard(s, self.prompt_shingles[p])) for p in idx[estimate >= floor].tolist()]
        return out
