"""The first two phases of GenEval scoring (see :mod:`rdmeval.scorers.geneval.score`).

1. **detect** the images without valid cached detections, writing each image's detections to the
   cache as soon as it is done (a thread encodes and writes while the next batch runs);
2. **colors**: replay the judge with a recorder to learn which detections it will ask colors for,
   then classify those not cached yet and cache them per detection.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from tqdm.auto import tqdm

from rdmeval.errors import RdmevalError
from rdmeval.prompts.geneval import COLORS
from rdmeval.scorers.geneval.cache import CachedDetections, ColorCache, color_path, detection_path, detection_ref, write_detections
from rdmeval.scorers.geneval.colors import ColorRequest, classifier_key
from rdmeval.scorers.geneval.detections import Detection, ImageDetections
from rdmeval.scorers.geneval.detector import Detector
from rdmeval.scorers.geneval.judge import JudgeOptions, judge
from rdmeval.store import WorkItem


class ColorClassifier(Protocol):
    """What scoring needs from the color classifier (ClipColorClassifier, or a stub in tests)."""

    @property
    def identity(self) -> dict[str, Any]: ...

    def predict(self, requests: Sequence[ColorRequest], opts: JudgeOptions = ...) -> list[str]: ...



def _has_color_clause(meta: dict[str, Any]) -> bool:
    return any("color" in clause for clause in meta.get("include", []))


@dataclass
class _Image:
    item: WorkItem
    path: Path
    sha256: str
    meta: dict[str, Any]
    cached: CachedDetections | None = None


# ----------------------------------------------------------------------------- phase 1: detect


def _detect(
    images: list[_Image],
    detector: Detector,
    detector_key: str,
    run_dir: Path,
    batch_size: int,
    progress: bool,
) -> int:
    pending = [im for im in images if not _valid(im.cached, detector_key, im.sha256)]
    if not pending:
        return 0
    identity = detector.identity
    load = getattr(detector, "load", None)
    if load is not None:
        load()  # before the bar: its rate counts inference only, from the first image on
    bar = tqdm(total=len(pending), unit="img", desc="geneval detect", disable=not progress, dynamic_ncols=True)
    done = 0
    results = detector.detect([im.path for im in pending], batch_size=batch_size)
    # Cache files are encoded and written by a thread, overlapping the next batch's forward pass.
    with ThreadPoolExecutor(max_workers=1) as pool:
        inflight: deque = deque()
        for im, out in zip(pending, results):
            inflight.append(pool.submit(
                write_detections,
                detection_path(run_dir, *im.item),
                out.detections,
                out.height,
                out.width,
                detector_key=detector_key,
                detector=identity,
                image_sha256=im.sha256,
                image=str(im.path.relative_to(run_dir)),
            ))
            while len(inflight) > 2 * batch_size:
                inflight.popleft().result()
            done += 1
            bar.update(1)
        while inflight:
            inflight.popleft().result()
    bar.close()
    if done != len(pending):
        raise RdmevalError(f"the detector returned {done} results for {len(pending)} images")
    return done


def _valid(cached: CachedDetections | None, detector_key: str | None, sha: str) -> bool:
    return (
        cached is not None
        and cached.image_sha256 == sha
        and (detector_key is None or cached.detector_key == detector_key)
    )


# ----------------------------------------------------------------------------- phase 2: colors


class _Recorder:
    """A ColorFn that records which detections the judge asks about (and answers a placeholder)."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, Detection]] = []

    def __call__(self, name: str, found: list[Detection]) -> list[str]:
        self.asked.extend((name, d) for d in found)
        return [COLORS[0]] * len(found)


def _refs(dets: ImageDetections) -> dict[int, str]:
    return {id(d): detection_ref(name, n) for name, items in dets.items() for n, d in enumerate(items)}


def _colors(
    images: list[_Image],
    boxes: dict[WorkItem, ImageDetections],
    color: ColorClassifier | None,
    options: JudgeOptions,
    run_dir: Path,
    progress: bool,
) -> tuple[dict[WorkItem, dict[str, str]], dict[str, Any] | None, int]:
    """Per image, the color of every detection the judge will ask about: cached, else classified."""
    wanted: dict[WorkItem, list[tuple[str, str]]] = {}
    for im in images:
        if not _has_color_clause(im.meta):
            continue
        recorder = _Recorder()
        judge(im.meta, boxes[im.item], recorder, options)
        refs = _refs(boxes[im.item])
        if recorder.asked:
            wanted[im.item] = [(name, refs[id(d)]) for name, d in recorder.asked]
    if not wanted:
        return {}, None, 0
    if color is None:
        raise RdmevalError("this run has color prompts: a color classifier is needed (the CLI builds open_clip ViT-L-14)")
    identity = color.identity
    ckey = classifier_key(identity, options)
    by_image = {im.item: im for im in images}
    caches: dict[WorkItem, ColorCache] = {}
    answers: dict[WorkItem, dict[str, str]] = {}
    todo: list[tuple[WorkItem, str, ColorRequest]] = []
    for item, asked in wanted.items():
        im = by_image[item]
        cache = ColorCache(color_path(run_dir, *item), im.cached.detector_key, im.sha256)
        caches[item] = cache
        answers[item] = {}
        full: ImageDetections | None = None
        for name, ref in asked:
            hit = cache.get(ckey, ref)
            if hit is not None:
                answers[item][ref] = hit
                continue
            if full is None:
                full = im.cached.detections(with_masks=True)
            det = full[name][int(ref.rsplit("/", 1)[1])]
            _check_mask(det, im, name)
            todo.append((item, ref, ColorRequest(im.path, name, det)))
    if todo:
        load = getattr(color, "load", None)
        if load is not None:
            load()  # before the bar, as the detector
        bar = tqdm(total=len(todo), unit="crop", desc="geneval colors", disable=not progress, dynamic_ncols=True)
        step = 64
        for start in range(0, len(todo), step):
            chunk = todo[start : start + step]
            predicted = color.predict([req for _, _, req in chunk], options)
            if len(predicted) != len(chunk):
                raise RdmevalError(f"the color classifier returned {len(predicted)} colors for {len(chunk)} crops")
            for (item, ref, _), value in zip(chunk, predicted):
                answers[item][ref] = value
                caches[item].put(ckey, identity, options.bgcolor, bool(options.crop), ref, value)
            for item in {item for item, _, _ in chunk}:
                caches[item].save()
            bar.update(len(chunk))
        bar.close()
    return answers, {"identity": identity, "key": ckey}, len(todo)


def _check_mask(det: Detection, im: _Image, name: str) -> None:
    floor = im.cached.detector.get("mask_score_floor")
    if det.mask is None and floor is not None and not det.score > np.float32(floor):
        raise RdmevalError(
            f"{im.path}: the color test needs the mask of a {name!r} detection scoring {float(det.score):.4g}, "
            f"but masks were cached only for scores > {floor}. Use a --threshold above {floor}, or detect again "
            "with a lower mask floor"
        )
