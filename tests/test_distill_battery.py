"""The encoder battery: the released ten as data, autograd-safe preprocessing, each pooling kind,
and each real loader's wiring on a tiny random model of its own library (nothing is downloaded)."""

from __future__ import annotations

import sys
import types
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from rdmeval.distill.battery import (
    POOLS,
    TINY_BATTERY,
    TINY_STANDINS,
    BatteryError,
    EncoderSpec,
    build_tiny_encoder,
    pool_features,
    preprocess,
    resize_tf_bilinear,
    tiny_battery,
)
from rdmeval.distill.config import FLUX_ENCODERS
from rdmeval.distill.encoders import (
    RELEASED_BATTERY,
    TEXT_DIM,
    bundle_bytes,
    joint_dim,
    load_battery,
    load_encoder,
    released_spec,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# §C.4 of the reference notes: name -> (input resolution, pool, feature dim); pools in this project's words.
REFERENCE_TABLE = {
    "inception": (299, "vector", 2048),  # pool3 (the network's own average pool)
    "convnext": (224, "spatial_mean", 1024),
    "mae": (224, "mean", 1024),
    "clip": (256, "cls", 1024),
    "dinov3_l": (224, "cls", 1024),
    "pe_core_l": (224, "attn", 1024),
    "siglip2": (224, "attn", 1152),
    "aimv2_huge": (224, "mean", 1536),
    "webssl_dino_1b": (224, "vector", 1536),  # pooler_output
    "dreamsim": (224, "vector", 1792),  # embed
}
# The released M8192 joint bundles' sizes (fp32 Z and alpha), as the reference notes derive them.
BUNDLE_MB = {"inception": 104.9, "convnext": 71.3, "mae": 71.3, "clip": 71.3, "dinov3_l": 71.3, "pe_core_l": 71.3,
             "siglip2": 75.5, "aimv2_huge": 88.1, "webssl_dino_1b": 88.1, "dreamsim": 96.5}


# ------------------------------------------------------------------------------------- the table


def test_released_battery_is_the_reference_table_in_the_config_order():
    assert tuple(s.name for s in RELEASED_BATTERY) == FLUX_ENCODERS
    assert {s.name: (s.resolution, s.pool, s.dim) for s in RELEASED_BATTERY} == REFERENCE_TABLE
    assert [s.name for s in RELEASED_BATTERY if s.precision == "fp32"] == ["inception"]
    inception = released_spec("inception")
    assert (inception.interpolation, inception.antialias, inception.mean, inception.std) == (
        "tf_bilinear", False, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    assert all(s.interpolation == "bicubic" and s.antialias for s in RELEASED_BATTERY if s.name != "inception")
    assert released_spec("dreamsim").mean == (0.0, 0.0, 0.0) and released_spec("dreamsim").std == (1.0, 1.0, 1.0)
    with pytest.raises(BatteryError, match="unknown encoder 'dino'.*inception"):
        released_spec("dino")


def test_joint_dims_and_bundle_sizes_match_the_released_bundles():
    assert TEXT_DIM == 1152
    assert {s.name: joint_dim(s) for s in RELEASED_BATTERY} == {n: d + 1152 for n, (_, _, d) in REFERENCE_TABLE.items()}
    assert {s.name: round(bundle_bytes(s) / 1e6, 1) for s in RELEASED_BATTERY} == BUNDLE_MB
    total = sum(bundle_bytes(s) for s in RELEASED_BATTERY)
    assert round(total / 1e6, 1) == 809.8 and round(total / 2**20) == 772


def test_timm_constants_are_timms_own_pretrained_configs():
    from timm.models import get_pretrained_cfg

    timm_specs = [s for s in RELEASED_BATTERY if s.library == "timm"]
    assert len(timm_specs) == 7
    for s in timm_specs:
        cfg = get_pretrained_cfg(s.model_id)
        assert cfg is not None, s.model_id
        assert (s.mean, s.std, s.interpolation) == (tuple(cfg.mean), tuple(cfg.std), cfg.interpolation), s.name


def test_spec_validation_names_the_encoder():
    with pytest.raises(BatteryError, match="'x'.*interpolation"):
        EncoderSpec(name="x", library="tiny", model_id="m", resolution=8, dim=4, interpolation="nearest")
    with pytest.raises(BatteryError, match="'x'.*prefix_tokens"):
        EncoderSpec(name="x", library="tiny", model_id="m", resolution=8, dim=4, prefix_tokens=-1)
    with pytest.raises(BatteryError, match="'tiny_cls'.*no loader"):
        load_encoder(TINY_BATTERY[0])  # a tiny spec has no real library
    assert tuple(s.pool for s in TINY_STANDINS) == ("cls", "mean", "attn", "spatial_mean", "vector")
    assert set(POOLS) == {s.pool for s in TINY_STANDINS}
    assert tuple(tiny_battery()) == tuple(s.name for s in TINY_BATTERY)  # the default battery is unchanged


# ------------------------------------------------------------------------------------- preprocessing


@pytest.mark.parametrize("interpolation", ["bicubic", "bilinear", "tf_bilinear"])
@pytest.mark.parametrize("resolution", [5, 11])  # down and up from 8
def test_preprocess_is_differentiable(interpolation, resolution):
    spec = EncoderSpec(name="p", library="tiny", model_id="m", resolution=resolution, dim=1, interpolation=interpolation,
                       antialias=interpolation != "tf_bilinear", mean=(0.1, 0.2, 0.3), std=(0.5, 0.25, 2.0))
    x = torch.rand(2, 3, 8, 8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: preprocess(t, spec), (x,))


def test_tf_bilinear_samples_at_i_times_in_over_out():
    x = torch.randn(2, 3, 8, 12)
    assert torch.equal(resize_tf_bilinear(x, (4, 6)), x[..., ::2, ::2])  # a factor 2: every other pixel, no blur
    ramp = torch.arange(7.0).expand(1, 1, 7, 7)  # value = column index
    out = resize_tf_bilinear(ramp, (7, 10))
    expected = (torch.arange(10.0) * 0.7).clamp_max(6.0)  # position i*7/10, clamped at the last pixel
    torch.testing.assert_close(out[0, 0, 3], expected, rtol=0, atol=1e-6)


def test_tf_bilinear_equals_torch_fidelitys_resize():
    import torch_fidelity.interpolate_compat_tensorflow as tf
    x = torch.rand(2, 3, 37, 23)
    for size in [(299, 299), (16, 9), (37, 23)]:
        assert torch.equal(resize_tf_bilinear(x, size), tf.interpolate_bilinear_2d_like_tensorflow1x(x, size=size, align_corners=False))


def test_half_mean_and_std_are_exactly_x_times_2_minus_1():
    x = torch.rand(4, 3, 9, 9)
    spec = replace(released_spec("inception"), resolution=9)
    assert torch.equal(preprocess(x, spec), x * 2 - 1)


# ------------------------------------------------------------------------------------- the stand-ins


@pytest.mark.parametrize("spec", TINY_STANDINS, ids=lambda s: s.pool)
def test_each_pooling_kind_stand_in(spec):
    enc = build_tiny_encoder(spec, seed=3)
    x = torch.rand(2, 3, 32, 32)
    out = enc(x)
    assert out.shape == (2, spec.dim) and out.dtype == torch.float32 and torch.isfinite(out).all()
    assert not any(p.requires_grad for p in enc.parameters())
    with torch.no_grad():  # the pool, computed by hand from the backbone's output
        raw = enc.backbone(preprocess(x, spec))
        manual = {
            "cls": lambda: raw[:, 0],
            "mean": lambda: raw[:, 1:].sum(1) / (raw.shape[1] - 1),
            "attn": lambda: enc.attn_pool(raw),
            "spatial_mean": lambda: raw.flatten(2).sum(-1) / raw[0, 0].numel(),
            "vector": lambda: raw,
        }[spec.pool]()
    torch.testing.assert_close(out, manual, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(build_tiny_encoder(spec, seed=3)(x), out, rtol=0, atol=0)  # seeded


@pytest.mark.parametrize("spec", TINY_STANDINS, ids=lambda s: s.pool)
def test_gradient_reaches_the_image_through_each_stand_in(spec):
    enc = build_tiny_encoder(spec, seed=1).double()
    x = torch.rand(1, 3, 8, 8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(enc, (x,), atol=1e-6, rtol=1e-4)


def test_mean_pool_skips_the_prefix_tokens():
    tokens = torch.arange(2 * 6 * 3, dtype=torch.float32).view(2, 6, 3)
    assert torch.equal(pool_features(tokens, "mean", prefix_tokens=5), tokens[:, 5])
    assert torch.equal(pool_features(tokens, "mean", prefix_tokens=0), tokens.mean(1))
    assert torch.equal(pool_features(tokens, "mean"), tokens[:, 1:].mean(1))  # the default: one class token


def test_an_fp32_encoder_ignores_an_enclosing_autocast():
    spec = next(s for s in TINY_STANDINS if s.precision == "fp32")
    enc, x = build_tiny_encoder(spec), torch.rand(2, 3, 20, 20)
    ref = enc(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(enc(x), ref)


def test_bf16_weights_run_on_cpu():
    enc = build_tiny_encoder(TINY_BATTERY[0]).to(torch.bfloat16)
    out = enc(torch.rand(2, 3, 16, 16))
    assert out.dtype == torch.float32 and out.shape == (2, TINY_BATTERY[0].dim)


# ------------------------------------------------------------------------------------- real loaders, tiny models

_TINY_TIMM = {
    "convnext": ({"depths": (1, 1, 1, 1), "dims": (8, 16, 24, 32)}, 32),
    "mae": ({"embed_dim": 32, "depth": 1, "num_heads": 2}, 32),
    "clip": ({"embed_dim": 32, "depth": 1, "num_heads": 2}, 32),
    "dinov3_l": ({"embed_dim": 32, "depth": 1, "num_heads": 2}, 32),
    "pe_core_l": ({"embed_dim": 32, "depth": 1, "num_heads": 2}, 32),
    "siglip2": ({"embed_dim": 32, "depth": 1, "num_heads": 2}, 32),
    "aimv2_huge": ({"embed_dim": 32, "depth": 1, "num_heads": 2}, 32),
}


@pytest.mark.parametrize("name", list(_TINY_TIMM))
def test_timm_loader_wiring_on_a_tiny_model_of_the_same_architecture(name):
    from timm.layers import global_pool_nlc

    kwargs, dim = _TINY_TIMM[name]
    spec = replace(released_spec(name), dim=dim)
    enc = load_encoder(spec, pretrained=False, model_kwargs=kwargs)
    model = enc.backbone.model
    assert not model.training and not any(p.requires_grad for p in enc.parameters())
    x = torch.rand(2, 3, 40, 40)
    out = enc(x)
    assert out.shape == (2, dim)
    # independently: resize, timm's own mean/std, forward_features, timm's own pooling
    cfg = model.pretrained_cfg
    y = F.interpolate(x, size=(spec.resolution,) * 2, mode="bicubic", antialias=True, align_corners=False)
    y = (y - torch.tensor(cfg["mean"]).view(1, 3, 1, 1)) / torch.tensor(cfg["std"]).view(1, 3, 1, 1)
    with torch.no_grad():
        feats = model.forward_features(y)
        expected = {
            "spatial_mean": lambda: F.adaptive_avg_pool2d(feats, 1).flatten(1),
            "cls": lambda: global_pool_nlc(feats, "token"),
            "mean": lambda: global_pool_nlc(feats, "avg", num_prefix_tokens=model.num_prefix_tokens),
            "attn": lambda: model.pool(feats),
        }[spec.pool]()
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)


def test_timm_loader_refuses_a_model_whose_config_differs():
    spec = replace(released_spec("mae"), dim=32, mean=(0.5, 0.5, 0.5))
    with pytest.raises(BatteryError, match="'mae'.*mean"):
        load_encoder(spec, pretrained=False, model_kwargs=_TINY_TIMM["mae"][0])
    spec = replace(released_spec("dinov3_l"), dim=32, prefix_tokens=1)
    with pytest.raises(BatteryError, match="prefix tokens 5"):
        load_encoder(spec, pretrained=False, model_kwargs=_TINY_TIMM["dinov3_l"][0])


def test_transformers_loader_returns_the_pooler_output(tmp_path):
    from transformers import Dinov2Config, Dinov2Model

    torch.manual_seed(0)
    Dinov2Model(Dinov2Config(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                             patch_size=14, image_size=224)).save_pretrained(tmp_path)
    spec = replace(released_spec("webssl_dino_1b"), model_id=str(tmp_path), dim=32)
    enc = load_encoder(spec)
    x = torch.rand(2, 3, 30, 30)
    ref_model = Dinov2Model.from_pretrained(tmp_path).eval()
    y = F.interpolate(x, size=(224, 224), mode="bicubic", antialias=True, align_corners=False)
    y = (y - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = ref_model(pixel_values=y).last_hidden_state[:, 0]  # the final-norm class token
    torch.testing.assert_close(enc(x), expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(BatteryError, match="webssl_dino_1b.*cannot load"):
        load_encoder(replace(spec, model_id=str(tmp_path / "missing")))


def test_dreamsim_loader_calls_dreamsim_pretrained_and_embeds(monkeypatch, tmp_path):
    calls = {}

    class FakeViT(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = torch.nn.Linear(3, 4)

    class FakeDreamSim(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.extractor_list = [types.SimpleNamespace(model=FakeViT()), types.SimpleNamespace(model=FakeViT())]

        def embed(self, img):
            calls["embed_input"] = img
            return torch.cat([e.model.proj(img.mean(dim=(2, 3))) for e in self.extractor_list], dim=-1)

    def dreamsim(pretrained=False, device="cuda", cache_dir="./models", normalize_embeds=True):
        calls.update(pretrained=pretrained, device=device, cache_dir=cache_dir)
        return FakeDreamSim(), None

    monkeypatch.setitem(sys.modules, "dreamsim", types.SimpleNamespace(dreamsim=dreamsim))
    monkeypatch.setenv("DREAMSIM_CACHE_DIR", str(tmp_path))
    enc = load_encoder(replace(released_spec("dreamsim"), dim=8), dtype=torch.float64)
    assert calls["pretrained"] is True and calls["device"] == "cpu" and calls["cache_dir"] == str(tmp_path)
    assert all(e.model.proj.weight.dtype == torch.float64 for e in enc.backbone.model.extractor_list)  # .to() reached them
    x = torch.rand(2, 3, 64, 64)
    out = enc(x)
    expected = F.interpolate(x, size=(224, 224), mode="bicubic", antialias=True, align_corners=False)
    torch.testing.assert_close(calls["embed_input"], expected.double())  # [0, 1] at 224: dreamsim normalises itself
    assert out.shape == (2, 8)


@pytest.mark.parametrize(("name", "module"), [("dreamsim", "dreamsim"), ("inception", "torch_fidelity"), ("mae", "timm")])
def test_a_missing_package_names_the_extra(monkeypatch, name, module):
    for key in [k for k in sys.modules if k == module or k.startswith(module + ".")]:
        monkeypatch.delitem(sys.modules, key)
    monkeypatch.setitem(sys.modules, module, None)  # import fails
    with pytest.raises(BatteryError, match=rf"'{name}' needs the .* package; install it with pip install 'rdmeval\[distill\]'"):
        load_encoder(released_spec(name))


def test_load_battery_names_unknown_encoders():
    with pytest.raises(BatteryError, match="unknown encoder 'nope'"):
        load_battery(["nope"])


def test_fid_inception_loader_runs_torch_fidelitys_network_on_x_times_2_minus_1(monkeypatch, tmp_path):
    import torch_fidelity.feature_extractor_inceptionv3 as tfi
    # torch-fidelity always loads weights when built: build one without (random init), randomise it, save it
    with monkeypatch.context() as m:
        m.setattr(tfi, "load_state_dict_from_url", lambda *a, **k: {})
        m.setattr(tfi.FeatureExtractorInceptionV3, "load_state_dict", lambda self, sd, *a, **k: None)
        skeleton = tfi.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    gen = torch.Generator().manual_seed(0)
    state = {k: (torch.rand(v.shape, generator=gen) + 0.5 if k.endswith("running_var") else
                 torch.randn(v.shape, generator=gen) * 0.1 if v.is_floating_point() else v)
             for k, v in skeleton.state_dict().items()}
    torch.save(state, tmp_path / "inception.pth")

    enc = load_encoder(released_spec("inception"), weights=tmp_path / "inception.pth", dtype=torch.bfloat16)
    assert all(p.dtype == torch.float32 for p in enc.parameters())  # Inception stays fp32
    assert enc.backbone.trunk[0] == "Conv2d_1a_3x3" and enc.backbone.trunk[-1] == "AvgPool"
    package = tfi.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(tmp_path / "inception.pth"))
    # the package's own forward on uint8 images, its first convolution's input captured
    u8 = (torch.rand(1, 3, 64, 64) * 255).round().to(torch.uint8)
    seen = {}
    package.Conv2d_1a_3x3.register_forward_pre_hook(lambda mod, args: seen.update(z=args[0].clone()))
    with torch.no_grad():
        (pool3,) = package(u8)
        torch.testing.assert_close(enc.backbone(seen["z"]), pool3, rtol=0, atol=0)  # same layers, same order
    # the encoder's own input scaling: TF-style resize of the [0, 1] image, then x * 2 - 1
    x = u8.float() / 255
    with torch.no_grad():
        expected = enc.backbone(resize_tf_bilinear(x, (299, 299)) * 2 - 1)
    torch.testing.assert_close(enc(x), expected, rtol=0, atol=0)
    with pytest.raises(BatteryError, match="no such weights file"):
        load_encoder(released_spec("inception"), weights=tmp_path / "missing.pth")
