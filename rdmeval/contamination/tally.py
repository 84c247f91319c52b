"""Accumulates chunk matches over a whole pool into per-prompt and per-source statistics."""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from itertools import count

from rdmeval.contamination.ngrams import fraction_found
from rdmeval.contamination.pools import PoolChunk
from rdmeval.contamination.pool_spec import PoolSource


@dataclass(frozen=True)
class Example:
    """A pool row that matched a prompt."""

    score: float
    source: str
    row: int  # 0-based row number within the source
    id: str
    text: str


@dataclass
class PoolTally:
    """Everything the report needs from one scan of one pool."""

    levels: list[str]
    n_prompts: int
    max_examples: int
    sources: dict[str, PoolSource] = field(default_factory=dict)
    rows_read: Counter[str] = field(default_factory=Counter)
    # pool rows flagged per level, per source (a row matching several prompts counts once)
    flagged_rows: dict[str, Counter[str]] = field(default_factory=dict)
    # per level: prompt -> source -> number of matching pool rows
    prompt_rows: dict[str, dict[int, Counter[str]]] = field(default_factory=dict)
    # per level: prompt -> best-first heap of examples
    _examples: dict[str, dict[int, list[tuple[float, int, Example]]]] = field(default_factory=dict)
    ngram_mask: dict[int, dict[int, int]] = field(default_factory=dict)
    ngram_span: dict[int, dict[int, int]] = field(default_factory=dict)
    best: dict[str, dict[int, tuple[float, Example]]] = field(default_factory=dict)
    family_rows: dict[str, Counter[str]] = field(default_factory=dict)
    family_examples: dict[str, list[Example]] = field(default_factory=dict)
    _seq: count = field(default_factory=count)

    def add(self, chunk: PoolChunk, pairs: Mapping[str, list[tuple[int, int, float]]],
            ngram: Mapping[int, list[tuple[int, int, int, int]]] | None = None,
            best: Mapping[str, Mapping[int, tuple[float, int]]] | None = None,
            families: list[tuple[int, str]] | None = None) -> None:
        src = chunk.source
        for level, plist in pairs.items():
            rows_flagged: set[int] = set()
            per_prompt = self.prompt_rows.setdefault(level, {})
            ex = self._examples.setdefault(level, {})
            for r, p, score in plist:
                rows_flagged.add(r)
                per_prompt.setdefault(p, Counter())[src] += 1
                if self.max_examples:
                    heap = ex.setdefault(p, [])
                    item = (score, -next(self._seq), r)
                    if len(heap) < self.max_examples:
                        heapq.heappush(heap, (score, item[1], self._example(chunk, r, score)))
                    elif item[:2] > heap[0][:2]:
                        heapq.heapreplace(heap, (score, item[1], self._example(chunk, r, score)))
            self.flagged_rows.setdefault(level, Counter())[src] += len(rows_flagged)
        for n, hits in (ngram or {}).items():
            masks = self.ngram_mask.setdefault(n, {})
            spans = self.ngram_span.setdefault(n, {})
            for _, p, mask, span in hits:
                masks[p] = masks.get(p, 0) | mask
                if span > spans.get(p, 0):
                    spans[p] = span
        for level, per_prompt_best in (best or {}).items():
            mine = self.best.setdefault(level, {})
            for p, (score, r) in per_prompt_best.items():
                if p not in mine or score > mine[p][0]:
                    mine[p] = (score, self._example(chunk, r, score))
        if families is not None:
            fam_rows = Counter(fam for _, fam in families)
            for fam, k in fam_rows.items():
                self.family_rows.setdefault(fam, Counter())[src] += k
            for r, fam in families:
                exs = self.family_examples.setdefault(fam, [])
                if len(exs) < self.max_examples:
                    exs.append(self._example(chunk, r, 1.0))

    def add_rows(self, chunk: PoolChunk) -> None:
        self.rows_read[chunk.source] += len(chunk)

    @staticmethod
    def _example(chunk: PoolChunk, r: int, score: float) -> Example:
        return Example(score=float(score), source=chunk.source, row=chunk.start + r, id=chunk.ids[r], text=chunk.texts[r])

    # --- derived quantities -------------------------------------------------------------------

    def weight_of(self, source: str) -> Fraction:
        return self.sources[source].row_weight(self.rows_read[source])

    def total_weight(self) -> Fraction:
        return sum((self.weight_of(s) * n for s, n in self.rows_read.items()), Fraction(0))

    def weighted(self, counts: Mapping[str, int]) -> Fraction:
        return sum((self.weight_of(s) * n for s, n in counts.items()), Fraction(0))

    def examples(self, level: str, prompt: int) -> list[Example]:
        heap = self._examples.get(level, {}).get(prompt, [])
        return [e for _, _, e in sorted(heap, key=lambda x: (-x[0], -x[1]))]

    def ngram_fraction(self, n: int, prompt: int, units: int) -> float:
        return fraction_found(self.ngram_mask.get(n, {}).get(prompt, 0), units)
