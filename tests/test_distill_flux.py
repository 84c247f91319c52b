"""The FLUX task on the tiny klein fixture: the differentiable one-step forward against rdmeval's
generator (diffusers' pipeline), chunks, features, asset errors, the export's format."""

from __future__ import annotations

import copy
import shutil
from dataclasses import replace

import pytest
import torch

from rdmeval.distill.checkpoints import export_student, save_milestone
from rdmeval.distill.config import ConfigError, get_config
from rdmeval.distill.flux_model import OneStepFlux, enable_block_checkpointing
from rdmeval.distill.flux_task import AssetError, build_flux_task, resolve_assets
from rdmeval.distill.tables import write_table
from rdmeval.distill.toy import build_toy_task
from rdmeval.distill.trainer import CheckpointError, Trainer
from rdmeval.generators.klein import KleinGenerator

pytestmark = pytest.mark.usefixtures("one_torch_thread")

RES = 64
PROMPTS = ["a photo of a red cat", "two blue dogs near a window"]


@pytest.fixture(scope="module")
def student_preset(tiny_klein):
    return KleinGenerator(preset="student", base=str(tiny_klein["base"]), steps=1, weights=str(tiny_klein["student_bfl_safetensors"]),
                          precision="fp32", height=RES, width=RES, device="cpu")


@pytest.fixture(scope="module")
def task(tiny_flux_assets):
    cfg = get_config("flux_tiny")
    return build_flux_task(cfg, resolve_assets(cfg, assets=tiny_flux_assets))


def _noise(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 128, RES // 16, RES // 16, generator=torch.Generator().manual_seed(seed))


def test_one_step_forward_equals_the_student_preset(student_preset):
    noise = _noise(2)
    with torch.inference_mode():
        ctx = student_preset.prompts(PROMPTS)
        reference = student_preset._sample(ctx, noise)  # the pipeline: pack, DiT at t=1, Euler step, unpack, BN, decode
    ctx = ctx.clone()
    transformer, vae = student_preset.pipe.transformer, student_preset.pipe.vae

    # Frozen weights, no grad: the same operations on the same kernels, so the same bits.
    with torch.no_grad():
        frozen = OneStepFlux(transformer, vae, autocast=False)(noise, ctx)
    assert torch.equal(frozen, reference)

    # The training path: trainable fp32 weights, grad on, per-block checkpointing. Trainable weights may take
    # other CPU GEMM paths (docs/testing.md), which changes fp32 last bits (~1e-7 relative) through 4 DiT
    # blocks and the VAE; the image is in [0, 1], so 1e-5 is ~100x that and ~1/400 of a uint8 level.
    student = copy.deepcopy(transformer).train().requires_grad_(True)
    enable_block_checkpointing(student)
    image = OneStepFlux(student, vae, autocast=False)(noise, ctx)
    torch.testing.assert_close(image, reference, rtol=0, atol=1e-5)
    assert image.requires_grad and image.shape == (2, 3, RES, RES)

    # Gradients reach every DiT tensor through the frozen VAE, and checkpointing does not change them
    # (it recomputes the same block forward).
    weights = torch.rand(image.shape, generator=torch.Generator().manual_seed(1))
    (image * weights).sum().backward()
    plain = copy.deepcopy(transformer).train().requires_grad_(True)
    (OneStepFlux(plain, vae, autocast=False)(noise, ctx) * weights).sum().backward()
    named = dict(plain.named_parameters())
    for name, p in student.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().max() > 0, name
        torch.testing.assert_close(p.grad, named[name].grad, rtol=1e-5, atol=1e-7)
    assert all(p.grad is None for p in vae.parameters())


def test_chunks_come_from_the_chunk_generator(task):
    a = task.sample_chunk(torch.Generator().manual_seed(7), 4)
    b = task.sample_chunk(torch.Generator().manual_seed(7), 4)
    assert torch.equal(a.noise, b.noise) and torch.equal(a.idx, b.idx)
    g = torch.Generator().manual_seed(7)  # the contract: randn(B, 128, h, w), then randint(0, N_pool, (B,))
    assert torch.equal(a.noise, torch.randn(4, 128, RES // 16, RES // 16, generator=g))
    assert torch.equal(a.idx, torch.randint(0, len(task.ctx_table), (4,), generator=g))
    feats = task.encode(a)
    assert {n: tuple(f.shape) for n, f in feats.items()} == {n: (4, task.battery[n].spec.dim) for n in get_config("flux_tiny").encoders}


def test_flux_task_at_init_renders_the_base_dit(task, tiny_klein):
    """The student starts from the base pipeline's DiT: its one-step image is the naive preset's."""
    naive = KleinGenerator(preset="naive", base=str(tiny_klein["base"]), steps=1, precision="fp32", height=RES, width=RES, device="cpu")
    chunk = task.sample_chunk(torch.Generator().manual_seed(3), 2)
    with torch.no_grad():
        mine = OneStepFlux(copy.deepcopy(task.student).eval().requires_grad_(False), task.renderer.vae, autocast=False)(
            chunk.noise, task.ctx(chunk.idx))
        ref = naive._sample(task.ctx(chunk.idx), chunk.noise)
    assert torch.equal(mine, ref)


def test_missing_assets_name_the_file_and_the_command(tmp_path, tiny_flux_assets):
    cfg = get_config("flux_tiny")
    with pytest.raises(AssetError, match=r"--assets DIR.*rdmeval train tiny-assets"):
        resolve_assets(cfg)
    assets = tmp_path / "assets"
    shutil.copytree(tiny_flux_assets, assets)
    (assets / "bundles" / "tiny_attn.safetensors").unlink()
    with pytest.raises(AssetError) as err:
        build_flux_task(cfg, resolve_assets(cfg, assets=assets))
    message = str(err.value)
    assert str(assets / "bundles" / "tiny_attn.safetensors") in message
    assert f"rdmeval train tiny-assets --klein TINY_KLEIN_DIR --out {assets}" in message


def test_a_missing_base_pipeline_says_to_pass_base_not_to_rebuild_the_assets(tmp_path, tiny_flux_assets):
    from rdmeval.distill.flux_task import check_assets

    cfg = get_config("flux_tiny")
    with pytest.raises(AssetError) as err:
        check_assets(cfg, resolve_assets(cfg, assets=tiny_flux_assets, base=str(tmp_path / "moved-klein")))
    message = str(err.value)
    assert str(tmp_path / "moved-klein" / "model_index.json") in message and "Pass --base" in message
    assert "tiny-assets" not in message  # the assets are whole: rebuilding them would not help


def test_assets_of_another_config_say_how_to_fix(tiny_flux_assets):
    with pytest.raises(AssetError, match=r"built for config 'flux_tiny', not 'flux_geall'; pass --config flux_tiny, or --assets"):
        resolve_assets(get_config("flux_geall"), assets=tiny_flux_assets)


def test_tables_of_other_prompts_are_refused(tmp_path, tiny_flux_assets):
    cfg = get_config("flux_tiny")
    pool = (tiny_flux_assets / "pool.txt").read_text().splitlines()
    other = tmp_path / "tau"
    write_table(other, list(reversed(pool)), lambda rows: torch.ones(len(rows), 8), shard_rows=8, dtype="float32")
    with pytest.raises(AssetError, match="not row-aligned"):
        build_flux_task(cfg, resolve_assets(cfg, assets=tiny_flux_assets, text_table=other))


def test_configs():
    tiny, geall = get_config("flux_tiny"), get_config("flux_geall")
    assert tiny.flux.battery == "tiny" and tiny.rollout_size == tiny.batch_size * tiny.grad_accum
    assert (geall.lr, geall.betas, geall.weight_decay, geall.grad_clip, geall.rollout_size, geall.steps, geall.save_freq) == (
        2.83e-6, (0.9, 0.95), 0.0, 4.0, 10240, 300, 20)
    assert geall.flux.resolution == 512 and geall.flux.autocast and geall.flux.vae_dtype == "bf16" and geall.flux.grad_checkpointing
    with pytest.raises(ConfigError, match="fsdp"):
        replace(get_config("debug"), fsdp=True)
    with pytest.raises(ConfigError, match="multiple of 16"):
        replace(tiny, flux=replace(tiny.flux, resolution=60))


def test_export_is_bf16_bfl_named_with_model_prefix_and_loads_strictly(tmp_path, task, tiny_klein):
    from safetensors import safe_open

    from rdmeval.generators.weights import detect_naming, load_transformer_weights

    cfg = replace(get_config("flux_tiny"), steps=1)
    trainer = Trainer(cfg, task_copy(task, cfg))
    trainer.train_step()
    ckpt = save_milestone(trainer.state_dict(), tmp_path / "run")
    assert ckpt.name == "step_0000001.pt"
    out = tmp_path / "model.safetensors"
    export_student(ckpt, out)
    with safe_open(str(out), framework="pt") as fh:
        keys = set(fh.keys())
        assert fh.metadata()["step"] == "1"
        assert {fh.get_tensor(k).dtype for k in keys} == {torch.bfloat16}
    with safe_open(str(tiny_klein["student_bfl_safetensors"]), framework="pt") as fh:
        released_like = set(fh.keys())
    assert keys == released_like  # the fixture's student file is laid out like the released model.safetensors
    assert detect_naming({k.removeprefix("model."): None for k in keys}) == "bfl"
    model, info = load_transformer_weights(out, trainer.task.student.config, dtype=torch.float32)
    assert info["naming"] == "bfl" and info["stripped_prefixes"] == ["model."]
    loaded = model.state_dict()
    for name, p in trainer.task.student.state_dict().items():
        assert torch.equal(loaded[name], p.detach().to(torch.bfloat16).float()), name
    toy = Trainer(get_config("debug"), build_toy_task(get_config("debug")))
    with pytest.raises(CheckpointError, match="only FLUX students export"):
        export_student(save_milestone(toy.state_dict(), tmp_path / "toy"), tmp_path / "toy.safetensors")
    with pytest.raises(CheckpointError, match="never overwritten"):
        save_milestone(trainer.state_dict(), tmp_path / "run")


def task_copy(task, cfg):
    """A task sharing the module fixture's frozen parts, with a fresh trainable copy of the student."""
    student = copy.deepcopy(task.student)
    renderer = OneStepFlux(student, task.renderer.vae, autocast=task.renderer.autocast)
    return replace(task, config=cfg, student=student, renderer=renderer)



def test_the_released_battery_comes_from_the_encoders_module(monkeypatch):
    """flux_geall's battery is rdmeval.distill.encoders.load_battery over its ten names, on the run's device."""
    from rdmeval.distill import encoders
    from rdmeval.distill.battery import tiny_battery
    from rdmeval.distill.flux_task import load_battery

    calls = []

    def fake(names, *, device):
        calls.append((tuple(names), str(device)))
        return tiny_battery()

    monkeypatch.setattr(encoders, "load_battery", fake)
    tiny = get_config("flux_tiny")
    released = replace(tiny, flux=replace(tiny.flux, battery="released"))
    assert list(load_battery(released, torch.device("cpu"))) == list(tiny.encoders)
    assert calls == [(tiny.encoders, "cpu")]
    assert tuple(s.name for s in encoders.RELEASED_BATTERY) == get_config("flux_geall").encoders


def test_export_to_a_folder_is_a_one_line_error_naming_the_file_to_pass(tmp_path):
    """--out DIR used to fail in os.replace with the temporary file's absolute path in the message."""
    toy = Trainer(get_config("debug"), build_toy_task(get_config("debug")))
    ckpt = save_milestone(toy.state_dict(), tmp_path / "run")
    with pytest.raises(CheckpointError, match=r"is a folder; pass the \.safetensors file to write, e\.g\. .*model\.safetensors"):
        export_student(ckpt, tmp_path / "run")
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [ckpt.name, f"{ckpt.name}.sha256"]


@pytest.mark.parametrize("content", [[1, 2], {"double_blocks.0.img_attn.qkv.weight": torch.zeros(2)}])
def test_export_of_a_torch_file_that_is_no_training_checkpoint_says_so(tmp_path, content):
    """A list was an AttributeError traceback; a weights state dict 'a checkpoint of config None (model None)'."""
    other = tmp_path / "student.pth"
    torch.save(content, other)
    with pytest.raises(CheckpointError, match=r"is not a checkpoint of rdmeval train .*rdmeval generate --weights"):
        export_student(other, tmp_path / "model.safetensors")
    assert not (tmp_path / "model.safetensors").exists()


def test_export_never_replaces_a_training_checkpoint(tmp_path):
    """`rdmeval train export RUN --out RUN/step_0000004.pt` used to overwrite the milestone it read with the export."""
    toy = Trainer(get_config("debug"), build_toy_task(get_config("debug")))
    ckpt = save_milestone(toy.state_dict(), tmp_path / "run")
    before = ckpt.read_bytes()
    for out in (ckpt, tmp_path / "run" / "step_0000123.pt"):
        with pytest.raises(CheckpointError, match=r"would replace a training checkpoint.*--out .*model\.safetensors"):
            export_student(ckpt, out)
    assert ckpt.read_bytes() == before and sorted(p.name for p in (tmp_path / "run").iterdir()) == [ckpt.name, f"{ckpt.name}.sha256"]


@pytest.mark.parametrize("content", [b'{"name": "flux_tiny"}', b"PK\x03\x04 truncated"])
def test_export_of_a_file_that_is_no_checkpoint_says_so(tmp_path, content):
    """`rdmeval train export RUN/config.json` used to blame mmap and _use_new_zipfile_serialization."""
    bad = tmp_path / "config.json"
    bad.write_bytes(content)
    with pytest.raises(CheckpointError, match=r"is not a torch\.save checkpoint .*step_XXXXXXX\.pt") as info:
        export_student(bad, tmp_path / "model.safetensors")
    assert "mmap" not in str(info.value)


def test_resume_needs_the_same_training_data_wherever_it_lies(tmp_path, tiny_flux_assets):
    from rdmeval.distill.reference import load_bundle, save_bundle
    from rdmeval.distill.run import TrainOptions, train

    out = tmp_path / "run"
    train(TrainOptions(config="flux_tiny", out=str(out), steps=1, assets=str(tiny_flux_assets), device="cpu", progress=False))
    moved = tmp_path / "moved"  # the same files elsewhere: a resume is fine
    shutil.copytree(tiny_flux_assets, moved)
    trainer = train(TrainOptions(config="flux_tiny", out=str(out), steps=2, resume=True, assets=str(moved), device="cpu",
                                 progress=False))
    assert trainer.step == 2
    bundle = load_bundle(moved / "bundles" / "tiny_cls.safetensors")  # another reference for one encoder
    save_bundle(moved / "bundles" / "tiny_cls.safetensors", replace(bundle, alpha=bundle.alpha * 2))
    with pytest.raises(CheckpointError, match=r"assets differ .*bundle tiny_cls"):
        train(TrainOptions(config="flux_tiny", out=str(out), steps=3, resume=True, assets=str(moved), device="cpu", progress=False))
