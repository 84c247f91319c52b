"""Result rows: ``protocol`` and ``versions`` are nested objects everywhere a user reads them.

In memory and in ``summary.json`` they are objects; only parquet stores them as JSON text, and
``read_rows`` decodes that text once, so no reader decodes twice.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

from rdmeval.errors import RdmevalError
from rdmeval.api.rows import provenance_from_run, read_rows, write_rows

PROTOCOL = {"n_per_prompt": 4, "seed_policy": {"kind": "per-sample", "formula": "seed = 46000000 + prompt_idx*100 + sample_idx"},
            "model": {"ctx_len": 48, "steps": 1}, "resolution": [512, 512]}
VERSIONS = {"torch": "2.14.1", "diffusers": "0.42.1"}


def _row(**kw) -> dict:
    return {"run_id": "runs/student/geneval", "model": "student", "scorer": "geneval-mmdet", "category": "overall",
            "metric": "overall", "value": 0.8, "protocol": PROTOCOL, "versions": VERSIONS, **kw}


def test_nested_fields_are_objects_in_json_text_in_parquet_and_dicts_when_read(tmp_path):
    path = tmp_path / "summary.parquet"
    write_rows([_row()], path)
    twin = json.loads(path.with_suffix(".json").read_text())
    assert twin[0]["protocol"] == PROTOCOL and twin[0]["versions"] == VERSIONS  # objects, not strings
    raw = pd.read_parquet(path)  # parquet itself: JSON text with sorted keys
    assert raw["protocol"].iloc[0] == json.dumps(PROTOCOL, sort_keys=True)
    assert raw["versions"].iloc[0] == json.dumps(VERSIONS, sort_keys=True)
    rows = read_rows([path])
    assert rows["protocol"].iloc[0] == PROTOCOL and rows["versions"].iloc[0] == VERSIONS
    assert rows["value"].iloc[0] == 0.8


def test_rows_given_json_text_are_stored_the_same(tmp_path):
    """Rows whose nested fields are already JSON text (older callers) write the same parquet."""
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    write_rows([_row()], a)
    write_rows([_row(protocol=json.dumps(PROTOCOL, sort_keys=True), versions=json.dumps(VERSIONS, sort_keys=True))], b)
    pd.testing.assert_frame_equal(pd.read_parquet(a), pd.read_parquet(b))
    assert json.loads(a.with_suffix(".json").read_text()) == json.loads(b.with_suffix(".json").read_text())


def test_provenance_from_run_gives_objects():
    manifest = {"request": {"model": {"preset": "student", "ctx_len": 48, "weights_sha256": {"x": "1"}},
                            "prompt_set": {"name": "geneval", "version": "1"}, "n_per_prompt": 4},
                "environment": {"versions": VERSIONS, "git_commit": "abc"}}
    prov = provenance_from_run(manifest, "runs/student/geneval")
    assert prov["versions"] == VERSIONS
    assert prov["protocol"]["model"] == {"preset": "student", "ctx_len": 48}  # weights hashes left out
    assert prov["protocol"]["n_per_prompt"] == 4


def test_a_nested_field_that_is_not_a_json_object_is_an_error_naming_the_file(tmp_path):
    path = tmp_path / "summary.parquet"
    pd.DataFrame([{"protocol": "[1, 2]", "versions": "{}"}]).to_parquet(path)
    with pytest.raises(RdmevalError, match=r"summary.parquet.*not a JSON object"):
        read_rows([path])
