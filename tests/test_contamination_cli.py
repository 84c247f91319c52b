"""``rdmeval audit`` in-process through ``rdmeval.cli.main.main``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rdmeval.cli.main import main

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def files(tmp_path, shared_data):
    geneval = shared_data / "geneval" / "evaluation_metadata.jsonl"
    coco = tmp_path / "captions_train2014.json"
    # a small COCO file: the released spec expects 82,783 images, so the check is relaxed with --set
    anns = [{"image_id": 1, "id": 1, "caption": "A photo of a bench."}, {"image_id": 2, "id": 2, "caption": "Two dogs on a beach."}]
    coco.write_text(json.dumps({"images": [], "annotations": anns}), encoding="utf-8")
    rng = np.random.default_rng(0)
    scores = {}
    for label, p in (("student", 0.85), ("teacher", 0.8)):
        df = pd.DataFrame({"prompt_idx": np.repeat(np.arange(553), 4), "correct": rng.random(553 * 4) < p})
        df["tag"] = df["prompt_idx"].map(lambda i: "single_object" if i < 80 else "other")
        path = tmp_path / f"{label}.parquet"
        df.to_parquet(path)
        scores[label] = path
    return geneval, coco, scores


def test_audit_cli_end_to_end(files, tmp_path, capsys):
    geneval, coco, scores = files
    out = tmp_path / "out"
    rc = main([
        "audit", "--benchmark", "geneval", "--prompts-file", str(geneval),
        "--pool", str(REPO / "benchmarks" / "pools" / "rdm-s180-generator.toml"),
        "--set", f"coco-train2014.path={coco}", "--set", "coco-train2014.expected_rows=0",
        "--set", f"geneval-x32.path={geneval}",
        "--levels", "exact,normalized,structure", "--null", "templates:seed=3,n=20", "--geneval-file", str(geneval),
        "--scores", f"student={scores['student']}", "--scores", f"teacher={scores['teacher']}",
        "--n-resamples", "200", "--out", str(out),
    ])
    printed = capsys.readouterr().out
    assert rc == 0, printed
    assert "geneval (553 prompts) vs rdm-s180-generator" in printed
    assert "17696 / 17698" in printed  # 2 COCO rows + 553 x 32; the normalized level adds the bench caption
    assert "17697 / 17698" in printed
    summary = json.loads((out / "audit.json").read_text())
    assert summary["pool"]["spec"]["overrides"]["coco-train2014.expected_rows"] == "0"
    assert summary["null"]["spec"]["name"] == "geneval-templates-seed3"
    assert summary["null"]["coverage"]["exact"]["by_tag"]["single_object"]["fraction"] == 1.0  # chance overlap
    paired = {x["subset"]: x for x in summary["split"]["paired"]}
    assert paired["all"]["n_prompts"] == 553 and paired["clean"]["n_prompts"] == 0  # everything is dirty
    assert (out / "report.md").read_text().count("Paired student - teacher") == 1


def test_missing_coco_path_explains_the_fix(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("RDMEVAL_COCO_TRAIN2014_CAPTIONS", raising=False)
    rc = main(["audit", "--benchmark", "geneval", "--pool", str(REPO / "benchmarks" / "pools" / "rdm-s180-reference.toml"),
               "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2
    assert "RDMEVAL_COCO_TRAIN2014_CAPTIONS" in err and "--set SOURCE.path" in err


def test_bad_arguments(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["audit", "--benchmark", "x", "--pool", "y.toml", "--levels", "exact,fuzzy", "--out", str(tmp_path)])
    assert exc.value.code == 2 and "unknown level(s) ['fuzzy']" in capsys.readouterr().err
    rc = main(["audit", "--benchmark", "x.txt", "--pool", str(tmp_path / "none.toml"), "--out", str(tmp_path)])
    assert rc == 2 and "no such pool spec" in capsys.readouterr().err


def test_help_has_examples(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["audit", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    assert "examples:" in text and "--pool rdm-s180-generator" in text and "--set coco-train2014.path=" in text
