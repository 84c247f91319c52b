"""GenEval prompts built from GenEval's published rules: any structure -> its exact metadata record.

GenEval (Ghosh et al., 2023) fills six templates with its 80 object names, 10 colours, 4
relations and counts 2-4. The rules, as the official ``evaluation_metadata.jsonl`` shows them:

==============  ===================================================  =============================================
task            prompt                                               include (and exclude)
==============  ===================================================  =============================================
single_object   ``a photo of a/an {A}``                              ``[{A, 1}]``
two_object      ``a photo of a/an {A} and a/an {B}``  (A != B)       ``[{A, 1}, {B, 1}]``
counting        ``a photo of {N-word} {plural(A)}``   (N in 2..4)    ``[{A, N}]``, exclude ``[{A, N+1}]``
colors          ``a photo of a/an {c} {A}``           (A != person)  ``[{A, 1, c}]``
position        ``a photo of a/an {A} {rel} a/an {B}`` (A != B)      ``[{B, 1}, {A, 1, position: [rel, 0]}]``
color_attr      ``a photo of a/an {cA} {A} and a/an {cB} {B}``       ``[{A, 1, cA}, {B, 1, cB}]``
                (A != B, neither person, cA != cB)
==============  ===================================================  =============================================

The article is "an" before a word starting with a, e, i, o or u and "a" otherwise; it agrees
with the word right after it (the colour, when there is one: "an orange car"). The plural is
naive, exactly as in the official file: "es" after a final "s" ("buses", "wine glasses"), else
"s" ("sheeps", "knifes", "benchs", "toothbrushs"); by the same rule "skis" -> "skises" and
"scissors" -> "scissorses". Number words are "two", "three", "four". Keys are written in the
official order (tag, include, [exclude], prompt; class, count, color / position) and a line is
``json.dumps`` of the record with its default separators, as the official file is.

This module is written from those rules; it does not reproduce the official script's random
draws. ``GenevalItem`` names one prompt by its parameters, ``record()`` builds its metadata, and
``candidates(tag)`` lists every prompt the rules allow for a task, in a fixed order.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from rdmeval.errors import RdmevalError
from rdmeval.geneval_classes import GENEVAL_OBJECT_NAMES
from rdmeval.prompts.geneval import COLORS, RELATIONS, TAGS

NUMBER_WORDS: tuple[str, ...] = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
#: Counts of the counting task (inclusive).
COUNTS: tuple[int, ...] = (2, 3, 4)
#: The class never given a colour (colors and color_attr).
UNCOLORED = "person"


def article(word: str) -> str:
    """ "an" before a vowel-initial word, else "a" (GenEval's rule)."""
    return "an" if word[:1].lower() in "aeiou" else "a"


def plural(cls: str) -> str:
    """GenEval's naive plural: +es after a final s, else +s."""
    return cls + ("es" if cls.endswith("s") else "s")


def _with_article(*words: str) -> str:
    return f"{article(words[0])} {' '.join(words)}"


@dataclass(frozen=True)
class GenevalItem:
    """One GenEval prompt by its parameters, in prompt order.

    ``classes``: the objects as named in the prompt (A, or A and B); ``colors``: one colour per
    class for colors/color_attr, else empty; ``count``: N for counting, else 1; ``relation``: the
    position task's relation ("A rel B"), else None.
    """

    tag: str
    classes: tuple[str, ...]
    colors: tuple[str, ...] = ()
    count: int = 1
    relation: str | None = None

    def __post_init__(self) -> None:
        check_item(self)

    def record(self) -> dict[str, Any]:
        """The metadata record, keys in the official order."""
        tag, cls, col = self.tag, self.classes, self.colors
        if tag == "single_object":
            return {"tag": tag, "include": [{"class": cls[0], "count": 1}], "prompt": f"a photo of {_with_article(cls[0])}"}
        if tag == "two_object":
            return {"tag": tag, "include": [{"class": c, "count": 1} for c in cls],
                    "prompt": f"a photo of {_with_article(cls[0])} and {_with_article(cls[1])}"}
        if tag == "counting":
            n = self.count
            return {"tag": tag, "include": [{"class": cls[0], "count": n}], "exclude": [{"class": cls[0], "count": n + 1}],
                    "prompt": f"a photo of {NUMBER_WORDS[n]} {plural(cls[0])}"}
        if tag == "colors":
            return {"tag": tag, "include": [{"class": cls[0], "count": 1, "color": col[0]}],
                    "prompt": f"a photo of {_with_article(col[0], cls[0])}"}
        if tag == "position":
            a, b = cls
            return {"tag": tag,
                    "include": [{"class": b, "count": 1}, {"class": a, "count": 1, "position": [self.relation, 0]}],
                    "prompt": f"a photo of {_with_article(a)} {self.relation} {_with_article(b)}"}
        # color_attr (check_item admits no other tag)
        return {"tag": tag, "include": [{"class": c, "count": 1, "color": k} for c, k in zip(cls, col)],
                "prompt": f"a photo of {_with_article(col[0], cls[0])} and {_with_article(col[1], cls[1])}"}

    def line(self) -> str:
        """The record as one line of a GenEval metadata file (no newline)."""
        return json.dumps(self.record())


def _bad(item: GenevalItem, why: str) -> RdmevalError:
    return RdmevalError(f"not a GenEval prompt ({item.tag}: {item.classes}, colors {item.colors}, count {item.count}, "
                        f"relation {item.relation!r}): {why}")


def check_item(item: GenevalItem) -> None:
    """Raise RdmevalError unless the item follows GenEval's rules for its task."""
    shape = {"single_object": (1, 0), "two_object": (2, 0), "counting": (1, 0), "colors": (1, 1),
             "position": (2, 0), "color_attr": (2, 2)}
    if item.tag not in shape:
        raise _bad(item, f"tag must be one of {', '.join(TAGS)}")
    n_cls, n_col = shape[item.tag]
    if len(item.classes) != n_cls or len(item.colors) != n_col:
        raise _bad(item, f"{item.tag} takes {n_cls} class(es) and {n_col} colour(s)")
    unknown = [c for c in item.classes if c not in GENEVAL_OBJECT_NAMES]
    if unknown:
        raise _bad(item, f"{unknown} not among GenEval's 80 object names")
    if [c for c in item.colors if c not in COLORS]:
        raise _bad(item, f"colours must be among {', '.join(COLORS)}")
    if n_cls == 2 and item.classes[0] == item.classes[1]:
        raise _bad(item, "the two objects must differ")
    if n_col and UNCOLORED in item.classes:
        raise _bad(item, f"GenEval gives no colour to {UNCOLORED!r}")
    if n_col == 2 and item.colors[0] == item.colors[1]:
        raise _bad(item, "the two colours must differ")
    if (item.tag == "counting") != (item.count in COUNTS) or (item.tag != "counting" and item.count != 1):
        raise _bad(item, f"count must be one of {COUNTS} for counting and 1 otherwise")
    if (item.tag == "position") != (item.relation in RELATIONS):
        raise _bad(item, f"relation must be one of {', '.join(RELATIONS)} for position and None otherwise")


def candidate_params(tag: str) -> list[tuple[tuple[str, ...], tuple[str, ...], int, str | None]]:
    """``(classes, colors, count, relation)`` of every prompt GenEval's rules allow for ``tag``, in a
    fixed order: classes in object-name order (ordered pairs of distinct classes), then colours,
    counts and relations in their listed order. Cheap to list; ``candidates`` builds the items."""
    names = GENEVAL_OBJECT_NAMES
    colorable = tuple(c for c in names if c != UNCOLORED)
    pairs = list(itertools.permutations(names, 2))
    if tag == "single_object":
        return [((a,), (), 1, None) for a in names]
    if tag == "two_object":
        return [(pair, (), 1, None) for pair in pairs]
    if tag == "counting":
        return [((a,), (), n, None) for a in names for n in COUNTS]
    if tag == "colors":
        return [((a,), (c,), 1, None) for a in colorable for c in COLORS]
    if tag == "position":
        return [(pair, (), 1, r) for pair in pairs for r in RELATIONS]
    if tag == "color_attr":
        return [(pair, cols, 1, None) for pair in itertools.permutations(colorable, 2)
                for cols in itertools.permutations(COLORS, 2)]
    raise RdmevalError(f"unknown GenEval task {tag!r}; expected one of {', '.join(TAGS)}")


def candidates(tag: str) -> Iterator[GenevalItem]:
    """Every prompt GenEval's rules allow for ``tag``, in the order of ``candidate_params``."""
    return (GenevalItem(tag, *params) for params in candidate_params(tag))
