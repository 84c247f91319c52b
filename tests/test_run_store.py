"""Run store: resume after SIGKILL, corrupt images, shards, manifest refusal, seed invariance."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from rdmeval.cli.main import main
from rdmeval.errors import RunStoreError
from rdmeval.generation import generate_run
from rdmeval.generators.dummy import DummyGenerator
from rdmeval.generators.noise import GENEVAL_SEEDS, PICKAPIC_SEEDS, NoiseSource
from rdmeval.prompts import load_prompt_set
from rdmeval.store import RunStore, WorkItem, shard_items, work_items


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.png"))}


def _gen(out, prompts="demo-geneval", *extra):
    argv = ["generate", "--model", "dummy", "--prompts", str(prompts), "--out", str(out),
            "--resolution", "64", "--rng-device", "cpu", "--no-progress", *extra]
    assert main(argv) == 0


def test_official_layout_and_manifest(tmp_path):
    _gen(tmp_path / "run")
    root = tmp_path / "run"
    assert sorted(p.name for p in root.iterdir()) == ["00000", "00001", "00002", "00003", "00004", "00005", "manifest.json"]
    assert sorted(p.name for p in (root / "00002" / "samples").iterdir()) == ["0000.png", "0001.png", "0002.png", "0003.png"]
    meta = json.loads((root / "00002" / "metadata.jsonl").read_text())  # one JSON object, as json.load reads it
    assert meta["tag"] == "counting" and meta["exclude"] == [{"class": "apple", "count": 4}]
    m = json.loads((root / "manifest.json").read_text())
    assert m["complete"] is True
    req = m["request"]
    assert req["n_per_prompt"] == 4 and req["rng_device"] == "cpu"
    assert req["seed_policy"]["kind"] == "per-sample" and req["seed_policy"]["base"] == 46_000_000
    assert req["prompt_set"]["name"] == "demo-geneval" and len(req["prompt_set"]["sha256"]) == 64
    assert req["batch_size"] == 4  # one forward per GenEval prompt, like the reference
    assert "torch" in m["environment"]["versions"]


def test_sigkill_then_resume_gives_identical_files(tmp_path):
    prompts = tmp_path / "many.txt"
    prompts.write_text("\n".join(f"prompt number {i}" for i in range(400)) + "\n")
    ref = tmp_path / "ref"
    _gen(ref, prompts, "--n-per-prompt", "2", "--batch-size", "1")

    killed = tmp_path / "killed"
    cmd = [sys.executable, "-m", "rdmeval", "generate", "--model", "dummy", "--prompts", str(prompts), "--out", str(killed),
           "--resolution", "64", "--rng-device", "cpu", "--n-per-prompt", "2", "--batch-size", "1", "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and len(list(killed.rglob("*.png"))) < 20:
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    n_before = len(list(killed.rglob("*.png")))
    assert 20 <= n_before < 800, "the run must have been killed mid-way"
    store = RunStore(killed)  # atomic writes: every image present after the kill decodes completely
    present = [it for it in store.expected_items() if store.image_path(it).exists()]
    assert len(present) == n_before and all(store.image_ok(it) for it in present)
    assert json.loads((killed / "manifest.json").read_text())["complete"] is False

    _gen(killed, prompts, "--n-per-prompt", "2", "--batch-size", "1")
    assert _files(killed) == _files(ref)
    assert json.loads((killed / "manifest.json").read_text())["complete"] is True


def test_truncated_png_is_detected_and_regenerated(tmp_path):
    _gen(tmp_path / "a")
    store = RunStore(tmp_path / "a")
    victim = store.image_path(WorkItem(3, 1))
    good = victim.read_bytes()
    victim.write_bytes(good[: len(good) // 2])
    assert store.pending(store.expected_items()) == [WorkItem(3, 1)]
    _gen(tmp_path / "a")
    assert victim.read_bytes() == good


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_shards_are_disjoint_and_complete(n):
    items = work_items(range(17), 4)
    shards = [shard_items(items, i, n) for i in range(n)]
    flat = [it for s in shards for it in s]
    assert len(flat) == len(set(flat)) == len(items) and set(flat) == set(items)


def test_sharded_runs_equal_the_single_run(tmp_path):
    _gen(tmp_path / "single", "demo-geneval", "--batch-size", "3")
    for i in range(3):
        _gen(tmp_path / "sharded", "demo-geneval", "--shard", f"{i}/3", "--batch-size", "3")
    assert _files(tmp_path / "sharded") == _files(tmp_path / "single")
    assert json.loads((tmp_path / "sharded" / "manifest.json").read_text())["complete"] is True


def test_forward_blocks_are_fixed_whatever_the_sharding():
    from rdmeval.generation import forward_blocks

    items = work_items(range(5), 4)
    blocks = forward_blocks(items, 4)
    assert blocks == [[WorkItem(p, s) for s in range(4)] for p in range(5)]  # one prompt per forward
    for n in range(1, 5):
        assert sorted(b for r in range(n) for b in map(tuple, blocks[r::n])) == sorted(map(tuple, blocks))


def test_resume_with_another_batch_size_is_refused(tmp_path, capsys):
    _gen(tmp_path / "r")
    rc = main(["generate", "--model", "dummy", "--prompts", "demo-geneval", "--out", str(tmp_path / "r"),
               "--resolution", "64", "--rng-device", "cpu", "--batch-size", "8", "--no-progress"])
    assert rc == 2 and "batch_size: 4 -> 8" in capsys.readouterr().err


def test_manifest_mismatch_is_refused_with_the_differing_fields(tmp_path, capsys):
    _gen(tmp_path / "r")
    rc = main(["generate", "--model", "dummy", "--prompts", "demo-geneval", "--out", str(tmp_path / "r"),
               "--resolution", "64", "--rng-device", "cpu", "--n-per-prompt", "2", "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "n_per_prompt: 4 -> 2" in err and "--fresh" in err
    with pytest.raises(RunStoreError, match="seed_policy.base"):
        generate_run(DummyGenerator(64, 64), load_prompt_set("demo-geneval"), tmp_path / "r", n_per_prompt=4,
                     seed_policy=type(GENEVAL_SEEDS)("per-sample", base=1), progress=False)
    _gen(tmp_path / "r", "demo-geneval", "--n-per-prompt", "2", "--fresh")
    assert json.loads((tmp_path / "r" / "manifest.json").read_text())["request"]["n_per_prompt"] == 2
    assert len(list(tmp_path.glob("r.replaced-*"))) == 1  # the old run was moved aside, not deleted


def test_per_sample_noise_matches_the_reference_formula():
    src = NoiseSource(GENEVAL_SEEDS, (128, 4, 4), n_prompts=10, n_per_prompt=4)
    z = src.latents([WorkItem(7, 3), WorkItem(0, 0)])
    g = torch.Generator().manual_seed(46_000_000 + 7 * 100 + 3)
    assert torch.equal(z[0], torch.randn(128, 4, 4, generator=g))
    g = torch.Generator().manual_seed(46_000_000)
    assert torch.equal(z[1], torch.randn(128, 4, 4, generator=g))


def test_one_call_noise_is_a_slice_of_a_single_draw():
    src = NoiseSource(PICKAPIC_SEEDS, (128, 2, 2), n_prompts=9, n_per_prompt=1)
    full = torch.randn(9, 128, 2, 2, generator=torch.Generator().manual_seed(0))
    assert torch.equal(src.latents([WorkItem(5, 0), WorkItem(2, 0)]), full[[5, 2]])
    # a chunked draw would differ: the second chunk is not the continuation under another seed
    assert not torch.equal(torch.randn(4, 128, 2, 2, generator=torch.Generator().manual_seed(0)), full[5:9])


def test_limit_runs_a_prefix_with_the_same_images(tmp_path):
    _gen(tmp_path / "full")
    _gen(tmp_path / "lim", "demo-geneval", "--limit", "2")
    lim = _files(tmp_path / "lim")
    assert len(lim) == 8 and all(_files(tmp_path / "full")[k] == v for k, v in lim.items())


def test_rerun_with_nothing_to_do_leaves_the_manifest_untouched(tmp_path):
    """reproduce skips scoring when the scores are newer than the manifest: a no-op re-run must not rewrite it."""
    _gen(tmp_path / "r")
    manifest = tmp_path / "r" / "manifest.json"
    before = (manifest.read_bytes(), manifest.stat().st_mtime_ns)
    _gen(tmp_path / "r")
    assert (manifest.read_bytes(), manifest.stat().st_mtime_ns) == before
    RunStore(tmp_path / "r").image_path(WorkItem(1, 2)).unlink()
    _gen(tmp_path / "r")
    m = json.loads(manifest.read_text())
    assert len(m["resumed"]) == 1 and m["complete"] is True


@pytest.mark.parametrize("flags,message", [
    (["--n-per-prompt", "0"], "--n-per-prompt must be >= 1"),
    (["--limit", "0"], "--limit must be >= 1"),
    (["--batch-size", "0"], "--batch-size must be >= 1"),
    (["--n-per-prompt", "101"], "at most 100"),
])
def test_bad_run_settings_are_refused_before_the_run_exists(tmp_path, capsys, flags, message):
    rc = main(["generate", "--model", "dummy", "--prompts", "demo-geneval", "--out", str(tmp_path / "r"),
               "--resolution", "64", "--rng-device", "cpu", "--no-progress", *flags])
    assert rc == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_cuda_rng_without_cuda_is_a_clear_error(tmp_path, capsys):
    rc = main(["generate", "--model", "dummy", "--prompts", "demo-geneval", "--out", str(tmp_path / "r"),
               "--resolution", "64", "--rng-device", "cuda", "--no-progress"])
    assert rc == 2 and "--rng-device cuda: CUDA is not available" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_user_file_named_like_a_registered_set_gets_the_default_protocol(tmp_path):
    from rdmeval.protocol import DEFAULT, PROTOCOLS, protocol_for

    f = tmp_path / "pickapic-test.jsonl"
    f.write_text('{"prompt": "a cat"}\n')
    assert protocol_for(load_prompt_set(f)) == DEFAULT
    assert protocol_for(load_prompt_set("demo-geneval")) == PROTOCOLS["demo-geneval"]
    g = tmp_path / "mine.jsonl"
    g.write_text('{"tag": "single_object", "include": [{"class": "cat", "count": 1}], "prompt": "a photo of a cat"}\n')
    assert protocol_for(load_prompt_set(g)) == PROTOCOLS["geneval"]
