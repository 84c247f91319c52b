"""`rdmeval score pickscore` end to end on dummy runs with a tiny_clip offline CLIP: rows, refusal, resume, shards, compare."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from rdmeval.cli.main import main
from rdmeval.scorers.pickscore.model import PickScorer
from rdmeval.scorers.pickscore.score import score_pickscore_run



@pytest.fixture(scope="module")
def reference(tiny_clip):
    """PickScore by hand with transformers alone, for (PNG path, prompt) pairs."""
    from transformers import CLIPModel, CLIPProcessor

    model = CLIPModel.from_pretrained(tiny_clip).eval()
    processor = CLIPProcessor.from_pretrained(tiny_clip)

    def score(paths, texts):
        images = [Image.open(p).convert("RGB") for p in paths]
        with torch.no_grad():
            img = model.get_image_features(**processor(images=images, return_tensors="pt")).pooler_output
            enc = processor(text=list(texts), padding=True, truncation=True, max_length=77, return_tensors="pt")
            txt = model.get_text_features(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).pooler_output
        img = img / img.norm(dim=-1, keepdim=True)
        txt = txt / txt.norm(dim=-1, keepdim=True)
        return (model.logit_scale.detach().exp() * (img * txt).sum(-1)).numpy()

    return score


def _generate(out, prompts="demo-captions", resolution=64):
    argv = ["generate", "--model", "dummy", "--prompts", str(prompts), "--out", str(out),
            "--resolution", str(resolution), "--rng-device", "cpu", "--no-progress"]
    assert main(argv) == 0
    return out


def _score(tiny_clip, run, *extra):
    return main(["score", "pickscore", str(run), "--model", str(tiny_clip), "--processor", str(tiny_clip),
                 "--workers", "0", "--no-progress", "--n-resamples", "200", *extra])


def _scores_dir(run):
    return run / "scores" / "pickscore"


def test_end_to_end_matches_the_reference_and_writes_rows(tmp_path, tiny_clip, reference, capsys):
    run = _generate(tmp_path / "run")
    assert _score(tiny_clip, run) == 0
    printed = capsys.readouterr().out
    per_image = pd.read_parquet(_scores_dir(run) / "per_image.parquet")
    assert len(per_image) == 4
    expected = reference([run / p for p in per_image["image"]], per_image["prompt"])
    np.testing.assert_allclose(per_image["pickscore"].to_numpy(), expected, rtol=0, atol=1e-5)
    texts = [json.loads((run / f"{i:05d}" / "metadata.jsonl").read_text())["prompt"] for i in per_image["prompt_index"]]
    assert per_image["prompt"].tolist() == texts

    per_prompt = pd.read_parquet(_scores_dir(run) / "per_prompt.parquet")
    summary = pd.read_parquet(_scores_dir(run) / "summary.parquet")
    assert len(summary) == 1
    row = summary.iloc[0]
    assert (row["scorer"], row["metric"], row["benchmark"]) == ("pickscore", "pickscore_mean", "demo-captions")
    assert row["value"] == pytest.approx(float(np.mean(expected)), abs=1e-5)
    assert row["value"] == pytest.approx(per_prompt["pickscore"].mean())
    assert row["ci_low"] < row["value"] < row["ci_high"]
    assert (row["n"], row["n_prompts"], row["n_truncated"], row["coverage"], bool(row["complete"])) == (4, 4, 0, 1.0, True)
    assert row["benchmark_definition"] and row["benchmark_definition"] in printed
    protocol = json.loads(row["protocol"])
    assert protocol["scorer"]["dtype"] == "fp32"
    assert protocol["scorer"]["model"]["path"] == str(tiny_clip.resolve())
    assert protocol["scorer"]["processor"]["path"] == str(tiny_clip.resolve())
    assert protocol["rng_device"] == "cpu"  # the run's own protocol is kept beside the scorer's
    assert f"{row['value']:.4f}" in printed and "0 of 4" in printed


def test_long_prompt_is_counted_as_truncated(tmp_path, tiny_clip, capsys):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red bowl on the table\n" + " ".join(["a photo of a green cat on a blue table"] * 12) + "\n")
    run = _generate(tmp_path / "run", prompts)
    assert _score(tiny_clip, run) == 0
    assert "truncated by the scorer at 77 CLIP tokens: 1 of 2" in capsys.readouterr().out
    per_prompt = pd.read_parquet(_scores_dir(run) / "per_prompt.parquet")
    assert per_prompt["truncated"].tolist() == [False, True]
    assert per_prompt["clip_tokens"].iloc[1] > 77
    assert pd.read_parquet(_scores_dir(run) / "summary.parquet")["n_truncated"].iloc[0] == 1


def test_incomplete_run_is_refused_unless_allowed(tmp_path, tiny_clip, capsys):
    run = _generate(tmp_path / "run")
    (run / "00002" / "samples" / "0000.png").unlink()
    assert _score(tiny_clip, run) == 2
    err = capsys.readouterr().err
    assert "incomplete: 3 of 4 images present" in err and "--allow-incomplete" in err and "00002/samples/0000.png" in err
    assert not (_scores_dir(run) / "summary.parquet").exists()

    assert _score(tiny_clip, run, "--allow-incomplete") == 0
    assert "INCOMPLETE RUN" in capsys.readouterr().out
    row = pd.read_parquet(_scores_dir(run) / "summary.parquet").iloc[0]
    assert (row["n"], row["n_prompts"], row["coverage"], bool(row["complete"])) == (3, 3, 0.75, False)


def test_resume_after_interruption_and_stale_cache(tmp_path, tiny_clip, reference, capsys):
    run = _generate(tmp_path / "run")
    scorer = PickScorer.from_pretrained(str(tiny_clip), str(tiny_clip), device="cpu", batch_size=1)
    real, calls = scorer.embed_pixels, []

    def dies_on_third_batch(pixels):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(pixels)

    scorer.embed_pixels = dies_on_third_batch
    with pytest.raises(KeyboardInterrupt):
        score_pickscore_run(run, scorer, progress=False)
    assert not (_scores_dir(run) / "summary.parquet").exists()

    assert _score(tiny_clip, run) == 0
    assert "2 images embedded, 2 reused from the cache" in capsys.readouterr().out
    resumed = pd.read_parquet(_scores_dir(run) / "per_image.parquet")
    assert _score(tiny_clip, run, "--out", str(tmp_path / "fresh")) == 0  # a from-scratch scoring elsewhere
    fresh = pd.read_parquet(tmp_path / "fresh" / "per_image.parquet")
    # batch 1 then 64 vs one batch of 64: equal up to float32 GEMM rounding
    np.testing.assert_allclose(resumed["pickscore"], fresh["pickscore"], rtol=1e-5, atol=1e-5)

    # a regenerated image invalidates exactly its cached embedding
    target = run / "00001" / "samples" / "0000.png"
    Image.fromarray(np.full((64, 64, 3), (200, 30, 90), dtype=np.uint8)).save(target)
    capsys.readouterr()
    assert _score(tiny_clip, run) == 0
    assert "1 images embedded, 3 reused from the cache" in capsys.readouterr().out
    after = pd.read_parquet(_scores_dir(run) / "per_image.parquet").set_index("image")
    key = "00001/samples/0000.png"
    assert after.loc[key, "image_sha256"] != resumed.set_index("image").loc[key, "image_sha256"]
    assert after.loc[key, "pickscore"] == pytest.approx(float(reference([target], [after.loc[key, "prompt"]])[0]), abs=1e-5)


def test_shards_combine_into_the_unsharded_result(tmp_path, tiny_clip, capsys, monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    run = _generate(tmp_path / "run")
    assert _score(tiny_clip, run, "--shard", "0/2") == 0
    assert "still lack an embedding" in capsys.readouterr().out
    assert not (_scores_dir(run) / "summary.parquet").exists()
    assert _score(tiny_clip, run, "--shard", "1/2") == 0
    assert "2 images embedded, 0 reused" in capsys.readouterr().out
    sharded = pd.read_parquet(_scores_dir(run) / "per_image.parquet")
    assert _score(tiny_clip, run, "--out", str(tmp_path / "whole")) == 0
    whole = pd.read_parquet(tmp_path / "whole" / "per_image.parquet")
    assert sharded["image"].tolist() == whole["image"].tolist()
    # Each shard embeds its images in other batches than the unsharded run, and fp32 GEMMs block by batch
    # size: every embedding moves by a few ulps per layer, the cosine by ~1e-6, the score (logit_scale 100
    # times the cosine) by ~1e-4 at most. A wrong image/prompt pairing moves it by whole units.
    np.testing.assert_allclose(sharded["pickscore"], whole["pickscore"], rtol=1e-5, atol=1e-4)
    assert _score(tiny_clip, run, "--shard", "2/2") == 2  # a bad shard is a usage error


def test_compare_two_runs(tmp_path, tiny_clip, capsys):
    a = _generate(tmp_path / "a", resolution=64)
    b = _generate(tmp_path / "b", resolution=32)  # different images, same prompts
    assert main(["score", "pickscore-compare", str(a), str(b)]) == 2
    assert "score the run first" in capsys.readouterr().err
    for run in (a, b):
        assert _score(tiny_clip, run) == 0
    out = tmp_path / "a-vs-b.parquet"
    assert main(["score", "pickscore-compare", str(a), str(b), "--out", str(out), "--n-resamples", "300"]) == 0
    printed = capsys.readouterr().out
    sa = pd.read_parquet(_scores_dir(a) / "per_prompt.parquet")["pickscore"].to_numpy()
    sb = pd.read_parquet(_scores_dir(b) / "per_prompt.parquet")["pickscore"].to_numpy()
    rows = pd.read_parquet(out).set_index("metric")
    assert rows.loc["pickscore_diff", "value"] == pytest.approx(float(np.mean(sa - sb)))
    assert rows.loc["pickscore_diff", "ci_low"] <= rows.loc["pickscore_diff", "value"] <= rows.loc["pickscore_diff", "ci_high"]
    assert rows.loc["pickscore_win_rate", "value"] == pytest.approx(float(np.mean(sa > sb) + 0.5 * np.mean(sa == sb)))
    assert f"{np.mean(sa - sb):+.4f}" in printed and "win rate of A" in printed

    other = _generate(tmp_path / "other", prompts="demo-geneval")  # 4 images per prompt
    assert _score(tiny_clip, other) == 0
    per_image = pd.read_parquet(_scores_dir(other) / "per_image.parquet")
    prompt_means = per_image.groupby("prompt_index")["pickscore"].mean()
    assert set(pd.read_parquet(_scores_dir(other) / "per_prompt.parquet")["n_images"]) == {4}
    value = pd.read_parquet(_scores_dir(other) / "summary.parquet")["value"].iloc[0]
    assert value == pytest.approx(prompt_means.mean())  # mean over prompts of per-prompt means
    capsys.readouterr()
    assert main(["score", "pickscore-compare", str(a), str(other)]) == 2
    assert "different prompt sets" in capsys.readouterr().err

    assert _score(tiny_clip, b, "--dtype", "bf16") == 0
    capsys.readouterr()
    assert main(["score", "pickscore-compare", str(a), str(b)]) == 2
    assert "scored differently" in capsys.readouterr().err


def test_pickapic_test_end_to_end(tmp_path, tiny_clip, shared_data, capsys):
    run = tmp_path / "pickapic"
    assert main(["generate", "--model", "dummy", "--prompts", "pickapic-test", "--prompts-file",
                 str(shared_data / "rdm-assets" / "pickapic_test_prompts.jsonl"), "--limit", "12", "--out", str(run),
                 "--resolution", "32", "--rng-device", "cpu", "--no-progress"]) == 0
    assert _score(tiny_clip, run) == 0
    printed = capsys.readouterr().out
    row = pd.read_parquet(_scores_dir(run) / "summary.parquet").iloc[0]
    assert (row["benchmark"], row["n_prompts"]) == ("pickapic-test", 12)
    assert json.loads(row["protocol"])["model"]["name"] == "dummy"
    assert f"pickapic-test version {row['benchmark_version']}" in printed


def test_coco_val_end_to_end_prints_the_definition(tmp_path, tiny_clip, capsys):
    captions = {"annotations": [{"image_id": 100 + i, "caption": f"A photo of a red cat number {i} on a table."}
                                for i in range(10)]}
    ann = tmp_path / "captions_val2014.json"
    ann.write_text(json.dumps(captions))
    run = tmp_path / "coco"
    assert main(["generate", "--model", "dummy", "--prompts", "coco-val", "--prompts-file", str(ann), "--n", "5",
                 "--out", str(run), "--resolution", "32", "--rng-device", "cpu", "--no-progress"]) == 0
    capsys.readouterr()
    assert _score(tiny_clip, run) == 0
    printed = capsys.readouterr().out
    row = pd.read_parquet(_scores_dir(run) / "summary.parquet").iloc[0]
    assert (row["benchmark"], row["n_prompts"]) == ("coco-val", 5)
    assert "COCO 2014 val" in row["benchmark_definition"]
    # the number and the definition with its version are printed together
    assert f"PickScore coco-val version {row['benchmark_version']}: {row['value']:.4f}" in printed
    assert f"prompt set coco-val version {row['benchmark_version']}: {row['benchmark_definition']}" in printed


def test_help_has_examples(capsys):
    with pytest.raises(SystemExit):
        main(["score", "pickscore", "--help"])
    text = capsys.readouterr().out
    assert "examples:" in text and "pickscore-compare" in text and "--allow-incomplete" in text

