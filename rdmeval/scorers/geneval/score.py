"""Score a GenEval run directory: detect once (cached, resumable, shardable), then judge from the cache.

``score_geneval_run`` runs three phases (the first two in :mod:`rdmeval.scorers.geneval.phases`):

1. **detect** the run's images that have no valid cached detections (this shard's share of them),
   writing ``<run>/scores/geneval/detections/<idx>/<j>.json`` as each image is done;
2. **colors**: find the detections the judge will ask colors for (the top-k of each color clause
   whose count test passes), classify those not cached yet, and cache them per detection;
3. **judge** every image with the official semantics and write ``results.jsonl`` (the official rows,
   readable by GenEval's ``summary_scores.py``), ``per_image.parquet`` (tidy, with provenance),
   ``summary.txt`` (the official summary text) and ``summary.parquet`` (result rows with bootstrap
   confidence intervals).

``rejudge=True`` skips phase 1 and needs every image's detections in the cache. An incomplete run
(missing prompt folders or images) is refused unless ``allow_incomplete=True``; then every number is
reported with the run's coverage.
"""

from __future__ import annotations

import io
import json
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import pandas as pd

from rdmeval.distributed import torchrun_group
from rdmeval.errors import RdmevalError, RunStoreError
from rdmeval.io import atomic_write_bytes, atomic_write_text
from rdmeval.prompts.geneval import is_geneval_record
from rdmeval.api.rows import NESTED_COLUMNS, nested_to_text, provenance_from_run, write_rows
from rdmeval.bootstrap import GENEVAL_N_RESAMPLES, LEVEL, SEED, check_level, check_n_resamples
from rdmeval.scorers.geneval.cache import SCORES_FOLDER, detection_path, image_sha256, read_detections
from rdmeval.scorers.geneval.detections import Detection, ImageDetections
from rdmeval.scorers.geneval.detector import Detector, identity_key
from rdmeval.scorers.geneval.judge import JudgeOptions, Verdict, judge
from rdmeval.scorers.geneval.phases import ColorClassifier, _colors, _detect, _Image, _refs, _valid
from rdmeval.scorers.geneval.summary import (
    GenevalSummary,
    bootstrap_ci,
    format_official_summary,
    official_row,
    summarize,
    write_official_results,
)
from rdmeval.scorers.runs import check_run, incomplete_run_error, listing
from rdmeval.standin import STANDIN_SHORT, is_standin_detector
from rdmeval.store import RunStore, WorkItem, resolve_shard, shard_items
from rdmeval.store.external import external_source
from rdmeval.store.lock import RunLock

__all__ = ["SCORER", "SCORER_VERSION", "ColorClassifier", "GenevalScoreResult", "score_geneval_run"]

SCORER = "geneval-mmdet"
#: Bump when a change to this scorer (not to the judge options) could change a number.
SCORER_VERSION = "1"
#: Library versions recorded with every result.
VERSIONED_PACKAGES = ("torch", "mmdet", "mmcv", "mmengine", "open_clip_torch", "pycocotools", "pillow", "numpy")


@dataclass
class GenevalScoreResult:
    """What one call did and produced; ``judged`` is False for a shard that left judging to others."""

    run_dir: Path
    judged: bool
    detected: int
    reused: int
    colors_classified: int
    coverage: dict[str, Any]
    summary: GenevalSummary | None = None
    summary_text: str = ""
    outputs: dict[str, Path] = field(default_factory=dict)
    message: str = ""
    seconds: float = 0.0


# ----------------------------------------------------------------------------- helpers


def _versions() -> dict[str, str]:
    out = {}
    for pkg in VERSIONED_PACKAGES:
        try:
            out[pkg] = importlib_metadata.version(pkg)
        except importlib_metadata.PackageNotFoundError:
            pass
    return out


def _metadata(store: RunStore, prompt_index: int) -> dict[str, Any]:
    meta = store.prompt_metadata(prompt_index)
    if not is_geneval_record(meta):
        path = store.layout.prompt_metadata(prompt_index)
        raise RdmevalError(
            f"{path} is not a GenEval record (needs 'tag' and 'include'); `rdmeval score geneval` scores runs "
            "generated from GenEval-format prompts (--prompts geneval or demo-geneval)"
        )
    return meta


# ----------------------------------------------------------------------------- phase 3: judge and write


def _lookup(refs: dict[int, str], colors: dict[str, str]):
    def fn(name: str, found: list[Detection]) -> list[str]:
        return [colors[refs[id(d)]] for d in found]

    return fn


def _with_coverage(text: str, coverage: dict[str, Any]) -> str:
    """The official text with the run's coverage appended to every line that holds a number."""
    if coverage["complete"]:
        return text
    tag = f"   [coverage {coverage['present_images']}/{coverage['expected_images']} images, {coverage['fraction']:.2%}]"
    lines = [line + tag if any(ch.isdigit() for ch in line) else line for line in text.rstrip("\n").split("\n")]
    head = [
        "INCOMPLETE RUN: these numbers cover only the images present (scored with --allow-incomplete).",
        *([listing("missing prompt folders", coverage["missing_prompt_dirs"])] if coverage["missing_prompt_dirs"] else []),
        *([listing("missing images", coverage["missing_images"])] if coverage["missing_images"] else []),
        *([listing("excluded images", coverage["excluded_images"])] if coverage.get("excluded_images") else []),
        "",
    ]
    return "\n".join(head + lines) + "\n"


def _result_rows(
    df: pd.DataFrame,
    summary: GenevalSummary,
    provenance: dict[str, Any],
    protocol: dict[str, Any],
    coverage: dict[str, Any],
    n_resamples: int,
    seed: int,
    level: float,
) -> list[dict[str, Any]]:
    ci = bootstrap_ci(df, n_resamples=n_resamples, seed=seed, level=level)
    common = {
        **provenance,
        "scorer": SCORER,
        "scorer_version": SCORER_VERSION,
        "protocol": protocol,
        "coverage": coverage["fraction"],
        "complete": bool(coverage["complete"]),
        "higher_is_better": True,
    }
    rows = [
        {**common, "category": t.tag, "metric": "accuracy", "value": t.accuracy, "ci_low": ci.tasks[t.tag][0],
         "ci_high": ci.tasks[t.tag][1], "n": t.n_images, "n_prompts": t.n_prompts}
        for t in summary.tasks
    ]
    rows.append({**common, "category": "overall", "metric": "overall", "value": summary.overall, "ci_low": ci.overall[0],
                 "ci_high": ci.overall[1], "n": summary.n_images, "n_prompts": summary.n_prompts})
    rows.append({**common, "category": "all", "metric": "pct_correct_images", "value": 100 * summary.frac_correct_images,
                 "ci_low": 100 * ci.images[0], "ci_high": 100 * ci.images[1], "n": summary.n_images,
                 "n_prompts": summary.n_prompts})
    rows.append({**common, "category": "all", "metric": "pct_correct_prompts", "value": 100 * summary.frac_correct_prompts,
                 "ci_low": 100 * ci.prompts[0], "ci_high": 100 * ci.prompts[1], "n": summary.n_prompts,
                 "n_prompts": summary.n_prompts})
    return rows


# ----------------------------------------------------------------------------- entry point


def score_geneval_run(
    run_dir: str | os.PathLike[str],
    *,
    detector: Detector | None = None,
    color: ColorClassifier | None = None,
    options: JudgeOptions = JudgeOptions(),
    rejudge: bool = False,
    allow_incomplete: bool = False,
    shard: str | None = None,
    progress: bool = True,
    batch_size: int = 8,
    n_resamples: int = GENEVAL_N_RESAMPLES,
    seed: int = SEED,
    level: float = LEVEL,
) -> GenevalScoreResult:
    """Detect (unless ``rejudge``), classify colors and judge a GenEval run; write the outputs.

    ``detector`` is needed only for images without valid cached detections; ``color`` only for
    color detections not cached yet. ``shard`` (``"i/n"``) or torchrun split the detection phase;
    judging happens once all images have detections (on rank 0 under torchrun, else in whichever
    shard finds the cache complete).
    """
    t0 = time.time()
    if not isinstance(options, JudgeOptions):
        raise RdmevalError(f"options must be a JudgeOptions, got {type(options).__name__}")
    if batch_size < 1:
        raise RdmevalError(f"--batch-size must be >= 1, got {batch_size}")
    check_n_resamples(n_resamples)  # bad bootstrap arguments fail before detection, not after it
    check_level(level)
    given_dir = os.fspath(run_dir)
    run_dir = Path(given_dir)
    store = RunStore(run_dir)
    manifest = store.read_manifest()
    coverage = store.coverage()
    if not coverage["complete"] and not allow_incomplete:
        raise incomplete_run_error(
            store.root, coverage, "The official scorer would silently drop them and change every denominator.", manifest
        )
    present = [it for it in store.expected_items() if store.image_path(it).is_file()]
    check = check_run(store, present, allow_incomplete=allow_incomplete)  # before any model work
    present, coverage = check.scorable, check.apply(coverage)
    coverage["fraction"] = coverage["present_images"] / coverage["expected_images"] if coverage["expected_images"] else 0.0
    if not present:
        raise RunStoreError(f"{run_dir} has no images to score; generate them with `rdmeval generate`")

    metas = {p: _metadata(store, p) for p in sorted({it.prompt_index for it in present})}
    rank, world = resolve_shard(shard)
    dist = torchrun_group(shard)
    _lock = RunLock(run_dir, "score-geneval", rank, world, run_lock=dist is None or rank == 0).opened()  # one scorer per run and shard

    hashes: dict[Path, str] = {}

    def load(items: Sequence[WorkItem]) -> list[_Image]:
        out = []
        for it in items:
            path = store.image_path(it)
            if path not in hashes:
                hashes[path] = image_sha256(path)
            out.append(_Image(it, path, hashes[path], metas[it.prompt_index], read_detections(detection_path(run_dir, *it))))
        return out

    # ---- phase 1: detect (this shard's images)
    detected = 0
    detector_key: str | None = None
    if not rejudge:
        if detector is None:
            raise RdmevalError("score_geneval_run needs a detector unless rejudge=True")
        detector_key = identity_key(detector.identity)
        mine = load(shard_items(present, rank, world))
        detected = _detect(mine, detector, detector_key, run_dir, batch_size, progress)
    if dist is not None:
        dist.barrier()  # every rank's detections are written before rank 0 judges
        if rank != 0:
            return GenevalScoreResult(run_dir, False, detected, 0, 0, coverage,
                                      message=f"rank {rank}: {detected} images detected; rank 0 judges",
                                      seconds=time.time() - t0)

    # ---- every image must now have valid detections
    images = load(present)
    stale = [im for im in images if not _valid(im.cached, detector_key, im.sha256)]
    if stale:
        names = [str(im.path.relative_to(run_dir)) for im in stale]
        if not rejudge and world > 1:
            return GenevalScoreResult(
                run_dir, False, detected, 0, 0, coverage,
                message=(f"shard {rank}/{world}: {detected} images detected; {len(stale)} images still wait for "
                         "other shards. When all shards are done, run `rdmeval score geneval RUN_DIR --rejudge`"),
                seconds=time.time() - t0,
            )
        raise RdmevalError(
            "--rejudge needs cached detections of every image, made from the current image files; "
            + listing("without them", names)
            + ". Run `rdmeval score geneval RUN_DIR` without --rejudge to detect them"
        )
    keys = sorted({im.cached.detector_key for im in images})
    if len(keys) > 1:
        raise RdmevalError(
            f"the cached detections of {run_dir} come from {len(keys)} different detectors ({', '.join(keys)}); "
            "run `rdmeval score geneval RUN_DIR` with one detector (without --rejudge) to redo the stale ones"
        )
    detector_identity = images[0].cached.detector

    # ---- phase 2: colors
    boxes: dict[WorkItem, ImageDetections] = {im.item: im.cached.detections(with_masks=False) for im in images}
    colors, classifier, n_classified = _colors(images, boxes, color, options, run_dir, progress)

    # ---- phase 3: judge
    official, tidy = [], []
    for im in images:
        dets = boxes[im.item]
        verdict: Verdict = judge(im.meta, dets, _lookup(_refs(dets), colors.get(im.item, {})), options)
        rel = im.path.relative_to(run_dir)
        filename = external_source(manifest, im.path) or os.path.join(given_dir, str(rel))  # an adopted folder: its own file
        official.append(official_row(filename, im.meta, verdict))
        tidy.append({
            "prompt_index": im.item.prompt_index,
            "sample_index": im.item.sample_index,
            "image": str(rel),
            "image_sha256": im.sha256,
            "tag": im.meta["tag"],
            "prompt": im.meta["prompt"],
            "correct": bool(verdict.correct),
            "reason": verdict.reason,
            "n_kept": sum(len(v) for v in verdict.details.values()),
            "metadata": json.dumps(im.meta),
            "details": json.dumps(verdict.details),
        })

    layout = store.layout
    per_image = pd.DataFrame(tidy)
    summary = summarize(per_image)
    run_id = os.path.normpath(given_dir)
    provenance = provenance_from_run(manifest, run_id)
    protocol = provenance.pop("protocol")
    protocol["geneval"] = {
        "judge_options": asdict(options),
        "detector": detector_identity,
        "detector_key": keys[0],
        "color_classifier": classifier,
        "scorer_versions": _versions(),
        "bootstrap": {"n_resamples": n_resamples, "seed": seed, "level": level, "resampling": "prompts within each task"},
        "coverage": {k: coverage[k] for k in ("expected_images", "present_images", "complete")},
    }
    if check.provenance():
        protocol["geneval"]["run_check"] = check.provenance()
    for key, value in {**provenance, "scorer": SCORER, "scorer_version": SCORER_VERSION,
                       "judge_options": json.dumps(protocol["geneval"]["judge_options"], sort_keys=True),
                       "detector_key": keys[0], "coverage": coverage["fraction"]}.items():
        per_image[key] = nested_to_text(value) if key in NESTED_COLUMNS else value
    rows = _result_rows(per_image, summary, provenance, protocol, coverage, n_resamples, seed, level)

    outputs = {
        "results": layout.scores(SCORES_FOLDER) / "results.jsonl",
        "per_image": layout.per_image(SCORES_FOLDER),
        "summary_text": layout.scores(SCORES_FOLDER) / "summary.txt",
        "summary": layout.summary(SCORES_FOLDER),
    }
    write_official_results(official, outputs["results"])
    buf = io.BytesIO()
    per_image.to_parquet(buf, index=False)
    atomic_write_bytes(outputs["per_image"], buf.getvalue())
    text = _with_coverage(format_official_summary(per_image), coverage)
    atomic_write_text(outputs["summary_text"], text)
    write_rows(rows, outputs["summary"])
    reused = len(images) - detected
    return GenevalScoreResult(run_dir, True, detected, reused, n_classified, coverage, summary, text, outputs,
                              message=f"{len(images)} images judged ({detected} detected now, {reused} from the cache)"
                              + (f"; {STANDIN_SHORT}" if is_standin_detector(detector_identity) else "")
                              + (f"; {check.note}" if check.note else ""),
                              seconds=time.time() - t0)
