"""Provenance in view: what made a run (weights, base pipeline, git commit, command) is recorded in
its manifest and shown by the table and the report, by file name, never by a path of the machine.

The runs are real: the tiny FLUX.2 [klein] fixture (a local base folder and a student weight file)
generates, the tiny CLIP scores, and the table and report are built from what they wrote.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
from fnmatch import fnmatch
from pathlib import Path

import pytest

from rdmeval.cli.main import main
from rdmeval.io import sha256_folder
from rdmeval.provenance import shown_command, shown_path
from rdmeval.report import build_report
from rdmeval.results.table import build_table

RES = 64


# ----------------------------------------------------------------------------- units


def test_shown_path_and_command_keep_names_only():
    assert shown_path("/home/me/ckpt/model.safetensors") == "model.safetensors"
    assert shown_path("~/x/klein/") == "klein"
    assert shown_path("C:\\Users\\me\\model.pth") == "model.pth"
    assert shown_path("runs/student/geneval") == "runs/student/geneval"  # relative: as given
    assert shown_path("black-forest-labs/FLUX.2-klein-4B") == "black-forest-labs/FLUX.2-klein-4B"  # a hub id
    cmd = shlex.join(["rdmeval", "reproduce", "--weights", "/data/my ckpt/model.safetensors", "--out=/scratch/paper",
                      "--prompts-file", "coco-val=/data/coco/captions.json", "--suite", "paper-table"])
    assert shown_command(cmd) == ("rdmeval reproduce --weights model.safetensors --out=paper "
                                  "--prompts-file coco-val=captions.json --suite paper-table")


def test_folder_hash_is_the_documented_digest(tmp_path):
    """sha256 over '<relative path>\\t<size>\\t<sha256>\\n' lines in path order, hidden names left out,
    links followed; recomputed here from the files with hashlib."""
    base = tmp_path / "pipe"
    files = {"model_index.json": b"{}", "vae/config.json": b'{"a": 1}', "vae/w.safetensors": os.urandom(3000),
             "transformer/config.json": b"{}", "transformer/w.bin": b"xyz", ".cache/huggingface/x.lock": b"lock",
             "vae/.hidden": b"no"}
    for rel, data in files.items():
        (base / rel).parent.mkdir(parents=True, exist_ok=True)
        (base / rel).write_bytes(data)
    (tmp_path / "blob").write_bytes(b"linked")
    (base / "tokenizer").mkdir()
    (base / "tokenizer" / "vocab.json").symlink_to(tmp_path / "blob")  # as in a hub snapshot
    shown = {**{k: v for k, v in files.items() if "/." not in f"/{k}"}, "tokenizer/vocab.json": b"linked"}

    def expected(names):
        lines = sorted(f"{k}\t{len(shown[k])}\t{hashlib.sha256(shown[k]).hexdigest()}\n" for k in names)
        return hashlib.sha256("".join(lines).encode()).hexdigest()

    got = sha256_folder(base)
    assert got == {"sha256": expected(shown), "files": 6}
    patterns = ["model_index.json", "vae/*", "transformer/*.json"]
    picked = [k for k in shown if any(fnmatch(k, p) for p in patterns)]
    assert sha256_folder(base, patterns) == {"sha256": expected(picked), "files": 4}
    (base / "vae" / "config.json").write_bytes(b'{"a": 2}')  # one changed byte changes the identity
    assert sha256_folder(base)["sha256"] != got["sha256"]


# ----------------------------------------------------------------------------- real runs


@pytest.fixture(scope="module")
def made_root(tiny_klein, tiny_clip, tmp_path_factory) -> tuple[Path, dict[str, list[str]]]:
    """runs/{student,naive}/demo-captions made by `rdmeval generate` on the tiny klein, scored by `rdmeval score pickscore`."""
    root = tmp_path_factory.mktemp("made") / "paper-run"
    common = ["--base", str(tiny_klein["base"]), "--prompts", "demo-captions", "--resolution", str(RES), "--device", "cpu",
              "--rng-device", "cpu", "--precision", "fp32", "--no-progress"]
    argv = {
        "student": ["generate", "--model", "student", "--weights", str(tiny_klein["student_bfl_safetensors"]),
                    "--out", str(root / "runs" / "student" / "demo-captions"), *common],
        "naive": ["generate", "--model", "naive", "--out", str(root / "runs" / "naive" / "demo-captions"), *common],
    }
    for model, args in argv.items():
        assert main(args) == 0
        assert main(["score", "pickscore", str(root / "runs" / model / "demo-captions"), "--model", str(tiny_clip),
                     "--processor", str(tiny_clip), "--device", "cpu", "--no-progress"]) == 0
    return root, argv


def _manifest(root: Path, model: str) -> dict:
    return json.loads((root / "runs" / model / "demo-captions" / "manifest.json").read_text())


def test_manifest_records_command_and_base_identity_outside_the_request(made_root, tiny_klein):
    root, argv = made_root
    student = _manifest(root, "student")
    assert student["execution"]["command"] == shlex.join(["rdmeval", *argv["student"]])
    # the base folder's identity: the pipeline's components (the same for every model that reads the folder)
    patterns = ["model_index.json", "scheduler/*", "tokenizer/*", "vae/*", "text_encoder/*", "transformer/*.json", "transformer/*"]
    assert student["execution"]["provenance"] == {**{"base_" + k: v for k, v in sha256_folder(tiny_klein["base"], patterns).items()},
                                                  "base_hashed": patterns}
    naive = _manifest(root, "naive")
    assert naive["execution"]["provenance"] == student["execution"]["provenance"]
    for m in (student, naive):  # recorded beside the request, never in it (resume compares the request)
        assert "command" not in json.dumps(m["request"]) and "base_sha256" not in json.dumps(m["request"])


def test_a_run_made_before_provenance_was_recorded_still_resumes(made_root, capsys):
    root, argv = made_root
    path = root / "runs" / "student" / "demo-captions" / "manifest.json"
    saved = path.read_text()
    old = json.loads(saved)
    for key in ("command", "provenance"):
        old["execution"].pop(key)
    path.write_text(json.dumps(old))
    try:
        capsys.readouterr()
        assert main(argv["student"]) == 0
        assert "0 generated, 4 already present" in capsys.readouterr().out
        assert json.loads(path.read_text())["request"] == old["request"]
    finally:
        path.write_text(saved)


def test_table_and_report_show_provenance_by_name(made_root, tiny_klein, tiny_clip, tmp_path):
    root, argv = made_root
    weights = Path(tiny_klein["student_bfl_safetensors"])
    student, naive = _manifest(root, "student"), _manifest(root, "naive")
    table = build_table(root, n_resamples=50)
    proto = table.section("protocol")
    col = next(c for c in proto.col_keys if c.startswith("demo-captions"))
    text = {k: proto.cell(k, col).text for k in ("weights", "base", "git_commit", "command")}

    sha = hashlib.sha256(weights.read_bytes()).hexdigest()
    assert text["weights"] == (f"naive: none: the base pipeline's transformer; "
                               f"student: model.safetensors (sha256 {sha[:12]}, BFL naming, bfloat16)")
    base = sha256_folder(tiny_klein["base"])  # every file of the fixture's pipeline folder is a component
    assert text["base"] == f"folder klein (sha256 {base['sha256'][:12]} over {base['files']} files)"  # one text: the same for both
    commit = student["environment"].get("git_commit", "")
    assert text["git_commit"] == ((commit[:12] + (" (uncommitted changes)" if commit.endswith("-dirty") else "")) if commit else "—")
    named = {m: " ".join(["rdmeval"] + [Path(a).name if a.startswith("/") else a for a in args]) for m, args in argv.items()}
    assert text["command"] == f"naive: {named['naive']}; student: {named['student']}"
    assert "--weights model.safetensors --out demo-captions --base klein" in named["student"]

    # nothing printed or written cites a machine path: not the run root, the fixtures, the home folder
    machine = {str(p) for p in (root.resolve(), Path(tiny_klein["root"]).resolve(), Path(tiny_clip).resolve(), tmp_path)}
    machine |= {str(Path.home()) + "/", "/tmp/"}
    outputs = {f"{fmt}/{style}": table.render(fmt, style=style) for fmt in ("md", "latex") for style in ("paper", "full")}
    outputs |= {"csv": table.render("csv"), "json": table.render("json")}
    report = tmp_path / "report"
    build_report(root, report, thumb_size=64, n_resamples=50)
    outputs |= {p.name: p.read_text(encoding="utf-8") for p in report.iterdir() if p.is_file()}
    assert {"index.html", "table-paper.md", "table.json", ".rdmeval-report"} <= set(outputs)
    for name, content in outputs.items():
        found = [m for m in machine if m in content]
        assert not found, (name, found)
    assert "model.safetensors (sha256" in outputs["md/paper"] and "model.safetensors (sha256" in outputs["index.html"]


def test_a_diffusers_folder_model_is_shown_by_name(made_root, tmp_path):
    """`--model diffusers:/abs/folder` records the folder in the preset and the command: the table cites it by name,
    and says why its base folder has no hash (rdmeval hashes klein's only, not 'made before hashes')."""
    from rdmeval.provenance import shown_model

    assert shown_model("diffusers:/data/pipes/sdxl-turbo") == "diffusers:sdxl-turbo"
    assert shown_model("diffusers:stabilityai/sdxl-turbo") == "diffusers:stabilityai/sdxl-turbo"  # a hub id
    assert shown_command("rdmeval generate --model diffusers:/data/pipes/my-sdxl --out=/scratch/x") == \
        "rdmeval generate --model diffusers:my-sdxl --out=x"
    assert shown_command("rdmeval generate --model=diffusers:/data/pipes/my-sdxl") == "rdmeval generate --model=diffusers:my-sdxl"

    root, _ = made_root
    mine = tmp_path / "root" / "runs" / "mine" / "demo-captions"
    shutil.copytree(root / "runs" / "naive" / "demo-captions", mine)
    manifest = json.loads((mine / "manifest.json").read_text())
    folder = "/data/pipes/my-sdxl"  # what a diffusers:<folder> run records (rdmeval/generators/diffusers_backend.py)
    manifest["request"]["model"] = {"name": "diffusers", "preset": f"diffusers:{folder}", "diffusers": "0.42.1",
                                    "base": {"source": "local", "path": folder}, "weights": None}
    manifest["execution"]["command"] = f"rdmeval generate --model diffusers:{folder} --prompts demo-captions --out {mine}"
    manifest["execution"].pop("provenance", None)
    (mine / "manifest.json").write_text(json.dumps(manifest))
    table = build_table(tmp_path / "root", n_resamples=50)
    texts = [table.render(fmt, style=style) for fmt in ("md", "latex") for style in ("paper", "full")]
    assert all("/data/pipes" not in t and str(tmp_path) not in t for t in texts)
    assert "diffusers:my-sdxl" in texts[1].replace("\\", "")
    from rdmeval.results.protocol_text import _base_text

    assert _base_text(manifest["request"]["model"], {}) == "folder my-sdxl (content not hashed: rdmeval hashes klein's base folder only)"
    klein = {"preset": "naive", "diffusers": "0.42.1", "base": {"source": "local", "path": "/data/klein"}}
    assert _base_text(klein, {}) == "folder klein (content not hashed: made before rdmeval recorded folder hashes)"
