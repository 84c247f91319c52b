"""Score a run directory with PickScore: resumable (cached embeddings), shardable, with provenance.

Writes, under ``<run>/scores/pickscore/`` (or ``out_dir``)::

    cache/<fingerprint>/meta.json         the scorer's description
    cache/<fingerprint>/images/*.npz      image embeddings (key, image sha256, float32 embedding)
    cache/<fingerprint>/texts/*.npz       text embeddings (prompt index, text sha256, CLIP tokens, embedding)
    per_image.parquet                     one row per image: score, image sha256, provenance
    per_prompt.parquet                    one row per prompt: mean over its images, tokens, truncated
    summary.parquet (+ summary.json)      result rows (rdmeval.api.rows): pickscore_mean with CI

Every cache chunk is written atomically as soon as its batch is embedded, so a killed job resumes
where it stopped; a cached image embedding is reused only if the image's sha256 still matches.
Shards (``--shard i/n`` or torchrun) embed disjoint items; the process that finds the cache
complete (torchrun: rank 0 after a barrier) writes the outputs.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from rdmeval.api.layout import PER_IMAGE, PER_PROMPT, SUMMARY, RunLayout
from rdmeval.errors import RunStoreError
from rdmeval.io import atomic_write_bytes, atomic_write_json
from rdmeval.api.rows import provenance_from_run, write_rows
from rdmeval.bootstrap import LEVEL, N_RESAMPLES, SEED, check_level, check_n_resamples
from rdmeval.scorers.pickscore.functional import (
    bootstrap_ci,
    per_prompt_means,
    pickscore_from_embeddings,
)
from rdmeval.scorers.pickscore.model import MAX_LENGTH, PickScorer
from rdmeval.distributed import torchrun_group
from rdmeval.scorers.runs import RunCheck, check_run, incomplete_run_error
from rdmeval.store import RunStore, WorkItem, resolve_shard, shard_items
from rdmeval.store.run_store import decode_image
from rdmeval.store.lock import RunLock

SCORER = "pickscore"
SCORER_VERSION = "1"


def default_out_dir(run_dir: str | os.PathLike[str]) -> Path:
    return RunLayout(run_dir).scores(SCORER)


def item_key(item: WorkItem) -> str:
    return f"{item.prompt_index:05d}/{item.sample_index:04d}"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ----- the embedding cache ----------------------------------------------------------------------
class EmbeddingCache:
    """Append-only chunks of embeddings, one atomic ``.npz`` per embedded batch."""

    def __init__(self, root: Path):
        self.root = root

    def _write(self, kind: str, arrays: dict[str, np.ndarray]) -> Path:
        ident = hashlib.sha256("|".join(map(str, arrays["key"].tolist())).encode() + arrays["sha256"].tobytes()).hexdigest()[:20]
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        return atomic_write_bytes(self.root / kind / f"{ident}.npz", buf.getvalue())

    def _read(self, kind: str) -> list[dict[str, np.ndarray]]:
        chunks = []
        for path in sorted((self.root / kind).glob("*.npz")):
            try:
                with np.load(path, allow_pickle=False) as z:
                    chunks.append({k: z[k] for k in z.files})
            except (OSError, ValueError, KeyError) as exc:
                print(f"rdmeval: ignoring unreadable cache chunk {path} ({exc}); its items are embedded again")
        return chunks

    def write_meta(self, meta: dict[str, Any]) -> None:
        path = self.root / "meta.json"
        if not path.exists():
            atomic_write_json(path, meta)

    def save_images(self, keys: Sequence[str], shas: Sequence[str], emb: torch.Tensor) -> None:
        self._write("images", {"key": np.asarray(keys, dtype="U16"), "sha256": np.asarray(shas, dtype="U64"),
                               "emb": emb.float().numpy()})

    def load_images(self) -> dict[tuple[str, str], np.ndarray]:
        """``{(item key, image sha256): embedding}``: a regenerated image never matches a stale entry."""
        out: dict[tuple[str, str], np.ndarray] = {}
        for c in self._read("images"):
            for k, s, e in zip(c["key"].tolist(), c["sha256"].tolist(), c["emb"]):
                out[(k, s)] = e
        return out

    def save_texts(self, indices: Sequence[int], shas: Sequence[str], n_tokens: Sequence[int], emb: torch.Tensor) -> None:
        self._write("texts", {"key": np.asarray(indices, dtype=np.int64), "sha256": np.asarray(shas, dtype="U64"),
                              "n_tokens": np.asarray(n_tokens, dtype=np.int64), "emb": emb.float().numpy()})

    def load_texts(self) -> dict[tuple[int, str], tuple[int, np.ndarray]]:
        """``{(prompt index, text sha256): (CLIP tokens before truncation, embedding)}``."""
        out: dict[tuple[int, str], tuple[int, np.ndarray]] = {}
        for c in self._read("texts"):
            for k, s, n, e in zip(c["key"].tolist(), c["sha256"].tolist(), c["n_tokens"].tolist(), c["emb"]):
                out[(int(k), s)] = (int(n), e)
        return out


# ----- image loading ----------------------------------------------------------------------------
class _ImageFiles(torch.utils.data.Dataset):
    """(key, sha256, PIL image) per item, decoded from the same bytes that are hashed."""

    def __init__(self, store: RunStore, items: Sequence[WorkItem]):
        self.store, self.items = store, list(items)
        self.size = store.image_size()

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        item = self.items[i]
        path = self.store.image_path(item)
        data = path.read_bytes()
        return item_key(item), _sha(data), decode_image(path, data, self.size)  # RGB at the run's size, or an error


class _Collate:
    def __init__(self, scorer: PickScorer):
        self.preprocessor = scorer.preprocessor  # the processor only: no model in loader workers

    def __call__(self, batch):
        keys, shas, images = zip(*batch)
        return list(keys), list(shas), self.preprocessor(images)


def _hash_files(paths: Sequence[Path], workers: int = 8) -> list[str]:
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda p: _sha(p.read_bytes()), paths))


# ----- the result -------------------------------------------------------------------------------
@dataclass
class PickScoreRunResult:
    run_dir: str
    out_dir: str
    rank: int
    world_size: int
    embedded_images: int
    reused_images: int
    seconds: float
    aggregated: bool
    value: float | None = None
    ci: tuple[float, float] | None = None
    level: float = LEVEL
    n_images: int = 0
    n_prompts: int = 0
    n_truncated: int = 0
    coverage: dict[str, Any] = field(default_factory=dict)
    benchmark: dict[str, Any] = field(default_factory=dict)
    pending_images: int = 0
    note: str = ""
    check: RunCheck | None = None

    @property
    def message(self) -> str:
        """One line: the score, or what is still missing."""
        done = f"{self.embedded_images} images embedded now, {self.reused_images} from the cache"
        if not self.aggregated:
            return f"pickscore shard {self.rank}/{self.world_size}: {done}; " + (
                self.note or f"{self.pending_images} images still lack an embedding")
        checked = f"; {self.check.note}" if self.check is not None and self.check.note else ""
        return f"pickscore {self.value:.4f} over {self.n_prompts} prompts ({done}){checked}"

    def line(self) -> str:
        head = (f"{self.run_dir}: pickscore shard {self.rank}/{self.world_size}: {self.embedded_images} images embedded, "
                f"{self.reused_images} reused from the cache [{self.seconds:.1f}s]")
        if not self.aggregated:
            return head + "\n  " + (self.note or (
                f"{self.pending_images} images still lack an embedding (other shards running?); the last "
                "shard to finish writes the summary, or rerun without --shard once all have finished"))
        bm = self.benchmark
        lines = [
            head,
            f"  PickScore {bm.get('name', '?')} version {bm.get('version', '?')}: {self.value:.4f}  "
            f"{int(round(self.level * 100))}% CI [{self.ci[0]:.4f}, {self.ci[1]:.4f}]  "
            f"({self.n_prompts} prompts, {self.n_images} images; mean over prompts)",
            f"  prompts truncated by the scorer at {MAX_LENGTH} CLIP tokens: {self.n_truncated} of {self.n_prompts}",
        ]
        if bm.get("definition"):
            lines.append(f"  prompt set {bm.get('name')} version {bm.get('version')}: {bm['definition']}")
        if not self.coverage.get("complete", True):
            lines.append(f"  INCOMPLETE RUN (--allow-incomplete): {self.coverage['present_images']} of "
                         f"{self.coverage['expected_images']} images; not comparable with a complete run")
        if self.check is not None and self.check.note:
            lines.append(f"  {self.check.note}")
        lines.append(f"  wrote {self.out_dir}/summary.parquet, per_prompt.parquet, per_image.parquet")
        return "\n".join(lines)


def score_pickscore_run(
    run_dir: str | os.PathLike[str],
    scorer: PickScorer,
    *,
    allow_incomplete: bool = False,
    shard: str | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    num_workers: int = 0,
    progress: bool = True,
    n_resamples: int = N_RESAMPLES,
    seed: int = SEED,
    level: float = LEVEL,
    run_id: str | None = None,
) -> PickScoreRunResult:
    """Embed the run's images and prompts (reusing cached embeddings), then write per-image,
    per-prompt and summary rows. Refuses incomplete runs unless ``allow_incomplete``."""
    t0 = time.time()
    check_n_resamples(n_resamples)  # bad bootstrap arguments fail before embedding, not after it
    check_level(level)
    store = RunStore(Path(run_dir))
    manifest = store.read_manifest()
    cov = store.coverage()
    if not cov["complete"] and not allow_incomplete:
        raise incomplete_run_error(store.root, cov, "Its mean would cover other prompts than a complete run's.", manifest)
    items = store.expected_items()
    missing = set(store.missing(items))
    check = check_run(store, [it for it in items if it not in missing], allow_incomplete=allow_incomplete)
    present, cov = check.scorable, check.apply(cov)  # checked before any model work
    if not present:
        raise RunStoreError(f"{store.root}: no images to score (0 of {cov['expected_images']} present); run `rdmeval generate` first")
    rank, world = resolve_shard(shard)
    dist = torchrun_group(shard)
    _lock = RunLock(store.root, "score-pickscore", rank, world, run_lock=dist is None or rank == 0).opened()  # one scorer per run and shard
    out = Path(out_dir) if out_dir is not None else default_out_dir(store.root)
    cache = EmbeddingCache(out / "cache" / scorer.fingerprint())
    if rank == 0:
        cache.write_meta({"scorer": SCORER, "scorer_version": SCORER_VERSION, "identity": scorer.identity(),
                          "describe": scorer.describe(), "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")})

    # ---- prompts: texts of the present prompts; this shard embeds every world-th one -------------
    prompt_ids = sorted({it.prompt_index for it in present})
    texts: dict[int, str] = {}
    for idx in prompt_ids:
        meta = store.prompt_metadata(idx)
        if not isinstance(meta.get("prompt"), str):
            raise RunStoreError(f"{store.layout.prompt_metadata(idx)}: no 'prompt' string; regenerate the run's metadata")
        texts[idx] = meta["prompt"]
    text_sha = {idx: _sha(t.encode("utf-8")) for idx, t in texts.items()}
    cached_texts = cache.load_texts()
    todo_texts = [i for i in prompt_ids[rank::world] if (i, text_sha[i]) not in cached_texts]
    for s in range(0, len(todo_texts), scorer.batch_size):
        chunk = todo_texts[s : s + scorer.batch_size]
        strings = [texts[i] for i in chunk]
        cache.save_texts(chunk, [text_sha[i] for i in chunk], scorer.count_tokens(strings), scorer.embed_texts(strings))

    # ---- images: this shard's items without a valid cached embedding ---------------------------
    mine = shard_items(present, rank, world)
    cached_images = cache.load_images()
    cached_keys = {k for k, _ in cached_images}
    known = [it for it in mine if item_key(it) in cached_keys]
    shas = dict(zip(map(item_key, known), _hash_files([store.image_path(it) for it in known])))
    todo = [it for it in mine if (item_key(it), shas.get(item_key(it))) not in cached_images]
    reused = len(mine) - len(todo)
    if todo:
        loader = torch.utils.data.DataLoader(
            _ImageFiles(store, todo), batch_size=scorer.batch_size, shuffle=False, num_workers=num_workers,
            collate_fn=_Collate(scorer), pin_memory=scorer.device.type == "cuda",
            prefetch_factor=4 if num_workers > 0 else None,
        )
        bar = tqdm(total=len(todo), unit="img", desc=f"pickscore {rank}/{world}" if world > 1 else "pickscore",
                   disable=not progress, dynamic_ncols=True)
        for keys, batch_shas, pixels in loader:
            cache.save_images(keys, batch_shas, scorer.embed_pixels(pixels))
            shas.update(zip(keys, batch_shas))
            bar.update(len(keys))
        bar.close()

    result = PickScoreRunResult(str(store.root), str(out), rank, world, len(todo), reused, 0.0, aggregated=False,
                                coverage=cov, benchmark=manifest.get("request", {}).get("prompt_set", {}), level=level,
                                check=check)
    if dist is not None:
        dist.barrier()
        if rank != 0:
            result.seconds = time.time() - t0
            result.note = "rank 0 writes the summary"
            return result

    # ---- aggregate, if every present item and prompt has a current embedding -------------------
    cached_images = cache.load_images()
    cached_texts = cache.load_texts()
    # Items hashed or embedded here carry this call's sha; other shards' items are hashed now.
    image_sha = dict(shas)
    others = [it for it in present if item_key(it) not in image_sha]
    image_sha.update(zip(map(item_key, others), _hash_files([store.image_path(it) for it in others])))
    pending = [it for it in present if (item_key(it), image_sha[item_key(it)]) not in cached_images]
    pending_texts = [i for i in prompt_ids if (i, text_sha[i]) not in cached_texts]
    if pending or pending_texts:
        result.pending_images = len(pending)
        result.seconds = time.time() - t0
        return result

    img = np.stack([cached_images[(item_key(it), image_sha[item_key(it)])] for it in present])
    txt = {i: cached_texts[(i, text_sha[i])] for i in prompt_ids}
    return _aggregate(store, manifest, scorer, cov, present, texts, image_sha, img, txt, out, result,
                      n_resamples=n_resamples, seed=seed, level=level, run_id=run_id, t0=t0)


def _aggregate(store: RunStore, manifest: dict[str, Any], scorer: PickScorer, cov: dict[str, Any],
               present: list[WorkItem], texts: dict[int, str], image_sha: dict[str, str], img_emb: np.ndarray,
               txt: dict[int, tuple[int, np.ndarray]], out: Path, result: PickScoreRunResult, *,
               n_resamples: int, seed: int, level: float, run_id: str | None, t0: float) -> PickScoreRunResult:
    keys = [item_key(it) for it in present]
    txt_emb = np.stack([txt[it.prompt_index][1] for it in present])
    scores = pickscore_from_embeddings(torch.from_numpy(img_emb), torch.from_numpy(txt_emb), scorer.logit_scale)
    scores = scores.numpy().astype(np.float64)
    prompt_index = np.asarray([it.prompt_index for it in present])
    prompts, means = per_prompt_means(scores, prompt_index)
    value = float(means.mean())
    ci = bootstrap_ci(means, n_resamples=n_resamples, seed=seed, level=level)
    n_tokens = {i: txt[i][0] for i in texts}
    truncated = {i: n > MAX_LENGTH for i, n in n_tokens.items()}
    n_truncated = int(sum(truncated[int(p)] for p in prompts))

    prov = provenance_from_run(manifest, run_id if run_id is not None else str(store.root))
    scorer_info = {
        **scorer.describe(),
        "fingerprint": scorer.fingerprint(),
        "aggregation": "mean over prompts of the mean over each prompt's images",
        "bootstrap": {"n_resamples": n_resamples, "seed": seed, "level": level, "method": "percentile",
                      "resampling": "prompts, with replacement"},
        "device": str(scorer.device),
    }
    protocol = dict(prov["protocol"])
    protocol["scorer"] = scorer_info
    if result.check is not None and result.check.provenance():
        protocol["run_check"] = result.check.provenance()
    base = {k: prov[k] for k in ("run_id", "model", "benchmark", "benchmark_version", "benchmark_sha256")}
    base.update(scorer=SCORER, scorer_version=SCORER_VERSION)
    counts = pd.Series(prompt_index).value_counts()

    per_image = pd.DataFrame({
        **{k: [v] * len(present) for k, v in base.items()},
        "prompt_index": prompt_index,
        "sample_index": [it.sample_index for it in present],
        "prompt": [texts[it.prompt_index] for it in present],
        "image": [str(store.image_path(it).relative_to(store.root)) for it in present],
        "image_sha256": [image_sha[k] for k in keys],
        "pickscore": scores,
        "clip_tokens": [n_tokens[it.prompt_index] for it in present],
        "truncated": [truncated[it.prompt_index] for it in present],
    })
    per_prompt = pd.DataFrame({
        **{k: [v] * len(prompts) for k, v in base.items()},
        "prompt_index": prompts,
        "prompt": [texts[int(p)] for p in prompts],
        "n_images": [int(counts[p]) for p in prompts],
        "pickscore": means,
        "clip_tokens": [n_tokens[int(p)] for p in prompts],
        "truncated": [truncated[int(p)] for p in prompts],
        "scorer_fingerprint": scorer.fingerprint(),
        "scorer_identity": json.dumps(scorer.identity(), sort_keys=True, default=str),
    })
    for name, df in ((PER_IMAGE, per_image), (PER_PROMPT, per_prompt)):
        buf = io.BytesIO()
        df.to_parquet(buf, index=False)
        atomic_write_bytes(out / name, buf.getvalue())
    row = {
        **prov,
        "protocol": protocol,
        "scorer": SCORER,
        "scorer_version": SCORER_VERSION,
        "category": "all",
        "metric": "pickscore_mean",
        "value": value,
        "ci_low": ci[0],
        "ci_high": ci[1],
        "n": len(present),
        "n_prompts": len(prompts),
        "coverage": cov["present_images"] / cov["expected_images"],
        "complete": bool(cov["complete"]),
        "higher_is_better": True,
        "n_truncated": n_truncated,
    }
    write_rows([row], out / SUMMARY)
    result.aggregated = True
    result.value, result.ci = value, ci
    result.n_images, result.n_prompts, result.n_truncated = len(present), len(prompts), n_truncated
    result.seconds = time.time() - t0
    return result
