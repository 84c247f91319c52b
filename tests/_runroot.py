"""Run roots shared by tests/test_table.py and tests/test_report.py.

A plain helper module (not a test module), so that the two test files share the builders without
importing each other.

The *card* root (:func:`make_card_root`) is hand-written result rows on the card's benchmarks, covering
every kind of cell (complete, subset, incomplete, generated but not scored, not run, a second run of a
preset).

The *smoke* root is made by the real pipeline: the dummy generator on the demo sets for three
models, GenEval scored by the real scorer with a stub detector and color classifier (whose
verdicts follow a per-model success rate), PickScore scored by the real scorer on the tiny offline
CLIP.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np

from rdmeval.api.rows import write_rows
from rdmeval.cli.main import main
from rdmeval.prompts.geneval import EXPECTED_COUNTS
from rdmeval.results.table import CARD_MODELS

SIZE = 64
#: Probability that the stub detector "sees" a prompt correctly, per model (student > teacher > naive).
QUALITY = {"teacher": 0.75, "naive": 0.3, "student": 0.85}


def _good(path: Path) -> bool:
    """Whether this image "succeeds": a fixed function of (model folder, prompt, sample)."""
    key = f"{path.parents[3].name}/{path.parents[1].name}/{path.stem}"
    u = int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) / 16**8
    return u < QUALITY.get(path.parents[3].name, 0.5)


def _meta(path: Path) -> dict:
    return json.loads((Path(path).parents[1] / "metadata.jsonl").read_text())


class StubDetector:
    """Detections that satisfy the prompt when the image "succeeds", and miss its last object otherwise."""

    identity = {"detector": "stub", "version": "1", "mask_score_floor": 0.05}

    def detect(self, paths, batch_size=8):
        from rdmeval.scorers.geneval.detections import Detection
        from rdmeval.scorers.geneval.detector import DetectedImage

        def det(x: int, y: int) -> Detection:
            mask = np.zeros((SIZE, SIZE), dtype=bool)
            mask[y : y + 14, x : x + 14] = True
            return Detection(np.array([x, y, x + 14, y + 14, 0.95], dtype=np.float32), mask)

        for p in map(Path, paths):
            md = _meta(p)
            clauses = md["include"] if _good(p) else md["include"][:-1]
            dets: dict = {}
            for i, clause in enumerate(clauses):
                for k in range(clause["count"]):
                    x, y = (2, 30) if "position" in clause else (4 + 18 * k, 8 + 24 * i)
                    dets.setdefault(clause["class"], []).append(det(x, y))
            if any("position" in c for c in clauses):  # the target to the right of the subject
                dets[md["include"][0]["class"]] = [det(40, 30)]
            yield DetectedImage(dets, SIZE, SIZE)


class StubColors:
    identity = {"classifier": "stub"}

    def predict(self, requests, opts=None):
        out = []
        for r in requests:
            want = next(c.get("color") for c in _meta(r.image)["include"] if c["class"] == r.class_name)
            out.append(want if _good(Path(r.image)) else "black")
        return out


def make_smoke_root(root: Path) -> Path:
    """runs/{teacher,naive,student}/{demo-geneval,demo-captions}, generated and scored for real.

    The dummy generator stands in for the three presets (``request.model.preset`` is set so the
    result rows carry the preset's name, as a klein run's would).
    """
    from rdmeval.fixtures.tiny_clip import build_tiny_clip
    from rdmeval.scorers.geneval.score import score_geneval_run
    from rdmeval.scorers.pickscore.model import PickScorer
    from rdmeval.scorers.pickscore.score import score_pickscore_run

    tiny = build_tiny_clip(root / "tiny-clip")
    scorer = PickScorer.from_pretrained(str(tiny), str(tiny), device="cpu", batch_size=8)
    for i, model in enumerate(CARD_MODELS):
        for prompts, policy in (("demo-geneval", f"per-sample:{46_000_000 + i * 1_000_000}"), ("demo-captions", f"one-call:{i}")):
            out = root / "runs" / model / prompts
            assert main(["generate", "--model", "dummy", "--prompts", prompts, "--out", str(out), "--resolution", str(SIZE),
                         "--rng-device", "cpu", "--no-progress", "--seed-policy", policy]) == 0
            manifest = json.loads((out / "manifest.json").read_text())
            manifest["request"]["model"]["preset"] = model
            (out / "manifest.json").write_text(json.dumps(manifest))
            if prompts == "demo-geneval":
                score_geneval_run(out, detector=StubDetector(), color=StubColors(), progress=False, n_resamples=200)
            else:
                score_pickscore_run(out, scorer, progress=False, n_resamples=200)
    return root


def shared_smoke_root(tmp_path_factory) -> Path:
    """The smoke root, built once per test session (test_report.py uses it too) and never modified."""
    root = tmp_path_factory.getbasetemp() / "smoke-root"
    if not (root / ".complete").is_file():
        shutil.rmtree(root, ignore_errors=True)
        make_smoke_root(root)
        (root / ".complete").touch()
    return root


def make_suite_layout_root(smoke_root: Path, root: Path) -> Path:
    """The layout of `rdmeval reproduce --smoke`: suite benchmark folders, demo prompt sets standing in
    (coco-val and pickapic-test both use demo-captions)."""
    for m in CARD_MODELS:
        for src, dst in (("demo-geneval", "geneval"), ("demo-captions", "coco-val"), ("demo-captions", "pickapic-test")):
            shutil.copytree(smoke_root / "runs" / m / src, root / "runs" / m / dst)
    return root


def add_heldout_runs(root: Path) -> Path:
    """runs/{teacher,student}/geneval-heldout on the demo's held-out prompts (demo-geneval-heldout),
    generated by the dummy generator and judged with the stub detector, beside a suite-layout root's
    geneval runs: the table gets its in-distribution gap section and the report its chart."""
    from rdmeval.scorers.geneval.score import score_geneval_run

    for i, model in enumerate(("teacher", "student")):
        out = root / "runs" / model / "geneval-heldout"
        assert main(["generate", "--model", "dummy", "--prompts", "demo-geneval-heldout", "--out", str(out),
                     "--resolution", str(SIZE), "--rng-device", "cpu", "--no-progress",
                     "--seed-policy", f"per-sample:{47_000_000 + i * 1_000_000}"]) == 0
        manifest = json.loads((out / "manifest.json").read_text())
        manifest["request"]["model"]["preset"] = model
        (out / "manifest.json").write_text(json.dumps(manifest))
        score_geneval_run(out, detector=StubDetector(), color=StubColors(), progress=False, n_resamples=200)
    return root


# ----------------------------------------------------------------------------- the card run root (hand-written rows)


STUDENT_TASKS = {"single_object": 0.990625, "two_object": 0.9166666666666666, "counting": 0.778125,
                 "colors": 0.9202127659574468, "position": 0.6725, "color_attr": 0.7075}


def card_rows(model: str, bench: str, scorer: str, values: dict, *, n: int, n_prompts: int, complete: bool = True,
          coverage: float = 1.0, ci: float = 0.02) -> list[dict]:
    protocol = {"n_per_prompt": 4 if bench == "geneval" else 1, "rng_device": "cuda", "resolution": [512, 512],
                "seed_policy": {"kind": "per-sample", "formula": "seed = 46000000 + prompt_idx*100 + sample_idx"},
                "model": {"name": "klein", "preset": model, "ctx_len": 48 if bench != "pickapic-test" else 232,
                          "steps": 4 if model == "teacher" else 1, "precision": "faithful"},
                "bootstrap": {"level": 0.95, "n_resamples": 1000, "seed": 0}}
    out = []
    for (category, metric), value in values.items():
        task_n = 4 * EXPECTED_COUNTS.get(category, 0)
        out.append({"run_id": f"runs/{model}/{bench}", "model": model, "benchmark": bench, "benchmark_version": "1",
                    "benchmark_definition": f"{bench} as defined for the test", "scorer": scorer, "scorer_version": "1",
                    "category": category, "metric": metric, "value": value, "ci_low": value - ci, "ci_high": value + ci,
                    "n": task_n or n, "n_prompts": EXPECTED_COUNTS.get(category, n_prompts), "coverage": coverage,
                    "complete": complete, "higher_is_better": True, "protocol": json.dumps(protocol),
                    "versions": json.dumps({"torch": "2.14.1", "diffusers": "0.42.1", "transformers": "5.24.0"})})
    return out


def _geneval_values(tasks: dict) -> dict:
    values = {(t, "accuracy"): v for t, v in tasks.items()}
    values[("overall", "overall")] = float(np.mean(list(tasks.values())))
    return values


def make_card_root(root: Path) -> Path:
    runs = root / "runs"
    write = lambda model, bench, scorer, rows: write_rows(rows, runs / model / bench / "scores" / scorer / "summary.parquet")  # noqa: E731
    write("student", "geneval", "geneval", card_rows("student", "geneval", "geneval-mmdet", _geneval_values(STUDENT_TASKS), n=2212, n_prompts=553))
    teacher = {t: v - 0.03 for t, v in STUDENT_TASKS.items()}
    write("teacher", "geneval", "geneval", card_rows("teacher", "geneval", "geneval-mmdet", _geneval_values(teacher), n=400, n_prompts=100))
    naive = {t: v / 2 for t, v in STUDENT_TASKS.items()}
    write("naive", "geneval", "geneval", card_rows("naive", "geneval", "geneval-mmdet", _geneval_values(naive), n=2100, n_prompts=525,
                                               complete=False, coverage=2100 / 2212))
    write("student", "pickapic-test", "pickscore", card_rows("student", "pickapic-test", "pickscore", {("all", "pickscore_mean"): 21.9},
                                                         n=499, n_prompts=499, ci=0.1))
    write("student", "coco-val", "pickscore", card_rows("student", "coco-val", "pickscore", {("all", "pickscore_mean"): 22.7}, n=1000, n_prompts=1000))
    write("teacher", "coco-val", "pickscore", card_rows("teacher", "coco-val", "pickscore", {("all", "pickscore_mean"): 22.6}, n=1000, n_prompts=1000))
    # a second student run (another ctx_len) in its own folder: its own row, compared with the student's numbers
    write("student-ctx48", "pickapic-test", "pickscore", card_rows("student", "pickapic-test", "pickscore",
                                                               {("all", "pickscore_mean"): 21.2}, n=499, n_prompts=499))
    # generated (2 of 2 images missing), never scored
    naive_pick = runs / "naive" / "pickapic-test"
    naive_pick.mkdir(parents=True)
    (naive_pick / "manifest.json").write_text(json.dumps({"request": {
        "model": {"name": "klein", "preset": "naive"}, "prompt_set": {"name": "pickapic-test", "version": "1"},
        "prompt_indices": [0, 1], "n_per_prompt": 1}}))
    return root
