"""``rdmeval sweep``: checkpoint names, the in-place weight swap against a fresh load, the best-step
statistics against independent computations, the by-step table, and the sweep end to end on three tiny
student checkpoints (one pipeline load, resumable), its report in a headless browser."""

from __future__ import annotations

import base64
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

import _runroot
from rdmeval.cli.main import main
from rdmeval.errors import RdmevalError
from rdmeval.results.by_step import SweepRecord, read_sweep_record, save_sweep_record
from rdmeval.results.selection import StepScores, geneval_step_scores, pickscore_step_scores, select
from rdmeval.results.steps import step_label
from rdmeval.results.table import ResultsTable, build_table, save_table
from rdmeval.sweep.checkpoints import CheckpointError, find_checkpoints, parse_step

pytestmark = pytest.mark.usefixtures("one_torch_thread")

RES = 64

# ----------------------------------------------------------------------------- names


@pytest.mark.parametrize(("name", "step"), [
    ("step_0000020", 20), ("step_000180.pth", 180), ("s180.pth", 180), ("S180.PTH", 180), ("step-40.safetensors", 40),
    ("step60", 60), ("checkpoint-200", 200), ("checkpoint_7.pt", 7), ("step_0000000", 0),
    ("final.pth", None), ("model.safetensors", None), ("step_.pth", None), ("s180.ema.pth", None), ("steps180", None),
    ("losses.txt", None), ("s-180.pth", None),
])
def test_step_names(name, step):
    assert parse_step(name) == step


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_a_folder_of_milestones_leaves_out_what_has_no_step(tmp_path):
    train = tmp_path / "train"
    _touch(train / "step_0000040")  # a milestone file without a suffix
    _touch(train / "step_0000020" / "model.safetensors")  # a milestone folder
    _touch(train / "checkpoint.pt")  # a weight file without a step
    _touch(train / "losses.txt")
    series = find_checkpoints(str(train))
    assert [(c.step, c.label, c.path.name) for c in series.checkpoints] == [
        (20, "step_0000020", "model.safetensors"), (40, "step_0000040", "step_0000040")]
    assert [p.name for p in series.left_out] == ["checkpoint.pt"]
    # one checkpoint folder, or one file, is a series of one
    assert [c.step for c in find_checkpoints(str(train / "step_0000020")).checkpoints] == [20]
    assert [c.step for c in find_checkpoints(str(train / "step_0000040")).checkpoints] == [40]


def test_the_trainers_run_folder_is_a_series_its_digests_are_not_checkpoints(tmp_path):
    run = tmp_path / "run"  # what rdmeval train --out writes
    for step in (20, 40):
        _touch(run / f"step_{step:07d}.pt")
        _touch(run / f"step_{step:07d}.pt.sha256")
    for name in ("losses.txt", "metrics.jsonl", "config.json"):
        _touch(run / name)
    for spec in (run, run / "step_*", run / "step_*.pt"):
        series = find_checkpoints(str(spec))
        assert [(c.step, c.path.name) for c in series.checkpoints] == [(20, "step_0000020.pt"), (40, "step_0000040.pt")]
        assert series.left_out == []
    # a digest file alone, without its checkpoint beside it, is not silently dropped
    (run / "step_0000040.pt").unlink()
    with pytest.raises(CheckpointError, match=r"step_0000040\.pt\.sha256 is the sha256 record of step_0000040\.pt, which is "
                       r"not there; move the record away too, or pass a glob that matches the checkpoints only \(e\.g\. '.*step_\*\.pt'\)"):
        find_checkpoints(str(run / "step_*"))
    assert [c.step for c in find_checkpoints(str(run / "step_*.pt")).checkpoints] == [20]


def test_globs_need_a_step_in_every_name(tmp_path):
    for name in ("s180.pth", "step_000200.pth", "s20.pth"):
        _touch(tmp_path / "ckpts" / name)
    assert [c.step for c in find_checkpoints(str(tmp_path / "ckpts" / "*.pth")).checkpoints] == [20, 180, 200]
    for step in (100, 300):
        _touch(tmp_path / "exports" / f"step_{step:07d}" / "model.safetensors")
    found = find_checkpoints(str(tmp_path / "exports" / "*" / "model.safetensors")).checkpoints
    assert [(c.step, c.path.parent.name) for c in found] == [(100, "step_0000100"), (300, "step_0000300")]

    _touch(tmp_path / "ckpts" / "final.pth")
    with pytest.raises(CheckpointError, match=r"final\.pth from its name.*step_0000020.*s180\.pth"):
        find_checkpoints(str(tmp_path / "ckpts" / "*.pth"))
    (tmp_path / "ckpts" / "step_0001000.pth").symlink_to("final.pth")  # what the error advises: the link names the step
    found = find_checkpoints(str(tmp_path / "ckpts" / "*.pth")).checkpoints
    assert [(c.step, c.source.name, c.path.name) for c in found][-1] == (1000, "step_0001000.pth", "final.pth")
    assert [c.step for c in found] == [20, 180, 200, 1000]
    (tmp_path / "ckpts" / "step_0001000.pth").unlink()
    (tmp_path / "ckpts" / "final.pth").unlink()
    _touch(tmp_path / "ckpts" / "step_0000180.pth")
    with pytest.raises(CheckpointError, match=r"two checkpoints of step 180.*a narrower glob"):
        find_checkpoints(str(tmp_path / "ckpts" / "*.pth"))
    with pytest.raises(CheckpointError, match=r"two checkpoints of step 180.*move one of them out of the folder"):
        find_checkpoints(str(tmp_path / "ckpts"))  # a folder, not a glob: no glob to narrow
    with pytest.raises(CheckpointError, match=r"no file matches"):
        find_checkpoints(str(tmp_path / "nothing" / "*.pth"))
    _touch(tmp_path / "empty" / "notes.txt")
    with pytest.raises(CheckpointError, match=r"no checkpoint with a step name in this folder \(it holds notes\.txt\)"):
        find_checkpoints(str(tmp_path / "empty"))
    (tmp_path / "two" / "step_0000005").mkdir(parents=True)
    for name in ("model.safetensors", "checkpoint.pt"):
        _touch(tmp_path / "two" / "step_0000005" / name)
    with pytest.raises(CheckpointError, match=r"holds 2 weight files"):
        find_checkpoints(str(tmp_path / "two"))


def test_cli_refuses_unnamed_checkpoints_before_loading_anything(tmp_path, capsys):
    _touch(tmp_path / "ckpts" / "final.pth")
    code = main(["sweep", "--weights", str(tmp_path / "ckpts" / "*.pth"), "--out", str(tmp_path / "out"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "cannot tell the training step" in err and "s180.pth" in err
    assert not (tmp_path / "out").exists()
    _touch(tmp_path / "ok" / "s20.pth")
    assert main(["sweep", "--weights", str(tmp_path / "ok"), "--out", str(tmp_path / "o"), "--subset", "gen-eval"]) == 2
    assert "did you mean 'geneval'" in capsys.readouterr().err
    missing = tmp_path / "no-base"
    assert main(["sweep", "--weights", str(tmp_path / "ok"), "--out", str(tmp_path / "o"), "--base", str(missing), "--check"]) == 2
    err = capsys.readouterr().err
    assert "inputs missing (nothing was loaded or generated)" in err and f"no such folder {missing}" in err
    assert main(["sweep", "--smoke", "--out", str(tmp_path / "o"), "--base", str(missing), "--check"]) == 2
    assert "drop --base" in capsys.readouterr().err and not (tmp_path / "o").exists()  # not silently the tiny klein


# ----------------------------------------------------------------------------- the weight swap


@pytest.fixture(scope="module")
def sweep_ckpts(tiny_klein, tmp_path_factory) -> dict[int, Path]:
    from rdmeval.fixtures.tiny_sweep import build_tiny_sweep

    return build_tiny_sweep(tiny_klein, tmp_path_factory.mktemp("tiny-sweep"))


def _student(tiny_klein, weights, precision="fp32", ctx_len=48):
    from rdmeval.generators.klein import KleinGenerator

    return KleinGenerator(preset="student", base=str(tiny_klein["base"]), steps=1, weights=str(weights), ctx_len=ctx_len,
                          precision=precision, height=RES, width=RES, device="cpu")


def _weights_of(gen) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in gen.pipe.transformer.state_dict().items()}


def _same_tensors(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_swapped_weights_equal_a_fresh_load(tiny_klein, sweep_ckpts, precision):
    """bf16 safetensors (BFL names) -> fp32 .pth (diffusers names) -> milestone file (BFL, prefixed): after each swap
    the DiT holds exactly the tensors of a generator built on that file, and makes the same images."""
    from rdmeval.sweep.checkpoints import find_checkpoints

    paths = {c.step: c.path for c in find_checkpoints(str(sweep_ckpts[20].parent)).checkpoints}
    gen = _student(tiny_klein, paths[100], precision)
    prompts = ["a photo of a cat", "two blue dogs"]
    latents = torch.randn(2, *gen.latent_shape, generator=torch.Generator().manual_seed(3))
    before = gen.generate(prompts, latents)
    for step in (180, 20):
        gen.swap_weights(paths[step])
        fresh = _student(tiny_klein, paths[step], precision)
        assert _same_tensors(_weights_of(gen), _weights_of(fresh))
        assert gen.describe() == fresh.describe()  # weights path, sha256, naming, dtypes
        images = gen.generate(prompts, latents)
        assert np.array_equal(images, fresh.generate(prompts, latents))  # same weights, same code: bit for bit
        assert not np.array_equal(images, before)  # the swap changed the model
        before = images


def test_a_bad_checkpoint_leaves_the_loaded_one(tiny_klein, sweep_ckpts, tmp_path):
    gen = _student(tiny_klein, sweep_ckpts[180])
    weights, described = _weights_of(gen), gen.describe()
    sd = torch.load(sweep_ckpts[180], weights_only=True)["model"]
    sd.pop(sorted(sd)[0])
    torch.save(sd, tmp_path / "s200.pth")
    with pytest.raises(RdmevalError, match=r"missing keys: 1"):
        gen.swap_weights(tmp_path / "s200.pth")
    assert _same_tensors(_weights_of(gen), weights) and gen.describe() == described


def test_a_checkpoint_that_differs_from_its_recorded_sha256_is_refused_before_any_image(tiny_klein, sweep_ckpts, tmp_path):
    """The trainer writes step_XXXXXXX.pt.sha256 beside each milestone: evaluating one (generate, sweep) checks it
    when the run's record is made, before any image; a damaged tensor byte would otherwise load without an error."""
    import hashlib
    import shutil

    from rdmeval.generators.weights import WeightsError

    ckpt = shutil.copy(sweep_ckpts[180], tmp_path / "step_0000180.pt")
    record = tmp_path / "step_0000180.pt.sha256"
    good = hashlib.sha256(ckpt.read_bytes()).hexdigest()
    record.write_text(f"{good.upper()}  step_0000180.pt\n")  # sha256sum accepts either case
    assert _student(tiny_klein, ckpt).describe()["weights"]["sha256"] == good
    record.write_text(f"{'0' * 64}  step_0000180.pt\n")
    gen = _student(tiny_klein, ckpt)
    with pytest.raises(WeightsError, match=r"differs from 000000000000\.\.\. recorded in step_0000180\.pt\.sha256"):
        gen.describe()
    out = tmp_path / "run"
    assert main(["generate", "--model", "student", "--base", str(tiny_klein["base"]), "--weights", str(ckpt),
                 "--prompts", "demo-geneval", "--out", str(out), "--resolution", str(RES), "--rng-device", "cpu",
                 "--no-progress", "--limit", "1"]) == 2
    assert not list(out.rglob("*.png"))


def test_ctx_len_is_set_in_place(tiny_klein, sweep_ckpts):
    gen = _student(tiny_klein, sweep_ckpts[180], ctx_len=48)
    gen.set_ctx_len(232)
    fresh = _student(tiny_klein, sweep_ckpts[180], ctx_len=232)
    latents = torch.randn(1, *gen.latent_shape, generator=torch.Generator().manual_seed(5))
    assert gen.describe() == fresh.describe()
    assert np.array_equal(gen.generate(["a red bus"], latents), fresh.generate(["a red bus"], latents))


# ----------------------------------------------------------------------------- the best-step statistics


def _geneval_images(rng: np.random.Generator, quality: float, n_per_task: int = 30) -> pd.DataFrame:
    tasks = ("single_object", "two_object", "counting", "colors", "position", "color_attr")
    rows = []
    for t, tag in enumerate(tasks):
        for i in range(n_per_task):
            idx = t * n_per_task + i
            for j in range(4):
                rows.append({"prompt_index": idx, "sample_index": j, "tag": tag, "metadata": f"p{idx}", "prompt": f"p{idx}",
                             "correct": bool(rng.random() < quality * (1 - 0.1 * t))})
    return pd.DataFrame(rows)


def test_geneval_step_draws_are_the_scorers_bootstrap_with_shared_prompts():
    """Every step's replicates equal the GenEval scorer's own bootstrap (independent code) with the same seed:
    the resampled prompts are the same for every step (paired)."""
    from rdmeval.scorers.geneval.summary import bootstrap_draws, summarize

    rng = np.random.default_rng(1)
    images = {20: _geneval_images(rng, 0.5), 100: _geneval_images(rng, 0.7), 180: _geneval_images(rng, 0.65)}
    scores = geneval_step_scores(images, n_resamples=300, seed=7)
    for k, step in enumerate(sorted(images)):
        theirs = bootstrap_draws(images[step], n_resamples=300, seed=7)
        summary = summarize(images[step])
        # the same fractions summed in the same order: equal up to the last bit of a 6-term mean
        np.testing.assert_allclose(scores["overall"].draws[k], theirs["overall"], rtol=0, atol=1e-15)
        assert scores["overall"].observed[k] == pytest.approx(summary.overall, abs=1e-15)
        for task in summary.tasks:
            np.testing.assert_array_equal(scores[task.tag].draws[k], theirs[task.tag])
            assert scores[task.tag].observed[k] == task.accuracy


def test_selection_against_a_loop_over_resamples():
    rng = np.random.default_rng(2)
    observed = rng.normal(size=5)
    draws = observed[:, None] + rng.normal(scale=0.3, size=(5, 400))
    steps = (20, 40, 60, 80, 100)
    s = select(StepScores(steps, observed, draws, 50), declared_step=100, level=0.9)
    best = max(range(5), key=lambda k: (observed[k], -k))
    maxima = [max(draws[k, b] for k in range(5)) for b in range(400)]
    diffs = sorted(draws[best, b] - draws[4, b] for b in range(400))
    assert s.best_step == steps[best] and s.best_score == observed[best] and s.declared_score == observed[4]
    assert s.gain == pytest.approx(observed[best] - observed[4], abs=1e-15)
    assert s.optimism == pytest.approx(sum(maxima) / 400 - max(observed), abs=1e-12)
    assert s.p_best == sum(max(range(5), key=lambda k: (draws[k, b], -k)) == best for b in range(400)) / 400
    assert s.gain_ci == pytest.approx(tuple(np.quantile(diffs, [0.05, 0.95])), abs=1e-15)
    with pytest.raises(RdmevalError, match="declared step 7 is not among"):
        select(StepScores(steps, observed, draws, 50), declared_step=7)


def test_equal_checkpoints_show_no_gain_and_the_expected_optimism():
    """k checkpoints of the same quality: the best-of-k score is inflated by about (sqrt 2 - 1) E[max of k
    normals] sd / sqrt(n) on average (the bootstrap max is over data that already hold the noise of the max);
    and k identical checkpoints give no gain, no optimism beyond the bootstrap's own bias, and p_best 1."""
    k, n, reps = 4, 200, 300
    rng = np.random.default_rng(3)
    estimates = []
    for r in range(reps):
        values = pd.DataFrame(rng.normal(size=(n, k)))
        per_prompt = {s: values[s] for s in range(k)}
        estimates.append(select(pickscore_step_scores(per_prompt, n_resamples=200, seed=r), declared_step=k - 1).optimism)
    e_max_4 = 1.0293753730  # E[max of 4 standard normals]
    expected = (math.sqrt(2) - 1) * e_max_4 / math.sqrt(n)
    assert np.mean(estimates) == pytest.approx(expected, rel=0.1)  # 300 data sets: the mean's error is ~3%

    same = pd.Series(rng.normal(size=n))
    s = select(pickscore_step_scores({20: same, 40: same.copy(), 60: same.copy()}, n_resamples=500), declared_step=60)
    assert (s.best_step, s.gain, s.gain_ci, s.p_best) == (20, 0.0, (0.0, 0.0), 1.0)
    assert abs(s.optimism) < 3 * same.std() / math.sqrt(n) / math.sqrt(500)  # the bootstrap mean's own noise


def test_steps_must_share_prompts():
    rng = np.random.default_rng(4)
    a, b = _geneval_images(rng, 0.5), _geneval_images(rng, 0.5)
    with pytest.raises(RdmevalError, match="judged different GenEval prompts"):
        geneval_step_scores({1: a, 2: b[b["prompt_index"] != 3]})
    with pytest.raises(RdmevalError, match="scored different prompts"):
        pickscore_step_scores({1: pd.Series([1.0, 2.0], index=[0, 1]), 2: pd.Series([1.0], index=[0])})


# ----------------------------------------------------------------------------- the by-step table of a sweep root

#: Stand-in quality per checkpoint (the stub detector's success rate): step 100 is the best.
QUALITY = {step_label(20): 0.35, step_label(100): 0.8, step_label(180): 0.6}


@pytest.fixture(scope="module")
def stub_sweep_root(tmp_path_factory) -> Path:
    """A sweep root made by the real pipeline with stand-ins: the dummy generator on the demo sets, GenEval
    judged with the stub detector of tests/_runroot.py at a per-step quality, PickScore with a tiny CLIP."""
    from rdmeval.fixtures.tiny_clip import build_tiny_clip
    from rdmeval.scorers.geneval.score import score_geneval_run
    from rdmeval.scorers.pickscore.model import PickScorer
    from rdmeval.scorers.pickscore.score import score_pickscore_run

    root = tmp_path_factory.mktemp("stub-sweep")
    tiny = build_tiny_clip(root / "tiny-clip")
    scorer = PickScorer.from_pretrained(str(tiny), str(tiny), device="cpu", batch_size=8)
    with pytest.MonkeyPatch.context() as mp:
        for label, q in QUALITY.items():
            mp.setitem(_runroot.QUALITY, label, q)
        for i, label in enumerate(QUALITY):
            for bench, prompts, policy in (("geneval", "demo-geneval", "per-sample:46000000"),
                                           ("captions", "demo-captions", f"one-call:{i}")):
                out = root / "runs" / label / bench
                assert main(["generate", "--model", "dummy", "--prompts", prompts, "--out", str(out), "--n-per-prompt", "4",
                             "--resolution", str(RES), "--rng-device", "cpu", "--no-progress", "--seed-policy", policy]) == 0
                if bench == "geneval":
                    score_geneval_run(out, detector=_runroot.StubDetector(), color=_runroot.StubColors(), progress=False,
                                      n_resamples=200)
                else:
                    score_pickscore_run(out, scorer, progress=False, n_resamples=200)
    save_sweep_record(root, SweepRecord({20: "/ckpts/s20.pth", 100: "/ckpts/s100.pth", 180: "/ckpts/s180.pth"},
                                        declared_step=180, benchmarks=["geneval", "captions"]))
    return root


def test_by_step_sections_match_the_per_image_files(stub_sweep_root):
    table = build_table(stub_sweep_root, n_resamples=300)
    keys = [s.key for s in table.sections]
    assert keys == ["main", "tasks:geneval", "by-step:geneval", "by-step:captions", "selection", "protocol"]
    main_section = table.section("main")
    assert main_section.row_keys == list(QUALITY)  # the steps in order, no card models, no published numbers
    assert all(c.published is None for c in main_section.cells.values())

    by = table.section("by-step:geneval")
    assert by.row_labels == ["step 20", "step 100", "step 180 (declared)"]
    overall = {}
    for label in QUALITY:
        rows = pd.read_json(stub_sweep_root / "runs" / label / "geneval" / "scores" / "geneval" / "results.jsonl", lines=True)
        tasks = rows.groupby("tag")["correct"].mean()
        overall[label] = tasks.mean()
        for tag, acc in tasks.items():
            assert by.cell(label, tag).value == pytest.approx(acc, abs=1e-12)
        assert by.cell(label, "overall").value == pytest.approx(overall[label], abs=1e-12)
        assert all(by.cell(label, c).extra.get("declared", False) == (label == step_label(180)) for c in by.col_keys)
    best = max(QUALITY, key=lambda m: (overall[m], -list(QUALITY).index(m)))
    assert [r for r in by.row_keys if by.cell(r, "overall").extra.get("best")] == [best]

    sel = table.section("selection").cell("geneval", "gain")
    assert sel.extra["best_step"] == int(best.split("_")[1]) and sel.extra["declared_step"] == 180
    assert sel.value == pytest.approx(overall[best] - overall[step_label(180)], abs=1e-12)
    assert sel.ci_low <= sel.value <= sel.ci_high and sel.extra["optimism"] > -1e-12  # one prompt per task: no spread
    caps = table.section("selection").cell("captions", "gain")
    means = {m: pd.read_parquet(stub_sweep_root / "runs" / m / "captions" / "scores" / "pickscore" / "per_prompt.parquet")
             ["pickscore"].mean() for m in QUALITY}
    assert caps.extra["best_score"] == pytest.approx(max(means.values()), abs=1e-9)
    assert "selection on the test set" in table.to_markdown()
    for fmt in ("json", "csv"):
        again = ResultsTable.from_json(table.to_json()) if fmt == "json" else ResultsTable.from_csv(table.to_csv())
        assert again == table


def test_declared_step_comes_from_the_record(stub_sweep_root, tmp_path):
    root = tmp_path / "root"
    shutil.copytree(stub_sweep_root, root)
    record = read_sweep_record(root)
    save_sweep_record(root, SweepRecord(record.checkpoints, declared_step=20, benchmarks=record.benchmarks))
    sel = build_table(root, n_resamples=100).section("selection").cell("geneval", "gain")
    assert sel.extra["declared_step"] == 20


# ----------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def smoke_sweep(tmp_path_factory):
    """`rdmeval sweep --smoke`: three tiny student checkpoints (three file layouts) on GenEval's demo prompts with
    the random-init detector, counting pipeline loads and weight swaps."""
    import rdmeval.sweep.run as run_module
    from rdmeval.generators.klein import KleinGenerator

    out = tmp_path_factory.mktemp("sweep") / "out"
    calls = {"build": 0, "swap": 0}
    real_build, real_swap = run_module.build_generator, KleinGenerator.swap_weights

    def build(*a, **kw):
        calls["build"] += 1
        return real_build(*a, **kw)

    def swap(self, *a, **kw):
        calls["swap"] += 1
        return real_swap(self, *a, **kw)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(run_module, "build_generator", build)
        mp.setattr(KleinGenerator, "swap_weights", swap)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # a module fixture is set up before the test's one_torch_thread
        assert main(["sweep", "--smoke", "--out", str(out), "--no-progress"]) == 0
        first = dict(calls)
        calls.update(build=0, swap=0)
        assert main(["sweep", "--smoke", "--out", str(out), "--no-progress"]) == 0  # everything is done: nothing loads
        second = dict(calls)
        calls.update(build=0, swap=0)
        ckpts = out / "fixtures" / "tiny-sweep"
        shutil.copy(ckpts / "s180.pth", ckpts / "step_0000240.pth")  # the trainer wrote one more milestone
        assert main(["sweep", "--smoke", "--out", str(out), "--no-progress"]) == 0
        third = dict(calls)
        torch.set_num_threads(threads)
    return out, first, second, third


def test_sweep_runs_three_checkpoints_with_one_pipeline_load(smoke_sweep, tiny_klein, tmp_path):
    from rdmeval.generation import generate_run
    from rdmeval.generators.noise import GENEVAL_SEEDS
    from rdmeval.generators.registry import GeneratorOptions, build_generator
    from rdmeval.prompts import load_prompt_set

    out, first, second, third = smoke_sweep
    assert first == {"build": 1, "swap": 2}  # one load, then two checkpoints swapped in
    assert second == {"build": 0, "swap": 0}  # a re-run finds every run complete
    assert third == {"build": 1, "swap": 0}  # only the new checkpoint runs
    record = json.loads((out / "sweep.json").read_text())
    assert [c["step"] for c in record["checkpoints"]] == [20, 100, 180, 240] and record["declared_step"] == 180
    shas = set()
    for step in (20, 100, 180, 240):
        manifest = json.loads((out / "runs" / step_label(step) / "geneval" / "manifest.json").read_text())
        assert manifest["complete"] and manifest["request"]["model"]["preset"] == "student"
        weights = manifest["request"]["model"]["weights"]
        assert weights["path"] == next(c["path"] for c in record["checkpoints"] if c["step"] == step)
        shas.add(weights["sha256"])
        assert (out / "runs" / step_label(step) / "geneval" / "scores" / "geneval" / "summary.parquet").is_file()
    assert len(shas) == 3  # step 240 is a copy of step 180

    # the last checkpoint of the first sweep (two swaps after the load) made the images of a fresh student
    fresh = build_generator("student", GeneratorOptions(base=record["settings"]["base"], weights=record["checkpoints"][2]["path"],
                                                        device="cpu", precision="fp32", height=RES, width=RES))
    summary = generate_run(fresh, load_prompt_set("demo-geneval"), tmp_path / "fresh", n_per_prompt=1,
                           seed_policy=GENEVAL_SEEDS, rng_device="cpu", batch_size=4, progress=False)
    assert summary.complete
    swept = out / "runs" / step_label(180) / "geneval"
    pngs = sorted(p.relative_to(swept) for p in swept.glob("*/samples/*.png"))
    assert len(pngs) == 6
    for rel in pngs:
        assert np.array_equal(np.asarray(Image.open(swept / rel)), np.asarray(Image.open(tmp_path / "fresh" / rel)))

    table = ResultsTable.from_json((out / "table.json").read_text())
    assert table.section("by-step:geneval").row_keys == [step_label(s) for s in (20, 100, 180, 240)]
    assert (out / "report" / "charts" / "by-step-geneval.png").is_file()
    assert 'src="charts/by-step-geneval.png"' in (out / "report" / "index.html").read_text()


def test_a_step_that_now_names_another_file_is_refused(smoke_sweep, tmp_path, capsys):
    """Refused before anything is written: the sweep root stays as it was."""
    out = smoke_sweep[0]
    record = (out / "sweep.json").read_text()
    ckpts = tmp_path / "ckpts"
    ckpts.mkdir()
    shutil.copy(out / "fixtures" / "tiny-sweep" / "step_0000020", ckpts / "s180.pth")  # other weights, same step
    assert main(["sweep", "--smoke", "--weights", str(ckpts), "--out", str(out), "--no-progress"]) == 2
    assert "another checkpoint with the same step" in capsys.readouterr().err
    assert main(["sweep", "--smoke", "--out", str(out), "--limit", "2", "--no-progress"]) == 2
    assert "holds a sweep made with other settings (limit: None -> 2)" in capsys.readouterr().err
    assert main(["sweep", "--smoke", "--out", str(out), "--declared-step", "7", "--no-progress"]) == 2
    assert "--declared-step 7: not a step of the sweep (20, 100, 180, 240)" in capsys.readouterr().err
    assert (out / "sweep.json").read_text() == record
    assert main(["sweep", "--smoke", "--out", str(out), "--check"]) == 0
    assert "rdmeval sweep: all 8 inputs are available (checkpoint step 20, checkpoint step 100" in capsys.readouterr().out


# ----------------------------------------------------------------------------- the report in a browser

SWEEP_PAGE_CHECK = """
(async () => {
  const imgs = Array.from(document.images);
  imgs.forEach(img => { img.loading = "eager"; });
  await Promise.all(imgs.map(img => img.complete ? null : new Promise(done => {
    img.addEventListener("load", done); img.addEventListener("error", done); })));
  const chart = document.querySelector('figure.chart img[src="charts/by-step-geneval.png"]');
  const sel = document.querySelector('table[data-section="selection"]');
  return JSON.stringify({
    tables: Array.from(document.querySelectorAll("table.results")).map(t => t.dataset.section),
    broken: imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.getAttribute("src")),
    chart: chart ? [chart.naturalWidth, chart.naturalHeight] : null,
    caption: chart ? chart.closest("figure").querySelector("figcaption").textContent : "",
    selection: sel ? sel.innerText : "",
    notes: sel ? sel.closest(".table-wrap").nextElementSibling.innerText : "",
    galleryRows: Array.from(new Set(Array.from(document.querySelectorAll(".gallery .model-name")).map(e => e.textContent))),
  });
})()
"""


def test_sweep_report_renders_the_step_chart_in_headless_chromium(stub_sweep_root, tmp_path):
    import functools
    import http.server
    import threading

    from rdmeval.report import build_report
    from test_report import Chromium, _chromium  # the browser driver of the report's own test

    exe = _chromium()
    save_table(build_table(stub_sweep_root, n_resamples=200), stub_sweep_root)
    report = tmp_path / "report"
    build_report(stub_sweep_root, report, thumb_size=64)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(report)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    browser = Chromium(exe, tmp_path / "profile")
    try:
        target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            browser.send(f"{domain}.enable", session=session)
        browser.send("Page.navigate", {"url": f"http://127.0.0.1:{server.server_address[1]}/index.html"}, session=session)
        browser.wait_event("Page.loadEventFired", session)
        result = browser.send("Runtime.evaluate", {"expression": SWEEP_PAGE_CHECK, "awaitPromise": True,
                                                   "returnByValue": True}, session=session, timeout=60)
        assert "exceptionDetails" not in result, result
        page = json.loads(result["result"]["value"])
        shot = browser.send("Page.captureScreenshot", {"format": "png"}, session=session, timeout=60)
        events = list(browser.events)
    finally:
        browser.close()
        server.shutdown()
        server.server_close()
    problems = [e["params"] for e in events if e["method"] in ("Runtime.exceptionThrown", "Network.loadingFailed")]
    assert not problems, problems
    assert {"by-step:geneval", "by-step:captions", "selection"} <= set(page["tables"])
    assert page["broken"] == []
    assert page["chart"] is not None and page["chart"][0] > 800 and page["chart"][1] > 300
    assert "dashed line: the declared step 180" in page["caption"] and "selection on the test set" in page["caption"]
    assert "step 100" in page["selection"] and "WARNING" in page["notes"]
    assert set(page["galleryRows"]) <= set(QUALITY) and step_label(180) in page["galleryRows"]  # declared and best only
    assert len(base64.b64decode(shot["data"])) > 10_000


def test_steps_scored_with_other_options_are_not_compared(smoke_sweep, tmp_path):
    """One step re-judged with another threshold: its rows stay, but the by-step table warns and the selection
    refuses to pick a best step across settings (a paired comparison of two runs refuses the same)."""
    from _runroot import StubColors

    from rdmeval.scorers.geneval.judge import JudgeOptions
    from rdmeval.scorers.geneval.score import score_geneval_run

    out = tmp_path / "sweep"
    shutil.copytree(smoke_sweep[0], out, symlinks=True)
    table = build_table(out, n_resamples=100)
    assert table.section("selection").cell("geneval", "gain").status == "ok"
    score_geneval_run(out / "runs" / "step_0000020" / "geneval", detector=None, color=StubColors(),
                      options=JudgeOptions(threshold=0.35), rejudge=True, progress=False, n_resamples=100)
    table = build_table(out, n_resamples=100)
    cell = table.section("selection").cell("geneval", "gain")
    assert cell.status != "ok" and "not comparable: the steps were scored with different GenEval settings (step 20 vs" in cell.why
    assert any(n.startswith("WARNING: the steps were scored with different GenEval") for n in table.section("by-step:geneval").notes)
