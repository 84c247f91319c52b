"""``rdmeval demo`` runs end to end and leaves its outputs where it says."""

from __future__ import annotations

import json

from rdmeval.cli.main import main


def test_demo_runs_every_stage(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "demo")]) == 0
    out = capsys.readouterr().out
    assert str((tmp_path / "demo").resolve()) in out
    manifest = json.loads((tmp_path / "demo" / "runs" / "dummy" / "demo-geneval" / "manifest.json").read_text())
    assert manifest["complete"] is True
    assert len(list((tmp_path / "demo" / "runs" / "dummy" / "demo-geneval").rglob("*.png"))) == 24
