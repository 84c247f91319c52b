"""The one-step field's presets and ``diffusers:<id>`` against direct diffusers calls, on tiny pipelines.

Every family (FLUX.1, SD3, SDXL, SANA-Sprint, the SDXL UNet swaps) is built offline from random
weights (rdmeval/fixtures/tiny_field.py) and saved as a pipeline folder. rdmeval loads the folder
through its preset and generates; the reference loads the same folder with diffusers as the model
card does (weights swapped and scheduler replaced by hand) and is called with the same latents,
packed here by hand for FLUX.1, and the same per-image generators, with ``output_type="pil"``.
Both run the same float operations in the same order in fp32, so the uint8 images must be equal
bit for bit.
"""

from __future__ import annotations

import hashlib
import inspect
import json

import numpy as np
import pytest
import torch

from rdmeval.errors import RdmevalError
from rdmeval.generators.registry import GeneratorOptions, build_generator, default_resolution, is_model
from rdmeval.generators.weights import WeightsError

PROMPTS = ["a photo of a cat", "two red dogs on the left"]
SIZE = 64


@pytest.fixture(scope="module")
def field(tmp_path_factory):
    from rdmeval.fixtures.tiny_field import build_tiny_field

    return build_tiny_field(tmp_path_factory.mktemp("field") / "tiny-field")


def _noise(shape, seed=7):
    return torch.randn(len(PROMPTS), *shape, generator=torch.Generator().manual_seed(seed))


def _generators(noise):
    """One generator per image seeded from its noise, computed here independently of rdmeval."""
    seeds = [int.from_bytes(hashlib.sha256(z.numpy().astype(np.float32).tobytes()).digest()[:8], "little") & (2**63 - 1)
             for z in noise]
    return [torch.Generator("cpu").manual_seed(s) for s in seeds]


def _pack(z):
    """FLUX.1's 2x2 token packing, written out: token (i, j) holds channels x (di, dj) of patch (i, j)."""
    b, c, h, w = z.shape
    out = torch.empty(b, (h // 2) * (w // 2), c * 4)
    for i in range(h // 2):
        for j in range(w // 2):
            patch = z[:, :, 2 * i:2 * i + 2, 2 * j:2 * j + 2]  # (b, c, 2, 2)
            out[:, i * (w // 2) + j] = patch.reshape(b, c * 4)
    return out


def _reference(folder, noise, *, packed=False, components=None, scheduler=None, prompts=PROMPTS, **kwargs):
    from diffusers import DiffusionPipeline

    pipe = DiffusionPipeline.from_pretrained(folder, **(components or {}))
    if scheduler is not None:
        pipe.scheduler = scheduler(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    latents = _pack(noise) if packed else noise
    images = pipe(prompt=list(prompts), latents=latents, generator=_generators(noise), height=SIZE, width=SIZE,
                  output_type="pil", **kwargs).images
    return np.stack([np.asarray(im) for im in images])


def _rdmeval(name, folder, weights=None, **options):
    gen = build_generator(name, GeneratorOptions(pipeline=str(folder), weights=str(weights) if weights else None,
                                                 precision="fp32", device="cpu", height=SIZE, width=SIZE, **options))
    return gen


CASES = {
    "flux1-schnell": ("flux", (16, 8, 8), dict(packed=True, num_inference_steps=4, guidance_scale=0.0, max_sequence_length=256)),
    "sd35-large-turbo": ("sd3", (16, 8, 8), dict(num_inference_steps=4, guidance_scale=0.0, max_sequence_length=256)),
    "sdxl-turbo": ("sdxl-turbo", (4, 8, 8), dict(num_inference_steps=1, guidance_scale=0.0)),
    "sana-sprint-1step": ("sana-sprint", (8, 16, 16), dict(num_inference_steps=1, intermediate_timesteps=None, use_resolution_binning=False)),
    "sana-sprint-2step": ("sana-sprint", (8, 16, 16), dict(num_inference_steps=2, use_resolution_binning=False)),
}


@pytest.mark.parametrize("name", list(CASES))
def test_preset_equals_direct_pipeline_call(field, name):
    family, shape, call = CASES[name]
    gen = _rdmeval(name, field[family])
    assert gen.latent_shape == shape and gen.resolution == (SIZE, SIZE)
    noise = _noise(shape)
    ours = gen.generate(PROMPTS, noise)
    ref = _reference(field[family], noise, **call)
    assert ours.dtype == np.uint8 and ours.shape == (2, SIZE, SIZE, 3)
    assert np.array_equal(ours, ref)
    assert not np.array_equal(ours[0], ours[1])  # a real image per prompt, not a constant
    # the same latents give the same images (a pure function), other latents others
    assert np.array_equal(gen.generate(PROMPTS, noise), ours)
    assert not np.array_equal(gen.generate(PROMPTS, _noise(shape, seed=8)), ours)


def test_sana_sprint_second_step_uses_the_per_image_generators(field):
    """Two-step SCM adds noise between the steps: it must come from generators seeded by each image's noise."""
    gen = _rdmeval("sana-sprint-2step", field["sana-sprint"])
    noise = _noise(gen.latent_shape)
    ours = gen.generate(PROMPTS, noise)
    other = _reference(field["sana-sprint"], noise, num_inference_steps=2, use_resolution_binning=False)
    assert np.array_equal(ours, other)
    swapped = gen.generate(PROMPTS[::-1], noise.flip(0))  # each image keeps its own prompt and noise
    assert np.array_equal(swapped, _reference(field["sana-sprint"], noise.flip(0), prompts=PROMPTS[::-1], num_inference_steps=2,
                                              use_resolution_binning=False))
    # a batch's row order may change the last bits (CPU kernels block rows differently), not the image: a
    # second-step noise drawn by batch position instead of by image would change it completely
    diff = np.abs(swapped[::-1].astype(int) - ours.astype(int))
    assert diff.max() <= 2, diff.max()


def _unet_with(folder, state_dict):
    from diffusers import UNet2DConditionModel

    unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(folder, subfolder="unet"))
    unet.load_state_dict(state_dict)
    # frozen like rdmeval's swapped module: CPU GEMM kernels may round frozen and trainable weights differently
    # (MKL's AVX2 kernels do; docs/testing.md), and the comparison must be exact by construction
    return unet.requires_grad_(False)


def test_dmd2_swap_equals_the_cards_recipe(field):
    from diffusers import LCMScheduler

    gen = _rdmeval("dmd2-sdxl-1step", field["sdxl-base"], weights=field["dmd2_unet"])
    noise = _noise((4, 8, 8))
    ours = gen.generate(PROMPTS, noise)
    sd = {k: v.float() for k, v in torch.load(field["dmd2_unet"], weights_only=True).items()}
    ref = _reference(field["sdxl-base"], noise, components={"unet": _unet_with(field["sdxl-base"], sd)},
                     scheduler=LCMScheduler.from_config, num_inference_steps=1, guidance_scale=0.0, timesteps=[399])
    assert np.array_equal(ours, ref)
    base = _reference(field["sdxl-base"], noise, scheduler=LCMScheduler.from_config, num_inference_steps=1,
                      guidance_scale=0.0, timesteps=[399])
    assert not np.array_equal(ours, base)  # the swap took effect
    d = gen.describe()
    assert d["timesteps"] == [399] and d["scheduler"]["class"] == "LCMScheduler" and d["steps"] == 1
    assert d["weights"]["n_tensors"] == len(sd) and d["weights"]["file_dtypes"] == ["float16"]
    assert len(d["weights"]["sha256"]) == 64 and d["protocol"]["swap"]["repo_id"] == "tianweiy/DMD2"


def test_lightning_swap_equals_the_cards_recipe(field):
    from diffusers import EulerDiscreteScheduler
    from safetensors.torch import load_file

    gen = _rdmeval("sdxl-lightning-1step", field["sdxl-base"], weights=field["lightning_unet"])
    noise = _noise((4, 8, 8))
    sd = {k: v.float() for k, v in load_file(field["lightning_unet"]).items()}

    def trailing_x0(config):
        return EulerDiscreteScheduler.from_config(config, timestep_spacing="trailing", prediction_type="sample")

    ref = _reference(field["sdxl-base"], noise, components={"unet": _unet_with(field["sdxl-base"], sd)},
                     scheduler=trailing_x0, num_inference_steps=1, guidance_scale=0.0)
    assert np.array_equal(gen.generate(PROMPTS, noise), ref)
    sched = gen.describe()["scheduler"]
    assert sched["class"] == "EulerDiscreteScheduler"
    assert sched["config"]["timestep_spacing"] == "trailing" and sched["config"]["prediction_type"] == "sample"


def test_unknown_pipeline_class_is_seeded_by_generators(field):
    """A pipeline whose latent layout rdmeval does not know gets no latents: its noise comes from the generators."""
    from diffusers import StableDiffusionXLPipeline

    from rdmeval.generators.diffusers_backend import DiffusersGenerator, Sampling

    class OtherPipeline(StableDiffusionXLPipeline):
        pass

    pipe = OtherPipeline.from_pretrained(field["sdxl-turbo"])
    gen = DiffusersGenerator.from_pipeline(pipe, Sampling(steps=1, guidance_scale=0.0, height=SIZE, width=SIZE))
    assert gen.describe()["noise"]["layout"] == "generator"
    noise = _noise(gen.latent_shape)
    ours = gen.generate(PROMPTS, noise)
    ref = StableDiffusionXLPipeline.from_pretrained(field["sdxl-turbo"])
    ref.set_progress_bar_config(disable=True)
    want = ref(prompt=PROMPTS, generator=_generators(noise), num_inference_steps=1, guidance_scale=0.0, height=SIZE,
               width=SIZE, output_type="pil").images
    assert np.array_equal(ours, np.stack([np.asarray(im) for im in want]))


def test_any_pipeline_folder_runs_with_its_own_defaults(field):
    from diffusers import StableDiffusionXLPipeline

    model = f"diffusers:{field['sdxl-turbo']}"
    assert is_model(model) and default_resolution(model) is None
    gen = build_generator(model, GeneratorOptions(precision="fp32", device="cpu", height=None, width=None, steps=1))
    d = gen.describe()
    call = inspect.signature(StableDiffusionXLPipeline.__call__).parameters
    assert d["guidance_scale"] == call["guidance_scale"].default  # the pipeline's own default, recorded
    assert d["steps"] == 1 and d["preset"] == model and d["protocol"] is None
    unet = json.loads((field["sdxl-turbo"] / "unet" / "config.json").read_text())
    assert gen.resolution == (unet["sample_size"] * 8,) * 2  # default_sample_size x the VAE's 8x
    assert d["base"] == {"source": "local", "path": str(field["sdxl-turbo"].resolve())}
    assert gen.generate(PROMPTS, _noise(gen.latent_shape)).shape == (2, 64, 64, 3)


def test_presets_record_the_card_protocol(field):
    d = _rdmeval("flux1-schnell", field["flux"]).describe()
    assert (d["steps"], d["guidance_scale"], d["max_sequence_length"]) == (4, 0.0, 256)
    assert d["protocol"]["dtype"] == "bfloat16" and d["protocol"]["resolution"] == 1024
    assert d["precision"] == {"name": "fp32", "dtype": "float32"}  # the regime actually run (fp32 here) beside the card's
    assert d["noise"]["layout"] == "packed-2x2" and d["pipeline"] == "FluxPipeline"
    assert any("FLUX.1-schnell" in s for s in d["protocol"]["sources"])
    assert default_resolution("flux1-schnell") == 1024 and default_resolution("sdxl-turbo") == 512
    json.dumps(d)  # manifest-ready


def test_bad_options_are_one_line_errors(field):
    with pytest.raises(RdmevalError, match="timesteps"):
        _rdmeval("dmd2-sdxl-1step", field["sdxl-base"], weights=field["dmd2_unet"], steps=2)
    with pytest.raises(RdmevalError, match="diffusers:black-forest-labs/FLUX.1-schnell --weights"):
        _rdmeval("flux1-schnell", field["flux"], weights=field["dmd2_unet"])
    with pytest.raises(RdmevalError, match="names 'StableDiffusionXLPipeline', but this preset runs FluxPipeline"):
        _rdmeval("flux1-schnell", field["sdxl-turbo"])
    with pytest.raises(RdmevalError, match="guidance-scale applies to diffusers models only"):
        build_generator("dummy", GeneratorOptions(guidance_scale=2.0))


def test_a_swap_file_of_another_architecture_is_refused(field, tmp_path):
    from safetensors.torch import load_file, save_file

    sd = load_file(field["lightning_unet"])
    first = sorted(sd)[0]
    del sd[first]
    sd["extra.weight"] = torch.zeros(2)
    bad = tmp_path / "bad.safetensors"
    save_file(sd, str(bad))
    with pytest.raises(WeightsError) as err:
        _rdmeval("sdxl-lightning-1step", field["sdxl-base"], weights=bad)
    msg = str(err.value)
    assert f"missing keys: 1 (first: {first})" in msg and "unexpected keys: 1 (first: extra.weight)" in msg
    assert "\n" not in msg and "does not fall back" in msg


def test_generate_cli_runs_a_preset_from_a_local_folder(field, tmp_path):
    from rdmeval.cli.main import main

    out = tmp_path / "run"
    assert main(["generate", "--model", "sdxl-turbo", "--base", str(field["sdxl-turbo"]), "--prompts", "demo-captions",
                 "--out", str(out), "--precision", "fp32", "--device", "cpu", "--rng-device", "cpu", "--resolution", "64",
                 "--limit", "2", "--no-progress"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] and manifest["request"]["model"]["preset"] == "sdxl-turbo"
    assert manifest["request"]["latent_shape"] == [4, 8, 8]
    assert main(["generate", "--model", "sdxl-turbo", "--prompts", "demo-captions", "--out", str(tmp_path / "x"),
                 "--ctx-len", "77"]) == 2  # the text length is the preset's


def test_base_is_refused_for_a_named_pipeline(field):
    with pytest.raises(RdmevalError, match="names its pipeline itself"):
        build_generator(f"diffusers:{field['sdxl-turbo']}", GeneratorOptions(pipeline=str(field["flux"]), device="cpu"))


def test_any_pipeline_with_weights_swaps_its_denoiser(field):
    from safetensors.torch import load_file

    gen = build_generator(f"diffusers:{field['sdxl-base']}", GeneratorOptions(
        weights=str(field["lightning_unet"]), precision="fp32", device="cpu", height=SIZE, width=SIZE, steps=1, guidance_scale=0.0))
    noise = _noise(gen.latent_shape)
    sd = {k: v.float() for k, v in load_file(field["lightning_unet"]).items()}
    ref = _reference(field["sdxl-base"], noise, components={"unet": _unet_with(field["sdxl-base"], sd)},
                     num_inference_steps=1, guidance_scale=0.0)
    assert np.array_equal(gen.generate(PROMPTS, noise), ref)
    assert gen.describe()["weights"]["component"] == "unet"


def test_hub_errors_do_not_point_at_a_stack_trace_rdmeval_does_not_print():
    from rdmeval.generators.diffusers_load import _first_line

    exc = OSError("Cannot load model a/b: not cached locally. Please check out the root cause in the stacktrace above.\nmore")
    assert _first_line(exc) == "OSError: Cannot load model a/b: not cached locally."
