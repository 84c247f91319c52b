"""The GenEval prompt generator (GenEval's rules) and the held-out set it makes (geneval-heldout v1)."""

from __future__ import annotations

import json
import tomllib
from collections import Counter
from pathlib import Path

import pytest

from rdmeval.contamination.heldout import (
    HELDOUT_COUNTS,
    HELDOUT_SEED,
    NOT_HELD_OUT,
    RELEASED_POOLS,
    make_heldout,
    pool_structures,
    released_pool_specs,
    structures_of_records,
    write_heldout,
)
from rdmeval.contamination.structure import StructureParser, structure_from_metadata
from rdmeval.errors import PromptFileError, RdmevalError
from rdmeval.geneval_classes import GENEVAL_OBJECT_NAMES
from rdmeval.prompts import get_spec, load_prompt_set
from rdmeval.prompts.geneval import EXPECTED_COUNTS
from rdmeval.prompts.geneval_generator import GenevalItem, candidate_params, candidates, plural

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def official_lines(shared_data) -> list[str]:
    text = (shared_data / "geneval" / "evaluation_metadata.jsonl").read_text(encoding="utf-8")
    assert text.endswith("\n")
    return text.splitlines()


def item_of(rec: dict) -> GenevalItem:
    """The generator's parameters of an official record, read off its include clauses (prompt order)."""
    inc, tag = rec["include"], rec["tag"]
    if tag == "position":  # include = [target B, subject A with position]; the prompt says "A rel B"
        return GenevalItem(tag, (inc[1]["class"], inc[0]["class"]), relation=inc[1]["position"][0])
    if tag == "counting":
        return GenevalItem(tag, (inc[0]["class"],), count=inc[0]["count"])
    return GenevalItem(tag, tuple(c["class"] for c in inc), tuple(c["color"] for c in inc if "color" in c))


def test_every_official_prompt_is_a_possible_output_with_identical_metadata(official_lines):
    records = [json.loads(line) for line in official_lines]
    allowed = {tag: set(candidates(tag)) for tag in {r["tag"] for r in records}}
    assert len(allowed) == 6
    for lineno, (line, rec) in enumerate(zip(official_lines, records), start=1):
        item = item_of(rec)
        assert item in allowed[rec["tag"]], (lineno, line)
        assert item.record() == rec, (lineno, line)  # parsed JSON
        assert list(item.record()) == list(rec)  # key order as in the file
        assert item.line() == line, (lineno, line)  # the exact text form of the file


def test_candidate_counts_follow_the_rules():
    # 80 objects, ordered pairs of distinct objects, counts 2..4, 79 colourable objects x 10 colours,
    # 4 relations, and ordered pairs of distinct colours for colour attribution.
    expected = {"single_object": 80, "two_object": 80 * 79, "counting": 80 * 3, "colors": 79 * 10,
                "position": 80 * 79 * 4, "color_attr": 79 * 78 * 10 * 9}
    assert {t: len(candidate_params(t)) for t in expected} == expected


@pytest.mark.parametrize(
    ("item", "prompt"),
    [
        (GenevalItem("colors", ("car",), ("orange",)), "a photo of an orange car"),  # article follows the colour
        (GenevalItem("single_object", ("orange",)), "a photo of an orange"),
        (GenevalItem("counting", ("skis",), count=2), "a photo of two skises"),  # naive: +es after s
        (GenevalItem("counting", ("sheep",), count=4), "a photo of four sheeps"),
        (GenevalItem("position", ("umbrella", "dog"), relation="above"), "a photo of an umbrella above a dog"),
    ],
)
def test_articles_and_plurals(item, prompt):
    assert item.record()["prompt"] == prompt


def test_plurals_agree_with_the_official_counting_prompts(official_lines):
    words = {2: "two", 3: "three", 4: "four"}
    for rec in map(json.loads, official_lines):
        if rec["tag"] == "counting":
            c = rec["include"][0]
            assert rec["prompt"] == f"a photo of {words[c['count']]} {plural(c['class'])}"


@pytest.mark.parametrize(
    ("kwargs", "why"),
    [
        (dict(tag="colors", classes=("person",), colors=("red",)), "no colour"),
        (dict(tag="two_object", classes=("dog", "dog")), "must differ"),
        (dict(tag="color_attr", classes=("dog", "cat"), colors=("red", "red")), "colours must differ"),
        (dict(tag="counting", classes=("dog",), count=5), "count must be"),
        (dict(tag="position", classes=("dog", "cat"), relation="behind"), "relation must be"),
        (dict(tag="single_object", classes=("mouse",)), "80 object names"),
        (dict(tag="shapes", classes=("dog",)), "tag must be"),
    ],
)
def test_items_outside_the_rules_are_refused(kwargs, why):
    with pytest.raises(RdmevalError, match=why):
        GenevalItem(**kwargs)


# --- geneval-heldout v1 ------------------------------------------------------------------------


def test_the_pinned_file_is_what_the_generator_makes_with_the_documented_seed(official_lines, shared_data, tmp_path):
    spec = get_spec("geneval-heldout")
    pinned = REPO / "prompts" / spec.local
    official = [json.loads(line) for line in official_lines]
    out = tmp_path / "heldout.jsonl"
    records = write_heldout(out, HELDOUT_SEED, official, local={"geneval": shared_data / "geneval"})
    assert out.read_bytes() == pinned.read_bytes()
    assert len(records) == spec.n_prompts


def test_no_heldout_structure_is_official_or_in_the_released_pools(official_lines, shared_data):
    heldout = load_prompt_set("geneval-heldout")
    official = structures_of_records(json.loads(line) for line in official_lines)
    pools = pool_structures(released_pool_specs(), {"geneval": shared_data / "geneval"})
    structures = [structure_from_metadata(p.metadata) for p in heldout.prompts]
    assert len(set(structures)) == len(structures)  # no structure twice within the set
    assert not set(structures) & official
    assert not set(structures) & pools
    # The text agrees with the metadata (the audit's parser reads the same structure off the prompt).
    parser = StructureParser(GENEVAL_OBJECT_NAMES)
    assert [parser.parse(p.text) for p in heldout.prompts] == structures


def test_released_pools_hold_geneval_only_as_the_official_set(official_lines, shared_data):
    # The default exclusion reads the released pools' prompt-set sources: they are the registered
    # "geneval" set, so their structures are exactly the official ones.
    for name in RELEASED_POOLS:
        raw = tomllib.loads((REPO / "benchmarks" / "pools" / name).read_text(encoding="utf-8"))
        prompt_sets = {s.get("prompt_set") for s in raw["source"] if s.get("kind") == "prompt_set"}
        assert prompt_sets == {"geneval"}, name
    official = structures_of_records(json.loads(line) for line in official_lines)
    assert pool_structures(released_pool_specs(), {"geneval": shared_data / "geneval"}) == official


def test_heldout_has_the_official_counts_except_single_object():
    heldout = load_prompt_set("geneval-heldout")
    counts = Counter(p.tag for p in heldout.prompts)
    assert NOT_HELD_OUT == ("single_object",)
    assert dict(counts) == {t: n for t, n in EXPECTED_COUNTS.items() if t != "single_object"}
    assert [p.tag for p in heldout.prompts] == sorted((p.tag for p in heldout.prompts), key=list(EXPECTED_COUNTS).index)


def test_single_object_cannot_be_held_out(official_lines):
    official = structures_of_records(json.loads(line) for line in official_lines)
    with pytest.raises(RdmevalError, match="cannot hold out"):
        make_heldout(HELDOUT_SEED, official, {"single_object": 1})
    every_single = {structure_from_metadata(i.record()) for i in candidates("single_object")}
    assert every_single <= official


def test_a_task_that_runs_out_of_structures_is_an_error():
    everything_but_two = {structure_from_metadata(i.record()) for i in list(candidates("counting"))[2:]}
    with pytest.raises(RdmevalError, match="counting: only 2 structures"):
        make_heldout(0, everything_but_two, {"counting": 3})


def test_a_changed_pinned_file_is_refused(tmp_path, monkeypatch):
    import sys

    reg = sys.modules["rdmeval.prompts.registry"]
    spec = get_spec("geneval-heldout")
    folder = tmp_path / "prompts"
    folder.mkdir()
    text = (REPO / "prompts" / spec.local).read_text(encoding="utf-8")
    (folder / spec.local).write_text(text.replace("a photo of", "a picture of", 1), encoding="utf-8")
    monkeypatch.setattr(reg, "asset_dir", lambda name: folder)
    with pytest.raises(PromptFileError, match="differs from the pinned"):
        load_prompt_set("geneval-heldout")


def test_heldout_gets_genevals_protocol():
    from rdmeval.generators.noise import NoiseSource
    from rdmeval.api.layout import WorkItem
    from rdmeval.protocol import PROTOCOLS, protocol_for

    p, g = protocol_for(load_prompt_set("geneval-heldout")), PROTOCOLS["geneval"]
    assert (p.n_per_prompt, p.ctx_len, p.seed_policy, p.batch_size) == (g.n_per_prompt, g.ctx_len, g.seed_policy, g.batch_size)
    assert (p.n_per_prompt, p.ctx_len) == (4, 48)
    noise = NoiseSource(p.seed_policy, (4, 2, 2), n_prompts=473, n_per_prompt=4)
    assert noise.seed_of(WorkItem(472, 3)) == 46_000_000 + 472 * 100 + 3  # indices over the held-out list


def test_make_heldout_command_checks_the_pinned_file(shared_data, capsys, tmp_path, monkeypatch):
    from rdmeval.cli.main import main

    monkeypatch.delenv("RDMEVAL_COCO_TRAIN2014_CAPTIONS", raising=False)  # the pools' COCO block: not checked here

    official = str(shared_data / "geneval" / "evaluation_metadata.jsonl")
    assert main(["prompts", "make-heldout", "--prompts-file", official]) == 0
    assert "byte-identical" in capsys.readouterr().out
    out = tmp_path / "s2.jsonl"
    assert main(["prompts", "make-heldout", "--seed", "2", "--out", str(out), "--prompts-file", official]) == 0
    assert out.read_bytes() != (REPO / "prompts" / "geneval_heldout_v1.jsonl").read_bytes()
    assert len(out.read_text(encoding="utf-8").splitlines()) == 473


def test_the_heldout_suite_runs_both_sets_under_genevals_protocol():
    from rdmeval.suites import load_suite

    paper = {b.prompts: b for b in load_suite("paper-table").benchmarks}["geneval"]
    suite = load_suite("geneval-heldout")
    assert [m.name for m in suite.models] == ["teacher", "student"]
    assert [b.prompts for b in suite.benchmarks] == ["geneval", "geneval-heldout"]
    for b in suite.benchmarks:
        assert (b.n_per_prompt, b.ctx_len, b.seed_policy, b.batch_size, b.scorers) == (
            paper.n_per_prompt, paper.ctx_len, paper.seed_policy, paper.batch_size, paper.scorers)


# --- the demo's tiny held-out GenEval ----------------------------------------------------------


def test_the_demo_heldout_set_is_the_first_prompt_of_each_task_of_v1():
    pinned = (REPO / "prompts" / "geneval_heldout_v1.jsonl").read_text(encoding="utf-8").splitlines()
    first = {}
    for line in pinned:
        first.setdefault(json.loads(line)["tag"], line)
    demo = (REPO / "prompts" / get_spec("demo-geneval-heldout").local).read_text(encoding="utf-8").splitlines()
    assert demo == list(first.values()) and len(demo) == 5  # lines copied unchanged, GenEval's task order
    assert [p.tag for p in load_prompt_set("demo-geneval-heldout").prompts] == list(HELDOUT_COUNTS)


def test_the_paper_table_smoke_also_runs_the_tiny_heldout(tmp_path):
    from rdmeval.reproduce import ReproduceOptions, smoke_also, suite_jobs
    from rdmeval.suites import load_suite

    paper = load_suite("paper-table")
    prompts, n_per_prompt, also = smoke_also(paper)
    assert [s.name for s in also] == ["geneval-heldout"]
    assert prompts == {"geneval": "demo-geneval", "coco-val": "demo-captions", "pickapic-test": "demo-captions",
                       "geneval-heldout": "demo-geneval-heldout"}
    assert n_per_prompt == {"geneval": 1, "geneval-heldout": 1}
    jobs = [(m.name, b.name) for m, b in suite_jobs(paper, ReproduceOptions(out=tmp_path, also=also))]
    own = [(m.name, b.name) for m in paper.models for b in paper.benchmarks]
    assert jobs == own + [("teacher", "geneval-heldout"), ("student", "geneval-heldout")]  # the naive model is not in it


def test_smoke_also_settings_must_agree(tmp_path):
    from rdmeval.reproduce import smoke_also
    from rdmeval.specs import SpecError
    from rdmeval.suites import load_suite

    text = (REPO / "benchmarks" / "paper-table.toml").read_text(encoding="utf-8")
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace('geneval = "demo-geneval"', 'geneval = "demo-captions"'), encoding="utf-8")
    with pytest.raises(SpecError, match=r"\[smoke\] prompts.geneval = 'demo-geneval', but .*bad.toml runs it with 'demo-captions'"):
        smoke_also(load_suite(bad))
    typo = tmp_path / "typo.toml"
    typo.write_text(text.replace('also = ["geneval-heldout"]', 'also = ["geneval-heldot"]'), encoding="utf-8")
    with pytest.raises(SpecError, match=r"smoke.also: unknown suite 'geneval-heldot'. Did you mean 'geneval-heldout'"):
        load_suite(typo)
