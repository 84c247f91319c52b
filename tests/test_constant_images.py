"""Constant images (every pixel the same value) are counted per run and warned about, not refused.

The run-level count scans only PNGs small enough to be flat (:func:`rdmeval.store.run_store.flat_png_limit`);
the bound is checked here against PIL's own encoder, and the scan against decoding every image.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from rdmeval.cli.main import main
from rdmeval.generation import generate_run
from rdmeval.generators.dummy import DummyGenerator
from rdmeval.generators.noise import GENEVAL_SEEDS
from rdmeval.prompts import load_prompt_set
from rdmeval.store import RunStore
from rdmeval.store.run_store import encode_png, flat_png_limit, is_constant

SIZE = 32


class HalfFlat(DummyGenerator):
    """The dummy generator, except that prompts 1 and 3 come out flat (all black, all one red)."""

    def generate(self, prompts, latents):
        images = super().generate(prompts, latents)
        for k, prompt in enumerate(prompts):
            if prompt == self.black:
                images[k] = 0
            elif prompt == self.red:
                images[k] = (200, 10, 10)
        return images


def _run(tmp_path, generator, **kw):
    ps = load_prompt_set("demo-geneval")
    generator.black, generator.red = ps[1].text, ps[3].text
    return generate_run(generator, ps, tmp_path / "run", n_per_prompt=2, seed_policy=GENEVAL_SEEDS, rng_device="cpu",
                        batch_size=4, progress=False, **kw)


def test_constant_images_are_counted_in_the_summary_and_the_manifest(tmp_path):
    summary = _run(tmp_path, HalfFlat(SIZE, SIZE))
    assert summary.complete and summary.constant_generated == 4
    flat = ["00001/samples/0000.png", "00001/samples/0001.png", "00003/samples/0000.png", "00003/samples/0001.png"]
    assert summary.constant_in_run == {"count": 4, "images": flat}
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["complete"] and manifest["constant_images"] == {"count": 4, "images": flat}
    line = summary.line()
    assert "run complete" in line and "WARNING: 4 images of the run are constant" in line and flat[0] in line
    # independent check: decode every image
    store = RunStore(tmp_path / "run")
    decoded = [it for it in store.expected_items() if len(np.unique(store.load_image(it).reshape(-1, 3), axis=0)) == 1]
    assert [f"{i:05d}/samples/{j:04d}.png" for i, j in decoded] == flat


def test_a_run_without_constant_images_says_nothing(tmp_path, capsys):
    assert main(["generate", "--model", "dummy", "--prompts", "demo-geneval", "--out", str(tmp_path / "run"),
                 "--resolution", str(SIZE), "--rng-device", "cpu", "--no-progress"]) == 0
    assert "WARNING" not in capsys.readouterr().out
    assert json.loads((tmp_path / "run" / "manifest.json").read_text())["constant_images"] == {"count": 0, "images": []}


def test_a_resume_recounts_and_an_incomplete_shard_counts_what_it_made(tmp_path):
    first = _run(tmp_path, HalfFlat(SIZE, SIZE), shard="0/2")
    assert not first.complete and first.constant_in_run is None
    assert first.constant_generated == 2 and "2 of the 8 images made now are constant" in first.line()  # blocks 0 and 2
    second = _run(tmp_path, HalfFlat(SIZE, SIZE), shard="1/2")
    assert second.complete and second.constant_in_run["count"] == 4
    # a resume that remakes a flat image as a normal one recounts the run
    (tmp_path / "run" / "00003" / "samples" / "0001.png").unlink()
    third = _run(tmp_path, DummyGenerator(SIZE, SIZE))  # the same request: the dummy makes it unflat
    assert third.generated == 1 and third.constant_generated == 0 and third.constant_in_run["count"] == 3


@pytest.mark.parametrize("width, height", [(32, 32), (64, 48), (512, 512), (1024, 768)])
def test_a_flat_png_is_always_below_the_scan_limit(width, height):
    for value in [(0, 0, 0), (255, 255, 255), (200, 10, 10), (1, 2, 3)]:
        flat = np.empty((height, width, 3), dtype=np.uint8)
        flat[:] = value
        assert len(encode_png(flat)) <= flat_png_limit(width, height)
    rng = np.random.default_rng(0)
    noisy = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    assert not is_constant(noisy) and len(encode_png(noisy)) > flat_png_limit(width, height)
    one_off = np.zeros((height, width, 3), dtype=np.uint8)
    one_off[-1, -1, 2] = 1
    assert not is_constant(one_off) and is_constant(torch.zeros(2, 2, 3, dtype=torch.uint8).numpy())
