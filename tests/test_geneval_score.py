"""GenEval scoring orchestration on a tiny dummy run, with a scripted detector and color classifier.

No mmdet here: the detector and the classifier are stubs that return chosen detections/colors, so the
expected verdict of every image is known by construction (the table below, derived by hand from the
rules in docs/geneval.md, "The official scoring rules"). The summary is checked against an independent re-implementation of
the official ``summary_scores.py``.
"""

from __future__ import annotations

import json
import shutil
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from rdmeval.cli.main import main
from rdmeval.errors import RdmevalError, RunStoreError
from rdmeval.scorers.geneval.cache import color_path, detection_path, read_detections
from rdmeval.scorers.geneval.detections import Detection
from rdmeval.scorers.geneval.detector import DetectedImage
from rdmeval.scorers.geneval.judge import JudgeOptions
from rdmeval.scorers.geneval.score import SCORER, score_geneval_run

SIZE = 64


def _mask(x1: int, y1: int, x2: int, y2: int) -> np.ndarray:
    m = np.zeros((SIZE, SIZE), dtype=bool)
    m[y1:y2, x1:x2] = True
    return m


def det(score: float, box=(8, 8, 40, 40), mask: bool = False) -> Detection:
    x1, y1, x2, y2 = box
    return Detection(np.array([x1, y1, x2, y2, score], dtype=np.float32), _mask(x1, y1, x2, y2) if mask else None)


# Per (prompt index, sample index) of the demo-geneval set: detections, colors by (class, score), and
# the verdict the official rules give.
#   0 single_object umbrella; 1 two_object cat+bicycle; 2 counting apple x3 (exclude 4);
#   3 colors green car; 4 position dog left of chair; 5 color_attr red cup + blue book
def scripted() -> tuple[dict, dict, dict]:
    D: dict[tuple[int, int], dict[str, list[Detection]]] = {}
    colors: dict[tuple[str, float], str] = {}
    expect: dict[tuple[int, int], bool] = {}
    # single_object: strict float32 threshold
    D[0, 0] = {"umbrella": [det(0.95)], "person": [det(0.99)]}; expect[0, 0] = True
    D[0, 1] = {"umbrella": [det(0.31)]}; expect[0, 1] = True
    D[0, 2] = {"umbrella": [det(0.3)]}; expect[0, 2] = False          # 0.3 is not > float32(0.3)
    D[0, 3] = {}; expect[0, 3] = False
    # two_object
    D[1, 0] = {"cat": [det(0.8)], "bicycle": [det(0.4)]}; expect[1, 0] = True
    D[1, 1] = {"cat": [det(0.8)]}; expect[1, 1] = False
    D[1, 2] = {"cat": [det(0.8)], "bicycle": [det(0.29)]}; expect[1, 2] = False
    D[1, 3] = {"bicycle": [det(0.9)]}; expect[1, 3] = False
    # counting: exactly 3 above 0.9
    boxes = [(0, 0, 10, 10), (20, 0, 30, 10), (40, 0, 50, 10), (0, 20, 10, 30)]
    D[2, 0] = {"apple": [det(0.95, boxes[0]), det(0.96, boxes[1]), det(0.97, boxes[2])]}; expect[2, 0] = True
    D[2, 1] = {"apple": [det(0.95, b) for b in boxes]}; expect[2, 1] = False
    D[2, 2] = {"apple": [det(0.95, boxes[0]), det(0.96, boxes[1]), det(0.85, boxes[2])]}; expect[2, 2] = False
    D[2, 3] = {"apple": [det(0.5, boxes[3]), det(0.91, boxes[0]), det(0.92, boxes[1]), det(0.93, boxes[2])]}; expect[2, 3] = True
    # colors: only the top-1 car is classified
    D[3, 0] = {"car": [det(0.90, mask=True)]}; colors["car", 0.90] = "green"; expect[3, 0] = True
    D[3, 1] = {"car": [det(0.91, mask=True), det(0.5, mask=True)]}; colors["car", 0.91] = "green"; expect[3, 1] = True
    D[3, 2] = {"car": [det(0.92, mask=True)]}; colors["car", 0.92] = "red"; expect[3, 2] = False
    D[3, 3] = {"car": [det(0.6, mask=True), det(0.93, mask=True)]}; colors["car", 0.93] = "red"; colors["car", 0.6] = "green"
    expect[3, 3] = False
    # position: dog (subject) left of chair (target)
    D[4, 0] = {"chair": [det(0.9, (300, 200, 400, 300))], "dog": [det(0.9, (50, 200, 150, 300))]}; expect[4, 0] = True
    D[4, 1] = {"chair": [det(0.9, (50, 200, 150, 300))], "dog": [det(0.9, (300, 200, 400, 300))]}; expect[4, 1] = False
    D[4, 2] = {"dog": [det(0.9, (50, 200, 150, 300))]}; expect[4, 2] = False
    D[4, 3] = {"chair": [det(0.9, (40, 0, 140, 100))], "dog": [det(0.9, (0, 0, 100, 100))]}; expect[4, 3] = False  # |u_x| = 0.5, not > 0.5
    # color_attr: red cup and blue book
    D[5, 0] = {"cup": [det(0.81, mask=True)], "book": [det(0.82, mask=True)]}; colors["cup", 0.81] = "red"; colors["book", 0.82] = "blue"
    expect[5, 0] = True
    D[5, 1] = {"cup": [det(0.83, mask=True)], "book": [det(0.84, mask=True)]}; colors["cup", 0.83] = "red"; colors["book", 0.84] = "red"
    expect[5, 1] = False
    D[5, 2] = {"cup": [det(0.85, mask=True)]}; colors["cup", 0.85] = "blue"; expect[5, 2] = False
    D[5, 3] = {"book": [det(0.86, mask=True)]}; colors["book", 0.86] = "blue"; expect[5, 3] = False
    return D, colors, expect


class ScriptedDetector:
    """Returns the scripted detections of each image (found from its path); counts the images seen."""

    def __init__(self, table, version: str = "1") -> None:
        self.table = table
        self.version = version
        self.seen: list[Path] = []

    @property
    def identity(self):
        return {"detector": "scripted", "version": self.version, "mask_score_floor": 0.05}

    def detect(self, paths, batch_size=8):
        for path in paths:
            path = Path(path)
            self.seen.append(path)
            key = (int(path.parent.parent.name), int(path.stem))
            yield DetectedImage({k: list(v) for k, v in self.table.get(key, {}).items()}, SIZE, SIZE)


class ScriptedColors:
    """Colors by (class, float32 score); checks that masks arrive as bool H x W arrays."""

    def __init__(self, table, name: str = "stub") -> None:
        self.table = table
        self.name = name
        self.asked: list[tuple[str, float]] = []

    @property
    def identity(self):
        return {"classifier": self.name}

    def predict(self, requests, opts=JudgeOptions()):
        out = []
        for req in requests:
            assert req.image.is_file()
            assert req.detection.mask is not None and req.detection.mask.dtype == bool
            assert req.detection.mask.shape == (SIZE, SIZE)
            key = (req.class_name, round(float(req.detection.score), 6))
            self.asked.append(key)
            out.append(self.table[req.class_name, round(float(req.detection.score), 2)])
        return out


@pytest.fixture(scope="module")
def template_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("geneval-template") / "run"
    rc = main(["generate", "--model", "dummy", "--prompts", "demo-geneval", "--out", str(out),
               "--resolution", str(SIZE), "--rng-device", "cpu", "--no-progress"])
    assert rc == 0
    return out


@pytest.fixture
def run_dir(template_run, tmp_path) -> Path:
    target = tmp_path / "run"
    shutil.copytree(template_run, target)
    return target


def score(run_dir, detector=None, colors=None, **kw):
    table, color_table, _ = scripted()
    detector = detector if detector is not None else ScriptedDetector(table)
    colors = colors if colors is not None else ScriptedColors(color_table)
    kw.setdefault("progress", False)
    kw.setdefault("n_resamples", 200)
    return score_geneval_run(run_dir, detector=detector, color=colors, **kw), detector, colors


# ----------------------------------------------------------------------------- independent reference


def official_summary_reference(results_jsonl: Path) -> str:
    """summary_scores.py semantics, written from the official script's rules without the package's helpers."""
    rows = [json.loads(line) for line in results_jsonl.read_text().splitlines() if line.strip()]
    by_prompt: dict[str, list[bool]] = defaultdict(list)
    by_tag: dict[str, list[bool]] = {}
    for r in rows:
        by_prompt[r["metadata"]].append(bool(r["correct"]))
        by_tag.setdefault(r["tag"], []).append(bool(r["correct"]))
    n_correct = sum(bool(r["correct"]) for r in rows)
    lines = [
        "Summary", "=======",
        f"Total images: {len(rows)}",
        f"Total prompts: {len(by_prompt)}",
        f"% correct images: {n_correct / len(rows):.2%}",
        f"% correct prompts: {sum(any(v) for v in by_prompt.values()) / len(by_prompt):.2%}",
        "", "Task breakdown", "==============",
    ]
    rates = []
    for tag, vals in by_tag.items():
        rates.append(sum(vals) / len(vals))
        lines.append(f"{tag:<16} = {sum(vals) / len(vals):.2%} ({sum(vals)} / {len(vals)})")
    lines += ["", f"Overall score (avg. over tasks): {sum(rates) / len(rates):.5f}"]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- tests


def test_end_to_end_verdicts_outputs_and_summary(run_dir):
    result, detector, colors = score(run_dir)
    _, _, expect = scripted()
    assert result.judged and result.detected == 24 and result.reused == 0
    out = run_dir / "scores" / "geneval"

    # results.jsonl: the official fields, one row per image, verdicts as derived by hand
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 24
    assert list(rows[0]) == ["filename", "tag", "prompt", "correct", "reason", "metadata", "details"]
    got = {}
    for r in rows:
        p = Path(r["filename"])
        assert p.is_file() and str(p).startswith(str(run_dir))
        got[int(p.parent.parent.name), int(p.stem)] = r["correct"]
        meta = json.loads(r["metadata"])
        assert meta["prompt"] == r["prompt"] and meta["tag"] == r["tag"]
        assert isinstance(json.loads(r["details"]), dict)
        assert (r["reason"] == "") == r["correct"]
    assert got == expect
    by_file = {(int(Path(r["filename"]).parent.parent.name), int(Path(r["filename"]).stem)): r for r in rows}
    assert by_file[0, 2]["reason"] == "expected umbrella>=1, found 0"
    assert by_file[2, 1]["reason"] == "expected apple<4, found 4"
    assert by_file[3, 3]["reason"] == "expected green car>=1, found 0 green; and 1 red"
    assert by_file[4, 1]["reason"] == "expected dog left of target, found right of target"
    assert by_file[4, 2]["reason"] == "expected chair>=1, found 0\nno target for dog to be left of"
    assert by_file[4, 3]["reason"] == "expected dog left of target, found  target"
    assert by_file[5, 2]["reason"] == "expected red cup>=1, found 0 red; and 1 blue\nexpected book>=1, found 0"
    assert json.loads(by_file[0, 0]["details"]) == {"umbrella": [[8.0, 8.0, 40.0, 40.0, float(np.float32(0.95))]],
                                                    "person": [[8.0, 8.0, 40.0, 40.0, float(np.float32(0.99))]]}
    # only the top-1 detection of each color clause was classified (never the 0.5/0.6 ones)
    assert sorted(colors.asked) == sorted(
        [("car", round(float(np.float32(s)), 6)) for s in (0.90, 0.91, 0.92, 0.93)]
        + [("cup", round(float(np.float32(s)), 6)) for s in (0.81, 0.83, 0.85)]
        + [("book", round(float(np.float32(s)), 6)) for s in (0.82, 0.84, 0.86)]
    )

    # summary.txt is exactly what summary_scores.py prints for results.jsonl
    text = (out / "summary.txt").read_text()
    assert text == official_summary_reference(out / "results.jsonl")
    assert result.summary_text == text
    # by hand: tasks 2/4, 1/4, 2/4, 2/4, 1/4, 1/4 -> overall (0.5+0.25+0.5+0.5+0.25+0.25)/6
    assert "Overall score (avg. over tasks): 0.37500" in text
    assert "% correct images: 37.50%" in text  # 9/24

    # per_image.parquet: tidy, with provenance
    per = pd.read_parquet(out / "per_image.parquet")
    assert len(per) == 24 and per["correct"].sum() == 9
    assert set(per["scorer"]) == {SCORER} and set(per["benchmark"]) == {"demo-geneval"}
    assert {"prompt_index", "sample_index", "image", "reason", "details", "judge_options", "detector_key"} <= set(per.columns)

    # summary.parquet: result rows with CIs and the scorer protocol
    res = pd.read_parquet(out / "summary.parquet")
    metrics = dict(zip(zip(res["category"], res["metric"]), res["value"]))
    assert metrics["overall", "overall"] == pytest.approx(0.375)
    assert metrics["counting", "accuracy"] == pytest.approx(0.5)
    assert metrics["all", "pct_correct_images"] == pytest.approx(37.5)
    assert metrics["all", "pct_correct_prompts"] == pytest.approx(100.0)  # every prompt has a correct image
    assert len(res) == 6 + 3
    assert (res["ci_low"] <= res["value"] + 1e-12).all() and (res["value"] <= res["ci_high"] + 1e-12).all()
    assert set(res["coverage"]) == {1.0} and res["complete"].all()
    proto = json.loads(res["protocol"].iloc[0])["geneval"]
    assert proto["judge_options"]["threshold"] == 0.3 and proto["judge_options"]["max_objects"] == 16
    assert proto["detector"]["detector"] == "scripted"
    assert proto["color_classifier"]["identity"] == {"classifier": "stub"}
    assert json.loads(res["protocol"].iloc[0])["n_per_prompt"] == 4  # the generation protocol is kept


def test_pct_correct_prompts_counts_any_of_four(run_dir):
    # Prompt 0 (umbrella): make every image fail -> 5 of 6 prompts have a correct image.
    table, color_table, _ = scripted()
    for j in range(4):
        table[0, j] = {}
    result, _, _ = score(run_dir, detector=ScriptedDetector(table))
    assert result.summary.frac_correct_prompts == pytest.approx(5 / 6)
    assert "% correct prompts: 83.33%" in result.summary_text


def test_detections_are_cached_and_resumed(run_dir):
    score(run_dir)
    cached = read_detections(detection_path(run_dir, 3, 1))
    assert cached is not None and cached.height == SIZE
    dets = cached.detections()
    assert [float(d.score) for d in dets["car"]] == [float(np.float32(0.91)), float(np.float32(0.5))]
    assert dets["car"][0].mask.dtype == bool and dets["car"][0].mask.sum() == 32 * 32
    assert color_path(run_dir, 3, 1).is_file() and not color_path(run_dir, 0, 0).exists()

    # a second call detects nothing and classifies nothing
    result, detector, colors = score(run_dir)
    assert result.detected == 0 and result.reused == 24 and detector.seen == [] and colors.asked == []

    # a lost or corrupt cache file is redone, alone (resume after a crash)
    detection_path(run_dir, 1, 2).unlink()
    detection_path(run_dir, 5, 0).write_text('{"format": "rdmeval.geneval.detection-cache/1", "detec')
    result, detector, _ = score(run_dir)
    assert sorted((p.parent.parent.name, p.name) for p in detector.seen) == [("00001", "0002.png"), ("00005", "0000.png")]
    assert result.detected == 2


def test_another_detector_or_image_invalidates_the_cache(run_dir):
    score(run_dir)
    table, _, _ = scripted()
    result, detector, _ = score(run_dir, detector=ScriptedDetector(table, version="2"))
    assert result.detected == 24 and len(detector.seen) == 24

    # regenerated image: only that one is detected again, and --rejudge refuses the stale cache
    img = run_dir / "00002" / "samples" / "0001.png"
    Image.new("RGB", (SIZE, SIZE), (1, 2, 3)).save(img)
    with pytest.raises(RdmevalError, match="00002/samples/0001.png"):
        score_geneval_run(run_dir, detector=None, color=None, rejudge=True, progress=False)
    result, detector, _ = score(run_dir, detector=ScriptedDetector(table, version="2"))
    assert [p.relative_to(run_dir).as_posix() for p in detector.seen] == ["00002/samples/0001.png"]


def test_rejudge_uses_only_the_cache(run_dir):
    score(run_dir)
    table, color_table, expect = scripted()
    colors = ScriptedColors(color_table)
    result = score_geneval_run(run_dir, detector=None, color=colors, rejudge=True, progress=False,
                               options=JudgeOptions(threshold=0.25), n_resamples=50)
    assert colors.asked == []  # color predictions come from the cache (same classifier and crop options)
    rows = pd.read_json(run_dir / "scores" / "geneval" / "results.jsonl", orient="records", lines=True)
    correct = {(int(Path(f).parent.parent.name), int(Path(f).stem)): c for f, c in zip(rows["filename"], rows["correct"])}
    # at threshold 0.25 the umbrella at 0.3 and the bicycle at 0.29 now count; nothing else changes
    assert correct == {**expect, (0, 2): True, (1, 2): True}
    res = pd.read_parquet(run_dir / "scores" / "geneval" / "summary.parquet")
    assert json.loads(res["protocol"].iloc[0])["geneval"]["judge_options"]["threshold"] == 0.25

    # other crop options are another classifier input: colors are predicted again, once
    again = ScriptedColors(color_table)
    score_geneval_run(run_dir, color=again, rejudge=True, progress=False, options=JudgeOptions(bgcolor="original"), n_resamples=50)
    assert len(again.asked) == 10
    score_geneval_run(run_dir, color=again, rejudge=True, progress=False, options=JudgeOptions(bgcolor="original"), n_resamples=50)
    assert len(again.asked) == 10


def test_rejudge_with_nms_option(run_dir):
    # two apples overlapping strongly: 4 kept at the default (exclude fires), 3 with NMS at IoU 0.5
    table, color_table, _ = scripted()
    table[2, 1] = {"apple": [det(0.95, (0, 0, 10, 10)), det(0.96, (20, 0, 30, 10)), det(0.97, (40, 0, 50, 10)),
                             det(0.94, (1, 1, 11, 11))]}
    score(run_dir, detector=ScriptedDetector(table))
    first = pd.read_parquet(run_dir / "scores" / "geneval" / "per_image.parquet").set_index(["prompt_index", "sample_index"])
    assert not first.loc[(2, 1), "correct"] and first.loc[(2, 1), "reason"] == "expected apple<4, found 4"
    score_geneval_run(run_dir, color=ScriptedColors(color_table), rejudge=True, progress=False,
                      options=JudgeOptions(max_overlap=0.5), n_resamples=50)
    second = pd.read_parquet(run_dir / "scores" / "geneval" / "per_image.parquet").set_index(["prompt_index", "sample_index"])
    assert second.loc[(2, 1), "correct"]


def test_rejudge_without_cache_is_refused(run_dir):
    with pytest.raises(RdmevalError, match="without --rejudge"):
        score_geneval_run(run_dir, rejudge=True, progress=False)
    assert main(["score", "geneval", str(run_dir), "--rejudge", "--no-progress"]) == 2


def test_incomplete_run_is_refused_then_scored_with_coverage(run_dir):
    shutil.rmtree(run_dir / "00003")
    (run_dir / "00001" / "samples" / "0002.png").unlink()
    with pytest.raises(RunStoreError) as err:
        score(run_dir)
    msg = str(err.value)
    assert "19 of 24 images" in msg and "00003" in msg and "00001/samples/0002.png" in msg and "--allow-incomplete" in msg

    result, detector, _ = score(run_dir, allow_incomplete=True)
    assert result.judged and len(detector.seen) == 19
    text = (run_dir / "scores" / "geneval" / "summary.txt").read_text()
    assert text.startswith("INCOMPLETE RUN")
    numeric = [line for line in text.splitlines() if ("%" in line or ":" in line) and any(c.isdigit() for c in line)
               and not line.startswith(("INCOMPLETE", "missing"))]
    assert numeric and all("[coverage 19/24 images, 79.17%]" in line for line in numeric)
    assert "colors" not in text.split("Task breakdown")[1]  # the whole prompt folder is gone
    res = pd.read_parquet(run_dir / "scores" / "geneval" / "summary.parquet")
    assert not res["complete"].any() and np.allclose(res["coverage"], 19 / 24)


def test_shards_detect_disjoint_halves_and_the_last_one_judges(run_dir):
    table, _, _ = scripted()
    first, d0, _ = score(run_dir, detector=ScriptedDetector(table), shard="0/2")
    assert not first.judged and "--rejudge" in first.message and len(d0.seen) == 12
    second, d1, _ = score(run_dir, detector=ScriptedDetector(table), shard="1/2")
    assert second.judged and len(d1.seen) == 12 and not set(d0.seen) & set(d1.seen)
    assert second.summary.n_images == 24 and second.summary.overall == pytest.approx(0.375)


def test_cli_rejudge_prints_the_official_summary(run_dir, capsys):
    # detections without any color clause passing -> the CLI's CLIP classifier is never loaded
    table, _, _ = scripted()
    for key in [k for k in table if k[0] in (3, 5)]:
        table[key] = {}
    score(run_dir, detector=ScriptedDetector(table))
    capsys.readouterr()
    assert main(["score", "geneval", str(run_dir), "--rejudge", "--no-progress", "--n-resamples", "50"]) == 0
    out = capsys.readouterr().out
    assert "Overall score (avg. over tasks): " in out and "outputs in" in out
    assert main(["score", "geneval", str(run_dir), "--rejudge", "--detector-checkpoint", "x.pth"]) == 2
    assert "drop --detector-checkpoint" in capsys.readouterr().err


def test_not_a_geneval_run(tmp_path):
    out = tmp_path / "captions"
    assert main(["generate", "--model", "dummy", "--prompts", "demo-captions", "--out", str(out),
                 "--resolution", "32", "--rng-device", "cpu", "--no-progress"]) == 0
    with pytest.raises(RdmevalError, match="not a GenEval record"):
        score(out)
