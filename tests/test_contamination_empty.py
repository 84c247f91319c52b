"""An empty benchmark, an empty pool source or a zero-weight pool is a failure, never "0.0 % contamination"."""

from __future__ import annotations

import json

import pytest

from rdmeval.cli.main import main
from rdmeval.contamination.audit import run_audit
from rdmeval.contamination.degenerate import EmptyPoolError
from rdmeval.prompts import PromptSet


@pytest.fixture()
def files(tmp_path):
    (tmp_path / "bench.txt").write_text("a photo of a dog\na photo of a cat\n", encoding="utf-8")
    (tmp_path / "pool.txt").write_text("a photo of a dog\nan empty street\n", encoding="utf-8")
    (tmp_path / "empty.txt").write_text("\n  \n", encoding="utf-8")  # blank lines only: zero rows
    (tmp_path / "pool.toml").write_text(
        '[[source]]\nname = "captions"\npath = "pool.txt"\n\n[[source]]\nname = "scraped"\npath = "empty.txt"\n', encoding="utf-8")
    (tmp_path / "zero.toml").write_text('name = "zeroed"\n[[source]]\nname = "captions"\npath = "pool.txt"\nweight = 0\n', encoding="utf-8")
    (tmp_path / "good.toml").write_text('[[source]]\nname = "captions"\npath = "pool.txt"\n', encoding="utf-8")
    return tmp_path


def _audit(files, pool, *extra):
    return main(["audit", "--benchmark", str(files / "bench.txt"), "--pool", str(files / pool), "--levels", "exact,normalized",
                 "--out", str(files / "out"), "--no-progress", *extra])


def test_a_source_with_zero_rows_is_an_error_naming_it(files, capsys):
    assert _audit(files, "pool.toml") == 2
    err = capsys.readouterr().err
    assert "source 'scraped'" in err and "empty.txt" in err and "has zero rows" in err and "--allow-empty" in err
    assert not (files / "out" / "audit.json").exists()


def test_allow_empty_writes_the_report_with_a_loud_failure_and_a_nonzero_exit(files, capsys):
    assert _audit(files, "pool.toml", "--allow-empty") == 1
    captured = capsys.readouterr()
    assert "rdmeval: AUDIT FAILED: pool 'pool': source 'scraped'" in captured.err
    summary = json.loads((files / "out" / "audit.json").read_text())
    assert len(summary["failures"]) == 1 and "'scraped'" in summary["failures"][0]
    assert summary["pool"]["coverage"]["exact"]["flagged"] == 1  # the rest of the audit is still computed


def test_a_pool_with_zero_total_weight_is_an_error_naming_it(files, capsys):
    assert _audit(files, "zero.toml") == 2
    err = capsys.readouterr().err
    assert "pool 'zeroed': its 2 rows have zero total weight" in err
    with pytest.raises(EmptyPoolError, match="null pool 'zeroed'"):
        run_audit(files / "bench.txt", files / "good.toml", levels="exact", null_spec=files / "zero.toml")


def test_a_benchmark_with_zero_prompts_is_an_error_naming_it(files):
    empty = PromptSet(name="nothing", version="1", prompts=[], sha256="0" * 64, source="test", format="txt")
    with pytest.raises(EmptyPoolError, match="benchmark 'nothing' \\(test\\) has zero prompts"):
        run_audit(empty, files / "good.toml", levels="exact")


def test_a_sound_pool_still_exits_zero(files, capsys):
    assert _audit(files, "good.toml") == 0
    assert "AUDIT FAILED" not in capsys.readouterr().err
    assert "failures" not in json.loads((files / "out" / "audit.json").read_text())
