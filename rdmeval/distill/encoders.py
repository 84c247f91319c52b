"""The released run's ten training encoders as data, and lazy loaders on their own libraries.

``RELEASED_BATTERY`` is the battery of the released FLUX.2 [klein] student (RDM ``flux_geall``), in
the config's order. Each :class:`~rdmeval.distill.battery.EncoderSpec` records what the reference
does to the generator's [0, 1] 512² image: the input resolution it is resized to (bicubic with
antialias; Inception: TensorFlow 1.x bilinear), the mean/std it is normalised with (timm models: their
``pretrained_cfg``, checked when loaded), how the backbone's output is pooled, the feature width and
the precision (Inception in fp32 outside autocast, the others under bf16 autocast).

``load_encoder(spec)`` builds the real network on its library, importing it only then:

=============== ====================================================================================
library          what is built
=============== ====================================================================================
timm             ``timm.create_model(id, pretrained=True, num_classes=0, dynamic_img_size=True,
                 dynamic_img_pad=True)``; ``forward_features``, then the spec's pool (the model's own
                 ``attn_pool`` head for ``attn``); timm's ``fc_norm``/head are not applied
transformers     ``AutoModel.from_pretrained(id)``; its ``pooler_output`` (the final-norm class token)
dreamsim         ``dreamsim(pretrained=True)``; its ``embed`` (it normalises per backbone itself)
fid_inception    torch-fidelity's ``FeatureExtractorInceptionV3`` (the TF FID graph's weights), run on
                 ``x * 2 - 1`` after the TF-style resize, up to the 2048-d pool3 vector
=============== ====================================================================================

The packages are the ``distill`` extra (``pip install 'rdmeval[distill]'``); a missing one is a
one-line :class:`~rdmeval.distill.battery.BatteryError`. Weights are fetched by each library into its
own cache on first use.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from torch import Tensor, nn

from rdmeval.distill.battery import BatteryEncoder, BatteryError, EncoderSpec

TEXT_DIM = 1152  # the SigLIP2 text tower's width: tau(c) in the joint feature [phi | beta * tau]
NYSTROM_LANDMARKS = 8192  # M of the released geALLcoco bundles
EXTRA = "pip install 'rdmeval[distill]'"

_IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
_OPENAI_CLIP = ((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711))
_HALF = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))  # (x - 0.5) / 0.5 == x * 2 - 1 exactly in floating point
_IDENTITY = ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))


def _spec(name: str, library: str, model_id: str, resolution: int, norm: tuple[tuple[float, ...], tuple[float, ...]],
          pool: str, dim: int, *, prefix_tokens: int = 1, **kw: Any) -> EncoderSpec:
    mean, std = norm
    return EncoderSpec(name=name, library=library, model_id=model_id, resolution=resolution, mean=mean, std=std,  # type: ignore[arg-type]
                       pool=pool, dim=dim, prefix_tokens=prefix_tokens, **kw)


RELEASED_BATTERY: tuple[EncoderSpec, ...] = (
    _spec("inception", "fid_inception", "torch-fidelity:inception-v3-compat", 299, _HALF, "vector", 2048,
          interpolation="tf_bilinear", antialias=False, precision="fp32", prefix_tokens=0),
    _spec("convnext", "timm", "convnextv2_base.fcmae_ft_in22k_in1k", 224, _IMAGENET, "spatial_mean", 1024, prefix_tokens=0),
    _spec("mae", "timm", "vit_large_patch16_224.mae", 224, _IMAGENET, "mean", 1024),
    _spec("clip", "timm", "vit_large_patch14_clip_224.openai", 256, _OPENAI_CLIP, "cls", 1024),  # run at 256 (pos-embed interpolated)
    _spec("dinov3_l", "timm", "vit_large_patch16_dinov3.lvd1689m", 224, _IMAGENET, "cls", 1024, prefix_tokens=5),  # CLS + 4 registers
    _spec("pe_core_l", "timm", "vit_pe_core_large_patch14_336.fb", 224, _HALF, "attn", 1024),  # run at 224; attn head forced
    _spec("siglip2", "timm", "vit_so400m_patch16_siglip_256.v2_webli", 224, _HALF, "attn", 1152, prefix_tokens=0),  # MAP head
    _spec("aimv2_huge", "timm", "aimv2_huge_patch14_224.apple_pt", 224, _OPENAI_CLIP, "mean", 1536, prefix_tokens=0),
    _spec("webssl_dino_1b", "transformers", "facebook/webssl-dino1b-full2b-224", 224, _IMAGENET, "vector", 1536, prefix_tokens=0),
    _spec("dreamsim", "dreamsim", "dreamsim:ensemble(dino_vitb16,clip_vitb16,open_clip_vitb16)", 224, _IDENTITY, "vector", 1792,
          prefix_tokens=0),
)
RELEASED_BY_NAME: dict[str, EncoderSpec] = {s.name: s for s in RELEASED_BATTERY}


def released_spec(name: str) -> EncoderSpec:
    try:
        return RELEASED_BY_NAME[name]
    except KeyError:
        raise BatteryError(f"unknown encoder {name!r}; the released battery has {', '.join(RELEASED_BY_NAME)}") from None


def joint_dim(spec: EncoderSpec, text_dim: int = TEXT_DIM) -> int:
    """``d_in`` of the encoder's joint bundle: image features then the text feature."""
    return spec.dim + text_dim


def bundle_bytes(spec: EncoderSpec, landmarks: int = NYSTROM_LANDMARKS, text_dim: int = TEXT_DIM) -> int:
    """Bytes of a joint Nyström bundle's tensors in fp32: ``Z`` (M, d_in) and ``alpha`` (M)."""
    return 4 * landmarks * (joint_dim(spec, text_dim) + 1)


# ---------------------------------------------------------------------------------------- loaders


def _require(module: str, package: str, spec: EncoderSpec) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise BatteryError(f"encoder {spec.name!r} needs the {package} package; install it with {EXTRA}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


class _TimmFeatures(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        return self.model.forward_features(x)


def _check_timm_config(spec: EncoderSpec, model: nn.Module) -> None:
    cfg = dict(getattr(model, "pretrained_cfg", None) or {})
    want = {"mean": tuple(spec.mean), "std": tuple(spec.std), "interpolation": spec.interpolation}
    got = {"mean": tuple(cfg.get("mean", ())), "std": tuple(cfg.get("std", ())), "interpolation": cfg.get("interpolation")}
    if spec.pool != "spatial_mean":
        want["prefix tokens"] = spec.prefix_tokens
        got["prefix tokens"] = getattr(model, "num_prefix_tokens", None)
    bad = [k for k in want if want[k] != got[k]]
    if bad:
        raise BatteryError(
            f"encoder {spec.name!r}: timm's {spec.model_id} has {', '.join(f'{k} {got[k]}' for k in bad)}, the released "
            f"battery uses {', '.join(f'{k} {want[k]}' for k in bad)}; this timm version does not build the released encoder"
        )


def _load_timm(spec: EncoderSpec, *, pretrained: bool, model_kwargs: Mapping[str, Any]) -> BatteryEncoder:
    timm = _require("timm", "timm", spec)
    kwargs = {"pretrained": pretrained, "num_classes": 0, **model_kwargs}
    try:
        try:
            model = timm.create_model(spec.model_id, dynamic_img_size=True, dynamic_img_pad=True, **kwargs)
        except TypeError as exc:  # CNNs (ConvNeXt) take no dynamic-size arguments: they accept any size anyway
            if "dynamic_img" not in str(exc):
                raise
            model = timm.create_model(spec.model_id, **kwargs)
    except (RuntimeError, OSError, ValueError) as exc:
        raise BatteryError(f"encoder {spec.name!r}: cannot build timm {spec.model_id} ({_first_line(exc)}); "
                           "run once with network access so timm can fetch its weights") from None
    _check_timm_config(spec, model)
    attn = getattr(model, "attn_pool", None) if spec.pool == "attn" else None
    if spec.pool == "attn" and attn is None:
        raise BatteryError(f"encoder {spec.name!r}: timm {spec.model_id} has no attn_pool head for pool 'attn'")
    return BatteryEncoder(spec, _TimmFeatures(model), attn)


class _Pooler(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        return self.model(pixel_values=x).pooler_output


def _load_transformers(spec: EncoderSpec, *, dtype: torch.dtype) -> BatteryEncoder:
    transformers = _require("transformers", "transformers", spec)
    try:
        model = transformers.AutoModel.from_pretrained(spec.model_id, dtype=dtype)
    except (OSError, ValueError) as exc:
        raise BatteryError(f"encoder {spec.name!r}: cannot load {spec.model_id} ({_first_line(exc)}); "
                           "run once with network access or pass a local model folder") from None
    return BatteryEncoder(spec, _Pooler(model))


class _DreamSimEmbed(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        # dreamsim keeps its backbones in a plain list: register them so .to() and .parameters() see them
        self.extractors = nn.ModuleList(e.model for e in getattr(model, "extractor_list", ()))

    def forward(self, x: Tensor) -> Tensor:
        return self.model.embed(x)


def _load_dreamsim(spec: EncoderSpec, *, device: torch.device, cache_dir: str | os.PathLike[str] | None) -> BatteryEncoder:
    module = _require("dreamsim", "dreamsim", spec)
    cache = Path(cache_dir or os.environ.get("DREAMSIM_CACHE_DIR") or Path.home() / ".cache" / "dreamsim").expanduser()
    try:
        model, _ = module.dreamsim(pretrained=True, device=str(device), cache_dir=str(cache))
    except (RuntimeError, OSError, ValueError) as exc:
        raise BatteryError(f"encoder {spec.name!r}: cannot load DreamSim into {cache} ({_first_line(exc)}); "
                           "run once with network access") from None
    return BatteryEncoder(spec, _DreamSimEmbed(model))


class _InceptionPool3(nn.Module):
    """torch-fidelity's FID Inception-v3 from its first convolution to the 2048-d pool3 vector.

    The package's own forward takes uint8 images and scales them by ``(x - 128) / 128``; the
    training encoder takes ``x * 2 - 1`` of a differentiable float image instead, so this runs the
    package's layers (its children, registered in forward order) up to and including ``AvgPool``."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net
        names = [name for name, _ in net.named_children()]
        if "AvgPool" not in names:
            raise BatteryError("torch-fidelity's InceptionV3 has no AvgPool layer; this torch-fidelity version is not supported")
        self.trunk = tuple(names[: names.index("AvgPool") + 1])

    def forward(self, x: Tensor) -> Tensor:
        for name in self.trunk:
            x = getattr(self.net, name)(x)
        return torch.flatten(x, 1)


def _load_fid_inception(spec: EncoderSpec, *, weights: str | os.PathLike[str] | None) -> BatteryEncoder:
    tfi = _require("torch_fidelity.feature_extractor_inceptionv3", "torch-fidelity", spec)
    url = tfi.URL_INCEPTION_V3
    path = Path(weights).expanduser() if weights else Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]
    if not path.is_file():
        if weights:
            raise BatteryError(f"encoder {spec.name!r}: no such weights file {path}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(url, str(path), progress=False)
        except Exception as exc:  # urllib raises many kinds (offline, DNS, HTTP)
            raise BatteryError(f"encoder {spec.name!r}: cannot download the FID Inception weights {url} "
                               f"({_first_line(exc)}); fetch the file elsewhere and pass its path") from None
    try:  # a plain tensor dict: refuse anything else before the package unpickles it again
        torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise BatteryError(f"encoder {spec.name!r}: {path} is not a state dict of tensors ({_first_line(exc)})") from None
    net = tfi.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(path))
    return BatteryEncoder(spec, _InceptionPool3(net))


def load_encoder(
    spec: EncoderSpec,
    *,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    pretrained: bool = True,
    model_kwargs: Mapping[str, Any] | None = None,
    weights: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> BatteryEncoder:
    """The real, frozen encoder for ``spec`` on ``device``.

    ``dtype`` is the weights' dtype (fp32: the released regime, bf16 autocast on CUDA; bf16: the
    memory-saving variant); Inception stays fp32 whatever ``dtype`` says. ``pretrained=False`` and
    ``model_kwargs`` reach ``timm.create_model`` (tests build tiny random models that way);
    ``weights`` is a local FID Inception weights file; ``cache_dir`` is DreamSim's weights folder
    (default $DREAMSIM_CACHE_DIR or ~/.cache/dreamsim). A ``transformers`` spec's ``model_id`` may be a
    local folder.
    """
    device = torch.device(device)
    if spec.library == "timm":
        encoder = _load_timm(spec, pretrained=pretrained, model_kwargs=model_kwargs or {})
    elif spec.library == "transformers":
        encoder = _load_transformers(spec, dtype=dtype)
    elif spec.library == "dreamsim":
        encoder = _load_dreamsim(spec, device=device, cache_dir=cache_dir)
    elif spec.library == "fid_inception":
        return _load_fid_inception(spec, weights=weights).to(device=device, dtype=torch.float32)
    else:
        raise BatteryError(f"encoder {spec.name!r}: no loader for library {spec.library!r} "
                           "(timm, transformers, dreamsim, fid_inception; tiny stand-ins come from tiny_battery())")
    return encoder.to(device=device, dtype=dtype)


def load_battery(
    names: Sequence[str] | None = None,
    *,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    **options: Any,
) -> dict[str, BatteryEncoder]:
    """``load_encoder`` for each named released encoder (default: all ten, in order)."""
    specs = RELEASED_BATTERY if names is None else tuple(released_spec(n) for n in names)
    return {s.name: load_encoder(s, device=device, dtype=dtype, **options) for s in specs}

