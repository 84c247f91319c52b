"""Detector output in the shape GenEval's judge consumes, the mmdet-3 adapter, and a JSON cache form.

GenEval's official scorer (mmdet 2) receives, per image, 80 per-class ``(n, 5)`` float32 arrays of
``[x1, y1, x2, y2, score]`` rows plus one bool ``H x W`` mask per row, and names class ``c`` with line
``c`` of its own ``object_names.txt``. Here one row and its mask are a :class:`Detection` and an image's
detections are a ``dict`` from class name to a list of them, in any order (the judge sorts).

The JSON form stores masks as COCO run-length encoding (pycocotools) and boxes as the Python floats of
the float32 values, so a round trip is bit-exact.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rdmeval.errors import RdmevalError, require

#: The number of lines in GenEval's ``object_names.txt`` (the 80 COCO thing classes).
N_OBJECT_NAMES = 80

#: The ``format`` value written by :func:`detections_to_json`; bump it when the layout changes.
DETECTIONS_FORMAT = "rdmeval.geneval.detections/1"


@dataclass(eq=False)
class Detection:
    """One detector instance: its box row and (optionally) its mask.

    ``box`` is coerced to a float32 array of shape ``(5,)`` = ``x1, y1, x2, y2, score``; the score stays
    float32 because the official threshold test is a float32 comparison. ``mask`` is a 2-D bool array at
    the original image size (integer 0/1 masks are converted with ``!= 0``), or None.
    """

    box: np.ndarray
    mask: np.ndarray | None = None

    def __post_init__(self) -> None:
        try:
            box = np.asarray(self.box, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise RdmevalError(f"Detection.box must be 5 numbers [x1, y1, x2, y2, score]: {exc}") from None
        if box.shape != (5,):
            raise RdmevalError(
                f"Detection.box must have shape (5,) = [x1, y1, x2, y2, score], got shape {box.shape}"
            )
        self.box = box
        if self.mask is not None:
            mask = np.asarray(self.mask)
            if mask.ndim != 2:
                raise RdmevalError(f"Detection.mask must be a 2-D (H, W) array, got shape {mask.shape}")
            if mask.dtype != np.bool_:
                if not np.issubdtype(mask.dtype, np.integer):
                    raise RdmevalError(
                        f"Detection.mask must be bool (or integer 0/1), got dtype {mask.dtype}; "
                        "threshold probability masks before building a Detection"
                    )
                mask = mask != 0
            self.mask = mask

    @property
    def score(self) -> np.float32:
        return self.box[4]


#: Class name -> that class's raw detections (any order; absent and empty mean the same).
ImageDetections = dict[str, list[Detection]]


def load_object_names(path: str | os.PathLike[str]) -> list[str]:
    """Read GenEval's ``object_names.txt``: 80 lines, line i naming detector label index i.

    Lines are stripped like the official scorer does. Raises RdmevalError naming the file when it is
    missing, has the wrong number of names, or has empty or duplicate names.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RdmevalError(
            f"GenEval object names file not found: {p} (it is evaluation/object_names.txt of "
            "djghosh13/geneval; pass its path)"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RdmevalError(f"cannot read GenEval object names file {p}: {exc}") from None
    names = [line.strip() for line in text.splitlines()]
    if len(names) != N_OBJECT_NAMES:
        raise RdmevalError(
            f"{p}: expected {N_OBJECT_NAMES} class names (one per line, in COCO label order), "
            f"found {len(names)} lines; use GenEval's evaluation/object_names.txt"
        )
    seen: dict[str, int] = {}
    for lineno, name in enumerate(names, start=1):
        if not name:
            raise RdmevalError(f"{p}:{lineno}: empty class name; every line must name one class")
        if name in seen:
            raise RdmevalError(f"{p}:{lineno}: duplicate class name {name!r} (also on line {seen[name]})")
        seen[name] = lineno
    return names


def _to_numpy(value: Any, what: str) -> np.ndarray:
    """numpy view of a numpy array, a sequence, or (by duck typing) a torch tensor."""
    if hasattr(value, "detach"):
        value = value.detach()
    if hasattr(value, "cpu") and hasattr(value, "numpy"):
        value = value.cpu().numpy()
    try:
        return np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise RdmevalError(f"pred_instances.{what} cannot be converted to an array: {exc}") from None


def from_pred_instances(
    labels: Any,
    scores: Any,
    bboxes: Any,
    masks: Any,
    class_names: Sequence[str],
) -> ImageDetections:
    """Group mmdet-3 ``pred_instances`` by label index into GenEval's per-class view.

    ``labels`` (N,), ``scores`` (N,), ``bboxes`` (N, 4) and ``masks`` (N, H, W) or None may be numpy
    arrays or torch tensors. Class ``c`` is named ``class_names[c]``, which must be GenEval's own list
    (:func:`load_object_names`), not mmdet's ``dataset_meta['classes']``: three names differ (64
    ``computer mouse``, 65 ``tv remote``, 66 ``computer keyboard``). Within a class, instances keep
    their input order; classes are returned in label-index order and classes without instances are
    omitted.
    """
    lab = _to_numpy(labels, "labels")
    sco = _to_numpy(scores, "scores")
    box = _to_numpy(bboxes, "bboxes")
    if lab.ndim != 1:
        raise RdmevalError(f"pred_instances.labels must be 1-D, got shape {lab.shape}")
    n = lab.shape[0]
    if sco.shape != (n,):
        raise RdmevalError(f"pred_instances.scores must have shape ({n},) like labels, got {sco.shape}")
    if box.shape != (n, 4):
        raise RdmevalError(f"pred_instances.bboxes must have shape ({n}, 4), got {box.shape}")
    if n and not np.issubdtype(lab.dtype, np.integer):
        raise RdmevalError(f"pred_instances.labels must be integers, got dtype {lab.dtype}")
    bad = [int(x) for x in lab if not 0 <= int(x) < len(class_names)]
    if bad:
        raise RdmevalError(
            f"pred_instances.labels has indices outside 0..{len(class_names) - 1}: {sorted(set(bad))[:10]}; "
            f"the class list has {len(class_names)} names (GenEval's object_names.txt has {N_OBJECT_NAMES})"
        )
    msk: np.ndarray | None = None
    if masks is not None:
        msk = _to_numpy(masks, "masks")
        if msk.ndim != 3 or msk.shape[0] != n:
            raise RdmevalError(f"pred_instances.masks must have shape ({n}, H, W), got {msk.shape}")
        if msk.dtype != np.bool_:
            msk = msk != 0
    rows = np.concatenate([box.astype(np.float32), sco.astype(np.float32)[:, None]], axis=1)
    out: ImageDetections = {}
    for c in sorted({int(x) for x in lab}):
        idx = np.flatnonzero(lab == c)
        out[class_names[c]] = [
            Detection(box=rows[i].copy(), mask=None if msk is None else msk[i].copy()) for i in idx
        ]
    return out


# ----------------------------------------------------------------------------- JSON (cache) form


def _mask_utils():
    return require("pycocotools.mask", "geneval", "Storing GenEval masks as COCO RLE")


def detections_to_json(dets: Mapping[str, Sequence[Detection]], height: int, width: int) -> dict[str, Any]:
    """A JSON-able dict of one image's detections; masks become COCO RLE with ``counts`` as str.

    Layout: ``{"format": DETECTIONS_FORMAT, "height": H, "width": W, "classes": {name: [{"box":
    [x1, y1, x2, y2, score], "mask": {"size": [H, W], "counts": str} | null}, ...]}}``. Box values are
    the exact Python floats of the float32 values. Every mask must be ``height x width``.
    """
    if int(height) < 0 or int(width) < 0:
        raise RdmevalError(f"image size must be non-negative, got height={height} width={width}")
    classes: dict[str, list[dict[str, Any]]] = {}
    mask_utils = None
    for name, items in dets.items():
        if not isinstance(name, str):
            raise RdmevalError(f"detection class names must be strings, got {name!r}")
        rows: list[dict[str, Any]] = []
        for j, det in enumerate(items):
            if not isinstance(det, Detection):
                raise RdmevalError(f"detections[{name!r}][{j}] is a {type(det).__name__}, not a Detection")
            rle = None
            if det.mask is not None:
                if det.mask.shape != (int(height), int(width)):
                    raise RdmevalError(
                        f"detections[{name!r}][{j}].mask has shape {det.mask.shape}, but the image is "
                        f"{height}x{width} (H x W); masks must be at the original image size"
                    )
                if mask_utils is None:
                    mask_utils = _mask_utils()
                enc = mask_utils.encode(np.asfortranarray(det.mask.astype(np.uint8)))
                rle = {"size": [int(s) for s in enc["size"]], "counts": enc["counts"].decode("ascii")}
            rows.append({"box": [float(v) for v in det.box], "mask": rle})
        classes[name] = rows
    return {"format": DETECTIONS_FORMAT, "height": int(height), "width": int(width), "classes": classes}


def detections_from_json(obj: Any) -> ImageDetections:
    """Inverse of :func:`detections_to_json` (bit-exact boxes, bool masks)."""
    if not isinstance(obj, Mapping):
        raise RdmevalError(f"detections JSON must be an object, got {type(obj).__name__}")
    fmt = obj.get("format")
    if fmt != DETECTIONS_FORMAT:
        raise RdmevalError(
            f"detections JSON has format {fmt!r}, expected {DETECTIONS_FORMAT!r}; "
            "the cache was written by another version: delete it and re-run detection"
        )
    height, width = obj.get("height"), obj.get("width")
    if not isinstance(height, int) or not isinstance(width, int):
        raise RdmevalError(f"detections JSON needs integer 'height' and 'width', got {height!r}, {width!r}")
    classes = obj.get("classes")
    if not isinstance(classes, Mapping):
        raise RdmevalError("detections JSON field 'classes' must be an object {class name: [detections]}")
    out: ImageDetections = {}
    mask_utils = None
    for name, rows in classes.items():
        if not isinstance(rows, list):
            raise RdmevalError(f"detections JSON classes[{name!r}] must be a list")
        dets: list[Detection] = []
        for j, row in enumerate(rows):
            where = f"detections JSON classes[{name!r}][{j}]"
            if not isinstance(row, Mapping) or "box" not in row:
                raise RdmevalError(f"{where} must be an object with 'box' and 'mask'")
            box = row["box"]
            if (
                not isinstance(box, list)
                or len(box) != 5
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in box)
            ):
                raise RdmevalError(f"{where}.box must be 5 numbers [x1, y1, x2, y2, score], got {box!r}")
            rle = row.get("mask")
            mask = None
            if rle is not None:
                if (
                    not isinstance(rle, Mapping)
                    or not isinstance(rle.get("counts"), str)
                    or list(rle.get("size", [])) != [height, width]
                ):
                    raise RdmevalError(
                        f"{where}.mask must be a COCO RLE {{'size': [{height}, {width}], 'counts': str}} or null"
                    )
                if mask_utils is None:
                    mask_utils = _mask_utils()
                try:
                    decoded = mask_utils.decode({"size": [height, width], "counts": rle["counts"].encode("ascii")})
                except Exception as exc:  # pycocotools raises bare ValueError/UnicodeError on garbage
                    raise RdmevalError(f"{where}.mask is not a valid COCO RLE: {exc}") from None
                mask = decoded.astype(bool)
            dets.append(Detection(box=np.asarray(box, dtype=np.float32), mask=mask))
        out[str(name)] = dets
    return out
