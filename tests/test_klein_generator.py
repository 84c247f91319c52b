"""The klein presets against independent references: direct module calls, the protocol's schedule, and
diffusers' own pipeline; seeds independent of batching, sharding and resuming; the CLI end to end."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from rdmeval.errors import RdmevalError
from rdmeval.generators.base import to_uint8
from rdmeval.generators.klein import KleinGenerator, build_preset
from rdmeval.generators.noise import GENEVAL_SEEDS, PICKAPIC_SEEDS
from rdmeval.generators.registry import GeneratorOptions
from rdmeval.generation import generate_run
from rdmeval.prompts import load_prompt_set

pytestmark = pytest.mark.usefixtures("one_torch_thread")

RES = 64
PROMPTS = ["a photo of a cat", "two blue dogs near a window", "a photo of a cat", ""]
SCHEDULE_512_4 = [1.0, 0.9581, 0.8840, 0.7175, 0.0]  # docs/generators.md, the teacher row




def make(tiny_klein, preset="naive", steps=None, **kw) -> KleinGenerator:
    kw.setdefault("precision", "fp32")
    kw.setdefault("height", RES)
    kw.setdefault("width", RES)
    kw.setdefault("device", "cpu")
    return KleinGenerator(preset=preset, base=str(tiny_klein["base"]), steps=steps or {"teacher": 4}.get(preset, 1), **kw)


@pytest.fixture(scope="module")
def naive(tiny_klein):
    return make(tiny_klein, "naive")


@pytest.fixture(scope="module")
def teacher(tiny_klein):
    return make(tiny_klein, "teacher")


@pytest.fixture(scope="module")
def direct_pipe(tiny_klein):
    from diffusers import Flux2KleinPipeline

    pipe = Flux2KleinPipeline.from_pretrained(tiny_klein["base"])
    pipe.set_progress_bar_config(disable=True)
    # frozen, as rdmeval's generator holds them: trainable and frozen weights take different CPU GEMM
    # paths, which round alike on some CPUs (AVX-512) and differently on others (MKL's AVX2 kernels)
    for module in pipe.components.values():
        if isinstance(module, torch.nn.Module):
            module.requires_grad_(False)
    return pipe


def noise(n: int, res: int = RES, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 128, res // 16, res // 16, generator=torch.Generator().manual_seed(seed))


# ----- independent references ----------------------------------------------------------------------


def test_one_step_image_is_decode_of_z_minus_v(tiny_klein, naive):
    """x0 = z - v(z, t=1, ctx), decoded, built here from the modules themselves (no pipeline, no rdmeval)."""
    from diffusers import AutoencoderKLFlux2, Flux2Transformer2DModel
    from transformers import AutoTokenizer, Qwen3ForCausalLM

    base = tiny_klein["base"]
    tok = AutoTokenizer.from_pretrained(base / "tokenizer")
    qwen = Qwen3ForCausalLM.from_pretrained(base, subfolder="text_encoder").eval()
    dit = Flux2Transformer2DModel.from_pretrained(base, subfolder="transformer").eval()
    vae = AutoencoderKLFlux2.from_pretrained(base, subfolder="vae").eval()
    z = noise(len(PROMPTS), seed=1)
    b, c, h, w = z.shape
    with torch.no_grad():
        texts = [tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True, enable_thinking=False) for p in PROMPTS]
        enc = tok(texts, padding="max_length", truncation=True, max_length=48, return_tensors="pt")
        hs = qwen(**enc, output_hidden_states=True).hidden_states
        ctx = torch.cat([hs[9], hs[18], hs[27]], dim=-1)  # (B, 48, 3*32): layers side by side per token
        tokens = z.flatten(2).transpose(1, 2)  # (B, h*w, 128), row-major
        img_ids = torch.tensor([[0, i, j, 0] for i in range(h) for j in range(w)])
        txt_ids = torch.tensor([[0, 0, 0, k] for k in range(48)])
        v = dit(hidden_states=tokens, encoder_hidden_states=ctx, timestep=torch.ones(b), img_ids=img_ids, txt_ids=txt_ids, return_dict=False)[0]
        x0 = (tokens - v).transpose(1, 2).reshape(b, c, h, w)
        x0 = x0 * torch.sqrt(vae.bn.running_var.view(1, -1, 1, 1) + 1e-4) + vae.bn.running_mean.view(1, -1, 1, 1)
        x0 = x0.reshape(b, 32, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3).reshape(b, 32, 2 * h, 2 * w)  # (c pi pj) h w -> c (h pi) (w pj)
        image = (vae.decode(x0).sample * 0.5 + 0.5).clamp(0, 1)
    expected = (image * 255).permute(0, 2, 3, 1).double().numpy()
    got = naive.generate(PROMPTS, z)
    assert got.shape == (4, RES, RES, 3) and got.dtype == np.uint8
    # Built op by op here, so not the same kernels as the pipeline: fp32 rounding (~1e-6 relative through
    # the tiny DiT and VAE) may differ, and a pixel whose value sits at a .5 boundary may round either way.
    # Rounding is still pinned: truncation or an off-by-one mapping would be off by up to a whole level.
    assert np.abs(got - expected).max() <= 0.5 + 255 * 1e-5
    assert not np.array_equal(got[0], got[2])  # same prompt, different noise: different images


@pytest.mark.parametrize("precision", ["fp32", "faithful"])
def test_four_step_timesteps_at_512(tiny_klein, precision):
    gen = make(tiny_klein, "teacher", precision=precision, height=512, width=512)
    seen: list[tuple[torch.Tensor, torch.dtype]] = []
    handle = gen.pipe.transformer.register_forward_pre_hook(
        lambda m, args, kwargs: seen.append((kwargs["timestep"].clone(), kwargs["hidden_states"].dtype)), with_kwargs=True
    )
    try:
        gen.generate(["a photo of a cat"], noise(1, 512))
    finally:
        handle.remove()
    assert [round(float(t[0]), 4) for t, _ in seen] == SCHEDULE_512_4[:-1]
    assert all(dtype == torch.float32 for _, dtype in seen)  # latents stay fp32 in every step
    assert [round(s, 4) for s in gen.describe()["sigmas"]] == SCHEDULE_512_4
    assert [float(t[0]) for t, _ in seen] == pytest.approx(gen.describe()["sigmas"][:-1], abs=1e-7)


def test_bf16_regime_rounds_the_timesteps(tiny_klein):
    """Control for the faithful regime's hook: a bf16 DiT sees 960/884/716 (docs/generators.md, the precision table)."""
    gen = make(tiny_klein, "teacher", precision="bf16", height=512, width=512)
    seen = []
    # what the model embeds: timestep.to(hidden_states.dtype) * 1000 (transformer_flux2.py)
    handle = gen.pipe.transformer.register_forward_pre_hook(
        lambda m, a, kw: seen.append(float((kw["timestep"].to(kw["hidden_states"].dtype) * 1000)[0])), with_kwargs=True
    )
    try:
        gen.generate(["x"], noise(1, 512))
    finally:
        handle.remove()
    assert [round(t) for t in seen] == [1000, 960, 884, 716]


@pytest.mark.parametrize("steps", [1, 4])
def test_bit_identical_to_a_direct_pipeline_call(naive, teacher, direct_pipe, steps):
    z = noise(len(PROMPTS), seed=2)
    out = direct_pipe(prompt=PROMPTS, latents=z, height=RES, width=RES, num_inference_steps=steps, guidance_scale=1.0,
                      max_sequence_length=48, output_type="pt").images
    gen = naive if steps == 1 else teacher
    assert np.array_equal(gen.generate(PROMPTS, z), to_uint8(out, "round"))
    assert gen.prompts.n_encoded >= 3


def test_faithful_regime_is_close_to_fp32_and_decodes_in_bf16(tiny_klein, naive):
    gen = make(tiny_klein, "naive", precision="faithful")
    assert gen.pipe.vae.dtype == torch.bfloat16 and gen.pipe.vae.bn.running_var.dtype == torch.bfloat16
    assert gen.pipe.transformer.dtype == torch.float32 and gen.text.dtype == torch.bfloat16
    z = noise(2, seed=4)
    a = gen.generate(PROMPTS[:2], z).astype(int)
    b = naive.generate(PROMPTS[:2], z).astype(int)
    assert np.abs(a - b).mean() < 4  # equal up to bf16 noise (tiny_klein random models amplify it)
    assert not np.array_equal(a, b)
    d = gen.describe()["precision"]
    assert d["name"] == "faithful" and "autocast" in d["dit"] and d["vae"] == "bfloat16" and d["prompt_embeds"] == "float32"


# ----- seeds: batch size, shards, resume --------------------------------------------------------------


def _pngs(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.glob("*/samples/*.png"))}


def _decoded(root: Path) -> dict[str, np.ndarray]:
    from PIL import Image

    return {k: np.asarray(Image.open(root / k)).astype(int) for k in _pngs(root)}


@pytest.mark.parametrize("policy,set_name", [(GENEVAL_SEEDS, "demo-geneval"), (PICKAPIC_SEEDS, "demo-captions")])
def test_images_do_not_depend_on_shard_or_resume_point(naive, tmp_path, policy, set_name):
    """Forward blocks are fixed by the batch size (here 3, not aligned with prompts): shards and resumes
    recompute whole blocks, so they must give byte-identical PNGs."""
    ps = load_prompt_set(set_name)
    n = 4 if policy is GENEVAL_SEEDS else 2
    run = dict(n_per_prompt=n, seed_policy=policy, rng_device="cpu", progress=False, batch_size=3)
    generate_run(naive, ps, tmp_path / "a", **run)
    for shard in ("0/3", "1/3", "2/3"):
        generate_run(naive, ps, tmp_path / "b", shard=shard, **run)
    a = _pngs(tmp_path / "a")
    assert len(a) == len(ps) * n
    assert _pngs(tmp_path / "b") == a
    # resume: drop some images and a whole prompt's samples folder, then continue
    c = tmp_path / "b"
    for rel in list(a)[1::3]:
        (c / rel).unlink()
    shutil.rmtree(c / "00001" / "samples")
    summary = generate_run(naive, ps, c, **run)
    assert summary.generated > 0 and summary.complete
    assert _pngs(c) == a


@pytest.mark.parametrize("policy,set_name", [(GENEVAL_SEEDS, "demo-geneval"), (PICKAPIC_SEEDS, "demo-captions")])
def test_images_do_not_depend_on_batch_size_beyond_float_rounding(naive, tmp_path, policy, set_name):
    """The noise of an item never depends on batching; the float kernels may, at the last bit (GEMM and conv
    blocking vary with the batch), which can move a rare uint8 value by one level. Nothing more is allowed."""
    ps = load_prompt_set(set_name)
    n = 4 if policy is GENEVAL_SEEDS else 2
    run = dict(n_per_prompt=n, seed_policy=policy, rng_device="cpu", progress=False)
    generate_run(naive, ps, tmp_path / "one", batch_size=1, **run)
    ref = _decoded(tmp_path / "one")
    for bs in (5, 64):
        generate_run(naive, ps, tmp_path / f"b{bs}", batch_size=bs, **run)
        got = _decoded(tmp_path / f"b{bs}")
        assert got.keys() == ref.keys()
        diff = np.stack([np.abs(got[k] - ref[k]) for k in ref])
        print(f"batch {bs}: {(diff > 0).sum()} of {diff.size} uint8 values differ by one level")
        assert diff.max() <= 1 and (diff > 0).mean() < 1e-3, (bs, diff.max(), (diff > 0).mean())


# ----- the CLI ------------------------------------------------------------------------------------------


def test_cli_generate_student(tiny_klein, tmp_path, capsys):
    from rdmeval.cli.main import main

    weights = tiny_klein["student_bfl_safetensors"]
    out = tmp_path / "run"
    argv = ["generate", "--model", "student", "--weights", str(weights), "--base", str(tiny_klein["base"]), "--prompts", "demo-geneval",
            "--out", str(out), "--resolution", str(RES), "--device", "cpu", "--rng-device", "cpu", "--precision", "fp32", "--no-progress"]
    assert main(argv) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    model = manifest["request"]["model"]
    assert model["preset"] == "student" and model["steps"] == 1 and model["sigmas"] == [1.0, 0.0]
    assert model["weights"]["sha256"] == hashlib.sha256(Path(weights).read_bytes()).hexdigest()
    assert model["weights"]["naming"] == "bfl" and model["ctx_len"] == 48 and model["text_layers"] == [9, 18, 27]
    assert model["base"]["path"] == str(Path(tiny_klein["base"]).resolve()) and model["precision"]["name"] == "fp32"
    assert manifest["complete"] and len(_pngs(out)) == 6 * 4
    assert main(argv) == 0  # resume: nothing left to do
    assert "0 generated, 24 already present" in capsys.readouterr().out


def test_cli_student_images_differ_from_naive(tiny_klein, tmp_path):
    from rdmeval.cli.main import main

    common = ["--base", str(tiny_klein["base"]), "--prompts", "demo-captions", "--resolution", str(RES), "--device", "cpu",
              "--rng-device", "cpu", "--precision", "fp32", "--no-progress"]
    assert main(["generate", "--model", "student", "--weights", str(tiny_klein["student_diffusers_pth"]), "--out", str(tmp_path / "s"), *common]) == 0
    assert main(["generate", "--model", "naive", "--out", str(tmp_path / "n"), *common]) == 0
    s, n = _pngs(tmp_path / "s"), _pngs(tmp_path / "n")
    assert s.keys() == n.keys() and all(s[k] != n[k] for k in s)


def test_cli_errors_are_clear(tiny_klein, tmp_path, capsys):
    from rdmeval.cli.main import main

    common = ["--base", str(tiny_klein["base"]), "--prompts", "demo-captions", "--out", str(tmp_path / "x"), "--resolution", str(RES),
              "--device", "cpu", "--rng-device", "cpu", "--precision", "fp32", "--no-progress"]
    assert main(["generate", "--model", "student", *common]) == 2
    assert "needs --weights" in capsys.readouterr().err
    assert main(["generate", "--model", "student", "--weights", str(tmp_path / "missing.safetensors"), *common]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["generate", "--model", "naive", "--text-encoder-layers", "9,18", *common]) == 2
    assert "expects 96" in capsys.readouterr().err
    assert main(["generate", "--model", "naive", "--text-encoder-layers", "9;18", *common]) == 2
    assert "comma-separated" in capsys.readouterr().err


# ----- presets, bases, provenance -------------------------------------------------------------------


def _options(tiny_klein, **kw) -> GeneratorOptions:
    base = dict(base=str(tiny_klein["base"]), device="cpu", precision="fp32", height=RES, width=RES)
    base.update(kw)
    return GeneratorOptions(**base)


def test_presets(tiny_klein):
    with pytest.raises(RdmevalError, match="never falls back"):
        build_preset("student", _options(tiny_klein))
    with pytest.raises(RdmevalError, match="only for --model student"):
        build_preset("teacher", _options(tiny_klein, weights=str(tiny_klein["student_bfl_pth"])))
    t = build_preset("teacher", _options(tiny_klein, ctx_len=232))
    assert (t.steps, t.ctx_len, t.latent_shape, t.resolution) == (4, 232, (128, 4, 4), (RES, RES))
    assert build_preset("naive", _options(tiny_klein, steps=2)).steps == 2


def test_bad_bases_and_settings(tiny_klein, tmp_path):
    with pytest.raises(RdmevalError, match="no such folder"):
        make({"base": tmp_path / "nowhere"})
    (tmp_path / "empty").mkdir()
    with pytest.raises(RdmevalError, match="model_index.json"):
        make({"base": tmp_path / "empty"})
    with pytest.raises(RdmevalError, match="multiples of 16"):
        make(tiny_klein, height=100)
    if not torch.cuda.is_available():
        with pytest.raises(RdmevalError, match="CUDA is not available"):
            make(tiny_klein, device="cuda")


def test_hub_base_records_the_resolved_revision(tiny_klein, tmp_path, monkeypatch):
    """An offline hub cache (HF_HUB_OFFLINE=1): --base ORG/NAME resolves to its snapshot; the commit is recorded."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--test-org--tiny-klein"
    shutil.copytree(tiny_klein["base"], repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    import huggingface_hub.constants as hc

    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", True)
    gen = KleinGenerator(preset="naive", base="test-org/tiny-klein", steps=1, precision="fp32", height=RES, width=RES, device="cpu")
    assert gen.describe()["base"] == {"source": "hub", "repo_id": "test-org/tiny-klein", "revision": commit, "is_distilled": True}
    with pytest.raises(RdmevalError, match="fetched from the Hugging Face hub.*--base FOLDER"):
        KleinGenerator(preset="naive", base="test-org/absent", steps=1, precision="fp32", height=RES, width=RES, device="cpu")


def test_truncate_mode_matches_the_references_pickscore_conversion(tiny_klein):
    """The reference's PickScore path: ``to_pil_image(img.float())`` on the bf16 image (truncation in fp32)."""
    from torchvision.transforms.functional import to_pil_image

    gen = make(tiny_klein, "naive", precision="faithful", uint8="truncate")
    z = noise(2, seed=5)
    with torch.inference_mode():
        image = gen._sample(gen.prompts(PROMPTS[:2]), z)
    assert image.dtype == torch.bfloat16
    expected = np.stack([np.asarray(to_pil_image(im.float())) for im in image])
    assert np.array_equal(gen.generate(PROMPTS[:2], z), expected)
