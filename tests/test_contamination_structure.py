"""GenEval prompt structure: parsing, order-insensitive identity, families, and the template generator."""

from __future__ import annotations

import pytest

from rdmeval.contamination.structure import (
    Obj,
    StructureParser,
    make_structure,
    structure_from_metadata,
    vocabulary_from_prompts,
)
from rdmeval.contamination.templates import geneval_template_records
from rdmeval.prompts import load_prompt_set

# A hand-picked vocabulary (a subset of GenEval's names, with multi-word and overlapping ones).
CLASSES = ["dog", "cat", "hot dog", "teddy bear", "bus", "car", "orange", "tv", "tv remote", "wine glass", "person", "skis"]


@pytest.fixture(scope="module")
def parser():
    return StructureParser(CLASSES)


@pytest.fixture(scope="module")
def geneval(shared_data):
    return load_prompt_set("geneval", path=shared_data / "geneval")


def same(parser, a, b):
    sa, sb = parser.parse(a), parser.parse(b)
    assert sa is not None and sb is not None, (a, b, sa, sb)
    return sa == sb


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("a photo of a dog and a cat", "a photo of a cat and a dog"),  # order swap
        ("a photo of a red car and a blue bus", "a photo of a blue bus and a red car"),
        ("a photo of a dog left of a cat", "a photo of a cat right of a dog"),  # inverse relation
        ("a photo of a tv above a teddy bear", "a photo of a teddy bear below a tv"),
        ("A photo of a dog.", "a photo of a dog"),  # case / punctuation
        ("a photo of an orange", "a photo of a orange"),  # either article
        ("a photo of two dogs", "a photo of 2 dogs"),  # number word or digit
        ("a photo of a dog and a cat", "a dog and a cat"),  # bare, no frame
        ("a picture of a dog and a cat", "a photo of a cat and a dog"),  # other frame
        ("a photo of a dog left of a cat", "a photo of a dog to the left of a cat"),
    ],
)
def test_identical_structures(parser, a, b):
    assert same(parser, a, b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("a photo of a dog and a cat", "a photo of a dog and a bus"),  # other object
        ("a photo of a red car and a blue bus", "a photo of a blue car and a red bus"),  # colours swapped
        ("a photo of a dog left of a cat", "a photo of a dog right of a cat"),  # other relation
        ("a photo of a dog left of a cat", "a photo of a cat left of a dog"),  # swapped without inversion
        ("a photo of two dogs", "a photo of three dogs"),  # other count
        ("a photo of a dog", "a photo of a hot dog"),  # class names that overlap
        ("a photo of a tv", "a photo of a tv remote"),
        ("a photo of an orange", "a photo of an orange car"),  # colour word that is also a class
        ("a photo of a dog and a cat", "a photo of a dog above a cat"),  # two_object vs position
    ],
)
def test_near_misses_are_different(parser, a, b):
    assert not same(parser, a, b)


@pytest.mark.parametrize(
    ("text", "family"),
    [
        ("a photo of a dog", "single_object"),
        ("a photo of a dog and a cat", "two_object"),
        ("a photo of four skises", "counting"),  # GenEval's naive plural
        ("a photo of three skis", "counting"),
        ("a photo of a purple wine glass", "colors"),
        ("a photo of an orange orange", "colors"),
        ("a photo of a bus below a person", "position"),
        ("a photo of a red car and a blue bus", "color_attr"),
        ("a photo of a red car and a bus", "other"),  # parseable, not a GenEval template
        ("a photo of a red car and a red bus", "other"),  # same colour twice: not color_attr
    ],
)
def test_families(parser, text, family):
    s = parser.parse(text)
    assert s is not None
    assert s.family == family


@pytest.mark.parametrize(
    "text",
    [
        "A man riding a wave on top of a surfboard.",
        "a photo of a dog sitting on a couch",
        "a photo of a unicorn",  # not a class
        "a photo of a dog and",
        "two dogs and a cat playing",
        "a photo of zero dogs",
        "",
    ],
)
def test_not_a_template(parser, text):
    assert parser.parse(text) is None


def test_make_structure_canonicalises_relation_direction():
    dog, cat = Obj("dog"), Obj("cat")
    a = make_structure([dog, cat], (dog, "left of", cat))
    b = make_structure([cat, dog], (cat, "right of", dog))
    assert a == b and hash(a) == hash(b)
    assert a.relation == (cat, "right of", dog)  # "cat" sorts first


def test_empty_vocabulary_is_a_clear_error():
    from rdmeval.errors import RdmevalError

    with pytest.raises(RdmevalError, match="object names"):
        StructureParser([])


def test_text_parser_agrees_with_metadata_on_all_553_geneval_prompts(geneval):
    classes = vocabulary_from_prompts(geneval.prompts)
    assert len(classes) == 80
    parser = StructureParser(classes)
    for p in geneval.prompts:
        from_meta = structure_from_metadata(p.metadata)
        assert parser.parse(p.text) == from_meta, p.text
        assert from_meta.family == p.tag, p.text


def _independent_canonical(text: str) -> str:
    """Order-insensitive form computed from the text alone (no parser): sort the two halves of
    "X and Y"; write "X rel Y" with the halves sorted and the relation inverted when swapped."""
    body = text[len("a photo of "):]
    if " and " in body:
        return " & ".join(sorted(body.split(" and ")))
    inverse = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}
    for rel in inverse:
        if f" {rel} " in body:
            a, b = body.split(f" {rel} ")
            return f"{a} | {rel} | {b}" if a <= b else f"{b} | {inverse[rel]} | {a}"
    return body


def test_geneval_structure_identity_matches_an_independent_canonical_form(geneval):
    groups: dict[object, set[str]] = {}
    for p in geneval.prompts:
        groups.setdefault(structure_from_metadata(p.metadata), set()).add(_independent_canonical(p.text))
    # one canonical text per structure, and as many structures as canonical texts
    assert all(len(v) == 1 for v in groups.values())
    assert len(groups) == len({_independent_canonical(p.text) for p in geneval.prompts})


def test_template_generator_follows_the_geneval_rules(geneval):
    classes = vocabulary_from_prompts(geneval.prompts)
    recs = geneval_template_records(classes, seed=7, n_per_task=100)
    parser = StructureParser(classes)
    tags = [r["tag"] for r in recs]
    assert tags.count("single_object") == 80
    for tag in ("two_object", "counting", "colors", "position", "color_attr"):
        assert 50 <= tags.count(tag) <= 100, tag
    assert len({r["prompt"] for r in recs}) == len(recs)
    for r in recs:
        s = structure_from_metadata(r)
        assert s.family == r["tag"], r
        assert parser.parse(r["prompt"]) == s, r["prompt"]  # the text says what the metadata says
        if r["tag"] in ("colors", "color_attr"):
            assert all(c["class"] != "person" for c in r["include"])
        if r["tag"] == "counting":
            n = r["include"][0]["count"]
            assert 2 <= n <= 4 and r["exclude"] == [{"class": r["include"][0]["class"], "count": n + 1}]
    # articles: "an" before a vowel-initial word
    assert "a photo of an orange" in {r["prompt"] for r in recs}
    assert all(" a a" not in r["prompt"] and " a e" not in r["prompt"] and " a o" not in r["prompt"] for r in recs)
    # seeds differ, the generator is deterministic
    assert geneval_template_records(classes, seed=7) == recs
    assert geneval_template_records(classes, seed=8) != recs
