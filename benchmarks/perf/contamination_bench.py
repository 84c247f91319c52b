"""Throughput of the contamination audit: 1,000,000 pool rows vs 5,000 benchmark prompts.

Levels exact, normalized, structure, ngram (8 and 13) and minhash, ``--workers`` processes
(default 2). Prints seconds, rows/s and peak memory (this process and its workers), then runs a
naive all-pairs baseline (every pool row against every prompt, no index) on a subsample, checks
that both find the same pairs there, and prints the extrapolated speed ratio. Target on 2 cores:
<= 60 s and <= 4 GB.

The benchmark is 5,000 GenEval-template prompts (rdmeval's template generator, GenEval's 80
class names). The pool is synthetic: 94 % caption-like sentences from a ~1,500-word vocabulary
that includes the class names, colours and "a photo of", and 6 % rows derived from benchmark
prompts (exact copies, case/punctuation variants, object-order swaps, one-word substitutions, a
prompt inside a longer caption), so every level has real work.

    .venv/bin/python benchmarks/perf/contamination_bench.py \
        [--geneval-file DIR_WITH_evaluation_metadata.jsonl] [--rows 1000000] [--prompts 5000] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from rdmeval.contamination.levels import AuditConfig  # noqa: E402
from rdmeval.contamination.near_dup import jaccard, shingles  # noqa: E402
from rdmeval.contamination.normalize import exact_key, normalized_key  # noqa: E402
from rdmeval.contamination.pool_spec import PoolSource, PoolSpec  # noqa: E402
from rdmeval.contamination.structure import StructureParser, structure_from_metadata, vocabulary_from_prompts  # noqa: E402
from rdmeval.contamination.templates import geneval_template_records  # noqa: E402
from rdmeval.prompts import Prompt, PromptSet, load_prompt_set  # noqa: E402
from rdmeval.prompts.geneval import COLORS  # noqa: E402

FILLER = (
    "man woman child people group dog cat horse street table kitchen field beach room water snow tree "
    "building car bus train plane bike bed couch window door plate food pizza cake sandwich ball frisbee "
    "sitting standing riding walking holding looking eating playing lying parked flying next to near on "
    "top of in front behind under with the a an of and is are two three large small white black red green "
    "blue brown yellow old young big little wooden grassy sunny busy empty open"
).split()


def _vocab(classes: list[str], rng: random.Random) -> list[str]:
    syll = ["ka", "lo", "mi", "ne", "ru", "ta", "so", "vi", "pe", "do", "ga", "zu", "fi", "ha", "be"]
    invented = {"".join(rng.choice(syll) for _ in range(rng.randint(2, 3))) for _ in range(2000)}
    words = FILLER + [w for c in classes for w in c.split()] + list(COLORS) + sorted(invented)[:1300]
    return words


def _caption(rng: random.Random, vocab: list[str], classes: list[str]) -> str:
    n = rng.randint(7, 15)
    words = [rng.choice(vocab) for _ in range(n)]
    if rng.random() < 0.3:
        words[rng.randrange(n)] = rng.choice(classes)
    if rng.random() < 0.05:
        words = ["a", "photo", "of"] + words
    s = " ".join(words)
    return s[0].upper() + s[1:] + "."


def _variant(rng: random.Random, prompt: str, classes: list[str], vocab: list[str]) -> str:
    kind = rng.randrange(5)
    if kind == 0:
        return prompt
    if kind == 1:
        return prompt.upper() + "!" if rng.random() < 0.5 else prompt.capitalize() + "."
    if kind == 2 and " and " in prompt:
        head, tail = prompt[len("a photo of "):].split(" and ", 1)
        return f"a photo of {tail} and {head}"
    if kind == 3:
        words = prompt.split()
        words[-1] = rng.choice(classes).split()[-1]
        return " ".join(words)
    return f"{_caption(rng, vocab, classes)[:-1]} with {prompt}"


def build(n_rows: int, n_prompts: int, classes: list[str], seed: int = 0) -> tuple[list[dict], list[str]]:
    rng = random.Random(seed)
    records = geneval_template_records(classes, seed=seed, n_per_task=2000)
    rng.shuffle(records)
    records = records[:n_prompts]
    vocab = _vocab(classes, rng)
    prompts = [r["prompt"] for r in records]
    n_derived = int(0.06 * n_rows)
    rows = [_variant(rng, rng.choice(prompts), classes, vocab) for _ in range(n_derived)]
    rows += [_caption(rng, vocab, classes) for _ in range(n_rows - n_derived)]
    rng.shuffle(rows)
    return records, rows


def naive_pairs(prompts: list[str], structures: list, rows: list[str], parser: StructureParser, cfg: AuditConfig) -> set:
    """Every (row, prompt, level) found by comparing each row with each prompt directly."""
    found = set()
    pe = [exact_key(p) for p in prompts]
    pn = [normalized_key(p) for p in prompts]
    pw = [p.split() for p in pn]
    psh = [shingles(w, cfg.minhash_shingle) for w in pw]
    for r, text in enumerate(rows):
        ek, nk = exact_key(text), normalized_key(text)
        w = nk.split()
        s = parser.parse_words(nk)
        sh = shingles(w, cfg.minhash_shingle)
        grams = {n: {tuple(w[i:i + k]) for k in {n, *range(1, n)} for i in range(len(w) - k + 1)} for n in cfg.ngram_sizes}
        for p in range(len(prompts)):
            if ek == pe[p]:
                found.add((r, p, "exact"))
            if nk == pn[p]:
                found.add((r, p, "normalized"))
            if s is not None and s == structures[p]:
                found.add((r, p, "structure"))
            for n in cfg.ngram_sizes:
                L = len(pw[p])
                units = [tuple(pw[p])] if L < n else [tuple(pw[p][i:i + n]) for i in range(L - n + 1)]
                if any(u in grams[n] for u in units):
                    found.add((r, p, f"ngram{n}"))
            if sh and jaccard(sh, psh[p]) >= cfg.minhash_threshold:
                found.add((r, p, "minhash"))
    return found


def indexed_pairs(prompts: list[str], structures: list, rows: list[str], classes, cfg: AuditConfig) -> set:
    from rdmeval.contamination.scan import BenchmarkData, Matcher

    m = Matcher(BenchmarkData(tuple(prompts), tuple(structures), tuple(classes)), cfg)
    res = m.scan(rows)
    return {(r, p, level) for level, pairs in res.pairs.items() for r, p, _ in pairs}


def cpu_seconds() -> tuple[float, float]:
    """User + system CPU of (this process, its finished workers)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime


def peak_rss_gb() -> tuple[float, float]:
    me = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024**2
    return me, kids


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--geneval-file", default=None,
                    help="GenEval evaluation_metadata.jsonl or its folder (for the 80 class names); default: the "
                         "prompt set's usual lookup (RDMEVAL_PROMPTS_PATH, the cache, then a download)")
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--prompts", type=int, default=5000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--naive-rows", type=int, default=300, help="pool rows in the all-pairs baseline subsample")
    args = ap.parse_args()

    from rdmeval.contamination.audit import run_audit

    classes = list(vocabulary_from_prompts(load_prompt_set("geneval", path=args.geneval_file).prompts))
    t0 = time.perf_counter()
    records, rows = build(args.rows, args.prompts, classes)
    print(f"built {len(rows):,} pool rows and {len(records):,} prompts in {time.perf_counter() - t0:.1f} s")
    bench = PromptSet(name="bench-templates", version="synthetic", sha256="-", source="synthetic", format="geneval",
                      prompts=[Prompt(index=i, text=r["prompt"], tag=r["tag"], metadata=r) for i, r in enumerate(records)])
    cfg = AuditConfig(levels=("exact", "normalized", "structure", "ngram", "minhash"), workers=args.workers,
                      max_examples=3)
    with tempfile.TemporaryDirectory() as tmp:
        pool_file = Path(tmp) / "pool.txt"
        pool_file.write_text("\n".join(rows) + "\n", encoding="utf-8")
        spec = PoolSpec(name="synthetic-1M", sources=(PoolSource(name="synthetic", kind="txt", path=pool_file),))
        t0, c0 = time.perf_counter(), cpu_seconds()
        result = run_audit(bench, spec, config=cfg, out_dir=Path(tmp) / "out")
        c1 = cpu_seconds()
        seconds, cpu_main, cpu_workers = time.perf_counter() - t0, c1[0] - c0[0], c1[1] - c0[1]
        cpu = cpu_main + cpu_workers
    me, kids = peak_rss_gb()
    print(f"indexed audit, levels 1-4 ({', '.join(cfg.result_levels())}), {args.workers} workers: "
          f"{seconds:.1f} s wall for {len(rows):,} rows = {len(rows) / seconds:,.0f} rows/s; "
          f"{cpu:.1f} CPU-s ({cpu / len(rows) * 1e6:.0f} us/row): main process {cpu_main:.1f}, workers {cpu_workers:.1f}")
    print(f"machine load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores "
          "(other processes share the cores when this is above the worker count)")
    print(f"peak memory: main process {me:.2f} GB, largest worker {kids:.2f} GB, sum {me + kids * args.workers:.2f} GB (upper bound)")
    for level, c in result.summary["pool"]["coverage"].items():
        print(f"  coverage {level:<16} {c['flagged']:>5} / {c['n']}   mass {result.summary['pool']['mass'].get(level, {}).get('fraction', float('nan')):.4f}")

    parser = StructureParser(classes)
    structures = [structure_from_metadata(r) for r in records]
    prompts = [r["prompt"] for r in records]
    sub = rows[: args.naive_rows]
    t0 = time.perf_counter()
    naive = naive_pairs(prompts, structures, sub, parser, cfg)
    t_naive = time.perf_counter() - t0
    cfg1 = AuditConfig(levels=cfg.levels, workers=1)
    t0 = time.perf_counter()
    fast = indexed_pairs(prompts, structures, sub, classes, cfg1)
    t_fast = time.perf_counter() - t0
    per_row_naive = t_naive / len(sub)
    print(f"naive all-pairs baseline: {len(sub)} rows x {len(prompts):,} prompts in {t_naive:.1f} s "
          f"({per_row_naive * 1e3:.1f} ms/row; extrapolated to {len(rows):,} rows on 1 core: {per_row_naive * len(rows) / 3600:.1f} h)")
    print(f"same subsample through the index, 1 process: {t_fast:.2f} s (including building the index)")
    agree = naive == fast
    print(f"pairs found on the subsample: naive {len(naive)}, indexed {len(fast)}, identical: {agree}"
          + ("" if agree else f" (only naive: {sorted(naive - fast)[:5]}, only indexed: {sorted(fast - naive)[:5]})"))
    print(f"speed ratio, wall: naive extrapolated on 1 core / indexed full run on {args.workers} workers = "
          f"{per_row_naive * len(rows) / seconds:,.0f}x; per core (CPU time per row): "
          f"{per_row_naive / (cpu / len(rows)):,.0f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
