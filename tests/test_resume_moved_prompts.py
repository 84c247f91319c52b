"""A prompt file moved (or renamed) with identical content resumes its run; changed content does not."""

from __future__ import annotations

import json

from rdmeval.cli.main import main
from rdmeval.store import RunStore, WorkItem


def _gen(out, prompts) -> int:
    return main(["generate", "--model", "dummy", "--prompts", str(prompts), "--out", str(out),
                 "--resolution", "32", "--rng-device", "cpu", "--n-per-prompt", "2", "--no-progress"])


def test_moved_prompt_file_with_the_same_content_resumes_and_records_its_path(tmp_path, capsys):
    first = tmp_path / "a" / "prompts.txt"
    first.parent.mkdir()
    first.write_text("a red cube\na blue sphere\na green cone\n")
    run = tmp_path / "run"
    assert _gen(run, first) == 0
    store = RunStore(run)
    victim = store.image_path(WorkItem(1, 1))
    before = victim.read_bytes()
    victim.unlink()

    moved = tmp_path / "b" / "renamed.txt"
    moved.parent.mkdir()
    first.rename(moved)
    assert _gen(run, moved) == 0, capsys.readouterr().err
    assert victim.read_bytes() == before  # the missing image was made again, identically
    m = json.loads((run / "manifest.json").read_text())
    assert m["complete"] and len(m["resumed"]) == 1
    assert m["request"]["prompt_set"]["source"] == str(first.resolve())  # the run's identity is unchanged
    assert m["execution"]["prompt_source"] == str(moved.resolve())  # and the path now used is recorded

    moved.write_text("a red cube\na blue sphere\na green cone, changed\n")
    assert _gen(run, moved) == 2
    err = capsys.readouterr().err
    assert "prompt_set.sha256" in err and "prompt_set.source" in err  # other content: every difference is listed
