"""Audit report files, each written atomically:

- ``audit.json``: settings, composition, coverage, mass, distributions, null comparison, split;
- ``prompts.parquet``: one row per benchmark prompt with every flag and statistic;
- ``matches.parquet``: the matching pool rows per prompt and level (id, text, weight, score);
- ``null_prompts.parquet`` when a null pool was given;
- ``report.md``: the same, readable.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from rdmeval.io import atomic_write_bytes, atomic_write_json, atomic_write_text

if TYPE_CHECKING:
    from rdmeval.contamination.audit import AuditResult

LEVEL_MEANING = {
    "exact": "same string after NFKC and trimming",
    "normalized": "same text after lower-casing, removing punctuation and collapsing whitespace",
    "structure": "same GenEval structure (objects, counts, colours, relation), any order",
    "template_family": "some pool row fills the same GenEval template (task) with any words",
    "minhash": "near duplicate: exact word-shingle Jaccard >= threshold (MinHash LSH candidates)",
    "semantic": "sentence-embedding cosine >= threshold",
    "dirty": "flagged at any of the dirty levels (used for the clean/dirty split)",
}


def _meaning(level: str, cfg: dict[str, Any]) -> str:
    if level.startswith("ngram"):
        n = level[5:]
        return f"shares a word {n}-gram with a pool row (prompts under {n} words: the whole prompt)"
    text = LEVEL_MEANING.get(level, "")
    if level == "minhash":
        text = text.replace("threshold", str(cfg["minhash_threshold"]))
    if level == "semantic":
        text = text.replace("threshold", str(cfg["semantic_threshold"]))
    return text


def _parquet_bytes(df: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    return buf.getvalue()


def _pct(x: float) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f} %"


def _num(x: Any) -> str:
    if isinstance(x, float) and math.isnan(x):
        return "n/a"
    if isinstance(x, int) or (isinstance(x, float) and x.is_integer()):
        return f"{int(x):,}"
    return f"{x:,.2f}"


def _table(header: list[str], rows: list[list[Any]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def render_markdown(result: AuditResult) -> str:
    s = result.summary
    cfg = s["config"]
    bench = s["benchmark"]
    pool = s["pool"]
    spec = pool["spec"]
    levels = [lv for lv in pool["coverage"] if lv != "dirty"]
    lines = [
        f"# Contamination audit: {bench['name']} vs {spec['name']}",
        "",
        f"rdmeval {s['rdmeval_version']}, {s['created']}. Normalizer {s['normalizer']['description']}.",
        "",
        f"**Benchmark** `{bench['name']}` version {bench['version']}: {bench['n_prompts']} prompts, sha256 `{bench['sha256']}`.",
        f"**Pool** `{spec['name']}`" + (f" ({spec['file']})" if spec.get("file") else "") + f": {spec.get('description', '')}",
        "",
        "## Pool composition",
        "",
        _table(
            ["source", "kind", "rows read", "weight / row", "draws", "share of draws"],
            [[c["source"], c["kind"], _num(c["rows_read"]), _num(c["weight_per_row"]), _num(c["draws"]), _pct(c["share"])]
             for c in pool["composition"]],
        ),
        "",
        f"{_num(pool['rows_read'])} rows read in {pool['seconds']:.1f} s."
        + (f" Training draws assumed: {_num(spec['total_draws'])}." if spec.get("total_draws") else ""),
        "",
        "## Coverage: share of benchmark prompts flagged",
        "",
    ]
    null_cov = s.get("null", {}).get("coverage", {})
    header = ["level", "meaning", "flagged", "coverage"] + (["null", "excess"] if null_cov else [])
    rows = []
    for lv in [*levels, "dirty"]:
        c = pool["coverage"].get(lv)
        if c is None:
            continue
        row = [f"`{lv}`", _meaning(lv, cfg), f"{c['flagged']} / {c['n']}", _pct(c["fraction"])]
        if null_cov:
            nc = null_cov.get(lv)
            row += [_pct(nc["fraction"]) if nc else "n/a", _pct(c["fraction"] - nc["fraction"]) if nc else "n/a"]
        rows.append(row)
    lines += [_table(header, rows), ""]
    tags = list(pool["coverage"][levels[0]]["by_tag"]) if levels else []
    if len(tags) > 1:
        lines += ["Per task (share of the task's prompts flagged):", ""]
        lines.append(_table(["level", *tags], [
            [f"`{lv}`", *[_pct(pool["coverage"][lv]["by_tag"][t]["fraction"]) for t in tags]]
            for lv in [*levels, "dirty"] if lv in pool["coverage"]
        ]))
        lines.append("")
    lines += [
        "## Sampling mass: share of pool draws that match the benchmark",
        "",
        "Each pool row counts with its replication weight; a row matching several prompts counts once.",
        "",
        _table(["level", "matching draws", "pool draws", "mass", "exact"],
               [[f"`{lv}`", _num(m["draws"]), _num(m["total"]), _pct(m["fraction"]), m["exact"]] for lv, m in pool["mass"].items()]),
        "",
    ]
    null_mass = s.get("null", {}).get("mass")
    if null_mass:
        lines += [f"Null pool `{s['null']['spec']['name']}` mass: "
                  + ", ".join(f"`{lv}` {_pct(m['fraction'])}" for lv, m in null_mass.items()), ""]
    dist = pool.get("distributions", {})
    if dist:
        lines += ["## Distributions (per prompt: best match in the pool)", ""]
        drows = []
        for name, d in dist.items():
            if not d.get("n"):
                continue
            q = d["quantiles"]
            at = ", ".join(f">= {t}: {k}" for t, k in d["at_least"].items())
            drows.append([f"`{name}`", f"{q['0.0']:.2f}", f"{q['0.5']:.2f}", f"{q['0.9']:.2f}", f"{q['1.0']:.2f}", at])
        lines += [_table(["statistic", "min", "median", "p90", "max", "prompts at or above"], drows), ""]
        if "near_dup" in s:
            nd = s["near_dup"]
            lines += [f"MinHash LSH: {nd['num_perm']} permutations, {nd['bands']} bands x {nd['rows_per_band']} rows, "
                      f"{nd['shingle']}; probability of proposing a pair at the threshold: {nd['lsh_recall_at_threshold']:.4f}.", ""]
        if "semantic" in s:
            lines += [f"Semantic model: {s['semantic']['loaded']}.", ""]
    fams = pool.get("families")
    if fams:
        lines += ["## GenEval template families found in the pool", "",
                  _table(["family", "pool rows", "draws", "example"],
                         [[f, _num(v["rows"]), _num(v["draws"]), (v["examples"][0] if v["examples"] else "")] for f, v in fams.items()]),
                  ""]
    split = s.get("split")
    if split:
        lines += ["## Clean / dirty split of scored runs", "",
                  f"dirty = flagged at any of: {', '.join(cfg['dirty_levels'])}. {split['interval']} ({split['n_resamples']} resamples).", ""]
        srows = []
        for label, subs in split["runs"].items():
            for x in subs:
                srows.append([label, x["subset"], x["n_prompts"], _num4(x["value"]), f"[{_num4(x['ci_low'])}, {_num4(x['ci_high'])}]"])
        lines += [_table(["run", "subset", "prompts", "score", "95 % interval"], srows), ""]
        lines += [f"Note: {n}" for n in split.get("notes", [])] + ([""] if split.get("notes") else [])
        if "paired" in split:
            lines += ["Paired student - teacher:", "",
                      _table(["subset", "prompts", "student", "teacher", "difference", "95 % interval"],
                             [[x["subset"], x["n_prompts"], _num4(x["student"]), _num4(x["teacher"]), _num4(x["difference"]),
                               f"[{_num4(x['ci_low'])}, {_num4(x['ci_high'])}]"] for x in split["paired"]]), ""]
    lines += ["## Examples", ""]
    lines += _examples(result)
    lines += [
        "",
        "## Settings",
        "",
        f"- levels: {', '.join(cfg['levels'])}; n-gram sizes {cfg['ngram_sizes']} (primary {cfg['ngram_sizes'][0]})",
        f"- minhash: Jaccard >= {cfg['minhash_threshold']}, {cfg['minhash_num_perm']} permutations; "
        f"semantic: cosine >= {cfg['semantic_threshold']} ({cfg['semantic_model']})",
        f"- dirty levels: {', '.join(cfg['dirty_levels'])}",
        "- files: audit.json (all numbers), prompts.parquet (per prompt), matches.parquet (matching pool rows)",
        "",
        "Coverage is the share of benchmark prompts found in the pool; mass is the share of training draws",
        "that are such prompts. A benchmark can be 100 % covered at a small mass, and each level answers a",
        "different question; compare with the null pool before reading a level as contamination.",
    ]
    return "\n".join(lines) + "\n"


def _num4(x: float) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.4f}"


def _examples(result: AuditResult, k: int = 8) -> list[str]:
    df = result.pool.prompts
    m = result.pool.matches
    flagged = df[df["dirty"]] if "dirty" in df else df.iloc[0:0]
    if flagged.empty:
        return ["No benchmark prompt is flagged at the dirty levels."]
    out = []
    for _, row in flagged.head(k).iterrows():
        mm = m[(m["prompt"] == row["index"]) & m["flagged"] & (m["rank"] == 0)].head(4)  # best row per level
        out.append(f"- [{row['index']}] {row['text']!r}")
        for _, e in mm.iterrows():
            out.append(f"  - `{e['level']}` {e['score']:.3f}: {e['source']} row {e['row']} (id {e['pool_id']}, weight {_num(e['weight'])}): {e['pool_text']!r}")
    if len(flagged) > k:
        out.append(f"- ... {len(flagged) - k} more in prompts.parquet / matches.parquet")
    return out


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj


def write_report(result: AuditResult, out_dir: Path) -> dict[str, Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {
        "prompts": atomic_write_bytes(out_dir / "prompts.parquet", _parquet_bytes(result.pool.prompts)),
        "matches": atomic_write_bytes(out_dir / "matches.parquet", _parquet_bytes(result.pool.matches)),
    }
    if result.null is not None:
        files["null_prompts"] = atomic_write_bytes(out_dir / "null_prompts.parquet", _parquet_bytes(result.null.prompts))
        files["null_matches"] = atomic_write_bytes(out_dir / "null_matches.parquet", _parquet_bytes(result.null.matches))
    files["report"] = atomic_write_text(out_dir / "report.md", render_markdown(result))
    # audit.json last: its presence marks a complete report
    files["json"] = atomic_write_json(out_dir / "audit.json", json.loads(json.dumps(_jsonable(result.summary), default=str)))
    return files
