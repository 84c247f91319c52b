"""`rdmeval score pickscore` on images made by another tool: a folder with a prompts file, or a pairs file.

The images of an rdmeval run are copied out (no rdmeval file beside them) and scored both ways; the
per-image scores must be those of the run itself, the packaged prompt set recognised, and the folder
left untouched.
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from rdmeval._assets import asset_dir
from rdmeval.cli.main import main

PROMPTS = asset_dir("prompts") / "demo_captions.jsonl"


def _score(tiny_clip, src, *extra) -> int:
    return main(["score", "pickscore", str(src), "--model", str(tiny_clip), "--processor", str(tiny_clip),
                 "--workers", "0", "--no-progress", "--n-resamples", "200", *extra])


def _snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def _per_image(run: Path) -> pd.DataFrame:
    return pd.read_parquet(run / "scores" / "pickscore" / "per_image.parquet").sort_values(["prompt_index", "sample_index"])


def test_folder_and_pairs_file_score_as_the_run(tmp_path, tiny_clip, capsys):
    run = tmp_path / "run"
    assert main(["generate", "--model", "dummy", "--prompts", "demo-captions", "--out", str(run), "--resolution", "64",
                 "--rng-device", "cpu", "--no-progress"]) == 0
    assert _score(tiny_clip, run) == 0
    ours = _per_image(run)
    assert (ours["sample_index"] == 0).all()  # one image per prompt

    theirs = tmp_path / "theirs"
    theirs.mkdir()
    texts = [json.loads(line)["prompt"] for line in PROMPTS.read_text().splitlines() if line.strip()]
    for i in range(len(texts)):  # numbered 1..n without padding: ordered by number, not by name
        shutil.copy(run / f"{i:05d}" / "samples" / "0000.png", theirs / f"{i + 1}.png")
    with open(theirs / "pairs.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["image", "prompt"])
        w.writerows([(f"{i + 1}.png", t) for i, t in enumerate(texts)])
    before = _snapshot(theirs)
    capsys.readouterr()

    assert _score(tiny_clip, theirs, "--prompts-file", str(PROMPTS), "--out", str(tmp_path / "a")) == 0
    assert "made by another tool" in capsys.readouterr().out
    assert _score(tiny_clip, theirs / "pairs.csv", "--out", str(tmp_path / "b")) == 0
    assert _snapshot(theirs) == before  # nothing written beside their images
    for out in (tmp_path / "a", tmp_path / "b"):
        got = _per_image(out)
        assert got["prompt"].tolist() == ours["prompt"].tolist()
        # the same images, texts and batches through the same model: equal up to float32 rounding of one forward pass
        np.testing.assert_allclose(got["pickscore"].to_numpy(), ours["pickscore"].to_numpy(), rtol=0, atol=1e-5)
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["request"]["prompt_set"]["name"] == "demo-captions" and "model" in manifest["external"]["unknown"]
        summary = pd.read_parquet(out / "scores" / "pickscore" / "summary.parquet")
        assert (summary["benchmark"].iloc[0], summary["model"].iloc[0]) == ("demo-captions", "external")


def test_bad_inputs_are_refused_naming_them(tmp_path, tiny_clip, capsys):
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    from PIL import Image

    Image.new("RGB", (32, 32), (10, 20, 30)).save(theirs / "0.png")
    assert _score(tiny_clip, theirs, "--out", str(tmp_path / "o")) == 2
    assert "pass --prompts-file" in capsys.readouterr().err
    assert _score(tiny_clip, theirs, "--prompts-file", str(PROMPTS), "--out", str(tmp_path / "o")) == 2
    assert "holds 1 images" in capsys.readouterr().err
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"image": "theirs/0.png", "prompt": "a"}) + "\n" + json.dumps({"image": "gone.png", "prompt": "b"}) + "\n")
    assert _score(tiny_clip, pairs) == 2
    assert "pass --out OUT" in capsys.readouterr().err
    assert _score(tiny_clip, pairs, "--out", str(tmp_path / "o")) == 2
    err = capsys.readouterr().err
    assert "1 images not found" in err and "gone.png" in err
    assert _score(tiny_clip, pairs, "--prompts-file", str(PROMPTS), "--out", str(tmp_path / "o")) == 2  # which prompts?
    assert "drop --prompts-file" in capsys.readouterr().err and not (tmp_path / "o").exists()
    pairs.write_text(json.dumps({"image": "theirs/0.png"}) + "\n")
    assert _score(tiny_clip, pairs, "--out", str(tmp_path / "o")) == 2
    assert f"{pairs}:1" in capsys.readouterr().err


def test_other_files_and_bad_images_get_hints_for_images_made_elsewhere(tmp_path, tiny_clip, capsys):
    """A file that is not a pairs file is named as such; a pairs file's bad or missing images are fixed where
    they are (not by `rdmeval generate`, which did not make them), and the message names the original file."""
    from PIL import Image

    theirs = tmp_path / "theirs"
    theirs.mkdir()
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a\nb\n")
    assert _score(tiny_clip, prompts, "--out", str(tmp_path / "o")) == 2
    err = capsys.readouterr().err
    assert "is a file, not a pairs file" in err and "--out" not in err.split("give")[0] and "Traceback" not in err

    Image.new("RGB", (32, 32), (10, 20, 30)).save(theirs / "0.png")
    Image.new("RGB", (48, 32), (10, 20, 30)).save(theirs / "1.png")
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"image": f"theirs/{i}.png", "prompt": p}) + "\n" for i, p in enumerate("ab")))
    assert _score(tiny_clip, pairs, "--out", str(tmp_path / "o1")) == 2
    err = capsys.readouterr().err
    assert f"links to {theirs / '1.png'}" in err and "made by another tool" in err and "rdmeval generate" not in err

    pairs.write_text("".join(json.dumps({"image": f"theirs/{i}.png", "prompt": p}) + "\n" for i, p in enumerate("aab")))
    Image.new("RGB", (32, 32), (10, 20, 30)).save(theirs / "2.png")
    assert _score(tiny_clip, pairs, "--out", str(tmp_path / "o2")) == 2  # b has one image, a two
    err = capsys.readouterr().err
    assert "incomplete" in err and f"({pairs})" in err and "rdmeval generate" not in err


def test_a_pair_removed_from_the_pairs_file_is_not_scored_again(tmp_path, tiny_clip, capsys):
    """Re-scoring into the same --out after a pair was taken out of the file: its image is no longer linked."""
    from PIL import Image

    theirs = tmp_path / "theirs"
    theirs.mkdir()
    for i in range(4):
        Image.new("RGB", (32, 32), (10 * i, 20, 30)).save(theirs / f"{i}.png")
    pairs = tmp_path / "pairs.jsonl"
    rows = [("0.png", "a"), ("1.png", "a"), ("2.png", "b"), ("3.png", "b")]
    pairs.write_text("".join(json.dumps({"image": f"theirs/{n}", "prompt": p}) + "\n" for n, p in rows))
    assert _score(tiny_clip, pairs, "--out", str(tmp_path / "o")) == 0
    pairs.write_text("".join(json.dumps({"image": f"theirs/{n}", "prompt": p}) + "\n" for n, p in rows[1:]))
    capsys.readouterr()
    assert _score(tiny_clip, pairs, "--out", str(tmp_path / "o"), "--allow-incomplete") == 0
    per_image = _per_image(tmp_path / "o")
    assert len(per_image) == 3  # 1.png for 'a' (once), 2.png and 3.png for 'b'


def test_a_quoted_prompt_with_a_line_break_is_read_whole(tmp_path):
    """A CSV prompt may hold a line break inside its quotes: it is read as written (not joined without it), and an
    error names the line where its row ends."""
    import pytest

    from rdmeval.errors import PromptFileError
    from rdmeval.store.external_pairs import read_pairs

    pairs = tmp_path / "pairs.csv"
    with open(pairs, "w", newline="") as fh:
        csv.writer(fh).writerows([["image", "prompt"], ["0.png", "a cat\non a mat"], ["1.png", "a dog"]])
    assert [(p.name, text) for p, text in read_pairs(pairs)] == [("0.png", "a cat\non a mat"), ("1.png", "a dog")]
    pairs.write_text('image,prompt\n0.png,"a cat\non a mat"\n1.png,\n')
    with pytest.raises(PromptFileError, match=r"pairs\.csv:4: expected the fields"):
        read_pairs(pairs)
