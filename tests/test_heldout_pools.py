"""geneval-heldout against the pools' caption blocks: excluded when readable, reported when not."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rdmeval.cli.main import main
from rdmeval.contamination.heldout import HELDOUT_SEED, exclusion_path, make_heldout, structures_of_records, write_heldout_set
from rdmeval.contamination.heldout_pools import check_against_pools, heldout_exclusion, load_pools
from rdmeval.contamination.structure import structure_from_metadata
from rdmeval.prompts import load_prompt_set

REPO = Path(__file__).resolve().parents[1]
PINNED = REPO / "prompts" / "geneval_heldout_v1.jsonl"
ENV = "RDMEVAL_COCO_TRAIN2014_CAPTIONS"
#: A v1 prompt, and a COCO-style caption of the same structure: other order, the relation turned
#: round ("A left of B" is "B right of A"), capitals, "to the", a full stop.
V1_PROMPT = "a photo of a laptop right of a bottle"
CAPTION = "A bottle to the left of a laptop."


@pytest.fixture(autouse=True)
def _no_coco(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)


@pytest.fixture
def official(shared_data) -> Path:
    return shared_data / "geneval" / "evaluation_metadata.jsonl"


def coco_file(path: Path, captions: dict[int, list[str]]) -> Path:
    """A COCO caption annotation file: ``{image_id: [captions in annotation order]}``."""
    anns = [{"image_id": i, "id": 100 * i + k, "caption": c} for i, cs in captions.items() for k, c in enumerate(cs)]
    path.write_text(json.dumps({"images": [{"id": i} for i in captions], "annotations": anns}), encoding="utf-8")
    return path


def synthetic_pool(folder: Path, captions: dict[int, list[str]]) -> Path:
    """A pool shaped like the released ones: COCO first captions + the official GenEval prompts."""
    coco_file(folder / "captions.json", captions)
    spec = folder / "pool.toml"
    spec.write_text('name = "synthetic"\n\n[[source]]\nname = "coco"\nkind = "coco"\npath = "captions.json"\n'
                    'captions = "first"\n\n[[source]]\nname = "geneval"\nkind = "prompt_set"\nprompt_set = "geneval"\n'
                    "weight = 32\n", encoding="utf-8")
    return spec


CAPTIONS = {
    7: ["A man riding a wave on top of a surfboard.", CAPTION],  # not a first caption: not in the pool
    3: [CAPTION],
    5: ["Two dogs playing with a frisbee in the park."],  # a sentence, not a template form: no structure
}


def test_a_caption_with_a_heldout_structure_is_excluded(official, tmp_path):
    pinned = [json.loads(line) for line in PINNED.read_text(encoding="utf-8").splitlines()]
    hit = next(r for r in pinned if r["prompt"] == V1_PROMPT)
    official_ps = load_prompt_set("geneval", path=official)
    pools = load_pools([synthetic_pool(tmp_path, CAPTIONS)], local={"geneval": official})
    exclusion = heldout_exclusion(official_ps, pools)
    assert exclusion.pools == structures_of_records(p.metadata for p in official_ps.prompts) | {structure_from_metadata(hit)}

    out = tmp_path / "heldout.jsonl"
    records = write_heldout_set(out, HELDOUT_SEED, exclusion)
    assert structure_from_metadata(hit) not in structures_of_records(records)
    assert len(records) == len(pinned) and V1_PROMPT not in {r["prompt"] for r in records}
    # The same draw as v1 with that one structure excluded as well (make_heldout's order, taken independently).
    expected = make_heldout(HELDOUT_SEED, structures_of_records(p.metadata for p in official_ps.prompts)
                            | {structure_from_metadata(hit)})
    assert records == expected
    assert [r for r in records if r["tag"] != "position"] == [r for r in pinned if r["tag"] != "position"]
    record = json.loads(exclusion_path(out).read_text(encoding="utf-8"))
    assert record["every_pool_part_checked"] is True and record["not_checked"] == []
    coco = record["pools"][0]["sources"][0]
    assert (coco["source"], coco["checked"], coco["rows"], coco["template_rows"], coco["file"]) == ("coco", True, 3, 1, "captions.json")


def test_the_check_runs_the_audit_structure_level_on_the_pinned_set(official, tmp_path, capsys):
    spec = synthetic_pool(tmp_path, CAPTIONS)
    collisions, parts = check_against_pools(load_prompt_set("geneval-heldout"),
                                            load_pools([spec], local={"geneval": official}))
    assert [(c.prompt, c.source, c.rows, c.example) for c in collisions] == [(V1_PROMPT, "synthetic/coco", 1, CAPTION)]
    assert [(p.source, p.checked, p.rows) for p in parts] == [("coco", True, 3), ("geneval", True, 553)]

    # The command: the pinned file is still what its recipe makes, but it is not held out from this pool.
    assert main(["prompts", "make-heldout", "--prompts-file", str(official), "--pool", str(spec)]) == 1
    printed = capsys.readouterr().out
    assert "byte-identical" in printed and f"FOUND [{collisions[0].prompt_index}] '{V1_PROMPT}'" in printed
    assert "1 prompt(s) are NOT held out" in printed


def test_the_released_pools_with_a_caption_file_given(official, tmp_path, capsys, monkeypatch):
    captions = coco_file(tmp_path / "captions_train2014.json", CAPTIONS)
    args = ["prompts", "make-heldout", "--prompts-file", str(official), "--set", "coco-train2014.expected_rows=0"]
    monkeypatch.setenv(ENV, str(captions))
    assert main(args) == 1
    printed = capsys.readouterr().out
    assert printed.count("FOUND") == 2  # both pools hold the caption block
    assert "rdm-s180-generator/coco-train2014: 1 row(s)" in printed and "rdm-s180-reference/coco-train2014: 1 row(s)" in printed
    assert "NOT checked" not in printed

    monkeypatch.setenv(ENV, str(tmp_path / "missing.json"))  # a file that is given but absent is an error
    assert main(args) == 2
    assert "missing.json" in capsys.readouterr().err


def test_parts_that_cannot_be_read_are_named(official, capsys):
    assert main(["prompts", "make-heldout", "--prompts-file", str(official)]) == 0
    printed = capsys.readouterr().out
    for pool in ("rdm-s180-generator", "rdm-s180-reference"):
        assert f"NOT checked  {pool}/coco-train2014 (coco): its file is not given: the path uses ${{{ENV}}}" in printed
    assert "checked      rdm-s180-generator/geneval-x32" in printed
    assert printed.rstrip().endswith("NOT checked: rdm-s180-generator/coco-train2014, rdm-s180-reference/coco-train2014")
    assert main(["prompts", "make-heldout", "--prompts-file", str(official), "--set", "cocco.path=x.json"]) == 2
    assert "no pool has a source named ['cocco']" in capsys.readouterr().err


def test_the_committed_record_of_v1_is_what_the_command_writes(official, tmp_path):
    out = tmp_path / "geneval_heldout_v1.jsonl"
    assert main(["prompts", "make-heldout", "--prompts-file", str(official), "--out", str(out)]) == 0
    assert out.read_bytes() == PINNED.read_bytes()
    assert exclusion_path(out).read_bytes() == exclusion_path(PINNED).read_bytes()
    record = json.loads(exclusion_path(PINNED).read_text(encoding="utf-8"))
    assert record["not_checked"] == ["rdm-s180-generator/coco-train2014", "rdm-s180-reference/coco-train2014"]
    assert "/" not in json.dumps(record).replace("rdm-s180-generator/", "").replace("rdm-s180-reference/", "")  # no paths


def test_flag_errors_come_before_the_official_set_is_read(tmp_path, capsys):
    """A wrong --pool, --set, --out or --seed is reported at once, not after (or hidden behind) reading or
    downloading the official GenEval file: here that file does not exist at all."""
    gone = str(tmp_path / "not-downloaded" / "evaluation_metadata.jsonl")
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    for extra, expected in ((["--pool", "nosuch"], "unknown pool spec 'nosuch'"),
                            (["--set", "cocco.path=x.json"], "no pool has a source named ['cocco']"),
                            (["--out", str(tmp_path)], "this is a folder; make-heldout writes a .jsonl file"),
                            (["--out", str(blocker / "h.jsonl")], f"{blocker} is a file, so no folder can be made"),
                            (["--seed", "2"], "give --out FILE to write it")):
        assert main(["prompts", "make-heldout", "--prompts-file", gone, *extra]) == 2
        err = capsys.readouterr().err
        assert expected in err and "evaluation_metadata" not in err, err
