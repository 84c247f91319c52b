"""The reference preparation end to end on tiny models: teacher renders -> curation -> features -> bundles -> training.

The teacher is the tiny klein fixture, GenEval is scored by the real scorer with a stub detector whose
verdict is a fixed function of the render's bytes (so the curation can be recomputed from the image
files alone), PickScore by the real scorer on the tiny offline CLIP, the battery is ``tiny_battery()`` and
τ a seeded stand-in text encoder.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from rdmeval.distill.battery import tiny_battery
from rdmeval.distill.bundle_build import BundleRecipe
from rdmeval.distill.conditioning import TableEncoder
from rdmeval.distill.curation import RefprepError, read_curated
from rdmeval.distill.refprep import Backends, RefprepOptions, refprep, with_recipe
from rdmeval.distill.tables import Table
from rdmeval.io.atomic import is_temp_name

SIZE = 64
POOL = """
name = "tiny-reference"
description = "demo GenEval prompts (judged) then demo captions (top 2 by PickScore)"

[[source]]
name = "geneval-correct"
kind = "prompt_set"
prompt_set = "demo-geneval"
rows = 12

[[source]]
name = "captions"
kind = "prompt_set"
prompt_set = "demo-captions"
weight = 2
"""
GENEVAL_SEEDS, CAP, CAPTION_SEEDS, PER_RUN = 5, 2, 5, 3
D_TXT = 8


def _good(path: Path) -> bool:
    """The stub judge's verdict on ``renders/<source>/seeds-FFFF/<p>/samples/<s>.png``: a fixed function of the
    prompt and the sample's place in seed order (F + s), so that it is the same on every machine. Per demo
    GenEval prompt over 5 seeds it gives 1, 2, 3, 3, 1, 1 correct renders: the cap of 2 and the filter both act."""
    path = Path(path)
    sample = int(path.parents[2].name.removeprefix("seeds-")) + int(path.stem)
    return hashlib.sha256(f"judge{int(path.parents[1].name)}/{sample}".encode()).digest()[0] < 128


class StubDetector:
    """Detections that satisfy the prompt when the render is "good", and miss its last object otherwise."""

    identity = {"detector": "refprep-stub", "version": "1"}

    def detect(self, paths, batch_size=8):
        from rdmeval.scorers.geneval.detections import Detection
        from rdmeval.scorers.geneval.detector import DetectedImage

        def det(x: int, y: int) -> Detection:
            mask = np.zeros((SIZE, SIZE), dtype=bool)
            mask[y:y + 14, x:x + 14] = True
            return Detection(np.array([x, y, x + 14, y + 14, 0.95], dtype=np.float32), mask)

        for p in map(Path, paths):
            md = json.loads((p.parents[1] / "metadata.jsonl").read_text())
            clauses = md["include"] if _good(p) else md["include"][:-1]
            dets: dict = {}
            for i, clause in enumerate(clauses):
                for k in range(clause["count"]):
                    x, y = (2, 30) if "position" in clause else (4 + 18 * k, 8 + 24 * i)
                    dets.setdefault(clause["class"], []).append(det(x, y))
            if any("position" in c for c in clauses):
                dets[md["include"][0]["class"]] = [det(40, 30)]
            yield DetectedImage(dets, SIZE, SIZE)


class StubColors:
    identity = {"classifier": "refprep-stub"}

    def predict(self, requests, opts=None):
        out = []
        for r in requests:
            md = json.loads((Path(r.image).parents[1] / "metadata.jsonl").read_text())
            want = next(c.get("color") for c in md["include"] if c["class"] == r.class_name)
            out.append(want if _good(Path(r.image)) else "black")
        return out


def _tau(prompts) -> torch.Tensor:
    """A seeded stand-in for the SigLIP2 text tower: unit rows, a function of the prompt alone."""
    rows = []
    for p in prompts:
        seed = int.from_bytes(hashlib.sha256(p.encode()).digest()[:4], "little")
        rows.append(torch.randn(D_TXT, generator=torch.Generator().manual_seed(seed)))
    return torch.nn.functional.normalize(torch.stack(rows), dim=1)


TAU = TableEncoder(_tau, {"kind": "tau", "model": "stand-in"}, "float32", batch_size=4, shard_rows=8)
BATTERY = tiny_battery()


def _backends(tiny_klein, tiny_clip) -> Backends:
    from rdmeval.generators.registry import GeneratorOptions, build_generator
    from rdmeval.scorers.geneval.scorer import GenevalRunScorer
    from rdmeval.scorers.pickscore.model import PickScorer
    from rdmeval.scorers.pickscore.scorer import PickScoreRunScorer

    def scorer(name: str):
        if name == "geneval":
            return GenevalRunScorer(StubDetector(), StubColors())
        return PickScoreRunScorer(PickScorer.from_pretrained(str(tiny_clip), str(tiny_clip), device="cpu", batch_size=8))

    return Backends(
        generator=lambda: build_generator("teacher", GeneratorOptions(base=str(tiny_klein["base"]), device="cpu", precision="fp32",
                                                                      height=SIZE, width=SIZE)),
        scorer=scorer, encoder=lambda spec, device: BATTERY[spec.name], text=lambda: TAU)


OPTIONS = RefprepOptions(
    geneval_seeds=GENEVAL_SEEDS, geneval_cap=CAP, caption_seeds=CAPTION_SEEDS, seeds_per_run=PER_RUN, precision="fp32",
    resolution=SIZE, device="cpu", rng_device="cpu", render_batch_size=8, encoders=tuple(e.spec for e in BATTERY.values()),
    feature_batch_size=4, feature_shard_rows=8, image_workers=2, bundle_device="cpu", progress=False,
    recipe=BundleRecipe(num_landmarks=6, median_n=100, fit_n=100, kmeans_iters=3, krr_n=100, block_rows=8),
)


@pytest.fixture(scope="module")
def curated_root(tmp_path_factory, tiny_klein, tiny_clip) -> tuple[Path, Path, Backends]:
    """Renders, scores and curation of the tiny pool (made once; tests copy it)."""
    root = tmp_path_factory.mktemp("refprep")
    spec = root / "tiny-reference.toml"
    spec.write_text(POOL)
    backends = _backends(tiny_klein, tiny_clip)
    torch.set_num_threads(1)
    refprep(spec, root / "base", OPTIONS, backends=backends, stop_after="curate")
    return root / "base", spec, backends


def test_curation_keeps_the_judged_correct_and_the_pickscore_top(curated_root) -> None:
    out, _, _ = curated_root
    curated = read_curated(out)
    rows = curated.rows
    demo = [json.loads(line) for line in (Path(__file__).parents[1] / "prompts" / "demo_geneval.jsonl").read_text().splitlines()]
    # GenEval block, recomputed from the image files: runs of 3 then 2 seeds, the first CAP good renders per prompt
    runs = [("seeds-0000", 0, 3), ("seeds-0003", 3, 2)]
    expected = []
    for p, record in enumerate(demo):
        good = [(f"renders/geneval-correct/{run}/{p:05d}/samples/{s:04d}.png", first + s)
                for run, first, n in runs for s in range(n)
                if _good(out / f"renders/geneval-correct/{run}/{p:05d}/samples/{s:04d}.png")]
        expected += [(image, record["prompt"], sample) for image, sample in good[:CAP]]
    geneval = [r for r in rows if r["source"] == "geneval-correct"]
    assert [(r["image"], r["prompt"], r["sample"]) for r in geneval] == expected
    assert [sum(r["prompt_index"] == p for r in geneval) for p in range(len(demo))] == [1, 2, 2, 2, 1, 1]
    assert rows[:len(geneval)] == geneval  # [GenEval | captions]
    # seeds: the runs' own recorded policy (per-sample: base + 100 p + s), all distinct across the reference
    for r in geneval:
        run = r["image"].split("/")[2]
        base = json.loads((out / "renders/geneval-correct" / run / "manifest.json").read_text())["request"]["seed_policy"]["base"]
        assert r["seed"] == base + 100 * r["prompt_index"] + (r["sample"] - int(run[-4:]))
    seeds = [r["seed"] for r in rows]
    assert len(set(seeds)) == len(seeds) and min(seeds) >= 1_000_000_000  # away from GenEval's 46,000,000 + ...
    # captions: each caption's two best renders by the scorer's own per-image PickScore, best first
    captions = [r for r in rows if r["source"] == "captions"]
    scores = pd.concat([pd.read_parquet(out / f"renders/captions/{run}/scores/pickscore/per_image.parquet").assign(
        image=lambda f, run=run: f"renders/captions/{run}/" + f.image) for run, _, _ in runs])
    assert len(scores) == 4 * CAPTION_SEEDS and len(captions) == 4 * 2
    for p in range(4):
        mine = [r for r in captions if r["prompt_index"] == p]
        best = scores[scores.prompt_index == p].sort_values("pickscore", ascending=False).head(2)
        assert [r["image"] for r in mine] == list(best["image"])
        assert [r["score"] for r in mine] == list(best["pickscore"])
    # the manifest records each run manifest's sha256 and the rule
    for run, record in curated.meta["runs"].items():
        assert record["manifest_sha256"] == hashlib.sha256((out / run / "manifest.json").read_bytes()).hexdigest()
    assert [b["kind"] for b in curated.meta["rules"]] == ["geneval-correct", "pickscore-top"]
    assert curated.meta["blocks"][0]["spec_rows"] == 12 and curated.meta["blocks"][1]["spec_rows"] == 8


class _Injected(RuntimeError):
    pass


def _stop_at(stage: str, item: str, at: int):
    def progress(s: str, i: str, done: int, total: int) -> None:
        if (s, i) == (stage, item) and done >= at:
            raise _Injected(f"stopped at {s} {i} {done}/{total}")

    return progress


def _files(root: Path) -> dict[str, bytes]:
    from safetensors import safe_open

    out = {}
    for path in sorted(p for folder in ("features", "tau", "bundles") for p in (root / folder).rglob("*") if p.is_file()):
        if path.suffix == ".safetensors":  # tensors bit for bit and the header (safetensors orders header keys freely)
            with safe_open(str(path), framework="pt", device="cpu") as fh:
                out[str(path.relative_to(root))] = json.dumps([fh.metadata(), {k: fh.get_tensor(k).numpy().tobytes().hex()
                                                                               for k in fh.keys()}], sort_keys=True).encode()
        else:
            out[str(path.relative_to(root))] = path.read_bytes()
    return out


_KILLED = """
import os, signal, sys
sys.path.insert(0, {tests!r})
import test_distill_refprep as t
from rdmeval.distill.refprep import Backends, refprep

calls = []


def encoder(spec, device):
    def run(x):
        calls.append(spec.name)
        if calls.count("tiny_attn") == 4:  # shards of 8 rows, batches of 4: shard 2, batch 2
            os.kill(os.getpid(), signal.SIGKILL)
        return t.BATTERY[spec.name](x)
    return run


def unused(*args):
    raise AssertionError("the renders are made and scored: no generator or scorer is built")


refprep({spec!r}, {out!r}, t.OPTIONS, backends=Backends(unused, unused, encoder, lambda: t.TAU))
"""


def test_an_interrupted_preparation_resumes_to_the_same_files_and_the_trainer_trains(curated_root, tiny_klein, tmp_path) -> None:
    from rdmeval.distill.reference import load_bundle, read_bundle_provenance

    base, spec, backends = curated_root
    whole, stopped = tmp_path / "whole", tmp_path / "stopped"
    shutil.copytree(base, whole)
    shutil.copytree(base, stopped)
    refprep(spec, whole, OPTIONS, backends=backends)
    with pytest.raises(_Injected):  # during the second encoder's features, after its first shard
        refprep(spec, stopped, OPTIONS, backends=backends, on_progress=_stop_at("features", "tiny_mean", 1))
    assert not (stopped / "features/tiny_mean/table.json").read_text().count('"complete": true')
    with pytest.raises(_Injected):  # during a bundle's μ̄ pass, after its first block
        refprep(spec, stopped, OPTIONS, backends=backends, on_progress=_stop_at("bundles", "tiny_attn/mu", 8))
    assert not (stopped / "bundles/tiny_attn.safetensors").exists()
    result = refprep(spec, stopped, OPTIONS, backends=backends)
    assert _files(stopped) == _files(whole)
    # a real kill -9 in the middle of a shard (the third encoder's second shard, its first batch written)
    killed = tmp_path / "killed"
    shutil.copytree(base, killed)
    script = tmp_path / "kill.py"
    script.write_text(_KILLED.format(tests=str(Path(__file__).parent), spec=str(spec), out=str(killed)))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "RDMEVAL_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env)
    assert run.returncode == -9, run.stderr
    assert [p.name for p in (killed / "features/tiny_attn").glob("shard-*.npy")] == ["shard-00000.npy"]
    assert any(is_temp_name(p.name) for p in (killed / "features/tiny_attn").iterdir())  # the half-written shard
    refprep(spec, killed, OPTIONS, backends=backends)
    assert _files(killed) == _files(whole)

    curated = read_curated(whole)
    n = len(curated)
    # a feature row is the encoder on the PNG as a [0, 1] tensor (one image alone vs a batch of 4: same ops)
    tau = Table(whole / "tau")
    assert torch.equal(tau[torch.arange(n)], _tau(curated.prompts))
    for name, encoder in BATTERY.items():
        table = Table(whole / "features" / name)
        assert len(table) == n and table.row_shape == (encoder.spec.dim,)
        i = n - 1
        image = torch.from_numpy(np.array(Image.open(whole / curated.rows[i]["image"]))).permute(2, 0, 1)[None].float() / 255
        with torch.no_grad():
            torch.testing.assert_close(table[[i]], encoder(image), rtol=1e-5, atol=1e-6)
        bundle = load_bundle(result.bundles[name])
        assert bundle.Z.shape == (6, encoder.spec.dim + D_TXT) and bundle.d_img == encoder.spec.dim and bundle.d_txt == D_TXT
        prov = read_bundle_provenance(result.bundles[name])
        assert prov["encoder"]["name"] == name and prov["pool"]["rows"] == n and prov["krr_rows"] == "seeded sample"
        assert prov["renders"] == {k: v["manifest_sha256"] for k, v in curated.meta["runs"].items()}
        assert prov["curation"] == curated.meta["rules"] and prov["seeds"] == curated.meta["seeds"]

    _train_flux_tiny(tmp_path / "generator-pool", backends, str(tiny_klein["base"]), result.bundles["tiny_cls"].parent,
                     sorted(set(curated.prompts)))


def _train_flux_tiny(folder: Path, backends: Backends, base: str, bundles: Path, prompts: list[str]) -> None:
    """The FLUX task (``flux_tiny``: the tiny klein DiT as student, the tiny battery) trains on the prepared bundles."""
    from rdmeval.distill.config import get_config
    from rdmeval.distill.flux_task import FluxAssets, build_flux_task
    from rdmeval.distill.tables import write_table
    from rdmeval.distill.trainer import Trainer

    teacher = backends.generator()  # the generator-side tables: ctx from the fixture's Qwen3, τ from the stand-in
    write_table(folder / "ctx", prompts, teacher.prompts, shard_rows=8, batch_size=8, dtype="float32")
    write_table(folder / "tau", prompts, _tau, shard_rows=8, batch_size=8, dtype="float32")
    config = replace(get_config("flux_tiny"), steps=2)
    assert config.encoders == tuple(BATTERY)  # the same stand-ins (names and seed) that encoded the reference
    task = build_flux_task(config, FluxAssets(base, folder / "ctx", folder / "tau", bundles), device="cpu")
    param = next(p for p in task.student.parameters() if p.requires_grad)
    before = param.detach().clone()
    trainer = Trainer(config, task)
    steps = [trainer.train_step() for _ in range(2)]
    assert all(np.isfinite(s.loss) and not s.skipped and s.grad_norm > 0 for s in steps)
    assert set(steps[0].raw) == set(BATTERY)
    assert not torch.equal(param.detach(), before)


def test_with_every_row_a_landmark_the_bundle_gives_the_exact_mmd(curated_root, tmp_path) -> None:
    from rdmeval.distill.kernels import cross_mean, gamma_from_sigma, self_mean, weighted_cross_mean
    from rdmeval.distill.reference import load_bundle

    base, spec, backends = curated_root
    out = tmp_path / "all"
    shutil.copytree(base, out)
    n = len(read_curated(out))
    options = with_recipe(OPTIONS, num_landmarks=n, fit_n=n, krr_n=n, median_n=n)
    options = replace(options, encoders=(BATTERY["tiny_cls"].spec,))
    result = refprep(spec, out, options, backends=backends)
    bundle = load_bundle(result.bundles["tiny_cls"])
    joint = torch.cat([Table(out / "features/tiny_cls")[torch.arange(n)], bundle.beta * Table(out / "tau")[torch.arange(n)]], 1).double()
    gamma = gamma_from_sigma(bundle.sigma)
    g = joint[: n // 2] + 0.01 * torch.randn(n // 2, joint.shape[1], generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    attraction = float(weighted_cross_mean(g, bundle.Z.double(), bundle.alpha.double(), gamma))
    # α = (K + εI)⁻¹ K·1/N: within ε·‖(K + εI)⁻¹‖ (relative) of the exact cross mean; α and Z are stored in fp32
    assert attraction == pytest.approx(float(cross_mean(g, joint, gamma)), rel=1e-4)
    assert bundle.k_rr == pytest.approx(float(self_mean(joint, gamma)), rel=1e-5)  # k_rr over every row
    mmd = float(self_mean(g, gamma)) - 2 * attraction + bundle.k_rr
    exact = float(self_mean(g, gamma)) - 2 * float(cross_mean(g, joint, gamma)) + float(self_mean(joint, gamma))
    assert mmd == pytest.approx(exact, rel=1e-3, abs=1e-6)


def test_a_resume_with_other_seeds_is_refused(curated_root, tmp_path) -> None:
    base, spec, backends = curated_root
    out = tmp_path / "other"
    shutil.copytree(base, out)
    with pytest.raises(RefprepError, match="other blocks"):
        refprep(spec, out, replace(OPTIONS, geneval_seeds=6), backends=backends, stop_after="renders")


def test_bad_flags_name_the_flag(tmp_path, capsys) -> None:
    from rdmeval.distill.refprep_cli import main

    spec = tmp_path / "p.toml"
    spec.write_text(POOL.replace("weight = 2", "weight = 9"))
    assert main(["--pool", str(spec), "--out", str(tmp_path / "o"), "--caption-seeds", "4", "--encoders", "inception"]) == 2
    assert "keeps the top 9 renders of each caption but --caption-seeds is 4" in capsys.readouterr().err
    assert main(["--pool", str(spec), "--out", str(tmp_path / "o"), "--encoders", "inception,nope"]) == 2
    assert "unknown encoder 'nope'" in capsys.readouterr().err
    assert main(["--pool", str(spec), "--out", str(tmp_path / "o"), "--geneval-seeds", "0"]) == 2
    assert "--geneval-seeds must be >= 1" in capsys.readouterr().err
    assert main(["--pool", str(spec), "--out", str(tmp_path / "o"), "--landmarks", "0"]) == 2
    assert "--landmarks must be >= 1" in capsys.readouterr().err  # was "BundleRecipe.num_landmarks must be >= 1"
    assert not (tmp_path / "o").exists()  # refused before anything is written


def test_the_released_pool_plans_two_geneval_runs_and_the_coco_top_3(shared_data, tmp_path) -> None:
    """rdm-s180-reference: GenEval 553 prompts x 200 seeds in runs of 100, COCO first captions x 24, top 3."""
    from rdmeval.contamination.pool_spec import load_pool_spec
    from rdmeval.distill.curation import plan_blocks

    coco = tmp_path / "captions_train2014.json"  # three images, first captions in annotation order, sorted by image id
    coco.write_text(json.dumps({"annotations": [{"image_id": 9, "id": 1, "caption": "a dog"}, {"image_id": 2, "id": 2, "caption": "a cat"},
                                                {"image_id": 9, "id": 3, "caption": "a dog again"}, {"image_id": 5, "id": 4, "caption": "a bus"}]}))
    spec = load_pool_spec("rdm-s180-reference", [f"geneval-correct.path={shared_data / 'geneval'}", f"coco-train2014.path={coco}",
                                                 "coco-train2014.expected_rows=3"])
    geneval, captions = plan_blocks(spec)
    assert (geneval.kind, len(geneval.prompts), geneval.seeds, geneval.keep, geneval.spec_rows) == ("geneval-correct", 553, 200, 100, 53_800)
    assert [(r.name, r.first, r.n_per_prompt, r.policy.base) for r in geneval.runs()] == [
        ("seeds-0000", 0, 100, 1_000_000_000), ("seeds-0100", 100, 100, 1_000_000_000 + 55_300)]
    assert geneval.runs()[1].seed(552, 99) == 1_000_000_000 + 55_300 + 55_299  # the last GenEval seed, below COCO's first
    assert (captions.kind, captions.prompts.texts, captions.seeds, captions.keep) == ("pickscore-top", ["a cat", "a bus", "a dog"], 24, 3)
    assert [(r.name, r.n_per_prompt, r.policy.base) for r in captions.runs()] == [("seeds-0000", 24, 1_100_000_000)]
    assert captions.spec_rows == 9
