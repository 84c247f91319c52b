"""Prompt files with a UTF-8 BOM, and GenEval records naming classes the detector cannot find."""

from __future__ import annotations

import hashlib
import json

import pytest

from rdmeval.contamination.pool_spec import PoolSource
from rdmeval.contamination.pools import coco_captions, iter_source
from rdmeval.errors import PromptFileError
from rdmeval.geneval_classes import GENEVAL_OBJECT_NAMES
from rdmeval.prompts import load_prompt_set

BOM = "\ufeff"
# sha256 of GenEval's evaluation/object_names.txt (also pinned in test_geneval_detector.py)
OBJECT_NAMES_SHA256 = "608f6a0e5c8ca1c7a92b818430141fe268c85b7930b50f4160f1d65893b5bacd"

FILES = {
    "p.txt": "a red cube\na blue sphere\n",
    "p.jsonl": '{"prompt": "a red cube"}\n{"prompt": "a blue sphere"}\n',
    "p.csv": "prompt\na red cube\na blue sphere\n",
    "g.jsonl": (
        '{"tag": "single_object", "include": [{"class": "bench", "count": 1}], "prompt": "a red cube"}\n'
        '{"tag": "single_object", "include": [{"class": "cat", "count": 1}], "prompt": "a blue sphere"}\n'
    ),
}


@pytest.mark.parametrize("name", sorted(FILES))
def test_bom_is_dropped_from_every_prompt_file_format(tmp_path, name):
    plain, marked = tmp_path / "plain" / name, tmp_path / "bom" / name
    for f, text in ((plain, FILES[name]), (marked, BOM + FILES[name])):
        f.parent.mkdir()
        f.write_bytes(text.encode("utf-8"))
    a, b = load_prompt_set(plain), load_prompt_set(marked)
    assert b.texts == a.texts == ["a red cube", "a blue sphere"]
    assert [p.metadata for p in b] == [p.metadata for p in a] and b.format == a.format
    # the file's identity is its bytes: a BOM makes it another file
    assert b.sha256 == hashlib.sha256(marked.read_bytes()).hexdigest() != a.sha256


@pytest.mark.parametrize("kind, text", [
    ("txt", "a dog\na cat\n"),
    ("jsonl", '{"caption": "a dog"}\n{"caption": "a cat"}\n'),
    ("csv", "caption\na dog\na cat\n"),
])
def test_bom_is_dropped_from_pool_sources(tmp_path, kind, text):
    f = tmp_path / f"pool.{kind}"
    f.write_bytes((BOM + text).encode("utf-8"))
    texts = [t for c in iter_source(PoolSource("s", kind, path=f)) for t in c.texts]
    assert texts == ["a dog", "a cat"]


def test_bom_is_dropped_from_coco_caption_files(tmp_path):
    f = tmp_path / "captions.json"
    doc = {"annotations": [{"image_id": 2, "id": 1, "caption": "a dog"}, {"image_id": 1, "id": 2, "caption": "a cat"}]}
    f.write_bytes((BOM + json.dumps(doc)).encode("utf-8"))
    assert coco_captions(f, "first") == [("1", "a cat"), ("2", "a dog")]
    assert coco_captions(f, "all") == [("1:2", "a cat"), ("2:1", "a dog")]


def test_plain_class_list_is_genevals_object_names_file():
    # independent reference: the sha256 of the official file, one name per line
    assert len(GENEVAL_OBJECT_NAMES) == len(set(GENEVAL_OBJECT_NAMES)) == 80
    assert hashlib.sha256(("\n".join(GENEVAL_OBJECT_NAMES) + "\n").encode()).hexdigest() == OBJECT_NAMES_SHA256


@pytest.mark.parametrize("where, record, words", [
    ("include[1]", {"tag": "two_object", "include": [{"class": "cat", "count": 1}, {"class": "mouse", "count": 1}],
                    "prompt": "a cat and a mouse"}, "'mouse' is not one of GenEval's 80 detector classes (did you mean 'computer mouse'?)"),
    ("include[0]", {"tag": "single_object", "include": [{"class": "unicorn", "count": 1}], "prompt": "a unicorn"},
     "'unicorn' is not one of GenEval's 80"),
    ("exclude[0]", {"tag": "counting", "include": [{"class": "cat", "count": 2}], "exclude": [{"class": "tvremote", "count": 3}],
                    "prompt": "two cats"}, "did you mean 'tv remote'?"),
])
def test_unknown_geneval_class_is_refused_naming_file_and_line(tmp_path, where, record, words):
    good = {"tag": "single_object", "include": [{"class": "computer keyboard", "count": 1}], "prompt": "a keyboard"}
    f = tmp_path / "meta.jsonl"
    f.write_text(json.dumps(good) + "\n" + json.dumps(record) + "\n")
    with pytest.raises(PromptFileError) as exc:
        load_prompt_set(f)
    assert str(exc.value).startswith(f"{f}:2: {where}.class ") and words in str(exc.value)


def test_every_official_geneval_prompt_names_known_classes(shared_data):
    ps = load_prompt_set("geneval", path=shared_data / "geneval")
    classes = {c["class"] for p in ps for key in ("include", "exclude") for c in p.metadata.get(key, [])}
    assert classes <= set(GENEVAL_OBJECT_NAMES) and len(ps) == 553
