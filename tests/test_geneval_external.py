"""`rdmeval score geneval` on a folder in GenEval's layout written by another tool (no rdmeval file in it).

The folder is written here the way the official ``generation/diffusers_generate.py`` does (one
``metadata.jsonl`` object per prompt folder, ``samples/NNNN.png``, a ``grid.png`` beside them) from the
images of an rdmeval run; scoring it must give the verdicts, summary text and result values of scoring
that run, and leave the folder untouched. The detector and colors are the scripted stubs of
``test_geneval_score.py`` (verdicts known by construction).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from rdmeval.cli.main import main
from rdmeval.errors import RdmevalError, RunStoreError
from rdmeval.store.external import adopt_geneval_folder
from test_geneval_score import official_summary_reference, score, scripted


def _write_official_folder(run: Path, out: Path, *, renumber: bool = False) -> Path:
    """The run's images and records in GenEval's layout, as another tool writes them (no manifest)."""
    for prompt_dir in sorted(p for p in run.iterdir() if p.is_dir() and p.name.isdigit()):
        target = out / prompt_dir.name
        (target / "samples").mkdir(parents=True)
        record = json.loads((prompt_dir / "metadata.jsonl").read_text())
        with open(target / "metadata.jsonl", "w") as fp:
            json.dump(record, fp)  # diffusers_generate.py: json.dump(metadata, fp)
        for png in sorted((prompt_dir / "samples").glob("*.png")):
            name = f"{int(png.stem) + 1}.png" if renumber else png.name  # another numbering: same order
            shutil.copy(png, target / "samples" / name)
        Image.new("RGB", (8, 8)).save(target / "grid.png")  # ignored, as evaluate_images.py does
        (target / "samples" / "notes.txt").write_text("not an image")
    return out


def _snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def _verdicts(results: Path) -> dict[tuple[int, int, str], bool]:
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    return {(int(Path(r["filename"]).parent.parent.name), int(Path(r["filename"]).stem), r["reason"]): r["correct"] for r in rows}


@pytest.fixture(scope="module")
def template_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("geneval-external") / "run"
    assert main(["generate", "--model", "dummy", "--prompts", "demo-geneval", "--out", str(out),
                 "--resolution", "64", "--rng-device", "cpu", "--no-progress"]) == 0
    return out


@pytest.fixture
def run_dir(template_run, tmp_path) -> Path:
    shutil.copytree(template_run, tmp_path / "run")
    return tmp_path / "run"


def test_official_layout_scores_as_the_rdmeval_run(run_dir, tmp_path):
    src = _write_official_folder(run_dir, tmp_path / "theirs")
    before = _snapshot(src)
    own, _, _ = score(run_dir)
    adopted = adopt_geneval_folder(src, tmp_path / "scored")
    theirs, _, _ = score(adopted)

    assert _snapshot(src) == before  # nothing written into their folder
    assert not any(p.name == "manifest.json" for p in src.rglob("*"))
    ours_results, their_results = own.outputs["results"], theirs.outputs["results"]
    # identical verdicts and reasons, image by image (the folder's file names are what results.jsonl names)
    assert _verdicts(their_results) == _verdicts(ours_results)
    _, _, expect = scripted()
    assert {(i, j): c for (i, j, _), c in _verdicts(their_results).items()} == expect
    assert all(json.loads(line)["filename"].startswith(str(src)) for line in their_results.read_text().splitlines())
    # the summary summary_scores.py would print, and the same result values
    assert theirs.summary_text == own.summary_text == official_summary_reference(their_results)
    a, b = (pd.read_parquet(r.outputs["summary"]) for r in (own, theirs))
    assert a[["category", "metric", "value", "ci_low", "ci_high", "n"]].equals(b[["category", "metric", "value", "ci_low", "ci_high", "n"]])
    # the demo set is recognised by its records; the model and seeds are recorded as unknown
    manifest = json.loads((adopted / "manifest.json").read_text())
    assert manifest["request"]["prompt_set"]["name"] == "demo-geneval"
    assert {"model", "seeds"} <= set(manifest["external"]["unknown"])
    assert set(b["benchmark"]) == {"demo-geneval"} and set(b["model"]) == {"external"}


def test_other_numbering_and_unregistered_records(run_dir, tmp_path):
    src = _write_official_folder(run_dir, tmp_path / "theirs", renumber=True)
    record = json.loads((src / "00000" / "metadata.jsonl").read_text())
    (src / "00000" / "metadata.jsonl").write_text(json.dumps({**record, "prompt": "a photo of an umbrella, edited"}))
    theirs, _, _ = score(adopt_geneval_folder(src, tmp_path / "scored"))
    own, _, _ = score(run_dir)
    # samples 1..4 stand for 0..3 in numeric order; the verdicts do not depend on the prompt text
    strip = {(i, j): c for (i, j, _), c in _verdicts(own.outputs["results"]).items()}
    got = {(i, j - 1): c for (i, j, _), c in _verdicts(theirs.outputs["results"]).items()}
    assert got == strip
    manifest = json.loads((tmp_path / "scored" / "manifest.json").read_text())
    assert manifest["request"]["prompt_set"]["name"] == "theirs"  # no registered set matches: its own records


def test_incomplete_folders_are_refused_unless_allowed(run_dir, tmp_path):
    src = _write_official_folder(run_dir, tmp_path / "theirs")
    (src / "00002" / "samples" / "0003.png").unlink()  # one prompt folder with fewer images
    shutil.rmtree(src / "00004")  # a missing prompt index
    out = adopt_geneval_folder(src, tmp_path / "scored")
    with pytest.raises(RunStoreError, match=r"(?s)incomplete: 19 of 24 images.*00004.*00002/samples/0003.png") as err:
        score(out)
    assert f"made by another tool ({src.resolve()})" in str(err.value) and "rdmeval generate" not in str(err.value)
    result, _, _ = score(out, allow_incomplete=True)
    assert result.coverage["present_images"] == 19 and not result.coverage["complete"]
    assert "INCOMPLETE RUN" in result.summary_text


def test_cli_needs_out_refuses_other_folders_and_rejudges(run_dir, tmp_path, capsys, monkeypatch):
    src = _write_official_folder(run_dir, tmp_path / "theirs")
    assert main(["score", "geneval", str(src), "--rejudge", "--no-progress"]) == 2
    assert "Pass --out OUT" in capsys.readouterr().err
    assert main(["score", "geneval", str(run_dir), "--out", str(tmp_path / "x"), "--rejudge"]) == 2
    assert "drop --out" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["score", "geneval", str(tmp_path / "empty"), "--rejudge"]) == 2
    assert "nor a folder in GenEval's layout" in capsys.readouterr().err
    with pytest.raises(RdmevalError, match="outside"):
        adopt_geneval_folder(src, src / "scores")
    # detect with the stubs through the adopted folder, then the CLI re-judges it from the caches
    out = adopt_geneval_folder(src, tmp_path / "scored")
    first, _, colors = score(out)
    monkeypatch.setattr("rdmeval.cli.score_geneval.build_color_classifier", lambda args: colors)  # its colors are cached
    assert main(["score", "geneval", str(src), "--out", str(out), "--rejudge", "--no-progress", "--n-resamples", "200"]) == 0
    printed = capsys.readouterr().out
    assert "made by another tool" in printed and first.summary_text in printed
    assert _verdicts(out / "scores" / "geneval" / "results.jsonl") == _verdicts(first.outputs["results"])


def test_an_adopted_folder_in_a_run_root_makes_a_table(run_dir, tmp_path, capsys):
    src = _write_official_folder(run_dir, tmp_path / "theirs")
    root = tmp_path / "root"
    result, _, _ = score(adopt_geneval_folder(src, root / "runs" / "theirs" / "demo-geneval"))
    capsys.readouterr()
    assert main(["table", str(root), "--format", "csv"]) == 0
    cells = [r for r in csv.DictReader(io.StringIO(capsys.readouterr().out)) if r["kind"] == "cell" and r["row"] == "theirs"]
    (scored,) = [r for r in cells if r["status"] == "ok"]  # the run folder's name is the model's row
    assert scored["col"] == "demo-geneval:geneval-mmdet" and scored["run"] == "runs/theirs/demo-geneval"
    assert float(scored["value"]) == pytest.approx(result.summary.overall, abs=1e-12)  # the row as written, via CSV text


def test_bad_images_are_named_where_they_are_and_a_file_is_not_a_run(run_dir, tmp_path, capsys):
    """A bad image of an adopted folder is named by its original file, with the fix there (not `rdmeval generate`)."""
    src = _write_official_folder(run_dir, tmp_path / "theirs", renumber=True)
    bad = src / "00003" / "samples" / "3.png"  # its third image, 0002.png in the adopted run
    Image.new("RGB", (32, 48)).save(bad)
    out = adopt_geneval_folder(src, tmp_path / "scored")
    with pytest.raises(RunStoreError, match="size 32x48") as err:
        score(out)
    message = str(err.value)
    assert f"links to {bad.resolve()}" in message and "made by another tool" in message and "rdmeval generate" not in message
    (tmp_path / "notes.txt").write_text("x")
    assert main(["score", "geneval", str(tmp_path / "notes.txt"), "--out", str(tmp_path / "o"), "--rejudge"]) == 2
    err_text = capsys.readouterr().err
    assert "is a file" in err_text and "Traceback" not in err_text


def test_conflicting_flags_fail_before_out_is_made(run_dir, tmp_path, capsys):
    """Flags that exclude each other are refused before the adopted run folder (--out) is written."""
    src = _write_official_folder(run_dir, tmp_path / "theirs")
    for extra, words in ((["--rejudge", "--random-detector"], "drop --random-detector"),
                         (["--random-detector", "--detector-checkpoint", str(tmp_path / "c.pth")], "exclude each other")):
        assert main(["score", "geneval", str(src), "--out", str(tmp_path / "scored"), "--no-progress", *extra]) == 2
        err = capsys.readouterr()
        assert words in err.err and "made by another tool" not in err.out
        assert not (tmp_path / "scored").exists()


def test_an_image_removed_from_the_folder_is_not_scored_again(run_dir, tmp_path):
    """Re-adopting after a sample was removed at the source: the later samples move down one number and the link of
    the last number goes, so no original is linked twice (the run is then incomplete, as the folder is)."""
    src = _write_official_folder(run_dir, tmp_path / "theirs")
    out = adopt_geneval_folder(src, tmp_path / "scored")
    (src / "00002" / "samples" / "0000.png").unlink()
    adopt_geneval_folder(src, out)
    samples = sorted((out / "00002" / "samples").iterdir())
    targets = [os.readlink(p) for p in samples]
    assert len(targets) == len(set(targets)) == 3 and str(src / "00002" / "samples" / "0000.png") not in targets
    with pytest.raises(RunStoreError, match="incomplete: 23 of 24 images"):
        score(out)


def test_two_folders_with_one_prompt_index_are_refused(run_dir, tmp_path):
    src = _write_official_folder(run_dir, tmp_path / "theirs")
    shutil.copytree(src / "00003", src / "3")  # 3 and 00003: which one holds prompt 3's images?
    with pytest.raises(RunStoreError, match="00003 and 3 have the same index"):
        adopt_geneval_folder(src, tmp_path / "scored")
    assert not (tmp_path / "scored").exists()
