"""Student DiT weights: read, un-wrap, detect the naming, convert, and load strictly.

The RDM student ships as ``model.safetensors`` (bf16, keys ``model.<klein DiT key>``) and as a raw
training checkpoint ``*.pth`` (a dict whose ``"model"`` entry is the adapter's state dict, keys
``model.*``; ``model_ema``/``optimizer`` are None). The DiT keys are most likely in Black Forest Labs'
native naming (the ``flux2`` package: ``double_blocks.N.img_attn.qkv`` ...), not diffusers'
(``transformer_blocks.N.attn.to_q`` ...). This module:

1. reads either format (``torch.load(weights_only=True)``: a .pth holding anything but tensors is
   refused);
2. strips wrapper prefixes shared by *every* key (``model.``, ``module.``, ``_orig_mod.``);
3. detects BFL vs diffusers naming (a mix is an error) and converts BFL keys with diffusers' own
   ``convert_flux2_transformer_checkpoint_to_diffusers``;
4. compares keys and shapes with the transformer built from the base's config, and raises an
   :class:`WeightsError` that names the missing / unexpected / mismatched keys (first few + count);
5. loads strictly. There is no fallback to the base weights, ever (the reference's trap: a missing
   checkpoint silently evaluated the untrained base).

``diffusers_to_bfl`` is the inverse key map (diffusers -> BFL). It is used to make BFL-named test
files and to check, at real scale on the ``meta`` device, that every BFL key of klein-4B maps.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import Any, Mapping, MutableMapping

import torch

from rdmeval.errors import RdmevalError
from rdmeval.generators.finite import check_finite

WRAPPER_PREFIXES: tuple[str, ...] = ("model.", "module.", "_orig_mod.")
BFL_ROOTS: tuple[str, ...] = ("img_in.", "txt_in.", "time_in.", "guidance_in.", "double_blocks.", "single_blocks.", "final_layer.")
DIFFUSERS_ROOTS: tuple[str, ...] = (
    "x_embedder.", "context_embedder.", "time_guidance_embed.", "transformer_blocks.",
    "single_transformer_blocks.", "norm_out.", "proj_out.",
)
# The three modulation layers share their root name; only the leaf differs (".lin." vs ".linear.").
_MODULATIONS: tuple[str, ...] = ("double_stream_modulation_img", "double_stream_modulation_txt", "single_stream_modulation")
TORCH_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")
SHOW = 5  # how many keys an error message lists


class WeightsError(RdmevalError):
    """A student weight file cannot be used; the message names the file and the offending keys."""


# ----------------------------------------------------------------------------------------------
# Reading files
# ----------------------------------------------------------------------------------------------


def _resolve_file(path: Path) -> Path:
    if path.is_dir():
        candidates = [p for p in (path / "model.safetensors", path / "diffusion_pytorch_model.safetensors") if p.is_file()]
        if len(candidates) != 1:
            listing = ", ".join(sorted(p.name for p in path.iterdir())[:10]) or "empty"
            raise WeightsError(
                f"--weights {path} is a folder; pass the weight file itself (model.safetensors or the .pth). Folder holds: {listing}"
            )
        return candidates[0]
    if not path.is_file():
        raise WeightsError(
            f"--weights {path}: no such file. Download the student with "
            "`hf download epfl-vita/flux2-klein-1step-rdm model.safetensors` and pass its path "
            "(rdmeval never falls back to the base weights)."
        )
    return path


def _sniff(path: Path) -> str:
    with open(path, "rb") as fh:
        head = fh.read(16)
    if head[:4] == b"PK\x03\x04" or head[:1] == b"\x80":
        return "torch"
    if len(head) >= 9 and head[8:9] == b"{":
        return "safetensors"
    return "unknown"


def damaged(path: Path) -> str | None:
    """Why ``path`` cannot be a whole weight file, from its header and directory alone (no tensor is read), or None.

    A safetensors file must hold every byte its header announces (safetensors checks this when it opens the
    file); a zip-format torch checkpoint must end with its zip directory (written last, so lost by a truncated
    copy). A legacy pickle checkpoint has no such structure: None. Bytes damaged in the middle of a file are
    found only when it is read.
    """
    if path.stat().st_size == 0:
        return "an empty file"
    kind = _sniff(path)
    if kind == "safetensors":
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), framework="pt"):
                return None
        except (SafetensorError, OSError, ValueError) as exc:
            return f"not a whole safetensors file ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
    with open(path, "rb") as fh:
        is_zip = fh.read(4) == b"PK\x03\x04"
    if not is_zip:
        return None
    if not zipfile.is_zipfile(path):
        return "a truncated PyTorch checkpoint (its zip directory, written last, is missing)"
    return None


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise WeightsError(
            f"--weights {path}: not a readable safetensors file ({exc}). It is corrupt or truncated "
            "(an interrupted download?); download it again and compare its size/sha256."
        ) from None


def _read_torch(path: Path) -> dict[str, torch.Tensor]:
    def load(mmap: bool) -> Any:
        return torch.load(str(path), map_location="cpu", weights_only=True, mmap=mmap)

    try:
        try:
            obj = load(mmap=True)  # the real .pth is 15.5 GB: map it instead of reading it all
        except RuntimeError as exc:
            if "mmap" not in str(exc):
                raise
            obj = load(mmap=False)  # legacy (non-zip) serialization cannot be mapped
    except pickle.UnpicklingError as exc:
        text = str(exc)
        tail = text.split("WeightsUnpickler error:", 1)[-1].strip()  # torch's one-line reason
        detail = tail.splitlines()[0] if tail else type(exc).__name__
        if "Unsupported global" in text:
            raise WeightsError(
                f"--weights {path}: refused to load. It holds a pickled Python object that is not a tensor ({detail}); "
                "rdmeval reads .pth files only with torch.load(weights_only=True) and only tensor state dicts. "
                "Convert the checkpoint to a plain state dict (or use model.safetensors)."
            ) from None
        raise WeightsError(
            f"--weights {path}: not a readable PyTorch checkpoint (torch.load(weights_only=True): {detail}). "
            "It is corrupt or truncated, or not written by torch.save; download it again."
        ) from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as exc:
        raise WeightsError(
            f"--weights {path}: not a readable PyTorch checkpoint ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}). "
            "It is corrupt or truncated (an interrupted download?); download it again."
        ) from None
    return _tensor_dict_from_checkpoint(obj, path)


def _tensor_dict_from_checkpoint(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    """A training checkpoint ``{"model": state_dict, ...}`` or a bare state dict -> the state dict."""
    if not isinstance(obj, Mapping):
        raise WeightsError(f"--weights {path}: holds a {type(obj).__name__}, not a state dict (a dict of tensors)")
    where = "the file"
    if "model" in obj and isinstance(obj["model"], Mapping):
        obj, where = obj["model"], "its 'model' entry"
    bad = [(k, type(v).__name__) for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        listed = ", ".join(f"{k!r} ({t})" for k, t in bad[:SHOW])
        raise WeightsError(
            f"--weights {path}: {where} is not a tensor state dict: {len(bad)} entries are not tensors "
            f"(first: {listed}). Pass the student's model.safetensors or its training .pth (dict with key 'model')."
        )
    return dict(obj)


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read a weight file (.safetensors or a torch checkpoint) into a flat ``{key: tensor}`` dict on CPU."""
    p = _resolve_file(Path(path))
    suffix = p.suffix.lower()
    kind = "safetensors" if suffix == ".safetensors" else "torch" if suffix in TORCH_SUFFIXES else _sniff(p)
    if kind == "unknown":
        raise WeightsError(f"--weights {p}: unknown format (expected a .safetensors file or a .pth checkpoint)")
    sd = _read_safetensors(p) if kind == "safetensors" else _read_torch(p)
    if not sd:
        raise WeightsError(f"--weights {p}: holds no tensors")
    check_finite(sd, f"--weights {p}")
    return sd


# ----------------------------------------------------------------------------------------------
# Naming: prefixes, detection, conversion
# ----------------------------------------------------------------------------------------------


def strip_wrapper_prefixes(sd: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Remove prefixes that *every* key carries (``model.``, ``module.``, ``_orig_mod.``), repeatedly."""
    out, stripped = dict(sd), []
    while out:
        common = next((p for p in WRAPPER_PREFIXES if all(k.startswith(p) for k in out)), None)
        if common is None:
            break
        out = {k[len(common):]: v for k, v in out.items()}
        stripped.append(common)
    return out, stripped


def _key_naming(key: str) -> str | None:
    if key.startswith(BFL_ROOTS):
        return "bfl"
    if key.startswith(DIFFUSERS_ROOTS):
        return "diffusers"
    for mod in _MODULATIONS:
        if key.startswith(mod + ".lin."):
            return "bfl"
        if key.startswith(mod + ".linear."):
            return "diffusers"
    return None


def detect_naming(sd: Mapping[str, Any], source: str = "the weights") -> str:
    """'bfl' or 'diffusers'; a mix, or keys of neither kind, is a WeightsError naming examples."""
    kinds: dict[str | None, list[str]] = {"bfl": [], "diffusers": [], None: []}
    for k in sd:
        kinds[_key_naming(k)].append(k)
    if kinds["bfl"] and kinds["diffusers"]:
        raise WeightsError(
            f"{source}: mixes Black Forest Labs key names ({', '.join(kinds['bfl'][:2])}) with diffusers names "
            f"({', '.join(kinds['diffusers'][:2])}); a FLUX.2 state dict uses one naming"
        )
    if not kinds["bfl"] and not kinds["diffusers"]:
        raise WeightsError(
            f"{source}: no FLUX.2 transformer keys found ({len(sd)} keys, first: {', '.join(list(sd)[:SHOW])}). "
            "Is this the student DiT (model.safetensors / the .pth)?"
        )
    return "bfl" if kinds["bfl"] else "diffusers"


def bfl_to_diffusers(sd: Mapping[str, Any], source: str = "the weights") -> dict[str, Any]:
    """Convert BFL-named keys with diffusers' converter (which works in place, so it gets a copy)."""
    from diffusers.loaders.single_file_utils import convert_flux2_transformer_checkpoint_to_diffusers

    try:
        return convert_flux2_transformer_checkpoint_to_diffusers(dict(sd))
    except KeyError as exc:
        raise WeightsError(
            f"{source}: BFL key with a name the FLUX.2 converter does not know (block part {exc}); "
            "the file is not a FLUX.2 [klein] transformer"
        ) from None


def _swap_halves(t: torch.Tensor) -> torch.Tensor:
    a, b = t.chunk(2, dim=0)
    return torch.cat([b, a], dim=0)


_TOP_TO_BFL: dict[str, str] = {
    "x_embedder": "img_in",
    "context_embedder": "txt_in",
    "time_guidance_embed.timestep_embedder.linear_1": "time_in.in_layer",
    "time_guidance_embed.timestep_embedder.linear_2": "time_in.out_layer",
    "time_guidance_embed.guidance_embedder.linear_1": "guidance_in.in_layer",
    "time_guidance_embed.guidance_embedder.linear_2": "guidance_in.out_layer",
    "double_stream_modulation_img.linear": "double_stream_modulation_img.lin",
    "double_stream_modulation_txt.linear": "double_stream_modulation_txt.lin",
    "single_stream_modulation.linear": "single_stream_modulation.lin",
    "proj_out": "final_layer.linear",
    "norm_out.linear": "final_layer.adaLN_modulation.1",  # and (scale, shift) -> (shift, scale)
}
_DOUBLE_TO_BFL: dict[str, str] = {
    "attn.to_out.0": "img_attn.proj",
    "ff.linear_in": "img_mlp.0",
    "ff.linear_out": "img_mlp.2",
    "attn.to_add_out": "txt_attn.proj",
    "ff_context.linear_in": "txt_mlp.0",
    "ff_context.linear_out": "txt_mlp.2",
}
_DOUBLE_NORMS_TO_BFL: dict[str, str] = {
    "attn.norm_q": "img_attn.norm.query_norm",
    "attn.norm_k": "img_attn.norm.key_norm",
    "attn.norm_added_q": "txt_attn.norm.query_norm",
    "attn.norm_added_k": "txt_attn.norm.key_norm",
}
_DOUBLE_QKV_TO_BFL: dict[tuple[str, str, str], str] = {
    ("attn.to_q", "attn.to_k", "attn.to_v"): "img_attn.qkv",
    ("attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj"): "txt_attn.qkv",
}
_SINGLE_TO_BFL: dict[str, str] = {"attn.to_qkv_mlp_proj": "linear1", "attn.to_out": "linear2"}
_SINGLE_NORMS_TO_BFL: dict[str, str] = {"attn.norm_q": "norm.query_norm", "attn.norm_k": "norm.key_norm"}


def diffusers_to_bfl(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The inverse of diffusers' FLUX.2 converter: diffusers-named keys -> BFL-named keys.

    Fuses q/k/v back into ``qkv``, renames norm ``weight`` to ``scale`` and swaps the final
    adaLN (scale, shift) halves back to BFL's (shift, scale). Works on ``meta`` tensors.
    """
    src = dict(sd)
    out: dict[str, torch.Tensor] = {}

    def take(key: str) -> torch.Tensor:
        try:
            return src.pop(key)
        except KeyError:
            raise WeightsError(f"diffusers state dict lacks {key!r}") from None

    for key in [k for k in src if k.startswith(("transformer_blocks.", "single_transformer_blocks."))]:
        if key not in src:
            continue  # consumed as part of a fused qkv
        root, idx, rest = key.split(".", 2)
        inner, param = rest.rsplit(".", 1)
        if root == "transformer_blocks":
            prefix = f"double_blocks.{idx}."
            fused = next(((names, target) for names, target in _DOUBLE_QKV_TO_BFL.items() if inner in names), None)
            if fused is not None:
                names, target = fused
                parts = [take(f"transformer_blocks.{idx}.{n}.{param}") for n in names]
                out[prefix + f"{target}.{param}"] = torch.cat(parts, dim=0)
            elif inner in _DOUBLE_NORMS_TO_BFL:
                out[prefix + _DOUBLE_NORMS_TO_BFL[inner] + ".scale"] = take(key)
            elif inner in _DOUBLE_TO_BFL:
                out[prefix + f"{_DOUBLE_TO_BFL[inner]}.{param}"] = take(key)
            else:
                raise WeightsError(f"no BFL name for diffusers key {key!r}")
        else:
            prefix = f"single_blocks.{idx}."
            if inner in _SINGLE_NORMS_TO_BFL:
                out[prefix + _SINGLE_NORMS_TO_BFL[inner] + ".scale"] = take(key)
            elif inner in _SINGLE_TO_BFL:
                out[prefix + f"{_SINGLE_TO_BFL[inner]}.{param}"] = take(key)
            else:
                raise WeightsError(f"no BFL name for diffusers key {key!r}")

    for key in list(src):
        inner, param = key.rsplit(".", 1)
        if inner not in _TOP_TO_BFL:
            raise WeightsError(f"no BFL name for diffusers key {key!r}")
        value = take(key)
        if inner == "norm_out.linear" and param == "weight":
            value = _swap_halves(value)
        out[f"{_TOP_TO_BFL[inner]}.{param}"] = value
    return out


# ----------------------------------------------------------------------------------------------
# Checking and loading
# ----------------------------------------------------------------------------------------------


def _listing(keys: list[str]) -> str:
    shown = ", ".join(keys[:SHOW])
    return f"{len(keys)} (first: {shown})" if len(keys) > SHOW else f"{len(keys)} ({shown})"


def check_state_dict(sd: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Size], *, source: str, target: str) -> None:
    """Strict comparison of keys and shapes; one WeightsError listing every kind of difference."""
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected]
    mismatched = [
        f"{k} {tuple(sd[k].shape)} vs {tuple(expected[k])}" for k in expected if k in sd and tuple(sd[k].shape) != tuple(expected[k])
    ]
    if not (missing or unexpected or mismatched):
        return
    lines = [f"{source} does not fit {target}:"]
    if missing:
        lines.append(f"  missing keys: {_listing(missing)}")
    if unexpected:
        lines.append(f"  unexpected keys: {_listing(unexpected)}")
    if mismatched:
        lines.append(f"  shape mismatches (file vs model): {_listing(mismatched)}")
    lines.append(
        "  These weights are for another architecture or are incomplete; pass the RDM student of FLUX.2 [klein]-4B "
        "with the klein-4B --base. rdmeval does not fall back to the base weights."
    )
    raise WeightsError("\n".join(lines))


def to_diffusers_state_dict(raw: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Size], *, source: str, target: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Strip prefixes, detect the naming, convert, check strictly. Returns (state dict, provenance)."""
    sd, stripped = strip_wrapper_prefixes(raw)
    naming = detect_naming(sd, source)
    if naming == "bfl":
        sd = bfl_to_diffusers(sd, source)
    check_state_dict(sd, expected, source=source, target=target)
    return sd, {"naming": naming, "stripped_prefixes": stripped, "n_tensors": len(raw)}


def expected_shapes(model: torch.nn.Module) -> dict[str, torch.Size]:
    return {k: v.shape for k, v in model.state_dict().items()}


def load_transformer_weights(
    path: str | os.PathLike[str],
    config: MutableMapping[str, Any] | Any,
    *,
    dtype: torch.dtype,
    device: torch.device | str = "cpu",
    target: str = "the FLUX.2 [klein] transformer",
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Build the transformer from ``config`` without allocating, and load ``path`` into it strictly.

    Returns the model (in ``dtype`` on ``device``, eval mode) and a provenance dict
    (naming, stripped prefixes, tensor count, file dtypes).
    """
    from diffusers import Flux2Transformer2DModel

    raw = read_state_dict(path)
    with torch.device("meta"):
        model = Flux2Transformer2DModel.from_config(config)
    sd, info = to_diffusers_state_dict(raw, expected_shapes(model), source=f"--weights {path}", target=target)
    info["file_dtypes"] = sorted({str(t.dtype).removeprefix("torch.") for t in sd.values()})
    model.load_state_dict(sd, strict=True, assign=True)
    # nn.Module.to, not ModelMixin.to: the latter warns about fp32-pinned modules, which this model has none of.
    model = torch.nn.Module.to(model, device=device, dtype=dtype)
    model.eval().requires_grad_(False)
    return model, info


def load_weights_into(
    model: torch.nn.Module,
    path: str | os.PathLike[str],
    *,
    target: str = "the FLUX.2 [klein] transformer",
) -> dict[str, Any]:
    """Copy the weights of ``path`` into the parameters of ``model``, in place (a checkpoint swap).

    The file goes through the same reading, naming detection, conversion and strict key/shape check as
    :func:`load_transformer_weights`; only then are the tensors copied into the existing parameters
    (``load_state_dict``, which casts to each parameter's dtype and device), so a bad file leaves the
    model as it was. The copy casts as ``Module.to`` does on a fresh load (both round to nearest), so
    the swapped model equals a freshly loaded one bit for bit. Returns the same provenance dict.
    """
    raw = read_state_dict(path)
    sd, info = to_diffusers_state_dict(raw, expected_shapes(model), source=f"--weights {path}", target=target)
    info["file_dtypes"] = sorted({str(t.dtype).removeprefix("torch.") for t in sd.values()})
    with torch.no_grad():
        model.load_state_dict(sd, strict=True)
    return info
