"""A student checkpoint holding NaN or Inf is refused when read, naming the file and the tensor."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file

from rdmeval.generators.finite import NonFiniteError, check_finite
from rdmeval.generators.weights import read_state_dict

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _poisoned(tiny_klein, tmp_path, fmt: str, value: float) -> tuple[str, str]:
    """A copy of the tiny student with one element of one tensor set to ``value``; returns (path, key)."""
    sd = load_file(str(tiny_klein["student_bfl_safetensors"]))
    key = sorted(sd)[len(sd) // 2]
    sd[key] = sd[key].clone()
    sd[key].view(-1)[3] = value
    path = tmp_path / f"poisoned.{fmt}"
    if fmt == "safetensors":
        save_file(sd, str(path))
    else:
        torch.save({"model": sd, "model_ema": None, "optimizer": None}, path)
    return str(path), key


@pytest.mark.parametrize("fmt, value, counts", [("safetensors", float("nan"), "1 NaN and 0 Inf"),
                                                ("pth", float("-inf"), "0 NaN and 1 Inf")])
def test_cli_refuses_a_student_with_non_finite_weights(tiny_klein, tmp_path, capsys, fmt, value, counts):
    from rdmeval.cli.main import main

    path, key = _poisoned(tiny_klein, tmp_path, fmt, value)
    out = tmp_path / "run"
    argv = ["generate", "--model", "student", "--weights", path, "--base", str(tiny_klein["base"]), "--prompts", "demo-geneval",
            "--out", str(out), "--resolution", "32", "--device", "cpu", "--rng-device", "cpu", "--precision", "fp32", "--no-progress"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"--weights {path}: tensor {key!r}" in err and counts in err and "use another checkpoint" in err
    assert "Traceback" not in err and not out.exists()  # refused before any run folder or image


def test_finite_checkpoints_pass_and_every_bad_tensor_is_counted(tiny_klein):
    sd = read_state_dict(tiny_klein["student_bfl_pth"])  # the clean fixture reads as before
    check_finite(sd, "x")
    big = torch.full((4,), 3e38, dtype=torch.float32)  # finite entries whose float32 sum would overflow
    check_finite({"big": big, "ints": torch.tensor([1, 2])}, "x")
    bad = {"a": torch.ones(3), "b": torch.tensor([float("nan"), float("inf"), float("nan")], dtype=torch.bfloat16),
           "c": torch.tensor([float("inf")])}
    with pytest.raises(NonFiniteError, match=r"^ckpt: tensor 'b' \(3,\) holds 2 NaN and 1 Inf values \(and 1 more tensors\)"):
        check_finite(bad, "ckpt")
