"""Scorers score only what the run promises: every image and prompt record is checked against the manifest.

A resized, grayscale or truncated image, or an edited ``metadata.jsonl`` (prompt text or tag), is refused
by both scorers before any model work, naming the file and what differs; with ``allow_incomplete`` the
images are excluded and counted in the coverage, never scored.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from rdmeval.cli.main import main
from rdmeval.errors import RunStoreError
from rdmeval.scorers.geneval.detector import DetectedImage
from rdmeval.scorers.geneval.score import score_geneval_run
from rdmeval.scorers.pickscore.model import PickScorer
from rdmeval.scorers.pickscore.score import score_pickscore_run

SIZE = 64
N_IMAGES = 24  # demo-geneval: 6 prompts x 4 images
BAD_IMAGE = "00001/samples/0002.png"
BAD_PROMPT = "00002/metadata.jsonl"


class NoDetections:
    """A detector stub that finds nothing (every verdict is 'wrong'; what matters is which images it sees)."""

    identity = {"detector": "none", "version": "1"}

    def __init__(self) -> None:
        self.seen: list[Path] = []

    def detect(self, paths, batch_size=8):
        for path in paths:
            self.seen.append(Path(path))
            yield DetectedImage({}, SIZE, SIZE)


@pytest.fixture(scope="module")
def template_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run-check") / "run"
    assert main(["generate", "--model", "dummy", "--prompts", "demo-geneval", "--out", str(out),
                 "--resolution", str(SIZE), "--rng-device", "cpu", "--no-progress"]) == 0
    return out


@pytest.fixture
def run(template_run, tmp_path) -> Path:
    shutil.copytree(template_run, tmp_path / "run")
    return tmp_path / "run"


@pytest.fixture(scope="module")
def pickscorer(tiny_clip) -> PickScorer:
    return PickScorer.from_pretrained(str(tiny_clip), str(tiny_clip), device="cpu")


def _resized(run: Path) -> tuple[str, str]:
    path = run / BAD_IMAGE
    Image.open(path).resize((SIZE // 2, SIZE // 2)).save(path)
    return BAD_IMAGE, f"size {SIZE // 2}x{SIZE // 2}, expected {SIZE}x{SIZE}"


def _grayscale(run: Path) -> tuple[str, str]:
    path = run / BAD_IMAGE
    Image.open(path).convert("L").save(path)
    return BAD_IMAGE, "mode L, expected RGB"


def _truncated(run: Path) -> tuple[str, str]:
    path = run / BAD_IMAGE
    path.write_bytes(path.read_bytes()[:-40])  # IDAT's end and IEND gone: the header still opens
    with Image.open(path) as im:
        assert im.size == (SIZE, SIZE) and im.mode == "RGB"  # so only reading to the end finds it
    return BAD_IMAGE, "cannot be decoded"


def _edit_record(run: Path, key: str, value: str) -> tuple[str, str]:
    path = run / BAD_PROMPT
    record = json.loads(path.read_text())
    record[key] = value
    path.write_text(json.dumps(record))
    return BAD_PROMPT, "differs from the one the run's images were made for"


CORRUPTIONS = {
    "resized": _resized,
    "grayscale": _grayscale,
    "truncated": _truncated,
    "prompt text": lambda run: _edit_record(run, "prompt", "a photo of a horse"),
    "tag": lambda run: _edit_record(run, "tag", "single_object"),
}


def _score(scorer: str, run: Path, pickscorer: PickScorer, **kw):
    """(message, detector-or-None) after scoring ``run`` with one scorer."""
    if scorer == "geneval":
        detector = NoDetections()
        result = score_geneval_run(run, detector=detector, color=None, progress=False, n_resamples=50, **kw)
        return result.message, detector
    result = score_pickscore_run(run, pickscorer, progress=False, n_resamples=50, **kw)
    return result.message, None


@pytest.mark.parametrize("corruption", list(CORRUPTIONS))
@pytest.mark.parametrize("scorer", ["geneval", "pickscore"])
def test_a_file_that_differs_from_the_manifest_is_refused_then_excluded(run, pickscorer, monkeypatch, scorer, corruption):
    name, what = CORRUPTIONS[corruption](run)
    embedded: list[int] = []
    real = pickscorer.embed_pixels
    monkeypatch.setattr(pickscorer, "embed_pixels", lambda pixels: embedded.append(len(pixels)) or real(pixels))

    detector = NoDetections()
    with pytest.raises(RunStoreError) as err:
        if scorer == "geneval":
            score_geneval_run(run, detector=detector, color=None, progress=False)
        else:
            score_pickscore_run(run, pickscorer, progress=False)
    msg = str(err.value)
    assert f"{run / name}: " in msg and what in msg and "--allow-incomplete" in msg
    assert not detector.seen and not embedded  # refused before any model work
    assert not (run / "scores" / scorer / "summary.parquet").exists()

    message, detector = _score(scorer, run, pickscorer, allow_incomplete=True)
    n_excluded = 4 if name == BAD_PROMPT else 1  # an edited record excludes every image of its prompt
    n = N_IMAGES - n_excluded
    assert f"{n_excluded} images excluded by the run check" in message
    excluded = {BAD_IMAGE} if name == BAD_IMAGE else {f"00002/samples/{j:04d}.png" for j in range(4)}
    if detector is not None:
        assert len(detector.seen) == n and not {p.relative_to(run).as_posix() for p in detector.seen} & excluded
    per_image = pd.read_parquet(run / "scores" / scorer / "per_image.parquet")
    assert len(per_image) == n
    assert not excluded & set(per_image["image"])
    summary = pd.read_parquet(run / "scores" / scorer / "summary.parquet")
    assert not summary["complete"].any() and (summary["coverage"] == n / N_IMAGES).all()
    protocol = json.loads(summary["protocol"].iloc[0])
    check = protocol["geneval"]["run_check"] if scorer == "geneval" else protocol["run_check"]
    assert sorted(check["excluded_images"]) == sorted(excluded)
    if scorer == "geneval":
        text = (run / "scores" / "geneval" / "summary.txt").read_text()
        assert text.startswith("INCOMPLETE RUN") and f"excluded images ({n_excluded})" in text


@pytest.mark.parametrize("scorer", ["geneval", "pickscore"])
def test_a_clean_run_records_no_check_and_scores_every_image(run, pickscorer, scorer):
    message, _ = _score(scorer, run, pickscorer)
    assert "run check" not in message and "prompt records" not in message
    summary = pd.read_parquet(run / "scores" / scorer / "summary.parquet")
    assert summary["complete"].all() and (summary["coverage"] == 1.0).all()
    assert "run_check" not in summary["protocol"].iloc[0]  # valid runs' outputs are as before


def _drop_prompt_records(run: Path) -> None:
    manifest = json.loads((run / "manifest.json").read_text())
    assert len(manifest.pop("prompt_records")) == 6  # what runs made before the hashes look like
    (run / "manifest.json").write_text(json.dumps(manifest))


def test_an_old_manifest_falls_back_to_the_packaged_prompt_set_and_says_so(run, pickscorer):
    _drop_prompt_records(run)
    message, _ = _score("pickscore", run, pickscorer)
    assert "prompt records checked against the prompt set 'demo-geneval' reloaded" in message
    _edit_record(run, "prompt", "a photo of a horse")
    with pytest.raises(RunStoreError, match="00002/metadata.jsonl: its record differs"):
        _score("geneval", run, pickscorer)


def test_an_old_manifest_without_its_prompt_file_scores_and_says_the_records_are_unchecked(tmp_path, pickscorer):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red bowl\na green cat\n")
    run = tmp_path / "run"
    assert main(["generate", "--model", "dummy", "--prompts", str(prompts), "--out", str(run),
                 "--resolution", str(SIZE), "--rng-device", "cpu", "--no-progress"]) == 0
    manifest = json.loads((run / "manifest.json").read_text())
    assert set(manifest.pop("prompt_records")) == {"0", "1"}
    (run / "manifest.json").write_text(json.dumps(manifest))
    prompts.unlink()
    message, _ = _score("pickscore", run, pickscorer)
    assert "prompt records checked not at all" in message
    summary = pd.read_parquet(run / "scores" / "pickscore" / "summary.parquet")
    assert summary["complete"].all()
    assert "not at all" in json.loads(summary["protocol"].iloc[0])["run_check"]["prompt_records"]


def test_resuming_an_old_run_records_the_prompt_hashes_and_remakes_bad_images(run):
    _drop_prompt_records(run)
    _grayscale(run)
    _edit_record(run, "tag", "single_object")
    before = (run / "00000" / "samples" / "0000.png").read_bytes()
    assert main(["generate", "--model", "dummy", "--prompts", "demo-geneval", "--out", str(run),
                 "--resolution", str(SIZE), "--rng-device", "cpu", "--no-progress"]) == 0
    manifest = json.loads((run / "manifest.json").read_text())
    assert len(manifest["prompt_records"]) == 6
    with Image.open(run / BAD_IMAGE) as im:
        assert im.mode == "RGB"
    assert json.loads((run / BAD_PROMPT).read_text())["tag"] != "single_object"
    assert (run / "00000" / "samples" / "0000.png").read_bytes() == before
