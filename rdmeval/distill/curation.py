"""The reference pool as blocks of teacher renders, their seeds, and the curation of the renders.

A reference pool spec (``benchmarks/pools/rdm-s180-reference.toml``) lists sources in row order. Each
source becomes a :class:`Block` of teacher renders, curated by the project's own scorers:

* a GenEval-format prompt set (the official metadata, which the judge reads): ``seeds`` renders per
  prompt; keep the renders the GenEval judge found correct, at most ``cap`` per prompt, the first in
  seed order (``geneval-correct``);
* any other source (COCO train2014 first captions): ``seeds`` renders per caption; keep the PickScore
  top ``keep`` of them, ``keep`` being the source's whole-number weight in the spec (3 for COCO)
  (``pickscore-top``).

Seeds follow the benchmark seed policy (``per-sample``: image ``j`` of prompt ``p`` is drawn from a
generator seeded ``base + 100·p + j``), which allows at most 100 samples per prompt and run. A block of
more seeds is rendered as several runs of at most 100 (``renders/<source>/seeds-0000``,
``seeds-0100``, ...), run ``r`` with ``base = block base + r·100·n_prompts``, so no two renders share a
seed. Block ``k`` of the spec starts at ``seed_base + k·10⁸``; the default ``seed_base`` (10⁹) keeps every
reference seed away from the evaluation seeds (GenEval's start at 46,000,000), so no reference image
is a teacher evaluation image.

The curated manifest (``curated.json``) lists the kept renders in row order ([block 1 | block 2 | ...]:
GenEval then COCO for the released pool); within a GenEval block by prompt then seed order, within a
PickScore block by caption then descending score. It records the rule, the seeds, and the sha256 of
every run manifest and of every scorer output it read; it is written atomically.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from rdmeval.api.layout import RunLayout
from rdmeval.contamination.pool_spec import PoolSource, PoolSpec
from rdmeval.errors import RdmevalError
from rdmeval.generators.noise import MAX_SAMPLES_PER_PROMPT, SeedPolicy
from rdmeval.io import atomic_write_text
from rdmeval.prompts.schema import Prompt, PromptSet

CURATED_FORMAT = "rdmeval.distill.refprep-curated/1"
CURATED_FILE = "curated.json"
RENDERS = "renders"
#: Defaults: the reference's COCO recipe (24 seeds per caption) and GenEval cap (100 per prompt).
CAPTION_SEEDS = 24
GENEVAL_CAP = 100
#: The reference's GenEval seed count is not published (see docs/reference-assets.md); rdmeval's default.
GENEVAL_SEEDS = 200
REFERENCE_SEED_BASE = 1_000_000_000
SOURCE_SEED_STRIDE = 100_000_000


class RefprepError(RdmevalError):
    """The reference preparation cannot go on (bad pool spec or flag, missing or stale renders/scores)."""


@dataclass(frozen=True)
class RenderRun:
    """One run of a block: samples ``first .. first + n_per_prompt - 1`` of every prompt."""

    name: str
    first: int
    n_per_prompt: int
    policy: SeedPolicy

    def seed(self, prompt_index: int, sample_index: int) -> int:
        """The noise seed of one image (the per-sample policy's formula)."""
        return self.policy.base + 100 * prompt_index + sample_index


@dataclass(frozen=True)
class Block:
    """One source of the reference pool: its prompts, renders and curation rule."""

    source: str
    kind: Literal["geneval-correct", "pickscore-top"]
    prompts: PromptSet
    seeds: int  # renders per prompt
    keep: int  # geneval-correct: the cap per prompt; pickscore-top: k
    seed_base: int
    seeds_per_run: int = MAX_SAMPLES_PER_PROMPT
    spec_rows: int | None = None  # the rows the pool spec gives this source (53,800 for GenEval)

    @property
    def scorer(self) -> str:
        return "geneval" if self.kind == "geneval-correct" else "pickscore"

    def runs(self) -> list[RenderRun]:
        n = len(self.prompts)
        return [RenderRun(f"seeds-{first:04d}", first, min(self.seeds_per_run, self.seeds - first),
                          SeedPolicy("per-sample", base=self.seed_base + r * MAX_SAMPLES_PER_PROMPT * n))
                for r, first in enumerate(range(0, self.seeds, self.seeds_per_run))]

    def run_dir(self, out: Path, run: RenderRun) -> Path:
        return out / RENDERS / self.source / run.name

    def rule(self) -> dict[str, Any]:
        if self.kind == "geneval-correct":
            text = (f"{self.seeds} teacher renders per prompt; keep those the GenEval judge found correct, "
                    f"at most {self.keep} per prompt, the first in seed order")
        else:
            text = f"{self.seeds} teacher renders per prompt; keep the PickScore top {self.keep}, highest first"
        return {"source": self.source, "kind": self.kind, "seeds": self.seeds, "keep": self.keep, "rule": text}

    def identity(self) -> dict[str, Any]:
        """What fixes this block's renders and curation (compared when a preparation resumes)."""
        ps = self.prompts
        return {**self.rule(), "prompt_set": {"name": ps.name, "version": ps.version, "sha256": ps.sha256, "n_prompts": len(ps)},
                "seeds_per_run": self.seeds_per_run,
                "runs": [{"name": r.name, "first": r.first, "n_per_prompt": r.n_per_prompt, "seed_policy": r.policy.describe()}
                         for r in self.runs()]}


def _source_prompts(spec: PoolSpec, src: PoolSource) -> PromptSet:
    """A source as a prompt set: a prompt_set source as loaded (GenEval keeps its metadata), others from their rows.

    A source read from rows is named after the spec and the source, and identified by the sha256 of its
    ``id<TAB>text`` lines (not by the file's path, so a moved caption file still resumes).
    """
    from rdmeval.contamination.pools import iter_source
    from rdmeval.prompts import load_prompt_set

    if src.kind == "prompt_set":
        name = src.prompt_set or str(src.path)
        try:
            ps = load_prompt_set(src.prompt_set, path=src.path) if src.prompt_set else load_prompt_set(src.path)  # type: ignore[arg-type]
        except RdmevalError as exc:
            raise type(exc)(f"source '{src.name}' (prompt set {name}): {exc} "
                            f"[offline: --set {src.name}.path=FOLDER_OR_FILE or RDMEVAL_PROMPTS_PATH]") from None
        if src.expected_rows is not None and len(ps) != src.expected_rows:
            raise RefprepError(f"source '{src.name}' (prompt set {name}) holds {len(ps)} prompts but the spec expects "
                               f"expected_rows = {src.expected_rows}")
        return ps
    ids: list[str] = []
    texts: list[str] = []
    for chunk in iter_source(src):
        ids += chunk.ids
        texts += chunk.texts
    content = "\n".join(f"{i}\t{t}" for i, t in zip(ids, texts)).encode("utf-8")
    return PromptSet(
        name=f"{spec.name}:{src.name}", version="pool-source",
        prompts=[Prompt(index=i, text=text, id=key) for i, (key, text) in enumerate(zip(ids, texts))],
        sha256=hashlib.sha256(content).hexdigest(), source=f"pool:{spec.name}/{src.name}", format="jsonl",
        definition=f"{src.kind} source '{src.name}' of pool spec '{spec.name}'" + (f" ({src.captions} captions)" if src.kind == "coco" else ""),
    )


def plan_blocks(
    spec: PoolSpec,
    *,
    geneval_seeds: int = GENEVAL_SEEDS,
    geneval_cap: int = GENEVAL_CAP,
    caption_seeds: int = CAPTION_SEEDS,
    seed_base: int = REFERENCE_SEED_BASE,
    seeds_per_run: int = MAX_SAMPLES_PER_PROMPT,
) -> list[Block]:
    """The blocks of a reference pool spec, in its row order."""
    for flag, value in (("--geneval-seeds", geneval_seeds), ("--geneval-cap", geneval_cap), ("--caption-seeds", caption_seeds)):
        if value < 1:
            raise RefprepError(f"{flag} must be >= 1, got {value}")
    if not 1 <= seeds_per_run <= MAX_SAMPLES_PER_PROMPT:
        raise RefprepError(f"seeds_per_run must be in [1, {MAX_SAMPLES_PER_PROMPT}] (the per-sample seed formula), got {seeds_per_run}")
    if seed_base < 0:
        raise RefprepError(f"--seed-base must be >= 0, got {seed_base}")
    where = spec.file or spec.name
    blocks = []
    for k, src in enumerate(spec.sources):
        ps = _source_prompts(spec, src)
        if not len(ps):
            raise RefprepError(f"{where} source '{src.name}' holds no prompts")
        weight = src.row_weight(len(ps))
        spec_rows = int(weight * len(ps)) if (weight * len(ps)).denominator == 1 else None
        base = seed_base + k * SOURCE_SEED_STRIDE
        if ps.format == "geneval":
            block = Block(src.name, "geneval-correct", ps, geneval_seeds, geneval_cap, base, seeds_per_run, spec_rows)
        else:
            if weight.denominator != 1 or weight < 1:
                raise RefprepError(
                    f"{where} source '{src.name}': weight {float(weight):g} is not a whole number >= 1; for a caption "
                    "block it is how many renders of each caption the reference keeps (the PickScore top k)")
            if int(weight) > caption_seeds:
                raise RefprepError(f"{where} source '{src.name}' keeps the top {int(weight)} renders of each caption but "
                                   f"--caption-seeds is {caption_seeds}; render at least {int(weight)}")
            block = Block(src.name, "pickscore-top", ps, caption_seeds, int(weight), base, seeds_per_run, spec_rows)
        span = len(block.runs()) * MAX_SAMPLES_PER_PROMPT * len(ps)
        if span > SOURCE_SEED_STRIDE:
            raise RefprepError(f"{where} source '{src.name}': {block.seeds} seeds for {len(ps):,} prompts need {span:,} seeds, "
                               f"more than the {SOURCE_SEED_STRIDE:,} each source has; use fewer seeds")
        blocks.append(block)
    if not blocks:
        raise RefprepError(f"{where} has no sources")
    return blocks


# ------------------------------------------------------------------------------------------- curation


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def rows_sha256(rows: list[dict[str, Any]]) -> str:
    """The identity of a curated row list (what the feature tables and bundles record)."""
    return hashlib.sha256(json.dumps(rows, sort_keys=True).encode("utf-8")).hexdigest()


def _run_scores(out: Path, block: Block, run: RenderRun) -> tuple[Any, dict[str, Any]]:
    """One run's per-image scores (checked complete and up to date) and what the manifest records about it."""
    import pandas as pd

    root = block.run_dir(out, run)
    layout = RunLayout(root)
    if not layout.manifest.is_file():
        raise RefprepError(f"{root} has no manifest.json: its renders were not made; run the preparation again")
    if not layout.is_scored(block.scorer):
        raise RefprepError(f"{root} has no up-to-date {block.scorer} scores (scores/{block.scorer}/summary.parquet older "
                           "than manifest.json, or missing); run the preparation again to score it")
    columns = ["prompt_index", "sample_index", "image", "image_sha256", "correct" if block.scorer == "geneval" else "pickscore"]
    frame = pd.read_parquet(layout.per_image(block.scorer), columns=columns)
    expected = len(block.prompts) * run.n_per_prompt
    pairs = set(zip(frame["prompt_index"].tolist(), frame["sample_index"].tolist()))
    if len(frame) != expected or len(pairs) != expected or max(p for p, _ in pairs) >= len(block.prompts) or \
            max(s for _, s in pairs) >= run.n_per_prompt:
        raise RefprepError(f"{layout.per_image(block.scorer)} scores {len(pairs)} distinct images, the run holds {expected} "
                           f"({len(block.prompts)} prompts x {run.n_per_prompt}); rescore the complete run "
                           f"(remove {layout.scores(block.scorer)} and run the preparation again)")
    frame["sample"] = frame["sample_index"] + run.first
    frame["seed"] = [run.seed(p, s) for p, s in zip(frame["prompt_index"].tolist(), frame["sample_index"].tolist())]
    frame["image"] = [f"{RENDERS}/{block.source}/{run.name}/{Path(name).as_posix()}" for name in frame["image"]]
    record = {"manifest_sha256": _sha256(layout.manifest),
              "scores": Path(os.path.relpath(layout.per_image(block.scorer), out)).as_posix(),
              "scores_sha256": _sha256(layout.per_image(block.scorer))}
    return frame, record


def curate_block(out: Path, block: Block) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """The kept renders of one block, in row order, and the record of every run read."""
    import pandas as pd

    frames, runs = [], {}
    for run in block.runs():
        frame, record = _run_scores(out, block, run)
        frames.append(frame)
        runs[f"{RENDERS}/{block.source}/{run.name}"] = record
    scores = pd.concat(frames, ignore_index=True)
    if block.kind == "geneval-correct":
        kept = scores[scores["correct"].astype(bool)].sort_values(["prompt_index", "sample"], kind="stable")
        kept = kept.groupby("prompt_index", sort=True).head(block.keep)
        values = [1.0] * len(kept)
    else:
        kept = scores.sort_values(["prompt_index", "pickscore", "sample"], ascending=[True, False, True], kind="stable")
        kept = kept.groupby("prompt_index", sort=True).head(block.keep)
        values = [float(v) for v in kept["pickscore"]]
    rows = [
        {"image": image, "prompt": block.prompts[int(p)].text, "source": block.source, "prompt_index": int(p),
         "sample": int(sample), "seed": int(seed), "score": value, "image_sha256": sha}
        for image, p, sample, seed, value, sha in zip(kept["image"], kept["prompt_index"], kept["sample"], kept["seed"],
                                                       values, kept["image_sha256"])
    ]
    return rows, runs


@dataclass(frozen=True)
class Curated:
    """A curated manifest: the header (``meta``) and the rows in reference row order."""

    path: Path
    meta: dict[str, Any]
    rows: list[dict[str, Any]]

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def sha256(self) -> str:
        return str(self.meta["rows_sha256"])

    @property
    def images(self) -> list[str]:
        return [r["image"] for r in self.rows]

    @property
    def prompts(self) -> list[str]:
        return [r["prompt"] for r in self.rows]


def curate(out: str | os.PathLike[str], blocks: list[Block], pool: dict[str, Any]) -> Curated:
    """Curate every block's scored renders into ``OUT/curated.json`` (rewritten only when it changes)."""
    out = Path(out)
    rows: list[dict[str, Any]] = []
    runs: dict[str, dict[str, Any]] = {}
    counts = []
    for block in blocks:
        kept, read = curate_block(out, block)
        empty = len(block.prompts) - len({r["prompt_index"] for r in kept})
        counts.append({"source": block.source, "kind": block.kind, "rows": len(kept), "spec_rows": block.spec_rows,
                       "prompts": len(block.prompts), "prompts_without_rows": empty})
        rows += kept
        runs.update(read)
    if not rows:
        raise RefprepError("the curation kept no render at all (every GenEval render judged wrong and no caption block?)")
    meta = {"format": CURATED_FORMAT, "pool": pool, "rules": [b.rule() for b in blocks],
            "seeds": {b.source: [{"run": r.name, "samples": [r.first, r.first + r.n_per_prompt - 1],
                                  "seed_policy": r.policy.describe()} for r in b.runs()] for b in blocks},
            "blocks": counts, "runs": runs, "n_rows": len(rows), "rows_sha256": rows_sha256(rows),
            "row_order": "blocks in pool-spec order; GenEval by prompt then seed order; captions by caption then descending PickScore"}
    text = json.dumps(meta, indent=1, sort_keys=True)[:-2] + ',\n "rows": [\n' + \
        ",\n".join(json.dumps(r, sort_keys=True) for r in rows) + "\n ]\n}\n"
    path = out / CURATED_FILE
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        atomic_write_text(path, text)
    return Curated(path, meta, rows)


def read_curated(out: str | os.PathLike[str]) -> Curated:
    path = Path(out) / CURATED_FILE
    if not path.is_file():
        raise RefprepError(f"{path} does not exist: curate the renders first (run the preparation without --stop-after)")
    data = json.loads(path.read_text(encoding="utf-8"))
    if data.get("format") != CURATED_FORMAT:
        raise RefprepError(f"{path}: format {data.get('format')!r} is not {CURATED_FORMAT!r}")
    rows = data.pop("rows")
    if rows_sha256(rows) != data.get("rows_sha256"):
        raise RefprepError(f"{path}: its rows do not match its rows_sha256 (edited by hand?); delete it and run the preparation again")
    return Curated(path, data, rows)
