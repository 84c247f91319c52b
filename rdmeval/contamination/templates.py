"""GenEval-template prompts drawn with any seed: a same-domain pool for null calibration.

Follows GenEval's six prompt templates, stated below (written for rdmeval, not a copy of
GenEval's ``create_prompts.py``, and not expected to reproduce its draws):

- single_object: every class once, "a photo of a/an {class}";
- two_object: ``n`` draws of two distinct classes, "a photo of a/an {A} and a/an {B}";
- counting: ``n`` draws of a class and N in [2, 4], "a photo of {N-word} {plural}" (naive plural:
  +es after a final s, else +s), exclude N+1;
- colors: ``n`` draws of a class other than person and a colour, "a photo of a/an {color} {class}";
- position: ``n`` draws of distinct A, B and a relation, "a photo of a/an {A} {rel} a/an {B}",
  include ``[B, A with position [rel, 0]]``;
- color_attr: ``n`` draws of distinct A, B (not person) with distinct colours,
  "a photo of a/an {cA} {A} and a/an {cB} {B}".

The article is "an" before a vowel-initial word. Duplicates within a task are dropped (first
kept). Records have GenEval's metadata layout, so they can be scored or audited like the real set.
Because single_object lists every class, any such pool contains GenEval's 80 single-object
prompts: that overlap is real chance overlap of the template, which is what the null shows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from rdmeval.errors import RdmevalError
from rdmeval.prompts.geneval import COLORS, RELATIONS
from rdmeval.prompts.geneval_generator import NUMBER_WORDS, article, plural


def _obj(cls: str, color: str | None = None) -> str:
    head = color or cls
    return f"{article(head)} {color + ' ' if color else ''}{cls}"


def geneval_template_records(classes: Sequence[str], seed: int, n_per_task: int = 100) -> list[dict[str, Any]]:
    """GenEval-format records (tag, include, [exclude], prompt) for the six tasks."""
    classes = sorted(set(classes))
    if len(classes) < 2:
        raise RdmevalError("the GenEval template generator needs at least two object classes")
    colorable = [c for c in classes if c != "person"]
    rng = np.random.default_rng(seed)
    out: list[dict[str, Any]] = []

    def add(block: list[dict[str, Any]]) -> None:
        seen: set[str] = set()
        for rec in block:
            if rec["prompt"] not in seen:
                seen.add(rec["prompt"])
                out.append(rec)

    add([{"tag": "single_object", "include": [{"class": c, "count": 1}], "prompt": f"a photo of {_obj(c)}"} for c in classes])
    block = []
    for _ in range(n_per_task):
        a, b = (classes[i] for i in rng.choice(len(classes), 2, replace=False))
        block.append({"tag": "two_object", "include": [{"class": a, "count": 1}, {"class": b, "count": 1}],
                      "prompt": f"a photo of {_obj(a)} and {_obj(b)}"})
    add(block)
    block = []
    for _ in range(n_per_task):
        c = classes[int(rng.integers(len(classes)))]
        n = int(rng.integers(2, 5))
        block.append({"tag": "counting", "include": [{"class": c, "count": n}], "exclude": [{"class": c, "count": n + 1}],
                      "prompt": f"a photo of {NUMBER_WORDS[n]} {plural(c)}"})
    add(block)
    block = []
    for _ in range(n_per_task):
        c = colorable[int(rng.integers(len(colorable)))]
        col = COLORS[int(rng.integers(len(COLORS)))]
        block.append({"tag": "colors", "include": [{"class": c, "count": 1, "color": col}],
                      "prompt": f"a photo of {_obj(c, col)}"})
    add(block)
    block = []
    for _ in range(n_per_task):
        a, b = (classes[i] for i in rng.choice(len(classes), 2, replace=False))
        rel = RELATIONS[int(rng.integers(len(RELATIONS)))]
        block.append({"tag": "position",
                      "include": [{"class": b, "count": 1}, {"class": a, "count": 1, "position": [rel, 0]}],
                      "prompt": f"a photo of {_obj(a)} {rel} {_obj(b)}"})
    add(block)
    block = []
    for _ in range(n_per_task):
        a, b = (colorable[i] for i in rng.choice(len(colorable), 2, replace=False))
        ca, cb = (COLORS[i] for i in rng.choice(len(COLORS), 2, replace=False))
        block.append({"tag": "color_attr",
                      "include": [{"class": a, "count": 1, "color": ca}, {"class": b, "count": 1, "color": cb}],
                      "prompt": f"a photo of {_obj(a, ca)} and {_obj(b, cb)}"})
    add(block)
    return out
