"""GenEval-style prompt structure: (tag, object classes with counts and colors, relation).

Two prompts have the *identical structure* when they ask for the same objects (class, count,
colour) and the same spatial relation, whatever the order of the objects in the sentence:
"a photo of a dog and a cat" = "a photo of a cat and a dog". A relation is stored in one canonical
direction, so "a dog left of a cat" = "a cat right of a dog" (GenEval judges ``A left of B`` from
the offset of A's box centre to B's, so the two phrasings are the same test). "A dog left of a
cat" and "a cat left of a dog" are *different* structures.

The *template family* is GenEval's task tag (single_object, two_object, counting, colors,
position, color_attr): two prompts of the same family fill the same template with other words.

A prompt's structure comes from its GenEval metadata when it has it (``include`` clauses), else
from its text. The text parser works on normalized words (``normalize.words``) and accepts the
GenEval templates with an optional frame ("a photo of", "a picture of", "an image of",
"a photograph of" or none), either article, number words zero..ten or digits for counts, and
naive ("clocks", "buses", "skis") plural forms. The object vocabulary (GenEval's 80 class names) is taken
from GenEval metadata: ``vocabulary_from_prompts``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rdmeval.contamination.normalize import normalized_key
from rdmeval.errors import RdmevalError
from rdmeval.prompts.geneval import COLORS, RELATIONS, TAGS
from rdmeval.prompts.geneval_generator import NUMBER_WORDS

FRAMES: tuple[str, ...] = ("a photo of", "a picture of", "an image of", "a photograph of")
INVERSE_RELATION: dict[str, str] = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}
OTHER_FAMILY = "other"


@dataclass(frozen=True, order=True)
class Obj:
    """One requested object: its class, how many, and an optional colour."""

    cls: str
    count: int = 1
    color: str | None = None

    def sort_key(self) -> tuple[str, int, str]:
        return (self.cls, self.count, self.color or "")


@dataclass(frozen=True)
class Structure:
    """A canonical, hashable structure. ``objects`` are sorted; ``relation`` is
    ``(subject, relation, target)`` in canonical direction, or None."""

    objects: tuple[Obj, ...]
    relation: tuple[Obj, str, Obj] | None = None

    @property
    def family(self) -> str:
        """The GenEval template family (task tag) this structure belongs to, or "other"."""
        objs = self.objects
        if self.relation is not None:
            ok = len(objs) == 2 and all(o.count == 1 and o.color is None for o in objs)
            return "position" if ok else OTHER_FAMILY
        if len(objs) == 1:
            (o,) = objs
            if o.count == 1:
                return "colors" if o.color else "single_object"
            return "counting" if o.color is None else OTHER_FAMILY
        if len(objs) == 2 and all(o.count == 1 for o in objs) and objs[0].cls != objs[1].cls:
            colored = [o.color is not None for o in objs]
            if not any(colored):
                return "two_object"
            if all(colored) and objs[0].color != objs[1].color:
                return "color_attr"
        return OTHER_FAMILY

    def describe(self) -> str:
        def one(o: Obj) -> str:
            return f"{o.count}x {o.color + ' ' if o.color else ''}{o.cls}"

        body = " + ".join(one(o) for o in self.objects)
        if self.relation is not None:
            s, rel, t = self.relation
            body += f" | {one(s)} {rel} {one(t)}"
        return f"{self.family}: {body}"


def make_structure(objects: Iterable[Obj], relation: tuple[Obj, str, Obj] | None = None) -> Structure:
    """Build the canonical structure: objects sorted, relation in canonical direction."""
    objs = tuple(sorted(objects, key=Obj.sort_key))
    if relation is not None:
        subject, rel, target = relation
        if rel not in INVERSE_RELATION:
            raise RdmevalError(f"unknown relation {rel!r}; expected one of {', '.join(RELATIONS)}")
        if subject.sort_key() > target.sort_key():
            subject, rel, target = target, INVERSE_RELATION[rel], subject
        relation = (subject, rel, target)
    return Structure(objs, relation)


def structure_from_metadata(meta: Mapping[str, Any]) -> Structure:
    """The structure of a GenEval metadata record (its ``include`` clauses; ``exclude`` is implied)."""
    clauses = meta.get("include")
    if not isinstance(clauses, list) or not clauses:
        raise RdmevalError(f"GenEval metadata without 'include' clauses: {dict(meta)!r}")
    objs = [Obj(str(c["class"]), int(c.get("count", 1)), c.get("color")) for c in clauses]
    relation = None
    for i, c in enumerate(clauses):
        if "position" in c:
            rel, target = c["position"]
            relation = (objs[i], str(rel), objs[int(target)])
    return make_structure(objs, relation)


def vocabulary_from_prompts(prompts: Iterable[Any]) -> tuple[str, ...]:
    """GenEval class names found in the ``include`` clauses of prompt metadata (sorted, unique)."""
    names: set[str] = set()
    for p in prompts:
        meta = getattr(p, "metadata", None) or {}
        for clause in meta.get("include", []) if isinstance(meta, Mapping) else []:
            if isinstance(clause, Mapping) and isinstance(clause.get("class"), str):
                names.add(clause["class"])
    return tuple(sorted(names))


def naive_plurals(cls: str) -> tuple[str, ...]:
    """Plural spellings accepted for a class: GenEval's naive rule (+es after s, else +s), +s, and
    the name itself when it already ends in s ("skis", "scissors")."""
    forms = {cls + "s", cls + "es" if cls.endswith("s") else cls + "s"}
    if cls.endswith("s"):
        forms.add(cls)
    return tuple(sorted(forms))


class StructureParser:
    """Parses normalized prompt text into a ``Structure`` given the object vocabulary."""

    def __init__(self, classes: Sequence[str]):
        if not classes:
            raise RdmevalError(
                "the structure level needs GenEval's object names; none were found in the benchmark metadata "
                "(pass a GenEval prompt set, or give the classes explicitly)"
            )
        self.classes = tuple(sorted({normalized_key(c) for c in classes}))
        alt = lambda items: "|".join(re.escape(x) for x in sorted(items, key=len, reverse=True))  # noqa: E731
        plural_of: dict[str, str] = {}
        for c in self.classes:
            for form in naive_plurals(c):
                plural_of.setdefault(form, c)
        self._plural_of = plural_of
        self._numbers = {w: i for i, w in enumerate(NUMBER_WORDS)}
        cls = alt(self.classes)
        col = alt(COLORS)
        obj = lambda k: rf"(?:a|an) (?:(?P<c{k}>{col}) )?(?P<o{k}>{cls})"  # noqa: E731
        frame = rf"(?:(?:{alt(FRAMES)}) )?"
        num = rf"(?P<n>{alt(NUMBER_WORDS)}|\d+)"
        self._single = re.compile(rf"{frame}{obj(1)}")
        self._pair = re.compile(rf"{frame}{obj(1)} and {obj(2)}")
        self._position = re.compile(rf"{frame}{obj(1)} (?:to the )?(?P<rel>{alt(RELATIONS)}) {obj(2)}")
        self._counting = re.compile(
            rf"{frame}{num} (?:(?P<c1>{col}) )?(?P<p>{alt(plural_of)})"
        )
        # Every parseable prompt ends with a class name or a plural: a cheap pre-filter for pools.
        self._last_words = {c.split()[-1] for c in self.classes} | {p.split()[-1] for p in plural_of}

    def parse_words(self, text: str) -> Structure | None:
        """Parse already-normalized text; None if it is not a GenEval-template prompt."""
        last = text.rsplit(" ", 1)[-1]
        if last not in self._last_words:
            return None
        m = self._single.fullmatch(text)
        if m:
            return make_structure([Obj(m["o1"], 1, m["c1"])])
        m = self._pair.fullmatch(text)
        if m:
            return make_structure([Obj(m["o1"], 1, m["c1"]), Obj(m["o2"], 1, m["c2"])])
        m = self._position.fullmatch(text)
        if m:
            a, b = Obj(m["o1"], 1, m["c1"]), Obj(m["o2"], 1, m["c2"])
            return make_structure([a, b], (a, m["rel"], b))
        m = self._counting.fullmatch(text)
        if m:
            n = m["n"]
            count = int(n) if n.isdigit() else self._numbers[n]
            if count < 1:
                return None
            return make_structure([Obj(self._plural_of[m["p"]], count, m["c1"])])
        return None

    def parse(self, text: str) -> Structure | None:
        """Parse raw prompt text (normalized first)."""
        return self.parse_words(normalized_key(text))

    def structure_of(self, text: str, metadata: Mapping[str, Any] | None = None) -> Structure | None:
        """The metadata's structure when it has GenEval clauses, else the parsed text."""
        if metadata and isinstance(metadata.get("include"), list):
            return structure_from_metadata(metadata)
        return self.parse(text)


def family_of(structure: Structure | None, tag: str | None = None) -> str | None:
    """The template family: the GenEval tag when given and valid, else derived from the structure."""
    if tag in TAGS:
        return tag
    return structure.family if structure is not None else None
