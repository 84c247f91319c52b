"""The one-step-field suite: every family end to end on tiny pipelines (``reproduce --smoke``), its rows in
the table, the published figures of the field flagged, and the paper-table's output untouched by them."""

from __future__ import annotations

import json

import pytest

from rdmeval.cli.main import main
from rdmeval.generators.diffusers_presets import PRESETS
from rdmeval.results.columns import MODEL_LABELS
from rdmeval.results.published import load_published
from rdmeval.results.table import STANDIN, build_table
from rdmeval.suites import load_suite

FIELD = list(PRESETS)


def test_suite_is_the_paper_table_plus_the_field():
    field, paper = load_suite("one-step-field"), load_suite("paper-table")
    assert [m.preset for m in field.models] == [m.preset for m in paper.models] + FIELD
    assert field.benchmarks == paper.benchmarks  # the same protocol for every model
    assert all(name in MODEL_LABELS for name in FIELD)


@pytest.fixture(scope="module")
def field_root(tmp_path_factory):
    out = tmp_path_factory.mktemp("field") / "out"
    assert main(["reproduce", "--suite", "one-step-field", "--smoke", "--out", str(out), "--no-progress"]) == 0
    return out


def test_smoke_runs_every_family_through_its_preset(field_root):
    suite = load_suite("one-step-field")
    shapes = {}
    for model in suite.models:
        for bench in suite.benchmarks:
            manifest = json.loads((field_root / "runs" / model.name / bench.name / "manifest.json").read_text())
            assert manifest["complete"] is True
            described = manifest["request"]["model"]
            assert described["preset"] == model.preset and manifest["request"]["resolution"] == [64, 64]
            if model.preset in PRESETS:
                preset = PRESETS[model.preset]
                assert described["pipeline"] == preset.pipeline and described["steps"] == preset.steps
                assert described["protocol"] == json.loads(json.dumps(preset.describe()))  # the card's protocol, recorded
                assert described["base"]["path"].endswith(f"tiny-field/{preset.family}")
                assert (described["weights"] is not None) == (preset.swap is not None)
                shapes[preset.family] = tuple(manifest["request"]["latent_shape"])
    # each family's noise in its own latent shape: FLUX.1/SD3 16 channels at 1/8, SDXL 4 at 1/8, the tiny DC-AE 8 at 1/4
    assert shapes == {"flux": (16, 8, 8), "sd3": (16, 8, 8), "sdxl-turbo": (4, 8, 8), "sdxl-base": (4, 8, 8),
                      "sana-sprint": (8, 16, 16)}
    main_ = build_table(field_root, n_resamples=50).section("main")
    assert set(FIELD) <= set(main_.row_keys)
    assert [main_.row_labels[main_.row_keys.index(m)] for m in FIELD] == [MODEL_LABELS[m] for m in FIELD]
    assert (field_root / "table.md").read_text().count("SANA-Sprint 1.6B @ 1 step") >= 1


def test_field_published_figures_are_flagged_and_never_differenced(field_root):
    pub = load_published()
    t = build_table(field_root, n_resamples=50)
    runs = t.section("published-runs")
    for v in pub.select(run="sana-sprint"):
        key = "/".join(v.key)
        cell = runs.cell(key, "value")
        assert cell.published == v.value and cell.delta is None
        assert cell.status == STANDIN  # a smoke run on demo prompts
        assert runs.row_labels[runs.row_keys.index(key)].endswith("(protocol differs)")
    assert any("SANA-Sprint paper" in n and "Protocol:" in n for n in runs.notes)
    assert any(n.startswith("SANA-Sprint paper, flux1-schnell: protocol differs: measured by the SANA-Sprint authors")
               for n in runs.notes)


def test_paper_table_output_has_no_field_rows(field_root):
    """A run root of the card's models only (the paper-table suite) shows the card's published runs as before."""
    t = build_table(field_root, models=["teacher", "naive", "student"], n_resamples=50)
    runs = t.section("published-runs")
    assert not any(k.startswith("sana-sprint/") for k in runs.row_keys)
    assert {k.split("/")[0] for k in runs.row_keys} == {"authors-rerun", "paper-table2"}
    assert not any("SANA" in n for n in runs.notes)
    assert runs.notes[-1].endswith("(the paper's Table-2 student is a COCO-only checkpoint, not the released s180).")


def test_check_lists_every_missing_field_input_offline(tmp_path, monkeypatch, capsys):
    """Offline with an empty cache, --check names each field model's pipeline and swap file with its flag."""
    from huggingface_hub import constants

    monkeypatch.setenv("RDMEVAL_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))  # an empty cache, whatever this machine holds
    weights = tmp_path / "student.safetensors"
    weights.write_bytes(b"x")
    code = main(["reproduce", "--suite", "one-step-field", "--weights", str(weights), "--out", str(tmp_path / "o"), "--check",
                 "--model-base", f"sdxl-turbo={tmp_path / 'nowhere'}"])
    err = capsys.readouterr().err
    assert code == 2
    for name in FIELD:
        assert f"pipeline of {name}" in err
    assert f"no such folder {tmp_path / 'nowhere'}" in err and "--model-base sdxl-turbo=FOLDER" in err
    assert "weights of dmd2-sdxl-1step (tianweiy/DMD2/dmd2_sdxl_1step_unet_fp16.bin)" in err
    assert "--model-weights sdxl-lightning-1step=FILE" in err
