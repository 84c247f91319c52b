"""GenEval's progress bars: the models load before a bar starts, and the detection bar moves per image.

So the rate a bar shows counts inference only, from its first update on (a model build of tens of
seconds inside the first batch would make the first rates meaningless). A recording stand-in for tqdm
sees when each bar is made and every update.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rdmeval.cli.main import main
from rdmeval.scorers.geneval import phases
from rdmeval.scorers.geneval.detections import Detection
from rdmeval.scorers.geneval.detector import DetectedImage
from rdmeval.scorers.geneval.judge import JudgeOptions
from rdmeval.scorers.geneval.score import score_geneval_run

SIZE = 32
EVENTS: list[tuple] = []


class RecordingBar:
    def __init__(self, *, total: int, desc: str, **_kwargs):
        EVENTS.append(("bar", desc, total))
        self.desc = desc

    def update(self, n: int = 1) -> None:
        EVENTS.append(("update", self.desc, n))

    def close(self) -> None:
        EVENTS.append(("close", self.desc))


class SlowLoadingDetector:
    """Finds one green car in every image; loading it is an event of its own."""

    identity = {"detector": "stub", "version": "1", "mask_score_floor": 0.0}

    def load(self) -> None:
        EVENTS.append(("load", "detector"))

    def detect(self, paths, batch_size=8):
        mask = np.zeros((SIZE, SIZE), dtype=bool)
        mask[2:20, 2:20] = True
        car = Detection(np.array([2, 2, 20, 20, 0.9], dtype=np.float32), mask)
        paths = list(paths)
        for start in range(0, len(paths), batch_size):
            EVENTS.append(("forward", "detector", len(paths[start:start + batch_size])))
            for _ in paths[start:start + batch_size]:
                yield DetectedImage({"car": [car]}, SIZE, SIZE)


class Colors:
    identity = {"classifier": "stub"}

    def load(self) -> None:
        EVENTS.append(("load", "colors"))

    def predict(self, requests, opts=JudgeOptions()):
        return ["green"] * len(requests)


@pytest.fixture
def run(tmp_path) -> Path:
    out = tmp_path / "run"
    assert main(["generate", "--model", "dummy", "--prompts", "demo-geneval", "--out", str(out), "--resolution", str(SIZE),
                 "--rng-device", "cpu", "--n-per-prompt", "3", "--no-progress"]) == 0
    return out


def test_models_load_before_the_bars_and_detection_moves_per_image(run, monkeypatch):
    EVENTS.clear()
    monkeypatch.setattr(phases, "tqdm", RecordingBar)
    score_geneval_run(run, detector=SlowLoadingDetector(), color=Colors(), batch_size=8, n_resamples=10)
    kinds = [e[:2] for e in EVENTS]
    assert kinds.index(("load", "detector")) < kinds.index(("bar", "geneval detect"))
    assert kinds.index(("load", "colors")) < kinds.index(("bar", "geneval colors"))
    detect_updates = [e[2] for e in EVENTS if e[:2] == ("update", "geneval detect")]
    assert detect_updates == [1] * 18  # 6 prompts x 3 images, one update each (batches of 8, 8, 2)
    assert [e[2] for e in EVENTS if e[0] == "forward"] == [8, 8, 2]
