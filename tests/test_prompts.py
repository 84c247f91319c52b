"""Prompt sets: the real files, user files, malformed input, pinned downloads and COCO-val."""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import threading
from pathlib import Path

import pytest

from rdmeval.errors import ChecksumError, PromptFileError, RdmevalError
from rdmeval.prompts import load_prompt_set
from rdmeval.prompts.coco import coco_val_prompts
from rdmeval.prompts.registry import get_spec
from rdmeval.prompts.sources import RemoteFile, fetch


def test_real_geneval_file_parses_to_553_prompts_with_official_tag_counts(shared_data):
    ps = load_prompt_set("geneval", path=shared_data / "geneval")
    assert len(ps) == 553
    assert ps.tag_counts() == {
        "single_object": 80, "two_object": 99, "counting": 80, "colors": 94, "position": 100, "color_attr": 100,
    }
    assert ps.sha256 == "5c48e0813e812e3c373fa5c8ed07a8f0a483be30272b4427b0559c8048e67c13"
    # metadata is the official dict, key order kept (the scorer json.dumps it as the prompt identity)
    first = ps[0].metadata
    assert list(first) == ["tag", "include", "prompt"] and ps[0].text == "a photo of a bench"
    counting = [p for p in ps if p.tag == "counting"]
    assert all(list(p.metadata) == ["tag", "include", "exclude", "prompt"] for p in counting)
    assert [p.index for p in ps] == list(range(553))


def test_real_pickapic_file_parses_to_499_unique_prompts(shared_data):
    ps = load_prompt_set("pickapic-test", path=shared_data / "rdm-assets")
    assert len(ps) == 499 and len(set(ps.texts)) == 499
    assert [p.id for p in ps] == [str(i) for i in range(499)]


def test_local_copy_with_wrong_hash_names_file_and_both_hashes(tmp_path, shared_data):
    bad = tmp_path / "evaluation_metadata.jsonl"
    lines = (shared_data / "geneval" / "evaluation_metadata.jsonl").read_text().splitlines()
    bad.write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(ChecksumError) as exc:
        load_prompt_set("geneval", path=bad)
    msg = str(exc.value)
    actual = hashlib.sha256(bad.read_bytes()).hexdigest()
    assert str(bad) in msg and "5c48e0813e812e3c" in msg and actual in msg


@pytest.mark.parametrize(
    "content, line, words",
    [
        ('{"prompt": "a"}\n{"prompt": "b"\n', 2, "invalid JSON"),
        ('{"prompt": "a"}\n{"caption_x": "b"}\n', 2, "missing field 'prompt'"),
        ('{"prompt": "a", "id": 1}\n{"prompt": "b", "id": 2}\n{"prompt": "c", "id": 1}\n', 3, "duplicate index"),
        (
            '{"tag": "counting", "include": [{"class": "cat", "count": 2}], "prompt": "two cats"}\n'
            '{"tag": "shapes", "include": [{"class": "cat", "count": 1}], "prompt": "a cat"}\n',
            2,
            "unknown tag 'shapes'",
        ),
        ('{"tag": "colors", "include": [{"class": "cat", "count": 1, "color": "teal"}], "prompt": "a teal cat"}\n', 1, "color"),
        ('{"tag": "single_object", "include": [{"class": "cat", "count": 0}], "prompt": "a cat"}\n', 1, "count must be"),
    ],
)
def test_malformed_files_name_the_line(tmp_path, content, line, words):
    f = tmp_path / "bad.jsonl"
    f.write_text(content)
    with pytest.raises(PromptFileError) as exc:
        load_prompt_set(f)
    assert f"{f}:{line}:" in str(exc.value) and words in str(exc.value)


def test_user_txt_and_csv_files(tmp_path):
    t = tmp_path / "p.txt"
    t.write_text("a red cube\n\n  a blue sphere  \n")
    ps = load_prompt_set(t)
    assert ps.texts == ["a red cube", "a blue sphere"] and ps.format == "txt"
    c = tmp_path / "p.csv"
    c.write_text('id,caption\n7,"a dog, running"\n9,a cat\n')
    ps = load_prompt_set(c)
    assert ps.texts == ["a dog, running", "a cat"] and [p.id for p in ps] == ["7", "9"]
    bad = tmp_path / "q.csv"
    bad.write_text("foo,bar\n1,2\n")
    with pytest.raises(PromptFileError, match="no prompt column"):
        load_prompt_set(bad)


def test_unknown_set_name_suggests_the_close_one():
    with pytest.raises(RdmevalError, match="Did you mean 'geneval'"):
        load_prompt_set("genevl")


def test_offline_and_not_cached_says_how_to_fix():
    with pytest.raises(RdmevalError, match="--prompts-file"):
        load_prompt_set("pickapic-test")


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def http_root(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_download_verifies_and_caches(http_root, monkeypatch, tmp_path):
    root, base = http_root
    (root / "prompts.jsonl").write_text('{"prompt": "x"}\n')
    good = hashlib.sha256(b'{"prompt": "x"}\n').hexdigest()
    monkeypatch.delenv("RDMEVAL_OFFLINE")
    monkeypatch.delenv("HF_HUB_OFFLINE")
    path, digest = fetch(RemoteFile("t", f"{base}/prompts.jsonl", "prompts.jsonl", good))
    assert digest == good and path.read_bytes() == b'{"prompt": "x"}\n'
    (root / "prompts.jsonl").write_text("changed\n")  # a cached, verified copy is reused
    assert fetch(RemoteFile("t", f"{base}/prompts.jsonl", "prompts.jsonl", good))[0] == path
    with pytest.raises(ChecksumError, match="sha256 mismatch"):
        fetch(RemoteFile("u", f"{base}/prompts.jsonl", "other.jsonl", good))
    assert not (path.parent / "other.jsonl").exists()  # nothing unverified is left in the cache


def _coco_json(path: Path) -> Path:
    anns = []
    for image_id in (30, 10, 20, 40, 50):
        for k in range(3):
            anns.append({"image_id": image_id, "id": len(anns), "caption": f"  caption {k} of image {image_id}\n"})
    anns.append({"image_id": 60, "id": 99, "caption": "only caption of 60"})
    path.write_text(json.dumps({"images": [], "annotations": anns}))
    return path


def test_coco_val_definition_first_caption_sorted_seeded(tmp_path):
    f = _coco_json(tmp_path / "captions_val2014.json")
    all6 = coco_val_prompts(f, n=6, seed=0)
    assert [p.id for p in all6] == ["10", "20", "30", "40", "50", "60"]
    assert all6[0].text == "caption 0 of image 10"
    a = coco_val_prompts(f, n=3, seed=0)
    assert a == coco_val_prompts(f, n=3, seed=0)
    assert [int(p.id) for p in a] == sorted(int(p.id) for p in a)
    import numpy as np

    expected = np.sort(np.random.default_rng(0).choice(6, size=3, replace=False))
    assert [p.id for p in a] == [all6[i].id for i in expected]
    ps = load_prompt_set("coco-val", path=f, n=3, seed=0)
    assert "first caption per image" in ps.definition and "n=3" in ps.definition
    assert ps.params["n"] == 3 and ps.version == get_spec("coco-val").version
    with pytest.raises(PromptFileError, match="--n 7"):
        load_prompt_set("coco-val", path=f, n=7)


def test_prompts_list_says_which_sets_are_on_this_machine(shared_data, monkeypatch, capsys):
    from rdmeval.cli.main import main

    assert main(["prompts", "list"]) == 0  # an empty cache (conftest) and no RDMEVAL_PROMPTS_PATH
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line.split()[2] for line in lines if line.startswith(("geneval ", "demo-geneval "))}
    assert rows == {"geneval": "download", "demo-geneval": "shipped"}
    table = lines[:-1]  # every row's version starts in the same column, also after the longest name
    assert len({line.index(line.split()[1], len(line.split()[0])) for line in table}) == 1, table
    folder = next(shared_data.rglob("evaluation_metadata.jsonl")).parent  # the folder holding the real file
    monkeypatch.setenv("RDMEVAL_PROMPTS_PATH", str(folder))
    assert main(["prompts", "list"]) == 0
    rows = {line.split()[0]: line.split()[2] for line in capsys.readouterr().out.splitlines() if line.startswith("geneval ")}
    assert rows == {"geneval": "cached"}
