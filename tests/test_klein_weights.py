"""Student weight loading: formats, namings, prefixes, strictness, clear errors, and the real klein-4B key set."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from rdmeval.generators.weights import (
    WeightsError,
    bfl_to_diffusers,
    diffusers_to_bfl,
    load_transformer_weights,
    read_state_dict,
    to_diffusers_state_dict,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

KLEIN_4B = {  # diffusers' klein-4B transformer config (scripts/convert_flux2_to_diffusers.py, model_type klein-4b)
    "patch_size": 1, "in_channels": 128, "num_layers": 5, "num_single_layers": 20, "attention_head_dim": 128,
    "num_attention_heads": 24, "joint_attention_dim": 7680, "timestep_guidance_channels": 256, "mlp_ratio": 3.0,
    "axes_dims_rope": (32, 32, 32, 32), "rope_theta": 2000, "eps": 1e-6, "guidance_embeds": False,
}
KLEIN_4B_PARAMS = 3_875_544_576  # docs/generators.md, the weights checks


def bfl_keys(n_double: int, n_single: int) -> set[str]:
    """BFL's flux2 module names (Flux2 / DoubleStreamBlock / SingleStreamBlock / LastLayer), written out by hand."""
    keys = {
        "img_in.weight", "txt_in.weight", "time_in.in_layer.weight", "time_in.out_layer.weight",
        "double_stream_modulation_img.lin.weight", "double_stream_modulation_txt.lin.weight",
        "single_stream_modulation.lin.weight", "final_layer.adaLN_modulation.1.weight", "final_layer.linear.weight",
    }
    for i in range(n_double):
        for s in ("img", "txt"):
            keys |= {f"double_blocks.{i}.{s}_attn.qkv.weight", f"double_blocks.{i}.{s}_attn.proj.weight",
                     f"double_blocks.{i}.{s}_attn.norm.query_norm.scale", f"double_blocks.{i}.{s}_attn.norm.key_norm.scale",
                     f"double_blocks.{i}.{s}_mlp.0.weight", f"double_blocks.{i}.{s}_mlp.2.weight"}
    for i in range(n_single):
        keys |= {f"single_blocks.{i}.linear1.weight", f"single_blocks.{i}.linear2.weight",
                 f"single_blocks.{i}.norm.query_norm.scale", f"single_blocks.{i}.norm.key_norm.scale"}
    return keys




@pytest.fixture(scope="module")
def config(tiny_klein):
    from diffusers import Flux2Transformer2DModel

    return Flux2Transformer2DModel.load_config(tiny_klein["base"], subfolder="transformer")


@pytest.fixture(scope="module")
def inputs():
    g = torch.Generator().manual_seed(3)
    h = w = 4
    img_ids = torch.cartesian_prod(torch.arange(1), torch.arange(h), torch.arange(w), torch.arange(1))
    txt_ids = torch.cartesian_prod(torch.arange(1), torch.arange(1), torch.arange(1), torch.arange(12))
    return {
        "hidden_states": torch.randn(2, h * w, 128, generator=g),
        "encoder_hidden_states": torch.randn(2, 12, 96, generator=g),
        "timestep": torch.tensor([1.0, 0.7]),
        "img_ids": img_ids,
        "txt_ids": txt_ids,
        "return_dict": False,
    }


@pytest.fixture(scope="module")
def reference_output(tiny_klein, inputs):
    """The student's output computed without rdmeval's loader: diffusers-named file, plain strict load."""
    from diffusers import Flux2Transformer2DModel

    # frozen, as the loader leaves it: trainable and frozen weights take different CPU GEMM paths, which
    # round alike on some CPUs (AVX-512) and differently on others (MKL's AVX2 kernels)
    model = Flux2Transformer2DModel.from_pretrained(tiny_klein["base"], subfolder="transformer").eval().requires_grad_(False)
    # One thread, as the tests run (one_torch_thread; a module fixture is set up before it): with MKL's AVX2
    # kernels the thread count changes how a GEMM is split, and so its rounding.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        base_out = model(**inputs)[0]
        sd = load_file(str(tiny_klein["student_diffusers_safetensors"]))
        model.load_state_dict({k: v.float() for k, v in sd.items()}, strict=True)
        with torch.no_grad():
            return model(**inputs)[0], base_out
    finally:
        torch.set_num_threads(threads)


def _output(path: Path, config, inputs) -> torch.Tensor:
    model, _ = load_transformer_weights(path, config, dtype=torch.float32)
    with torch.no_grad():
        return model(**inputs)[0]


# ----- the inverse map ---------------------------------------------------------------------------


def test_inverse_map_gives_bfl_names_and_round_trips(tiny_klein):
    sd = {k.removeprefix("model."): v for k, v in load_file(str(tiny_klein["student_bfl_safetensors"])).items()}
    assert set(sd) == bfl_keys(2, 2)  # the fixture's BFL file has exactly BFL's names
    diff = load_file(str(tiny_klein["student_diffusers_safetensors"]))
    bfl = diffusers_to_bfl(diff)
    assert set(bfl) == bfl_keys(2, 2)
    assert all(torch.equal(bfl[k], sd[k]) for k in sd)
    back = bfl_to_diffusers(bfl)
    assert set(back) == set(diff) and all(torch.equal(back[k], diff[k]) for k in diff)
    # the final adaLN halves really are swapped between the namings (control against a no-op map)
    assert not torch.equal(bfl["final_layer.adaLN_modulation.1.weight"], diff["norm_out.linear.weight"])


def test_real_klein_4b_key_set_maps_at_full_scale_on_meta():
    from diffusers import Flux2Transformer2DModel

    with torch.device("meta"):
        model = Flux2Transformer2DModel(**KLEIN_4B)
    assert sum(p.numel() for p in model.parameters()) == KLEIN_4B_PARAMS
    expected = {k: v.shape for k, v in model.state_dict().items()}
    bfl = diffusers_to_bfl(model.state_dict())
    assert set(bfl) == bfl_keys(5, 20) and len(bfl) == 149 and len(expected) == 169
    assert sum(t.numel() for t in bfl.values()) == KLEIN_4B_PARAMS
    shapes = {  # BFL module shapes from flux2's Klein4BParams: hidden 3072, mlp 9216, context 7680
        "img_in.weight": (3072, 128), "txt_in.weight": (3072, 7680), "time_in.in_layer.weight": (3072, 256),
        "double_blocks.4.img_attn.qkv.weight": (9216, 3072), "double_blocks.0.txt_mlp.0.weight": (18432, 3072),
        "double_blocks.0.img_mlp.2.weight": (3072, 9216), "double_stream_modulation_img.lin.weight": (18432, 3072),
        "single_stream_modulation.lin.weight": (9216, 3072), "single_blocks.19.linear1.weight": (27648, 3072),
        "single_blocks.19.linear2.weight": (3072, 12288), "single_blocks.0.norm.query_norm.scale": (128,),
        "final_layer.adaLN_modulation.1.weight": (6144, 3072), "final_layer.linear.weight": (128, 3072),
    }
    for key, shape in shapes.items():
        assert tuple(bfl[key].shape) == shape, key
    raw = {f"model.{k}": v for k, v in bfl.items()}  # as in the released model.safetensors
    sd, info = to_diffusers_state_dict(raw, expected, source="klein-4B (meta)", target="klein-4B")
    assert info["naming"] == "bfl" and info["stripped_prefixes"] == ["model."]
    assert {k: v.shape for k, v in sd.items()} == expected
    model.load_state_dict(sd, strict=True, assign=True)  # every key lands, strictly


# ----- round trips ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["student_bfl_safetensors", "student_bfl_pth", "student_diffusers_safetensors", "student_diffusers_pth"])
def test_every_fixture_file_loads_to_the_same_transformer(tiny_klein, config, inputs, reference_output, name):
    out = _output(tiny_klein[name], config, inputs)
    ref, base = reference_output
    assert torch.equal(out, ref)
    assert not torch.allclose(out, base)  # the student is not the base


@pytest.mark.parametrize("naming", ["bfl", "diffusers"])
@pytest.mark.parametrize("prefix", ["", "model.", "module.model."])
@pytest.mark.parametrize("fmt", ["safetensors", "pth"])
def test_prefix_and_format_variants(tiny_klein, config, inputs, reference_output, tmp_path, naming, prefix, fmt):
    sd = load_file(str(tiny_klein["student_diffusers_safetensors"]))
    if naming == "bfl":
        sd = diffusers_to_bfl(sd)
    sd = {prefix + k: v.contiguous() for k, v in sd.items()}
    path = tmp_path / f"w.{fmt}"
    if fmt == "safetensors":
        save_file(sd, str(path))
    else:
        torch.save({"model": {k: v.float() for k, v in sd.items()}, "model_ema": None, "optimizer": None}, path)
    assert torch.equal(_output(path, config, inputs), reference_output[0])


# ----- errors ---------------------------------------------------------------------------------------


def test_missing_file_is_an_error_not_a_fallback(tmp_path, config):
    with pytest.raises(WeightsError, match="no such file.*never falls back"):
        load_transformer_weights(tmp_path / "nope.safetensors", config, dtype=torch.float32)


@pytest.mark.parametrize("name", ["student_bfl_safetensors", "student_bfl_pth"])
def test_truncated_and_corrupt_files(tiny_klein, tmp_path, name):
    src = Path(tiny_klein[name])
    data = src.read_bytes()
    cut = tmp_path / f"cut{src.suffix}"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match=r"corrupt or truncated"):
        read_state_dict(cut)
    garbage = tmp_path / f"garbage{src.suffix}"
    garbage.write_bytes(bytes(range(256)) * 64)
    with pytest.raises(WeightsError, match=r"corrupt or truncated|not a readable"):
        read_state_dict(garbage)


class Payload:  # a non-tensor class: weights_only loading must refuse it
    def __init__(self):
        self.x = 1


def test_pth_with_pickled_object_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"model": {"img_in.weight": torch.zeros(2), "hook": Payload()}}, path)
    with pytest.raises(WeightsError, match=r"refused to load. It holds a pickled Python object.*Payload"):
        read_state_dict(path)
    with open(tmp_path / "plain.pth", "wb") as fh:  # a plain pickle (not torch.save) of an object
        pickle.dump({"model": Payload()}, fh, protocol=2)
    with pytest.raises(WeightsError, match=r"plain.pth: refused to load"):
        read_state_dict(tmp_path / "plain.pth")
    torch.save({"model": {"img_in.weight": torch.zeros(2), "step": 3}}, tmp_path / "mixed.pth")
    with pytest.raises(WeightsError, match=r"1 entries are not tensors.*'step' \(int\)"):
        read_state_dict(tmp_path / "mixed.pth")
    torch.save([torch.zeros(2)], tmp_path / "list.pth")
    with pytest.raises(WeightsError, match="holds a list, not a state dict"):
        read_state_dict(tmp_path / "list.pth")


def test_missing_unexpected_and_mismatched_keys_are_named(tiny_klein, config, tmp_path):
    sd = load_file(str(tiny_klein["student_bfl_safetensors"]))
    del sd["model.single_blocks.1.linear2.weight"]
    sd["model.single_blocks.7.linear1.weight"] = torch.zeros(3)
    sd["model.img_in.weight"] = torch.zeros(5, 5, dtype=torch.bfloat16)
    path = tmp_path / "bad.safetensors"
    save_file(sd, str(path))
    with pytest.raises(WeightsError) as err:
        load_transformer_weights(path, config, dtype=torch.float32)
    msg = str(err.value)
    assert "missing keys: 1 (single_transformer_blocks.1.attn.to_out.weight)" in msg
    assert "unexpected keys: 1 (single_transformer_blocks.7.attn.to_qkv_mlp_proj.weight)" in msg
    assert "x_embedder.weight (5, 5) vs (32, 128)" in msg
    assert str(path) in msg


def test_wrong_architecture_is_named(tiny_klein, config, tmp_path):
    from diffusers import Flux2Transformer2DModel

    other = dict(config)
    other.update(num_attention_heads=3, num_single_layers=7)
    bigger = Flux2Transformer2DModel.from_config(other)
    path = tmp_path / "other.safetensors"
    save_file({f"model.{k}": v.contiguous() for k, v in diffusers_to_bfl(bigger.state_dict()).items()}, str(path))
    with pytest.raises(WeightsError) as err:
        load_transformer_weights(path, config, dtype=torch.float32)
    msg = str(err.value)
    assert "unexpected keys: 20 (first:" in msg and "shape mismatches" in msg and "another architecture" in msg


def test_foreign_or_mixed_naming(tmp_path):
    save_file({"encoder.layer.0.weight": torch.zeros(2)}, str(tmp_path / "bert.safetensors"))
    with pytest.raises(WeightsError, match="no FLUX.2 transformer keys.*encoder.layer.0.weight"):
        to_diffusers_state_dict(read_state_dict(tmp_path / "bert.safetensors"), {}, source="x", target="y")
    mixed = {"img_in.weight": torch.zeros(1), "proj_out.weight": torch.zeros(1)}
    with pytest.raises(WeightsError, match="mixes Black Forest Labs key names"):
        to_diffusers_state_dict(mixed, {}, source="x", target="y")
    with pytest.raises(WeightsError, match="unknown format"):
        (tmp_path / "w.weird").write_bytes(b"hello world, not weights")
        read_state_dict(tmp_path / "w.weird")
