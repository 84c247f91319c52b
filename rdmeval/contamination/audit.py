"""``run_audit``: a benchmark prompt set against a training pool, at every requested level.

Steps: load the benchmark and index it; stream the pool (and the optional null pool) through the
index; derive per-prompt flags, coverage, sampling mass and distributions; optionally split
scored runs into clean and contaminated prompts; write the report (``report.write_report``).

Why one module of ~400 lines: these steps share one pass over the pool and its per-level state;
the parts that stand alone (levels, tallies, the split, the report, the degenerate-input checks)
are already their own modules.
"""

from __future__ import annotations

import datetime as _dt
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rdmeval import __version__
from rdmeval.bootstrap import N_RESAMPLES, SEED
from rdmeval.contamination.degenerate import benchmark_failures, check, pool_failures
from rdmeval.contamination.levels import AuditConfig
from rdmeval.contamination.mass import composition, expected_draws, mass_fractions
from rdmeval.contamination.near_dup import candidate_probability, lsh_params
from rdmeval.contamination.normalize import NORMALIZER_DESCRIPTION, NORMALIZER_VERSION
from rdmeval.contamination.null import compare
from rdmeval.contamination.pool_spec import PoolSpec, load_pool_spec
from rdmeval.contamination.pools import iter_source
from rdmeval.contamination.scan import BenchmarkData, scan_stream
from rdmeval.contamination.semantic import SemanticIndex
from rdmeval.contamination.split import paired_difference, read_scores, split_scores, to_records
from rdmeval.contamination.structure import StructureParser, family_of, vocabulary_from_prompts
from rdmeval.contamination.tally import PoolTally
from rdmeval.errors import RdmevalError
from rdmeval.io import sha256_file
from rdmeval.prompts import PromptSet, load_prompt_set
from rdmeval.standin import STANDIN_NOTE, scores_file_has_standin

HIST_BINS = np.round(np.linspace(0.0, 1.0, 21), 2)


@dataclass
class PoolAudit:
    """The audit of one pool (the training pool, or the null pool)."""

    spec: PoolSpec
    tally: PoolTally
    prompts: pd.DataFrame
    matches: pd.DataFrame
    summary: dict[str, Any]
    seconds: float


@dataclass
class AuditResult:
    benchmark: PromptSet
    config: AuditConfig
    pool: PoolAudit
    null: PoolAudit | None
    split: dict[str, Any]
    summary: dict[str, Any]
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def prompts(self) -> pd.DataFrame:
        return self.pool.prompts


# --- benchmark ------------------------------------------------------------------------------------


def load_benchmark(benchmark: str | Path | PromptSet, path: str | Path | None = None) -> PromptSet:
    if isinstance(benchmark, PromptSet):
        return benchmark
    return load_prompt_set(benchmark, path=path)


def _classes(ps: PromptSet, geneval_path: str | Path | None, need: bool) -> tuple[str, ...]:
    classes = vocabulary_from_prompts(ps.prompts)
    if classes or not need:
        return classes
    try:
        ge = load_prompt_set("geneval", path=geneval_path)
    except RdmevalError as exc:
        raise RdmevalError(
            f"the structure level parses prompts with GenEval's 80 class names, and benchmark '{ps.name}' has no "
            f"GenEval metadata to take them from; loading the 'geneval' set failed: {exc}. "
            "Pass --geneval-file PATH (evaluation_metadata.jsonl), or drop 'structure' from --levels."
        ) from None
    return vocabulary_from_prompts(ge.prompts)


def benchmark_data(ps: PromptSet, cfg: AuditConfig, geneval_path: str | Path | None = None) -> tuple[BenchmarkData, list[str | None], list[str]]:
    """(index data, template family per prompt, structure description per prompt)."""
    need = "structure" in cfg.levels
    classes = _classes(ps, geneval_path, need)
    structures: list[Any] = [None] * len(ps)
    families: list[str | None] = [p.tag for p in ps.prompts]
    described: list[str] = [""] * len(ps)
    if need:
        parser = StructureParser(classes)
        for i, p in enumerate(ps.prompts):
            s = parser.structure_of(p.text, p.metadata)
            structures[i] = s
            families[i] = family_of(s, p.tag)
            described[i] = s.describe() if s is not None else ""
    data = BenchmarkData(texts=tuple(p.text for p in ps.prompts), structures=tuple(structures), classes=classes)
    return data, families, described


# --- scanning -------------------------------------------------------------------------------------


def scan_pool(spec: PoolSpec, bench: BenchmarkData, cfg: AuditConfig, *, semantic: SemanticIndex | None = None,
              progress: bool = False, desc: str = "pool") -> tuple[PoolTally, float]:
    """Stream every source of ``spec`` through the matchers; returns the tally and the seconds taken."""
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    tally = PoolTally(levels=cfg.result_levels(), n_prompts=len(bench.texts), max_examples=cfg.max_examples,
                      sources={s.name: s for s in spec.sources})
    for s in spec.sources:
        tally.rows_read[s.name] += 0
    chunks = (c for src in spec.sources for c in iter_source(src, cfg.chunk_size))
    want_families = "structure" in cfg.levels
    with tqdm(desc=f"audit {desc}", unit=" rows", unit_scale=True, disable=not progress, mininterval=0.5) as bar:
        for chunk, m in scan_stream(bench, cfg, chunks):
            tally.add_rows(chunk)
            tally.add(chunk, m.pairs, m.ngram, m.best, m.families if want_families else None)
            if semantic is not None:
                sm = semantic.scan(chunk.texts)
                tally.add(chunk, {"semantic": sm.pairs}, best={"semantic": sm.best})
            bar.update(len(chunk))
    return tally, time.perf_counter() - t0


# --- per-prompt table -----------------------------------------------------------------------------


def _prompt_table(ps: PromptSet, cfg: AuditConfig, tally: PoolTally, families: list[str | None], structures: list[str],
                  bench: BenchmarkData, total_draws: int | None) -> pd.DataFrame:
    n = len(ps)
    df = pd.DataFrame({
        "index": [p.index for p in ps.prompts],
        "id": [p.id if p.id is not None else str(p.index) for p in ps.prompts],
        "tag": [p.tag or "" for p in ps.prompts],
        "text": [p.text for p in ps.prompts],
    })
    levels = cfg.result_levels()
    lengths = [len(t.split()) for t in _normalized(bench.texts)]
    for level in levels:
        if level == "template_family":
            df["family"] = [f or "" for f in families]
            df["structure_desc"] = structures
            fam_rows = {fam: sum(c.values()) for fam, c in tally.family_rows.items()}
            fam_draws = {fam: float(tally.weighted(c)) for fam, c in tally.family_rows.items()}
            df["template_family_rows"] = [fam_rows.get(f, 0) if f else 0 for f in families]
            df["template_family_draws"] = [fam_draws.get(f, 0.0) if f else 0.0 for f in families]
            df["template_family"] = df["template_family_rows"] > 0
            continue
        rows = tally.prompt_rows.get(level, {})
        df[f"{level}_rows"] = [sum(rows[p].values()) if p in rows else 0 for p in range(n)]
        df[f"{level}_draws"] = [float(tally.weighted(rows[p])) if p in rows else 0.0 for p in range(n)]
        if level.startswith("ngram"):
            k = int(level[5:])
            units = [max(1, L - k + 1) if L >= k else 1 for L in lengths]
            spans = tally.ngram_span.get(k, {})
            df[f"{level}_fraction"] = [tally.ngram_fraction(k, p, units[p]) for p in range(n)]
            df[f"{level}_span"] = [spans.get(p, 0) / lengths[p] if lengths[p] else 0.0 for p in range(n)]
            df[f"{level}_short"] = [L < k for L in lengths]
            df[level] = df[f"{level}_fraction"] > 0
        elif level in ("minhash", "semantic"):
            best = tally.best.get(level, {})
            col = "minhash_max_jaccard" if level == "minhash" else "semantic_max_cosine"
            df[col] = [best[p][0] if p in best else (0.0 if level == "minhash" else float("nan")) for p in range(n)]
            thr = cfg.minhash_threshold if level == "minhash" else cfg.semantic_threshold
            df[level] = df[col] >= thr
        else:
            df[level] = df[f"{level}_rows"] > 0
    dirty_levels = cfg.default_dirty_levels()
    df["dirty"] = df[dirty_levels].any(axis=1) if dirty_levels else False
    if total_draws:
        level = "exact" if "exact" in levels else levels[0]
        df["expected_training_draws"] = [expected_draws(tally, level, p, total_draws) for p in range(n)]
    return df


def _normalized(texts: Sequence[str]) -> list[str]:
    from rdmeval.contamination.normalize import normalized_key

    return [normalized_key(t) for t in texts]


def _match_table(cfg: AuditConfig, tally: PoolTally) -> pd.DataFrame:
    recs: list[dict[str, Any]] = []
    for level in cfg.result_levels():
        if level == "template_family":
            continue
        thr = {"minhash": cfg.minhash_threshold, "semantic": cfg.semantic_threshold}.get(level)
        prompts = set(tally.prompt_rows.get(level, {})) | set(tally.best.get(level, {}))
        for p in sorted(prompts):
            exs = tally.examples(level, p)
            if not exs and level in tally.best and p in tally.best[level]:
                exs = [tally.best[level][p][1]]  # nearest candidate below the threshold
            for rank, e in enumerate(exs):
                recs.append({
                    "level": level, "prompt": p, "rank": rank, "score": e.score,
                    "flagged": True if thr is None else e.score >= thr,
                    "source": e.source, "row": e.row, "pool_id": e.id, "pool_text": e.text,
                    "weight": float(tally.weight_of(e.source)),
                })
    cols = ["level", "prompt", "rank", "score", "flagged", "source", "row", "pool_id", "pool_text", "weight"]
    return pd.DataFrame(recs, columns=cols)


# --- summaries ------------------------------------------------------------------------------------


def coverage(df: pd.DataFrame, levels: Sequence[str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for level in [*levels, "dirty"]:
        if level not in df.columns:
            continue
        flags = df[level].astype(bool)
        by_tag = {}
        for tag, sub in df.groupby("tag", sort=False):
            f = sub[level].astype(bool)
            by_tag[str(tag) or "-"] = {"n": int(len(f)), "flagged": int(f.sum()), "fraction": float(f.mean())}
        out[level] = {"n": int(len(flags)), "flagged": int(flags.sum()), "fraction": float(flags.mean()) if len(flags) else 0.0,
                      "by_tag": by_tag}
    return out


def distribution(values: pd.Series, thresholds: Sequence[float]) -> dict[str, Any]:
    v = values.dropna().to_numpy(dtype=float)
    if len(v) == 0:
        return {"n": 0}
    hist, _ = np.histogram(np.clip(v, 0.0, 1.0), bins=HIST_BINS)
    return {
        "n": int(len(v)),
        "bins": HIST_BINS.tolist(),
        "counts": hist.tolist(),
        "quantiles": {str(q): float(np.quantile(v, q)) for q in (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)},
        "at_least": {str(t): int((v >= t).sum()) for t in thresholds},
    }


def _pool_summary(cfg: AuditConfig, tally: PoolTally, df: pd.DataFrame, families: list[str | None], seconds: float) -> dict[str, Any]:
    levels = cfg.result_levels()
    if "template_family" in levels:
        bench_fams = {f for f in families if f}
        tally.flagged_rows["template_family"] = Counter()
        for fam in bench_fams:
            tally.flagged_rows["template_family"].update(tally.family_rows.get(fam, Counter()))
    comp = composition(tally)
    for c in comp:  # provenance of file sources (prompt sets are pinned by the registry)
        path = tally.sources[c["source"]].path
        if path is not None and path.is_file():
            c["path"] = str(path)
            c["sha256"] = sha256_file(path)
    summary: dict[str, Any] = {
        "composition": comp,
        "rows_read": int(sum(tally.rows_read.values())),
        "coverage": coverage(df, levels),
        "mass": mass_fractions(tally, levels),
        "seconds": round(seconds, 3),
    }
    dist: dict[str, Any] = {}
    if "minhash_max_jaccard" in df:
        dist["minhash_max_jaccard"] = distribution(df["minhash_max_jaccard"], (0.5, 0.6, 0.7, cfg.minhash_threshold, 0.9, 1.0))
    if "semantic_max_cosine" in df:
        dist["semantic_max_cosine"] = distribution(df["semantic_max_cosine"], (0.7, 0.8, cfg.semantic_threshold, 0.95, 1.0 - 1e-6))
    for level in levels:
        if level.startswith("ngram"):
            dist[f"{level}_fraction"] = distribution(df[f"{level}_fraction"], (0.25, 0.5, 1.0))
    summary["distributions"] = dist
    if tally.family_rows:
        summary["families"] = {
            fam: {"rows": int(sum(c.values())), "draws": float(tally.weighted(c)),
                  "examples": [e.text for e in tally.family_examples.get(fam, [])]}
            for fam, c in sorted(tally.family_rows.items())
        }
    return summary


def audit_pool(ps: PromptSet, spec: PoolSpec, cfg: AuditConfig, bench: BenchmarkData, families: list[str | None],
               structures: list[str], *, semantic: SemanticIndex | None, progress: bool, desc: str) -> PoolAudit:
    tally, seconds = scan_pool(spec, bench, cfg, semantic=semantic, progress=progress, desc=desc)
    df = _prompt_table(ps, cfg, tally, families, structures, bench, spec.total_draws)
    matches = _match_table(cfg, tally)
    summary = _pool_summary(cfg, tally, df, families, seconds)
    summary["spec"] = spec.describe()
    return PoolAudit(spec, tally, df, matches, summary, seconds)


# --- scores ---------------------------------------------------------------------------------------


def _split(df: pd.DataFrame, scores: Mapping[str, pd.DataFrame], n_resamples: int, seed: int) -> dict[str, Any]:
    if not scores:
        return {}
    dirty = pd.Series(df["dirty"].to_numpy(), index=df["index"].to_numpy())
    out: dict[str, Any] = {"runs": {}, "n_resamples": n_resamples, "seed": seed, "interval": "95% percentile bootstrap over prompts"}
    for label, frame in scores.items():
        out["runs"][label] = to_records(split_scores(frame, dirty, n_resamples=n_resamples, seed=seed, where=f"--scores {label}"))
    if "student" in scores and "teacher" in scores:
        out["paired"] = to_records(paired_difference(scores["student"], scores["teacher"], dirty, n_resamples=n_resamples, seed=seed))
    return out


# --- entry point ----------------------------------------------------------------------------------


def run_audit(
    benchmark: str | Path | PromptSet,
    pool_spec: str | Path | PoolSpec,
    levels: Sequence[str] | str | None = None,
    out_dir: str | Path | None = None,
    *,
    benchmark_path: str | Path | None = None,
    overrides: Sequence[str] | None = None,
    null_spec: str | Path | PoolSpec | None = None,
    null_overrides: Sequence[str] | None = None,
    scores: Mapping[str, pd.DataFrame | str | Path] | None = None,
    config: AuditConfig | None = None,
    geneval_path: str | Path | None = None,
    progress: bool = False,
    n_resamples: int = N_RESAMPLES,
    seed: int = SEED,
    semantic_encoder: Any = None,
    allow_empty: bool = False,
    **config_kwargs: Any,
) -> AuditResult:
    """Audit ``benchmark`` against the pool ``pool_spec``; write the report into ``out_dir`` if given.

    ``levels``: any of exact, normalized, structure, ngram, minhash, semantic (list or comma string).
    ``scores``: label -> per-prompt/per-image scores (DataFrame or file); labels "student" and
    "teacher" also give the paired difference. Other keyword arguments set ``AuditConfig`` fields.
    ``allow_empty``: an empty benchmark, source or zero-weight pool goes to ``summary["failures"]``, not raised.
    """
    cfg = config or AuditConfig()
    if levels is not None:
        lv = tuple(x.strip() for x in levels.split(",")) if isinstance(levels, str) else tuple(levels)
        config_kwargs["levels"] = lv
    if config_kwargs:
        cfg = replace(cfg, **config_kwargs)
    # cheap checks first: a bad spec or scores file fails before any reading
    spec = pool_spec if isinstance(pool_spec, PoolSpec) else load_pool_spec(pool_spec, overrides)
    null = None
    if null_spec is not None:
        null = null_spec if isinstance(null_spec, PoolSpec) else load_pool_spec(null_spec, null_overrides)
    score_frames = {}
    for label, s in (scores or {}).items():
        if isinstance(s, pd.DataFrame):
            score_frames[label] = s
        else:
            score_frames[label] = read_scores(str(s))
    ps = load_benchmark(benchmark, benchmark_path)
    check(failures := benchmark_failures(ps), allow_empty)  # an empty benchmark or pool is a failure, not "0.0 %"

    bench, families, structures = benchmark_data(ps, cfg, geneval_path)
    semantic = None
    if "semantic" in cfg.levels:
        semantic = SemanticIndex(bench.texts, model=cfg.semantic_model, threshold=cfg.semantic_threshold,
                                 batch_size=cfg.semantic_batch_size, device=cfg.semantic_device, encoder=semantic_encoder)
    pool_audit = audit_pool(ps, spec, cfg, bench, families, structures, semantic=semantic, progress=progress, desc=spec.name)
    null_audit = None
    if null is not None:
        null_audit = audit_pool(ps, null, cfg, bench, families, structures, semantic=semantic, progress=progress,
                                desc=f"null {null.name}")
    failures += pool_failures(spec, pool_audit.tally) + (pool_failures(null, null_audit.tally, "null pool") if null_audit else [])
    check(failures, allow_empty)
    split = _split(pool_audit.prompts, score_frames, n_resamples, seed)
    standin = [label for label, s in (scores or {}).items() if not isinstance(s, pd.DataFrame) and scores_file_has_standin(s)]
    if split and standin:  # GenEval verdicts of a smoke run: say so beside the split
        split["notes"] = [f"{', '.join(standin)}: {STANDIN_NOTE}"]

    summary: dict[str, Any] = {
        "rdmeval_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "normalizer": {"version": NORMALIZER_VERSION, "description": NORMALIZER_DESCRIPTION},
        "benchmark": ps.describe(),
        "config": cfg.to_dict(),
        "pool": pool_audit.summary,
    }
    if "minhash" in cfg.levels:
        b, r = lsh_params(cfg.minhash_threshold, cfg.minhash_num_perm, cfg.minhash_min_recall)
        summary["near_dup"] = {"shingle": f"word {cfg.minhash_shingle}-grams with begin/end markers",
                               "num_perm": cfg.minhash_num_perm, "bands": b, "rows_per_band": r,
                               "lsh_recall_at_threshold": candidate_probability(cfg.minhash_threshold, b, r)}
    if semantic is not None:
        summary["semantic"] = {"model": cfg.semantic_model, "loaded": semantic.model_description,
                               "threshold": cfg.semantic_threshold}
    if null_audit is not None:
        summary["null"] = null_audit.summary
        summary["null_comparison"] = compare(pool_audit.summary["coverage"], null_audit.summary["coverage"])
    if split:
        summary["split"] = split
    if failures:
        summary["failures"] = failures
    result = AuditResult(ps, cfg, pool_audit, null_audit, split, summary)
    if out_dir is not None:
        from rdmeval.contamination.report import write_report

        result.files = write_report(result, Path(out_dir))
    return result
