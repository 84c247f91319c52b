"""Preflight: every missing input of a command is listed at once, before any model loads or image is made.

Tests run offline (conftest sets RDMEVAL_OFFLINE and HF_HUB_OFFLINE), so an input that is neither
local nor cached is missing. The Hugging Face cache and the home folder (open_clip's cache) are
pointed at empty temporary folders, so what this machine happens to have cached does not count.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from rdmeval.cli.main import main
from rdmeval.preflight import check_base, check_hf_folder_or_id, check_prompt_set, check_weights


@pytest.fixture(autouse=True)
def _empty_caches(tmp_path, monkeypatch):
    import huggingface_hub.constants

    hub = tmp_path / "hf-hub"
    hub.mkdir()
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(hub))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return hub


def _cache_in_hub(hub: Path, repo_id: str, filename: str) -> None:
    """A file as huggingface_hub caches it: refs/main names a snapshot holding the file."""
    repo = hub / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0" * 40)
    (repo / "snapshots" / ("0" * 40)).mkdir(parents=True)
    (repo / "snapshots" / ("0" * 40) / filename).write_text("{}")


def _lines(err: str) -> list[str]:
    return [line.strip()[2:] for line in err.splitlines() if line.strip().startswith("- ")]


def test_reproduce_lists_every_missing_input_and_generates_nothing(tmp_path, capsys):
    out = tmp_path / "paper"
    assert main(["reproduce", "--suite", "paper-table", "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    lines = _lines(err)
    assert "9 inputs missing (nothing was loaded or generated)" in err
    expected = [
        ("student weights", "--weights PATH"),
        ("base pipeline black-forest-labs/FLUX.2-klein-4B", "--base FOLDER"),
        ("prompt set 'geneval' (benchmark geneval)", "--prompts-file geneval=PATH"),
        ("prompt set 'coco-val' (benchmark coco-val)", "--prompts-file coco-val=PATH"),
        ("prompt set 'pickapic-test' (benchmark pickapic-test)", "--prompts-file pickapic-test=PATH"),
        ("detector checkpoint mask2former", "--detector-checkpoint FILE"),
        ("CLIP ViT-L-14 weights 'openai'", "--clip-pretrained FILE"),
        ("PickScore model yuvalkirstain/PickScore_v1", "--pickscore-model FOLDER"),
        ("PickScore processor laion/CLIP-ViT-H-14-laion2B-s32B-b79K", "--pickscore-processor FOLDER"),
    ]
    assert len(lines) == len(expected)
    for line, (what, flag) in zip(lines, expected):
        assert line.startswith(what) and flag in line, line
    assert "--prompts-file PATH" not in err  # reproduce takes BENCHMARK=PATH only
    assert not (out / "runs").exists()


def test_reproduce_with_one_missing_input(tmp_path, capsys):
    suite = tmp_path / "suite.toml"
    suite.write_text(
        'name = "one-missing"\nversion = "1"\n\n[[models]]\nname = "dummy"\npreset = "dummy"\n\n'
        '[[benchmarks]]\nname = "mine"\nprompts = "pickapic-test"\nn_per_prompt = 1\nctx_len = 48\n'
        'seed_policy = "one-call:0"\nbatch_size = 2\nscorers = []\n'
    )
    out = tmp_path / "out"
    missing = tmp_path / "nowhere" / "prompts.jsonl"
    assert main(["reproduce", "--suite", str(suite), "--out", str(out), "--prompts-file", f"mine={missing}", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1  # one missing input: one line, as every other error
    line = err.split("(nothing was loaded or generated): ", 1)[1]
    assert line.startswith("prompt set 'pickapic-test' (benchmark mine)") and "--prompts-file mine=PATH" in line
    assert "no such file or folder" in line and "1 input missing" in err and not out.exists()
    # --check with a local copy that exists: passes, and still makes nothing
    copy = tmp_path / "pickapic_test_prompts.jsonl"
    copy.write_text('{"prompt": "a cat"}\n')
    assert main(["reproduce", "--suite", str(suite), "--out", str(out), "--prompts-file", f"mine={copy}", "--check"]) == 0
    assert "all 2 inputs are available (prompts of mine, output folder)" in capsys.readouterr().out and not out.exists()
    # --check checks the output folder too: a file, or a path below a file, is reported with the flag that fixes it
    for bad, why in ((copy, "this is a file, not a folder"), (copy / "runs", f"{copy} is a file, so no folder")):
        assert main(["reproduce", "--suite", str(suite), "--out", str(bad), "--prompts-file", f"mine={copy}", "--check"]) == 2
        err = capsys.readouterr().err
        assert f"output folder {bad}: {why}" in err and "as --out" in err and len(err.strip().splitlines()) == 1, err
    (tmp_path / "ckpts").mkdir()
    (tmp_path / "ckpts" / "s20.safetensors").write_bytes(b"")
    assert main(["sweep", "--weights", str(tmp_path / "ckpts"), "--suite", str(suite), "--out", str(copy), "--check",
                 "--prompts-file", f"mine={copy}"]) == 2
    assert f"output folder {copy}: this is a file" in capsys.readouterr().err


def test_check_out_folder_reports_a_link_to_nothing(tmp_path):
    """A link whose target is gone passes exists() as False, but no folder can be made there (mkdir: File exists)."""
    from rdmeval.preflight import check_out_folder

    link = tmp_path / "out"
    link.symlink_to(tmp_path / "gone")
    for out in (link, link / "sub"):
        problem = check_out_folder(str(out))
        assert problem is not None and problem.what == f"output folder {out}", out
        assert problem.why == f"{link} is a link to {tmp_path / 'gone'}, which does not exist" and "as --out" in problem.fix
    (tmp_path / "gone").mkdir()
    assert check_out_folder(str(link)) is None and check_out_folder(str(link / "sub")) is None


def test_check_passes_on_the_smoke_setup(tmp_path, capsys):
    out = tmp_path / "smoke"
    assert main(["reproduce", "--smoke", "--out", str(out), "--check"]) == 0
    printed = capsys.readouterr().out
    assert "inputs are available" in printed and "detector config" in printed and "PickScore model" in printed
    assert not (out / "runs").exists()
    # --smoke builds its own tiny klein: real weights or a base given with it would be silently replaced
    for flag in ("--weights", "--base"):
        assert main(["reproduce", "--smoke", "--out", str(tmp_path / "s2"), "--check", flag, str(tmp_path / "x")]) == 2
        assert f"drop {flag}" in capsys.readouterr().err and not (tmp_path / "s2").exists()


def test_generate_reports_missing_weights_before_the_prompt_download(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["generate", "--model", "student", "--prompts", "geneval", "--out", str(out), "--no-progress"]) == 2
    lines = _lines(capsys.readouterr().err)
    assert lines[0].startswith("student weights") and "needs --weights" in lines[0]
    assert any(line.startswith("base pipeline") for line in lines)
    (prompt_line,) = [line for line in lines if line.startswith("prompt set 'geneval'")]
    assert "--prompts-file PATH" in prompt_line and "=PATH" not in prompt_line  # generate's own flag form
    assert not out.exists()


def test_score_geneval_lists_detector_and_clip_before_loading(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["generate", "--model", "dummy", "--prompts", "demo-geneval", "--out", str(run), "--resolution", "32",
                 "--rng-device", "cpu", "--no-progress", "--limit", "1"]) == 0
    capsys.readouterr()
    assert main(["score", "geneval", str(run), "--detector-checkpoint", str(tmp_path / "no.pth"), "--no-progress"]) == 2
    lines = _lines(capsys.readouterr().err)
    assert [line.split(":")[0] for line in lines] == [f"detector checkpoint {tmp_path / 'no.pth'}", "CLIP ViT-L-14 weights 'openai'"]
    assert not (run / "scores").exists()


def test_each_check_accepts_what_is_there(tmp_path, _empty_caches):
    hub = _empty_caches
    # prompt sets: packaged, a local copy given with the flag, a file
    assert check_prompt_set("demo-geneval", None, what="x", flag="--prompts-file PATH") is None
    copy = tmp_path / "evaluation_metadata.jsonl"
    copy.write_text("{}\n")
    assert check_prompt_set("geneval", str(copy), what="x", flag="f") is None
    assert check_prompt_set("geneval", str(tmp_path), what="x", flag="f") is None  # a folder holding it
    assert "not cached" in check_prompt_set("geneval", None, what="x", flag="f").why
    assert check_prompt_set(str(copy), None, what="x", flag="f") is None
    assert "no such file" in check_prompt_set(str(tmp_path / "gone.jsonl"), None, what="x", flag="f").why
    # the base pipeline: a folder with model_index.json, or a hub id in the cache
    assert "no model_index.json" in check_base(str(tmp_path)).why
    (tmp_path / "model_index.json").write_text("{}")
    assert check_base(str(tmp_path)) is None
    assert "fetched from the hub" in check_base("org/klein").why
    _cache_in_hub(hub, "org/klein", "model_index.json")
    assert check_base("org/klein") is None
    # PickScore: a hub id is found by its config in the cache
    assert check_hf_folder_or_id("org/pick", what="m", flag="--m", files=("config.json",)) is not None
    _cache_in_hub(hub, "org/pick", "config.json")
    assert check_hf_folder_or_id("org/pick", what="m", flag="--m", files=("config.json",)) is None
    # weights: required, present, a supported file
    assert check_weights(None) is not None
    text = tmp_path / "weights.txt"
    text.write_text("not weights")
    assert "not a .safetensors file" in check_weights(str(text)).why
    st = tmp_path / "model.safetensors"
    save_file({"w": torch.ones(64, 64)}, str(st))
    assert check_weights(str(st)) is None and check_weights(str(tmp_path)) is None


def test_a_truncated_or_empty_weight_file_is_found_before_any_model_loads(tmp_path):
    """A copy cut short keeps its name and suffix: the check reads its header (safetensors) or looks for its zip
    directory (torch.save's format, written last) and names the file and what to do, instead of a load failing later in the run."""
    st, pth, legacy = tmp_path / "model.safetensors", tmp_path / "s180.pth", tmp_path / "old.pth"
    save_file({"w": torch.ones(64, 64)}, str(st))
    torch.save({"w": torch.ones(64, 64)}, pth)
    torch.save({"w": torch.ones(2)}, legacy, _use_new_zipfile_serialization=False)
    assert check_weights(str(st)) is None and check_weights(str(pth)) is None and check_weights(str(legacy)) is None
    whole_st, whole_pth = st.read_bytes(), pth.read_bytes()
    for path, whole, why in ((st, whole_st, "not a whole safetensors file"), (pth, whole_pth, "zip directory, written last, is missing")):
        path.write_bytes(whole[: len(whole) - 100])  # the end of the file is lost
        problem = check_weights(str(path))
        assert problem is not None and why in problem.why and str(path) in problem.what and "copy or download it again" in problem.fix
    st.write_bytes(b"")
    assert check_weights(str(tmp_path)).why == "an empty file"  # the folder's model.safetensors
    save_file({"w": torch.ones(2)}, str(st))
    save_file({"w": torch.ones(2)}, str(tmp_path / "diffusion_pytorch_model.safetensors"))
    both = check_weights(str(tmp_path))  # the loader refuses such a folder: so does the check, before any model loads
    assert "both model.safetensors and diffusion_pytorch_model.safetensors" in both.why and "the file itself" in both.fix


def test_misspelt_benchmark_or_model_in_a_flag_is_an_error(tmp_path, capsys):
    """--prompts-file, --model-base and --model-weights name a benchmark or diffusers model of the suite: a typo is a
    one-line error with the names it could be, not a local copy silently unused (then a download, or another file)."""
    suite = tmp_path / "suite.toml"
    suite.write_text(
        'name = "one"\nversion = "1"\n\n[[models]]\nname = "dummy"\npreset = "dummy"\n\n'
        '[[benchmarks]]\nname = "mine"\nprompts = "pickapic-test"\nn_per_prompt = 1\nctx_len = 48\n'
        'seed_policy = "one-call:0"\nbatch_size = 2\nscorers = []\n'
    )
    copy = tmp_path / "pickapic_test_prompts.jsonl"
    copy.write_text('{"prompt": "a cat"}\n')
    out = tmp_path / "out"
    base = ["reproduce", "--suite", str(suite), "--out", str(out), "--check", "--prompts-file", f"mine={copy}"]
    for extra, expected in ((["--prompts-file", f"mien={copy}"], "--prompts-file mien="),
                            (["--model-base", "sdxl-turbo=./sdxl-turbo"], "--model-base sdxl-turbo="),
                            (["--model-weights", "dmd2-sdxl-1step=./dmd2.bin"], "--model-weights dmd2-sdxl-1step=")):
        assert main([*base, *extra]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and expected in err and "suite one has no" in err, err
    assert "(did you mean 'mine'?)" in (main([*base, "--prompts-file", f"mien={copy}"]), capsys.readouterr().err)[1]
    assert not out.exists()
    # the sweep's --prompts-file is checked against its suite the same way
    (tmp_path / "ckpts").mkdir()
    (tmp_path / "ckpts" / "s20.pth").write_bytes(b"")
    assert main(["sweep", "--weights", str(tmp_path / "ckpts"), "--suite", str(suite), "--out", str(out), "--check",
                 "--prompts-file", f"mien={copy}"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "--prompts-file mien=" in err and "suite one has no benchmark" in err, err
