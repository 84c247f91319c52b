"""rdmeval's pinned COCO-val caption set (the sources leave the card's COCO-val set unspecified).

Definition v1: COCO 2014 ``captions_val2014.json``; for each image, its first caption in
annotation order (whitespace-trimmed); images sorted by image id; a sample of ``n`` images drawn
without replacement by ``numpy.random.default_rng(seed).choice``, then sorted by image id.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from rdmeval.errors import PromptFileError
from rdmeval.prompts.schema import Prompt

DEFINITION_V1 = (
    "COCO 2014 val (captions_val2014.json): first caption per image in annotation order, "
    "images sorted by id, n={n} images sampled without replacement with "
    "numpy.random.default_rng({seed}).choice, sorted by image id"
)


def first_captions(annotation_file: Path) -> list[tuple[int, str]]:
    """(image_id, first caption) for every image with a caption, sorted by image id."""
    try:
        data = json.loads(Path(annotation_file).read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as exc:
        raise PromptFileError(f"{annotation_file}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, dict) or "annotations" not in data:
        raise PromptFileError(f"{annotation_file}: not a COCO caption file (no 'annotations' list)")
    first: dict[int, str] = {}
    for i, ann in enumerate(data["annotations"]):
        try:
            image_id, caption = int(ann["image_id"]), str(ann["caption"])
        except (KeyError, TypeError, ValueError):
            raise PromptFileError(
                f"{annotation_file}: annotations[{i}] needs 'image_id' and 'caption'"
            ) from None
        first.setdefault(image_id, caption.strip())
    return sorted(first.items())


def coco_val_prompts(annotation_file: Path, n: int, seed: int) -> list[Prompt]:
    rows = first_captions(annotation_file)
    if n <= 0 or n > len(rows):
        raise PromptFileError(f"--n {n}: must be between 1 and the {len(rows)} captioned images in {annotation_file}")
    chosen = np.sort(np.random.default_rng(seed).choice(len(rows), size=n, replace=False))
    return [
        Prompt(index=i, text=rows[j][1], id=str(rows[j][0]), metadata={"image_id": rows[j][0], "caption": rows[j][1]})
        for i, j in enumerate(chosen.tolist())
    ]
