"""Streaming scan of pool rows against the benchmark index (levels exact .. minhash).

The benchmark side (a few thousand prompts) is indexed once per process; the pool is streamed
through in chunks, optionally across worker processes (``workers``; spawned, each builds its own
index so no hash table crosses a process boundary). A chunk's result is sparse: only the
(pool row, prompt) pairs that match.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from rdmeval.contamination.levels import AuditConfig
from rdmeval.contamination.near_dup import NearDupIndex, shingles
from rdmeval.contamination.ngrams import NgramIndex
from rdmeval.contamination.normalize import exact_key, normalized_key
from rdmeval.contamination.structure import Structure, StructureParser

Pair = tuple[int, int, float]  # (row in chunk, prompt index, score)


@dataclass(frozen=True)
class BenchmarkData:
    """What every process needs to index the benchmark (picklable)."""

    texts: tuple[str, ...]
    structures: tuple[Structure | None, ...]
    classes: tuple[str, ...]


@dataclass
class ChunkMatches:
    """Sparse matches of one chunk. ``pairs[level]``: flagged (row, prompt, score);
    ``ngram[n]``: (row, prompt, mask, span); ``best[level]``: prompt -> (best score, row) over
    all candidates (flagged or not); ``families``: (row, template family) of parsed rows."""

    pairs: dict[str, list[Pair]] = field(default_factory=dict)
    ngram: dict[int, list[tuple[int, int, int, int]]] = field(default_factory=dict)
    best: dict[str, dict[int, tuple[float, int]]] = field(default_factory=dict)
    families: list[tuple[int, str]] = field(default_factory=list)


class Matcher:
    """Index of the benchmark prompts for the text levels; ``scan`` matches a list of pool texts."""

    def __init__(self, bench: BenchmarkData, cfg: AuditConfig):
        self.cfg = cfg
        levels = set(cfg.levels)
        self.levels = levels
        self.n_prompts = len(bench.texts)
        self.exact: dict[str, list[int]] = {}
        self.normalized: dict[str, list[int]] = {}
        norm_texts = [normalized_key(t) for t in bench.texts]
        for p, t in enumerate(bench.texts):
            self.exact.setdefault(exact_key(t), []).append(p)
            self.normalized.setdefault(norm_texts[p], []).append(p)
        self.parser: StructureParser | None = None
        self.structures: dict[Structure, list[int]] = {}
        if "structure" in levels:
            self.parser = StructureParser(bench.classes)
            for p, s in enumerate(bench.structures):
                if s is not None:
                    self.structures.setdefault(s, []).append(p)
        words = [t.split() for t in norm_texts]
        self.ngram = {n: NgramIndex(words, n) for n in cfg.ngram_sizes} if "ngram" in levels else {}
        self.near_dup: NearDupIndex | None = None
        if "minhash" in levels:
            self.near_dup = NearDupIndex(
                [shingles(w, cfg.minhash_shingle) for w in words],
                threshold=cfg.minhash_threshold,
                num_perm=cfg.minhash_num_perm,
                min_recall=cfg.minhash_min_recall,
                shingle_size=cfg.minhash_shingle,
            )

    def scan(self, texts: Sequence[str]) -> ChunkMatches:
        out = ChunkMatches()
        # Identical rows (tiled prompts, duplicate captions) are matched once and expanded.
        first_row: dict[str, int] = {}
        dup_of: list[tuple[int, int]] = []
        uniq_rows: list[int] = []
        for r, t in enumerate(texts):
            f = first_row.setdefault(t, r)
            if f == r:
                uniq_rows.append(r)
            else:
                dup_of.append((r, f))
        levels = self.levels
        exact, norm = self.exact, self.normalized
        pe = out.pairs.setdefault("exact", []) if "exact" in levels else None
        pn = out.pairs.setdefault("normalized", []) if "normalized" in levels else None
        ps = out.pairs.setdefault("structure", []) if self.parser else None
        ng = {n: out.ngram.setdefault(n, []) for n in self.ngram}
        png = {n: out.pairs.setdefault(f"ngram{n}", []) for n in self.ngram}
        shingle_rows: list[int] = []
        shingle_sets = []
        for r in uniq_rows:
            t = texts[r]
            if pe is not None:
                for p in exact.get(exact_key(t), ()):
                    pe.append((r, p, 1.0))
            nk = normalized_key(t)
            if pn is not None:
                for p in norm.get(nk, ()):
                    pn.append((r, p, 1.0))
            if ps is not None and self.parser is not None:
                s = self.parser.parse_words(nk)
                if s is not None:
                    out.families.append((r, s.family))
                    for p in self.structures.get(s, ()):
                        ps.append((r, p, 1.0))
            if ng or self.near_dup is not None:
                w = nk.split()
                for n, index in self.ngram.items():
                    for hit in index.match(w):
                        ng[n].append((r, hit.prompt, hit.mask, hit.span))
                        png[n].append((r, hit.prompt, hit.span / max(1, index.lengths[hit.prompt])))
                if self.near_dup is not None and self.near_dup.could_match_words(w):
                    sh = shingles(w, self.cfg.minhash_shingle)
                    if self.near_dup.could_match(sh):
                        shingle_rows.append(r)
                        shingle_sets.append(sh)
        if self.near_dup is not None:
            pm = out.pairs.setdefault("minhash", [])
            best = out.best.setdefault("minhash", {})
            t = self.near_dup.threshold
            for r, hits in zip(shingle_rows, self.near_dup.match_many(shingle_sets)):
                for h in hits:
                    if h.jaccard >= t:
                        pm.append((r, h.prompt, h.jaccard))
                    if h.jaccard > best.get(h.prompt, (-1.0, 0))[0]:
                        best[h.prompt] = (h.jaccard, r)
        if dup_of:
            _expand_duplicates(out, dup_of)
        return out


def _expand_duplicates(out: ChunkMatches, dup_of: list[tuple[int, int]]) -> None:
    copies: dict[int, list[int]] = {}
    for r, f in dup_of:
        copies.setdefault(f, []).append(r)
    for pairs in out.pairs.values():
        pairs.extend((d, p, s) for r, p, s in list(pairs) for d in copies.get(r, ()))
    for hits in out.ngram.values():
        hits.extend((d, p, m, sp) for r, p, m, sp in list(hits) for d in copies.get(r, ()))
    out.families.extend((d, fam) for r, fam in list(out.families) for d in copies.get(r, ()))


# --- worker processes -------------------------------------------------------------------------

_WORKER: Matcher | None = None


def _init_worker(bench: BenchmarkData, cfg: AuditConfig) -> None:
    global _WORKER
    _WORKER = Matcher(bench, cfg)


def _scan_in_worker(texts: list[str]) -> ChunkMatches:
    assert _WORKER is not None, "worker not initialised"
    return _WORKER.scan(texts)


def scan_stream(
    bench: BenchmarkData,
    cfg: AuditConfig,
    chunks: Iterable[Any],
    texts_of: Callable[[Any], list[str]] = lambda c: c.texts,
) -> Iterator[tuple[Any, ChunkMatches]]:
    """Yield ``(chunk, matches)`` in input order. With ``cfg.workers > 1`` chunks are matched in
    spawned processes, at most ``2 * workers`` in flight, so memory stays bounded on any pool."""
    if cfg.workers <= 1:
        matcher = Matcher(bench, cfg)
        for c in chunks:
            yield c, matcher.scan(texts_of(c))
        return
    ctx = multiprocessing.get_context("spawn")
    with cf.ProcessPoolExecutor(cfg.workers, mp_context=ctx, initializer=_init_worker, initargs=(bench, cfg)) as ex:
        window: deque[tuple[Any, cf.Future[ChunkMatches]]] = deque()
        try:
            for c in chunks:
                window.append((c, ex.submit(_scan_in_worker, texts_of(c))))
                if len(window) >= 2 * cfg.workers:
                    done, fut = window.popleft()
                    yield done, fut.result()
            while window:
                done, fut = window.popleft()
                yield done, fut.result()
        except BaseException:
            for _, fut in window:
                fut.cancel()
            raise
