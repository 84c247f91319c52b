"""The GenEval caches inside a run: detections per image, color predictions per detection.

Layout (all JSON, written atomically; the format is documented in docs/geneval.md)::

    <run>/scores/geneval/detections/<idx:05d>/<j:04d>.json   one image's raw detections
    <run>/scores/geneval/colors/<idx:05d>/<j:04d>.json       color predictions for its detections

A detection file records the detector's identity (config, checkpoint sha256, class names, versions)
and the image's sha256; it is reused only when both match, so another detector, config or a
regenerated image invalidates it. A color file holds, per classifier key (classifier identity plus
the crop options), the color predicted for detection ``"<class>/<n>"``: the n-th detection of that
class in the detection file. Color entries are tied to the detection file they were computed from
(its detector key and image sha256).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rdmeval.api.layout import RunLayout
from rdmeval.io import atomic_write_json, sha256_file
from rdmeval.scorers.geneval.detections import ImageDetections, detections_from_json, detections_to_json

DETECTION_CACHE_FORMAT = "rdmeval.geneval.detection-cache/1"
COLOR_CACHE_FORMAT = "rdmeval.geneval.color-cache/1"


#: The GenEval scorer's folder under ``<run>/scores/``.
SCORES_FOLDER = "geneval"


def scores_dir(run_dir: str | Path) -> Path:
    return RunLayout(run_dir).scores(SCORES_FOLDER)


def detection_path(run_dir: str | Path, prompt_index: int, sample_index: int) -> Path:
    return RunLayout(run_dir).cache_file(SCORES_FOLDER, "detections", prompt_index, sample_index)


def color_path(run_dir: str | Path, prompt_index: int, sample_index: int) -> Path:
    return RunLayout(run_dir).cache_file(SCORES_FOLDER, "colors", prompt_index, sample_index)


def image_sha256(path: str | Path) -> str:
    return sha256_file(path, use_cache=False)


@dataclass
class CachedDetections:
    """One image's cached detections plus the keys they were made with."""

    detector_key: str
    detector: dict[str, Any]
    image_sha256: str
    height: int
    width: int
    raw: dict[str, Any]  # the detections_to_json dict (masks still RLE)

    def detections(self, with_masks: bool = True) -> ImageDetections:
        """The detections; ``with_masks=False`` skips decoding the RLE masks (boxes only)."""
        raw = self.raw
        if not with_masks:
            def strip(rows: Any) -> Any:  # malformed rows pass through: detections_from_json names them
                return [{**r, "mask": None} if isinstance(r, dict) else r for r in rows] if isinstance(rows, list) else rows

            raw = {**raw, "classes": {n: strip(rows) for n, rows in raw["classes"].items()}}
        return detections_from_json(raw)


def write_detections(
    path: Path,
    dets: ImageDetections,
    height: int,
    width: int,
    *,
    detector_key: str,
    detector: dict[str, Any],
    image_sha256: str,
    image: str,
) -> None:
    payload = {
        "format": DETECTION_CACHE_FORMAT,
        "detector_key": detector_key,
        "detector": detector,
        "image": image,
        "image_sha256": image_sha256,
        "detections": detections_to_json(dets, height, width),
    }
    atomic_write_json(path, payload, indent=None)


def read_detections(path: Path) -> CachedDetections | None:
    """The cached detections at ``path``, or None if absent or unreadable (then detect again)."""
    try:
        obj = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    if not isinstance(obj, dict) or obj.get("format") != DETECTION_CACHE_FORMAT:
        return None
    raw = obj.get("detections")
    if not isinstance(raw, dict) or not isinstance(raw.get("classes"), dict):
        return None
    try:
        return CachedDetections(
            detector_key=str(obj["detector_key"]),
            detector=dict(obj.get("detector") or {}),
            image_sha256=str(obj["image_sha256"]),
            height=int(raw["height"]),
            width=int(raw["width"]),
            raw=raw,
        )
    except (KeyError, TypeError, ValueError):
        return None


def detection_ref(class_name: str, n: int) -> str:
    """How a color file names detection ``n`` of ``class_name`` in the detection file."""
    return f"{class_name}/{n}"


class ColorCache:
    """The color predictions of one image, keyed by classifier key and detection reference."""

    def __init__(self, path: Path, detector_key: str, image_sha256: str) -> None:
        self.path = path
        self.detector_key = detector_key
        self.image_sha256 = image_sha256
        self.entries: dict[str, dict[str, Any]] = {}
        self.dirty = False
        try:
            obj = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError, UnicodeDecodeError):
            return
        if (
            isinstance(obj, dict)
            and obj.get("format") == COLOR_CACHE_FORMAT
            and obj.get("detector_key") == detector_key
            and obj.get("image_sha256") == image_sha256
            and isinstance(obj.get("classifiers"), dict)
        ):
            self.entries = obj["classifiers"]

    def get(self, classifier_key: str, ref: str) -> str | None:
        value = self.entries.get(classifier_key, {}).get("colors", {}).get(ref)
        return value if isinstance(value, str) else None

    def put(self, classifier_key: str, classifier: dict[str, Any], bgcolor: str, crop: bool, ref: str, color: str) -> None:
        entry = self.entries.setdefault(classifier_key, {"classifier": classifier, "bgcolor": bgcolor, "crop": crop, "colors": {}})
        entry["colors"][ref] = color
        self.dirty = True

    def save(self) -> None:
        if not self.dirty:
            return
        atomic_write_json(
            self.path,
            {
                "format": COLOR_CACHE_FORMAT,
                "detector_key": self.detector_key,
                "image_sha256": self.image_sha256,
                "classifiers": self.entries,
            },
            indent=None,
        )
        self.dirty = False

