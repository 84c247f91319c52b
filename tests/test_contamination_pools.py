"""Pool readers (txt, jsonl, csv, parquet, COCO json, prompt sets, templates) and composition specs."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import pandas as pd
import pytest

from rdmeval.contamination.pool_spec import PoolSource, PoolSpecError, load_pool_spec, parse_overrides
from rdmeval.contamination.pools import coco_captions, iter_source
from rdmeval._assets import asset_dir
from rdmeval.errors import RdmevalError

REPO = Path(__file__).resolve().parents[1]


def rows(src: PoolSource, chunk_size: int = 2) -> list[tuple[int, str, str]]:
    out = []
    for c in iter_source(src, chunk_size):
        assert len(c) <= chunk_size
        out += [(c.start + i, c.ids[i], c.texts[i]) for i in range(len(c))]
    return out


def test_txt_skips_blank_lines_and_keeps_line_numbers(tmp_path):
    f = tmp_path / "p.txt"
    f.write_text("a dog\n\nA cat.\r\n  \nlast", encoding="utf-8")
    assert rows(PoolSource("t", "txt", path=f)) == [(0, "1", "a dog"), (1, "3", "A cat."), (2, "5", "last")]


def test_jsonl_text_and_id_fields(tmp_path):
    f = tmp_path / "p.jsonl"
    f.write_text('{"caption": "a dog", "image_id": 7}\n\n{"caption": "a cat", "image_id": 9}\n', encoding="utf-8")
    assert rows(PoolSource("j", "jsonl", path=f)) == [(0, "7", "a dog"), (1, "9", "a cat")]
    f.write_text('{"body": "a dog"}\n', encoding="utf-8")
    assert rows(PoolSource("j", "jsonl", path=f, field="body")) == [(0, "1", "a dog")]
    with pytest.raises(PoolSpecError, match=r"p.jsonl:1 .*no text field"):
        rows(PoolSource("j", "jsonl", path=f))
    f.write_text('{"prompt": "a"}\nnot json\n', encoding="utf-8")
    with pytest.raises(PoolSpecError, match=r"p.jsonl:2 .*invalid JSON"):
        rows(PoolSource("j", "jsonl", path=f))


def test_csv_and_parquet(tmp_path):
    df = pd.DataFrame({"id": ["x1", "x2", "x3"], "text": ["a dog", "a, quoted \"cat\"", "a bus"]})
    df.to_csv(tmp_path / "p.csv", index=False)
    df.to_parquet(tmp_path / "p.parquet", index=False)
    want = [(0, "x1", "a dog"), (1, "x2", 'a, quoted "cat"'), (2, "x3", "a bus")]
    assert rows(PoolSource("c", "csv", path=tmp_path / "p.csv")) == want
    assert rows(PoolSource("q", "parquet", path=tmp_path / "p.parquet"), chunk_size=1) == want
    with pytest.raises(PoolSpecError, match="no text field 'nope'"):
        rows(PoolSource("q", "parquet", path=tmp_path / "p.parquet", field="nope"))


def _coco(path: Path) -> None:
    # annotation order deliberately not sorted by image id; image 5 has two captions
    anns = [
        {"image_id": 9, "id": 1, "caption": "nine first "},
        {"image_id": 5, "id": 2, "caption": "five first"},
        {"image_id": 9, "id": 3, "caption": "nine second"},
        {"image_id": 5, "id": 4, "caption": "five second"},
        {"image_id": 1, "id": 5, "caption": "one"},
    ]
    path.write_text(json.dumps({"images": [], "annotations": anns}), encoding="utf-8")


def test_coco_first_caption_per_image_sorted_by_image_id(tmp_path):
    _coco(tmp_path / "c.json")
    assert coco_captions(tmp_path / "c.json", "first") == [("1", "one"), ("5", "five first"), ("9", "nine first")]
    assert [t for _, t in coco_captions(tmp_path / "c.json", "all")] == [
        "one", "five first", "five second", "nine first", "nine second"]


def test_coco_errors_name_the_file(tmp_path):
    (tmp_path / "bad.json").write_text('{"images": []}', encoding="utf-8")
    with pytest.raises(PoolSpecError, match="not a COCO caption file"):
        coco_captions(tmp_path / "bad.json")
    with pytest.raises(PoolSpecError, match="no such file"):
        rows(PoolSource("c", "coco", path=tmp_path / "missing.json"))


def test_expected_rows_mismatch_is_an_error(tmp_path):
    _coco(tmp_path / "c.json")
    with pytest.raises(PoolSpecError, match=r"read 3 rows but the spec expects expected_rows = 82783"):
        rows(PoolSource("coco", "coco", path=tmp_path / "c.json", expected_rows=82783))


def test_prompt_set_and_template_sources(shared_data):
    ge = rows(PoolSource("g", "prompt_set", prompt_set="geneval", path=shared_data / "geneval"), chunk_size=100)
    assert len(ge) == 553 and ge[0][2] == "a photo of a bench"
    tpl = rows(PoolSource("t", "geneval_templates", path=shared_data / "geneval", seed=3, n_per_task=10), chunk_size=100)
    assert 80 < len(tpl) <= 80 + 50 and all(t.startswith("a photo of ") for _, _, t in tpl)


SPEC = """
name = "toy"
total_draws = 1000

[[source]]
name = "captions"
path = "caps.txt"
weight = 2

[[source]]
name = "block"
kind = "txt"
path = "${TOY_BLOCK}"
rows = 10
"""


def test_spec_paths_env_vars_and_weights(tmp_path, monkeypatch):
    (tmp_path / "spec.toml").write_text(SPEC, encoding="utf-8")
    monkeypatch.setenv("TOY_BLOCK", str(tmp_path / "block.txt"))
    spec = load_pool_spec(tmp_path / "spec.toml")
    caps, block = spec.sources
    assert caps.kind == "txt" and caps.path == tmp_path.resolve() / "caps.txt"  # kind from the extension
    assert block.path == tmp_path / "block.txt"
    assert caps.row_weight(5) == 2
    assert block.row_weight(4) == Fraction(10, 4)  # rows spread over the rows read
    assert spec.total_draws == 1000


def test_spec_unset_env_var_says_how_to_fix(tmp_path, monkeypatch):
    (tmp_path / "spec.toml").write_text(SPEC, encoding="utf-8")
    monkeypatch.delenv("TOY_BLOCK", raising=False)
    with pytest.raises(PoolSpecError, match=r"\$\{TOY_BLOCK\}, which is not set.*--set"):
        load_pool_spec(tmp_path / "spec.toml")
    spec = load_pool_spec(tmp_path / "spec.toml", [f"block.path={tmp_path / 'b.txt'}", "captions.weight=3"])
    assert spec.sources[1].path == tmp_path / "b.txt"
    assert spec.sources[0].weight == 3
    assert spec.overrides == {"block.path": str(tmp_path / "b.txt"), "captions.weight": "3"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('[[source]]\nname = "a"\npath = "x.txt"\nweight = 1\nrows = 5\n', "either 'weight'"),
        ('[[source]]\nname = "a"\npath = "x.txt"\nwieght = 1\n', r"source\[0\] \(a\): unknown key 'wieght' \(did you mean 'weight'\?\)"),
        ('[[source]]\npath = "x.txt"\n', "needs a 'name'"),
        ('[[source]]\nname = "a"\npath = "x.unknown"\n', "cannot tell the source kind"),
        ('[[source]]\nname = "a"\nkind = "txt"\n', "needs a path"),
        ('[[source]]\nname = "a"\nkind = "nope"\npath = "x"\n', "kind 'nope' is not one of"),
        ('[[source]]\nname = "a"\npath = "x.txt"\n[[source]]\nname = "a"\npath = "y.txt"\n', "two sources are named 'a'"),
        ('name = "x"\n', "no sources"),
        ('[[source]]\nname = "a"\npath = "x.json"\ncaptions = "second"\n', 'captions must be "first" or "all"'),
        ("[[source]\n", "invalid TOML"),
    ],
)
def test_spec_errors(tmp_path, body, message):
    f = tmp_path / "bad.toml"
    f.write_text(body, encoding="utf-8")
    with pytest.raises(PoolSpecError, match=message):
        load_pool_spec(f)


def test_override_errors(tmp_path):
    with pytest.raises(PoolSpecError, match="expected SOURCE.KEY=VALUE"):
        parse_overrides(["coco=/x"])
    with pytest.raises(PoolSpecError, match="unknown source key 'pth'"):
        parse_overrides(["coco.pth=/x"])
    (tmp_path / "s.toml").write_text('[[source]]\nname = "a"\npath = "x.txt"\n', encoding="utf-8")
    with pytest.raises(PoolSpecError, match=r"no source named \['coco'\]"):
        load_pool_spec(tmp_path / "s.toml", ["coco.path=/x"])


def test_override_path_is_relative_to_the_working_directory(tmp_path, monkeypatch):
    """`--set coco-train2014.path=captions_train2014.json` (README) names a file of the working directory,
    not one beside the packaged spec; paths written inside a spec still resolve against its folder."""
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "s.toml").write_text('[[source]]\nname = "a"\npath = "x.txt"\n[[source]]\nname = "b"\npath = "y.txt"\n',
                                               encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    spec = load_pool_spec(tmp_path / "specs" / "s.toml", ["a.path=mine.txt"])
    assert spec.sources[0].path == tmp_path.resolve() / "mine.txt"
    assert spec.sources[1].path == tmp_path.resolve() / "specs" / "y.txt"
    coco = load_pool_spec("rdm-s180-generator", ["coco-train2014.path=captions_train2014.json"]).sources[0]
    assert coco.path == tmp_path.resolve() / "captions_train2014.json"


def test_released_specs_parse(tmp_path):
    coco = tmp_path / "captions_train2014.json"
    for name in ("rdm-s180-generator", "rdm-s180-reference"):
        spec = load_pool_spec(REPO / "benchmarks" / "pools" / f"{name}.toml", [f"coco-train2014.path={coco}"])
        by_name = {s.name: s for s in spec.sources}
        assert by_name["coco-train2014"].kind == "coco" and by_name["coco-train2014"].path == coco
        assert {s.expected_rows for s in spec.sources} == {82783, 553}


def test_packaged_pool_specs_load_by_name_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing of the repository around: names resolve against the package
    monkeypatch.setenv("RDMEVAL_COCO_TRAIN2014_CAPTIONS", str(tmp_path / "captions_train2014.json"))
    spec = load_pool_spec("demo")
    assert spec.name == "demo-pool"
    assert load_pool_spec("rdm-s180-generator").name == load_pool_spec(asset_dir("benchmarks") / "pools" / "rdm-s180-generator.toml").name
    with pytest.raises(RdmevalError, match="Did you mean 'rdm-s180-generator'"):
        load_pool_spec("rdm-s180-generater")
