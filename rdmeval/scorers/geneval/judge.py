"""GenEval's verdict for one image, as a pure function of (metadata, detections, colors, options).

This reproduces ``evaluation/evaluate_images.py`` of djghosh13/geneval (the rules are stated in
docs/geneval.md, "The official scoring rules"): per-class filtering (strict float32 threshold, sort by score,
cap, optional greedy NMS), include clauses ("at least k" over the top-k, with color and position tested
on those top-k only), exclude clauses ("fail if >= k" over all kept), and the exact reason strings.

The one deliberate difference: when a failed position test found two relations, the official reason
joins them in Python set order (which varies with hash randomization); here they follow the fixed
order of :data:`RELATIONS` so that reasons are reproducible.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rdmeval.errors import RdmevalError
from rdmeval.prompts.geneval import COLORS, RELATIONS
from rdmeval.scorers.geneval.detections import Detection

#: ``(class name, the found detections) -> one predicted color per detection``, in the same order.
ColorFn = Callable[[str, list[Detection]], list[str]]

#: The official ``--options`` keys that are judge options (``model`` and ``clip_model`` are not).
OPTION_KEYS: tuple[str, ...] = (
    "threshold",
    "counting_threshold",
    "max_objects",
    "max_overlap",
    "position_threshold",
    "bgcolor",
    "crop",
)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, (bool, np.bool_))


@dataclass(frozen=True)
class JudgeOptions:
    """The official scorer's options, with its defaults.

    - ``threshold``: keep detections with score > this (float32), for every tag but ``counting``;
    - ``counting_threshold``: the same for ``counting`` prompts (0.9; it applies to every class);
    - ``max_objects``: keep at most this many detections per class, after thresholding;
    - ``max_overlap``: greedy NMS drops a detection whose inclusive-pixel IoU with a kept one is
      >= this; 1.0 disables NMS (the default);
    - ``position_threshold``: the margin factor of the position test;
    - ``bgcolor``: the fill behind masked color crops (a PIL color, or ``"original"``);
    - ``crop``: crop color inputs to the box (the official ``crop=1``).

    ``bgcolor`` and ``crop`` only matter to the color classifier; they are here so one object records
    every option of a judgement.
    """

    threshold: float = 0.3
    counting_threshold: float = 0.9
    max_objects: int = 16
    max_overlap: float = 1.0
    position_threshold: float = 0.1
    bgcolor: str = "#999"
    crop: bool = True

    def __post_init__(self) -> None:
        for name in ("threshold", "counting_threshold"):
            value = getattr(self, name)
            if not _is_number(value) or not 0.0 <= float(value) <= 1.0:
                raise RdmevalError(f"option {name} must be a number in [0, 1] (a detector score), got {value!r}")
        if not isinstance(self.max_objects, (int, np.integer)) or isinstance(self.max_objects, bool):
            raise RdmevalError(f"option max_objects must be an integer >= 1, got {self.max_objects!r}")
        if self.max_objects < 1:
            raise RdmevalError(f"option max_objects must be an integer >= 1, got {self.max_objects!r}")
        if not _is_number(self.max_overlap) or not 0.0 <= float(self.max_overlap) <= 1.0:
            raise RdmevalError(
                f"option max_overlap must be a number in [0, 1] (an IoU; 1 disables NMS), got {self.max_overlap!r}"
            )
        if (
            not _is_number(self.position_threshold)
            or not math.isfinite(float(self.position_threshold))
            or float(self.position_threshold) < 0
        ):
            raise RdmevalError(
                f"option position_threshold must be a finite number >= 0, got {self.position_threshold!r}"
            )
        if not isinstance(self.bgcolor, str) or not self.bgcolor:
            raise RdmevalError(
                f"option bgcolor must be a color string (e.g. '#999') or 'original', got {self.bgcolor!r}"
            )
        if self.bgcolor != "original":
            from PIL import ImageColor

            try:
                ImageColor.getrgb(self.bgcolor)
            except ValueError:
                raise RdmevalError(
                    f"option bgcolor {self.bgcolor!r} is not a color PIL understands; use e.g. '#999', "
                    "'gray' or 'original'"
                ) from None
        if not isinstance(self.crop, (bool, np.bool_)):
            raise RdmevalError(f"option crop must be True or False, got {self.crop!r}")

    def threshold_for(self, tag: str) -> float:
        """The confidence threshold used for a prompt with this tag."""
        return self.counting_threshold if tag == "counting" else self.threshold

    @classmethod
    def from_official_strings(cls, values: Mapping[str, str]) -> JudgeOptions:
        """Options from the official ``--options k=v`` strings, read the official way.

        Numbers go through ``float``/``int``; ``crop`` is True exactly when the string is ``"1"``
        (the official scorer treats any other value as "no crop"). Only the keys in
        :data:`OPTION_KEYS` are accepted; the caller removes ``model``/``clip_model``.
        """
        unknown = sorted(set(values) - set(OPTION_KEYS))
        if unknown:
            raise RdmevalError(f"unknown judge option(s) {unknown}; accepted: {', '.join(OPTION_KEYS)}")
        kwargs: dict[str, Any] = {}
        for key, raw in values.items():
            try:
                if key == "max_objects":
                    kwargs[key] = int(raw)
                elif key == "bgcolor":
                    kwargs[key] = str(raw)
                elif key == "crop":
                    kwargs[key] = str(raw) == "1"
                else:
                    kwargs[key] = float(raw)
            except ValueError:
                kind = "integer" if key == "max_objects" else "number"
                raise RdmevalError(f"option {key}={raw!r} is not a valid {kind}") from None
        return cls(**kwargs)


@dataclass(frozen=True)
class Verdict:
    """One image's judgement: ``correct``, the official ``reason`` ("" iff correct) and ``details``.

    ``details`` maps every class with kept detections to its kept rows ``[x1, y1, x2, y2, score]``
    (Python floats of the float32 values, in kept order), like the official ``details`` column.
    """

    correct: bool
    reason: str
    details: dict[str, list[list[float]]] = field(default_factory=dict)


# ----------------------------------------------------------------------------- filtering


def _inclusive_iou(a: np.ndarray, b: np.ndarray) -> np.float32 | int:
    """IoU with the inclusive-pixel area convention ((x2 - x1 + 1) * (y2 - y1 + 1)), in float32."""

    def area(x1, y1, x2, y2):
        return max(x2 - x1 + 1, 0) * max(y2 - y1 + 1, 0)

    inter = area(max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3]))
    union = area(a[0], a[1], a[2], a[3]) + area(b[0], b[1], b[2], b[3]) - inter
    return inter / union if union else 0


def _check_detections(dets: Mapping[str, Sequence[Detection]]) -> None:
    if not isinstance(dets, Mapping):
        raise RdmevalError(f"detections must be a dict {{class name: [Detection, ...]}}, got {type(dets).__name__}")
    for name, items in dets.items():
        if not isinstance(name, str):
            raise RdmevalError(f"detection class names must be strings, got {name!r}")
        if isinstance(items, (str, bytes)) or not isinstance(items, Sequence):
            raise RdmevalError(f"detections[{name!r}] must be a list of Detection, got {type(items).__name__}")
        for j, det in enumerate(items):
            if not isinstance(det, Detection):
                raise RdmevalError(f"detections[{name!r}][{j}] is a {type(det).__name__}, not a Detection")


def filter_detections(
    dets: Mapping[str, Sequence[Detection]], tag: str, opts: JudgeOptions = JudgeOptions()
) -> dict[str, list[Detection]]:
    """Per class: sort by score (descending), keep score > threshold (float32), cap, optional NMS.

    The threshold is ``opts.counting_threshold`` when ``tag == "counting"``, else ``opts.threshold``.
    Ties in score are ordered like the official ``np.argsort(...)[::-1]``. Classes with nothing kept
    are omitted; the others keep the input dict's order.
    """
    _check_detections(dets)
    tau = np.float32(opts.threshold_for(tag))
    nms = opts.max_overlap != 1
    overlap = np.float32(opts.max_overlap)
    kept_all: dict[str, list[Detection]] = {}
    for name, items in dets.items():
        if not items:
            continue
        rows = np.stack([d.box for d in items]).astype(np.float32, copy=False)
        order = np.argsort(rows[:, 4])[::-1]
        order = order[rows[order, 4] > tau]
        pending = order[: opts.max_objects].tolist()
        kept: list[Detection] = []
        while pending:
            best = pending.pop(0)
            kept.append(items[best])
            if nms:
                pending = [j for j in pending if _inclusive_iou(rows[best], rows[j]) < overlap]
        if kept:
            kept_all[name] = kept
    return kept_all


# ----------------------------------------------------------------------------- position


def relative_position(a_box: Any, b_box: Any, position_threshold: float = 0.1) -> set[str]:
    """Where box A lies relative to box B: a subset of {left of, right of, above, below}.

    Boxes are ``[x1, y1, x2, y2, ...]`` (extra entries ignored), computed in float32 like the official
    scorer. Each axis of the center offset is shrunk by ``position_threshold`` times the sum of the two
    boxes' extents on that axis, then divided by the raw center distance; a relation needs > 0.5.
    y grows downward, so ``above`` means a smaller center y.
    """
    pair = np.stack(
        [np.asarray(a_box, dtype=np.float32)[:4], np.asarray(b_box, dtype=np.float32)[:4]]
    ).reshape(2, 2, 2)  # [box][corner][axis]
    centers = pair.mean(axis=1)
    extents = np.abs(pair[:, 1, :] - pair[:, 0, :])
    offset = centers[0] - centers[1]
    margin = float(position_threshold) * (extents[0] + extents[1])
    shrunk = np.maximum(np.abs(offset) - margin, 0) * np.sign(offset)
    if np.all(np.abs(shrunk) < 1e-3):
        return set()
    ux, uy = shrunk / np.linalg.norm(offset)
    found: set[str] = set()
    if ux < -0.5:
        found.add("left of")
    if ux > 0.5:
        found.add("right of")
    if uy < -0.5:
        found.add("above")
    if uy > 0.5:
        found.add("below")
    return found


# ----------------------------------------------------------------------------- the judge


def _check_metadata(metadata: Any) -> tuple[str, list[dict], list[dict]]:
    if not isinstance(metadata, Mapping):
        raise RdmevalError(f"GenEval metadata must be a dict, got {type(metadata).__name__}")
    tag = metadata.get("tag")
    if not isinstance(tag, str):
        raise RdmevalError(f"GenEval metadata needs a string 'tag' (e.g. 'counting'), got {tag!r}")
    include = metadata.get("include", [])
    exclude = metadata.get("exclude", [])
    for key, clauses in (("include", include), ("exclude", exclude)):
        if not isinstance(clauses, list):
            raise RdmevalError(f"GenEval metadata '{key}' must be a list of clauses, got {type(clauses).__name__}")
        for i, clause in enumerate(clauses):
            where = f"GenEval metadata {key}[{i}]"
            if not isinstance(clause, Mapping) or not isinstance(clause.get("class"), str):
                raise RdmevalError(f"{where} must be an object with a string 'class'")
            count = clause.get("count")
            if not isinstance(count, int) or isinstance(count, bool) or count < 1:
                raise RdmevalError(f"{where}.count must be an integer >= 1, got {count!r}")
            if key == "exclude":
                continue
            if "color" in clause and clause["color"] not in COLORS:
                raise RdmevalError(f"{where}.color {clause['color']!r} is not one of {', '.join(COLORS)}")
            if "position" in clause:
                pos = clause["position"]
                if (
                    not isinstance(pos, (list, tuple))
                    or len(pos) != 2
                    or pos[0] not in RELATIONS
                    or not isinstance(pos[1], int)
                    or isinstance(pos[1], bool)
                    or not 0 <= pos[1] < i
                ):
                    raise RdmevalError(
                        f"{where}.position must be [relation, target_index] with relation one of "
                        f"{', '.join(RELATIONS)} and target_index an earlier include clause, got {pos!r}"
                    )
    return tag, include, exclude


def _call_color_fn(color_fn: ColorFn, name: str, found: list[Detection]) -> list[str]:
    colors = list(color_fn(name, list(found)))
    if len(colors) != len(found) or not all(isinstance(c, str) for c in colors):
        raise RdmevalError(
            f"the color classifier must return one color string per detection: got {colors!r} "
            f"for {len(found)} {name!r} detection(s)"
        )
    return colors


def judge(
    metadata: Mapping[str, Any],
    detections: Mapping[str, Sequence[Detection]],
    color_fn: ColorFn,
    opts: JudgeOptions = JudgeOptions(),
) -> Verdict:
    """GenEval's verdict for one image, exactly like the official ``evaluate_image``.

    ``detections`` are the raw per-class detections (any order); ``color_fn`` is called only for a
    color clause whose count test passed, with that clause's top-k detections.
    """
    tag, include, exclude = _check_metadata(metadata)
    if not isinstance(opts, JudgeOptions):
        raise RdmevalError(f"opts must be a JudgeOptions, got {type(opts).__name__}")
    kept = filter_detections(detections, tag, opts)

    correct = True
    reasons: list[str] = []
    groups: list[list[Detection] | None] = []
    for clause in include:
        name, k = clause["class"], clause["count"]
        found = kept.get(name, [])[:k]
        ok = True
        if len(found) < k:
            ok = False
            reasons.append(f"expected {name}>={k}, found {len(found)}")
        else:
            if "color" in clause:
                want = clause["color"]
                colors = _call_color_fn(color_fn, name, found)
                hits = colors.count(want)
                if hits < k:
                    ok = False
                    seen = ", ".join(f"{colors.count(c)} {c}" for c in COLORS if c in colors)
                    reasons.append(f"expected {want} {name}>={k}, found {hits} {want}; and {seen}")
            if ok and "position" in clause:
                rel, target_index = clause["position"]
                targets = groups[target_index]
                if targets is None:
                    ok = False
                    reasons.append(f"no target for {name} to be {rel}")
                else:
                    ok = _all_pairs_hold(name, rel, found, targets, opts.position_threshold, reasons)
        correct = correct and ok
        groups.append(found if ok else None)
    for clause in exclude:
        name, k = clause["class"], clause["count"]
        n = len(kept.get(name, []))
        if n >= k:
            correct = False
            reasons.append(f"expected {name}<{k}, found {n}")

    details = {name: [[float(v) for v in d.box] for d in items] for name, items in kept.items()}
    return Verdict(correct=correct, reason="\n".join(reasons), details=details)


def _all_pairs_hold(
    name: str,
    rel: str,
    subjects: list[Detection],
    targets: list[Detection],
    position_threshold: float,
    reasons: list[str],
) -> bool:
    """True if every subject is ``rel`` of every target; else append the first failure's reason."""
    for subject in subjects:
        for target in targets:
            found = relative_position(subject.box, target.box, position_threshold)
            if rel not in found:
                listed = " and ".join(r for r in RELATIONS if r in found)
                reasons.append(f"expected {name} {rel} target, found {listed} target")
                return False
    return True
