"""docs/architecture.md's worked examples run: a toy scorer registered and run by ``reproduce`` over
a suite of the dummy generator (the "add a benchmark" example), and a toy generator registered and
rendered into a run. The python blocks run in order in one namespace, in a temporary folder."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from rdmeval.generators.registry import GENERATORS
from rdmeval.scorers.registry import SCORERS

DOC = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


@pytest.fixture
def doc_namespace(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = (set(SCORERS), set(GENERATORS))
    namespace: dict = {"__name__": "architecture_doc"}
    yield namespace
    for name in set(SCORERS) - before[0]:
        SCORERS.unregister(name)
    for name in set(GENERATORS) - before[1]:
        GENERATORS.unregister(name)


def test_the_doc_has_the_three_examples():
    blocks = python_blocks(DOC.read_text(encoding="utf-8"))
    assert len(blocks) == 3
    assert "SCORERS.register" in blocks[0] and "reproduce(" in blocks[1] and "GENERATORS.register" in blocks[2]


def test_examples_run(doc_namespace, tmp_path):
    for block in python_blocks(DOC.read_text(encoding="utf-8")):
        exec(compile(block, str(DOC), "exec"), doc_namespace)

    # the toy scorer ran through reproduce's registry loop: its number is the images' mean brightness,
    # recomputed here from the PNG files themselves
    run = tmp_path / "out" / "runs" / "dummy" / "captions"
    pngs = sorted(run.glob("*/samples/*.png"))
    assert len(pngs) == 2 * len(json.loads((run / "manifest.json").read_text())["request"]["prompt_indices"])
    expected = np.mean([np.asarray(Image.open(p)).mean() / 255 for p in pngs])
    rows = pd.read_parquet(run / "scores" / "brightness" / "summary.parquet")
    assert rows["metric"].tolist() == ["brightness"]
    assert rows["value"].iloc[0] == pytest.approx(expected, rel=1e-12)  # same float64 means, summed in another order
    assert rows["model"].iloc[0] == "dummy" and rows["benchmark"].iloc[0] == "demo-captions"

    # the toy generator's images are flat greys (one value per image), made through the contract
    grey = sorted((tmp_path / "runs" / "grey").glob("*/samples/*.png"))
    assert grey
    for p in grey:
        im = np.asarray(Image.open(p))
        assert im.shape == (16, 16, 3) and (im == im[0, 0, 0]).all()


def test_registries_refuse_duplicates_and_suggest_names():
    from rdmeval.api import Registry, UnknownName
    from rdmeval.errors import RdmevalError

    reg: Registry[int] = Registry("widget")
    reg.register("alpha", 1)
    reg.register("beta", "json:dumps")  # lazy: imported on first get
    with pytest.raises(RdmevalError, match="registered twice"):
        reg.register("alpha", 2)
    with pytest.raises(UnknownName, match="Did you mean 'alpha'"):
        reg.get("alpah")
    assert reg.get("beta") is json.dumps
    assert reg.names() == ["alpha", "beta"]


def test_listing_scorers_imports_no_backend():
    import subprocess
    import sys

    code = ("import sys; from rdmeval.scorers.registry import SCORERS; from rdmeval.generators.registry import MODELS; "
            "names = list(SCORERS); print(sorted(m for m in ('mmdet', 'mmcv', 'open_clip', 'diffusers', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**__import__('os').environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert out.stdout.strip() == "[]"


def test_the_registered_scorers_are_scorers():
    from rdmeval.api import ScoreResult, Scorer
    from rdmeval.scorers.geneval.scorer import GenevalRunScorer
    from rdmeval.scorers.pickscore.scorer import PickScoreRunScorer

    class StubDetector:
        identity = {"detector": "stub"}

    class StubModel:
        def identity(self):
            return {"model": "stub"}

    g, p = GenevalRunScorer(StubDetector(), None), PickScoreRunScorer(StubModel())
    assert isinstance(g, Scorer) and isinstance(p, Scorer)
    assert (g.name, p.name) == ("geneval", "pickscore") and list(SCORERS) == ["geneval", "pickscore"]
    assert g.identity()["detector"] == {"detector": "stub"} and p.identity()["model"] == "stub"
    assert callable(SCORERS.get("geneval")) and callable(SCORERS.get("pickscore"))
    assert ScoreResult("x", Path("r"), True, "m").outputs == {}
