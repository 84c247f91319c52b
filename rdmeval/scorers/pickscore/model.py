"""The PickScore model: CLIP ViT-H/14 (PickScore_v1) + the LAION CLIP-H processor, on transformers.

What matters for the number (docs/pickscore.md):

- images enter the processor as **uint8 PIL images**. The processor rescales by 1/255 whatever it
  is given, so [0, 1] floats would be rescaled twice (silently, to an almost black image). Float
  input is therefore caught here: refused by default, or converted with an explicit rule
  (``round``: rdmeval's PNG convention; ``truncate``: the reference's ``to_pil_image``);
- text: ``padding=True, truncation=True, max_length=77``; prompts longer than 77 CLIP tokens
  (start and end tokens included) are counted;
- score = ``exp(logit_scale) * cos`` of the projected embeddings (``rdmeval.scorers.pickscore.
  functional``), outputs cast to float32 first. ``logit_scale`` is read in float32 **before** the
  model is cast to bf16/fp16: in bf16 ln(100) rounds to 4.594 and every score would drop by 1.1 %.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from rdmeval.errors import RdmevalError
from rdmeval.scorers.pickscore.functional import pickscore_from_embeddings

from rdmeval.scorers.pickscore.defaults import DEFAULT_BATCH_SIZE, DEFAULT_MODEL, DEFAULT_PROCESSOR, IMAGE_BACKENDS  # noqa: E402

MAX_LENGTH = 77
DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
FLOAT_RULES = ("refuse", "round", "truncate")


# ----- images --------------------------------------------------------------------------------------
def to_uint8_pil(image: Any, float_images: str = "refuse"):
    """One image as an RGB uint8 PIL image, the only form handed to the CLIP processor.

    Accepts PIL images (8-bit modes), uint8 arrays/tensors (HWC, or CHW for tensors) and, when
    ``float_images`` is ``round`` or ``truncate``, float arrays/tensors with values in [0, 1]:
    ``round(x * 255)`` or ``floor(x * 255)``. ``refuse`` (the default) raises for floats, and any
    rule raises for floats outside [0, 1] (a 0-255 or [-1, 1] image would be silently wrong).
    """
    from PIL import Image

    if float_images not in FLOAT_RULES:
        raise RdmevalError(f"float_images must be one of {FLOAT_RULES}, got {float_images!r}")
    if isinstance(image, Image.Image):
        if image.mode not in ("RGB", "RGBA", "L", "LA", "P", "1", "CMYK", "YCbCr"):
            raise RdmevalError(f"PIL image of mode {image.mode!r} is not 8-bit; convert it to an 8-bit RGB image first")
        return image if image.mode == "RGB" else image.convert("RGB")
    if isinstance(image, torch.Tensor):
        t = image.detach().cpu()
        if t.ndim == 3 and t.shape[0] in (1, 3) and t.shape[-1] not in (1, 3):
            t = t.permute(1, 2, 0)  # CHW -> HWC (torch convention)
        arr = t.float().numpy() if t.is_floating_point() else t.numpy()
    elif isinstance(image, np.ndarray):
        arr = image
    else:
        raise RdmevalError(f"cannot score an image of type {type(image).__name__}; pass a PIL image or a uint8 HxWx3 array")
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
        raise RdmevalError(f"expected an HxWx3 image (or 3xHxW tensor), got shape {arr.shape}")
    if np.issubdtype(arr.dtype, np.floating):
        if float_images == "refuse":
            raise RdmevalError(
                f"got a {arr.dtype} image; PickScore takes uint8 images (the CLIP processor divides by 255 itself, "
                "so [0, 1] floats would be rescaled twice). Convert to uint8, or pass float_images='round' "
                "(rdmeval's PNG rule) or 'truncate' (the reference's to_pil_image rule)"
            )
        lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
        if not (np.isfinite(arr).all() and lo >= 0.0 and hi <= 1.0):
            raise RdmevalError(
                f"float image values span [{lo:.4g}, {hi:.4g}], not [0, 1]: a 0-255 float image must be cast to uint8, "
                "a [-1, 1] one mapped with (x + 1) / 2 first"
            )
        scaled = arr.astype(np.float32) * 255.0
        arr = (np.round(scaled) if float_images == "round" else np.floor(scaled)).astype(np.uint8)
    elif arr.dtype != np.uint8:
        raise RdmevalError(f"integer images must be uint8, got {arr.dtype}; cast with .astype(np.uint8) if values are 0-255")
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    elif arr.shape[2] == 4:
        arr = arr[:, :, :3]
    return Image.fromarray(np.ascontiguousarray(arr), mode="RGB")


class ImagePreprocessor:
    """Images -> ``pixel_values`` via the CLIP processor, uint8 PIL in. Picklable (no model), for loader workers."""

    def __init__(self, processor: Any, float_images: str = "refuse"):
        if float_images not in FLOAT_RULES:
            raise RdmevalError(f"float_images must be one of {FLOAT_RULES}, got {float_images!r}")
        self.processor = processor
        self.float_images = float_images

    def __call__(self, images: Sequence[Any]) -> torch.Tensor:
        pil = [to_uint8_pil(im, self.float_images) for im in images]
        return self.processor(images=pil, return_tensors="pt")["pixel_values"]


def _features(out: Any, what: str) -> torch.Tensor:
    """The projected embeddings from get_*_features: a tensor (transformers < 5) or ``.pooler_output`` (>= 5)."""
    if isinstance(out, torch.Tensor):
        return out
    pooled = getattr(out, "pooler_output", None)
    if isinstance(pooled, torch.Tensor):
        return pooled
    raise RdmevalError(f"get_{what}_features returned {type(out).__name__} without a pooler_output tensor; "
                       "unsupported transformers version (rdmeval needs transformers >= 5.23)")


# ----- loading ------------------------------------------------------------------------------------
def default_device() -> str:
    if torch.cuda.is_available():
        return f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    return "cpu"


_CONFIG_FILES = ("config.json", "preprocessor_config.json", "processor_config.json", "tokenizer_config.json",
                 "tokenizer.json", "vocab.json", "merges.txt", "special_tokens_map.json")


def _source(name_or_path: str, revision: str | None) -> dict[str, Any]:
    """Where a model/processor came from: a local folder (+ hash of its config files) or a hub id + cached commit."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        # Content identity independent of the path: the small config/tokenizer files (not the weights).
        h = hashlib.sha256()
        for name in _CONFIG_FILES:
            f = path / name
            if f.is_file():
                h.update(name.encode() + b"\0" + hashlib.sha256(f.read_bytes()).digest())
        return {"source": "local", "path": str(path.resolve()), "configs_sha256": h.hexdigest()}
    info = {"source": "hub", "id": name_or_path, "revision": revision}
    try:
        from huggingface_hub import try_to_load_from_cache

        for fname in ("config.json", "preprocessor_config.json", "tokenizer_config.json"):
            cached = try_to_load_from_cache(name_or_path, fname, revision=revision)
            if isinstance(cached, str):
                parts = Path(cached).parts
                if "snapshots" in parts:
                    info["commit"] = parts[parts.index("snapshots") + 1]
                    break
    except Exception:  # provenance is best effort; loading already succeeded
        pass
    return info


def _load_error(kind: str, name: str, exc: Exception) -> RdmevalError:
    default = DEFAULT_MODEL if kind == "model" else DEFAULT_PROCESSOR
    flag = "--model" if kind == "model" else "--processor"
    return RdmevalError(
        f"could not load the PickScore {kind} {name!r}: {type(exc).__name__}: {exc}\n"
        f"Without network, download it once elsewhere (`hf download {default}`) and copy the Hugging Face "
        f"cache, or pass {flag} /path/to/local/folder (a save_pretrained folder)."
    )


class PickScorer:
    """PickScore on a CLIP model and processor (transformers objects, injected or loaded).

    An injected model is put in eval mode and moved/cast to ``device``/``dtype`` in place (as
    ``nn.Module.to`` does); pass a copy to keep the original. Its ``logit_scale`` is read first.

    >>> scorer = PickScorer.from_pretrained()                      # doctest: +SKIP
    >>> scorer.score([pil_image], ["a red bowl on a table"])       # doctest: +SKIP
    tensor([21.73])
    """

    def __init__(
        self,
        model: Any,
        processor: Any,
        *,
        device: str | None = None,
        dtype: str = "fp32",
        batch_size: int = DEFAULT_BATCH_SIZE,
        float_images: str = "refuse",
        model_source: dict[str, Any] | None = None,
        processor_source: dict[str, Any] | None = None,
    ):
        if dtype not in DTYPES:
            raise RdmevalError(f"--dtype {dtype!r}: choose one of {', '.join(DTYPES)}")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise RdmevalError(f"--batch-size must be an integer >= 1, got {batch_size!r}")
        for attr in ("get_image_features", "get_text_features", "logit_scale"):
            if not hasattr(model, attr):
                raise RdmevalError(f"the PickScore model ({type(model).__name__}) has no {attr}; "
                                   f"--model must be a CLIP model such as {DEFAULT_MODEL}")
        if getattr(processor, "image_processor", None) is None or getattr(processor, "tokenizer", None) is None:
            raise RdmevalError(f"the PickScore processor ({type(processor).__name__}) lacks an image processor or tokenizer; "
                               f"--processor must be a CLIP processor such as {DEFAULT_PROCESSOR}")
        self.device = torch.device(device or default_device())
        self.dtype = dtype
        self.batch_size = batch_size
        # The scale is read in float32 before any cast (bf16 would round ln(100) to 4.594).
        self.logit_scale_dtype = str(model.logit_scale.dtype).replace("torch.", "")
        self.logit_scale = float(model.logit_scale.detach().float().cpu())
        self.model = model.eval().to(device=self.device, dtype=DTYPES[dtype])
        self.processor = processor
        self.preprocessor = ImagePreprocessor(processor, float_images)
        self.model_source = model_source or {"source": "object", "class": type(model).__name__}
        self.processor_source = processor_source or {"source": "object", "class": type(processor).__name__}

    @classmethod
    def from_pretrained(
        cls,
        model: str = DEFAULT_MODEL,
        processor: str = DEFAULT_PROCESSOR,
        *,
        model_revision: str | None = None,
        processor_revision: str | None = None,
        image_backend: str = "auto",
        **kwargs: Any,
    ) -> "PickScorer":
        """Load ``AutoModel`` (float32, then cast to ``dtype``) and ``AutoProcessor`` from hub ids or folders."""
        import transformers

        if image_backend not in IMAGE_BACKENDS:
            raise RdmevalError(f"--image-backend {image_backend!r}: choose one of {', '.join(IMAGE_BACKENDS)}")
        logging.getLogger(__name__).info("loading the PickScore model %s ...", model)
        try:
            clip = transformers.AutoModel.from_pretrained(model, revision=model_revision, dtype=torch.float32)
        except (OSError, ValueError) as exc:
            raise _load_error("model", model, exc) from exc
        proc_kwargs = {} if image_backend == "auto" else {"backend": image_backend}
        try:
            proc = transformers.AutoProcessor.from_pretrained(processor, revision=processor_revision, **proc_kwargs)
        except (OSError, ValueError) as exc:
            raise _load_error("processor", processor, exc) from exc
        return cls(clip, proc, model_source=_source(model, model_revision),
                   processor_source=_source(processor, processor_revision), **kwargs)

    # ----- provenance -----------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """Everything that determines the scores, recorded in every result row."""
        return {
            "model": self.model_source,
            "processor": self.processor_source,
            "model_class": type(self.model).__name__,
            "image_processor": type(self.processor.image_processor).__name__,
            "tokenizer": type(self.processor.tokenizer).__name__,
            "dtype": self.dtype,
            "logit_scale": self.logit_scale,
            "logit_scale_source_dtype": self.logit_scale_dtype,
            "max_length": MAX_LENGTH,
            "text": "padding=True, truncation=True, max_length=77",
            "images": "uint8 RGB PIL into the processor",
            "score": "exp(logit_scale) * cos(projected image, projected text), no softmax",
        }

    def identity(self) -> dict[str, Any]:
        """What two scorings must share to be comparable: model/processor content, dtype, preprocessing."""

        def ident(src: dict[str, Any]) -> Any:
            if src.get("source") == "local":
                return {"configs_sha256": src.get("configs_sha256")}
            if src.get("source") == "hub":
                return {"id": src.get("id"), "commit": src.get("commit") or src.get("revision")}
            return {**src, "object_id": id(self.model)}  # injected objects: no reuse across processes

        d = self.describe()
        return {"model": ident(d["model"]), "processor": ident(d["processor"]), "dtype": d["dtype"],
                "image_processor": d["image_processor"], "logit_scale": d["logit_scale"], "max_length": d["max_length"]}

    def fingerprint(self) -> str:
        """Short hash of :meth:`identity` (not paths, not the device): names the embedding cache."""
        return hashlib.sha256(json.dumps(self.identity(), sort_keys=True, default=str).encode()).hexdigest()[:16]

    # ----- text -----------------------------------------------------------------------------
    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """CLIP tokens per text, start/end tokens included, before truncation (> 77 means truncated)."""
        enc = self.processor.tokenizer(list(texts), add_special_tokens=True, truncation=False, verbose=False)
        return [len(ids) for ids in enc["input_ids"]]

    def embed_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """Projected text embeddings (float32, CPU, not normalized), shape (N, D)."""
        out = []
        for start in range(0, len(texts), self.batch_size):
            chunk = list(texts[start : start + self.batch_size])
            enc = self.processor(text=chunk, padding=True, truncation=True, max_length=MAX_LENGTH, return_tensors="pt")
            enc = {k: v.to(self.device) for k, v in enc.items() if k in ("input_ids", "attention_mask")}
            with torch.inference_mode():
                out.append(_features(self.model.get_text_features(**enc), "text").float().cpu())
        return torch.cat(out) if out else torch.empty(0, 0)

    # ----- images ---------------------------------------------------------------------------
    def embed_pixels(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Projected image embeddings (float32, CPU, not normalized) for processor output."""
        with torch.inference_mode():
            pv = pixel_values.to(self.device, dtype=DTYPES[self.dtype], non_blocking=True)
            return _features(self.model.get_image_features(pixel_values=pv), "image").float().cpu()

    def embed_images(self, images: Sequence[Any]) -> torch.Tensor:
        """Projected image embeddings (float32, CPU, not normalized), shape (N, D)."""
        out = [self.embed_pixels(self.preprocessor(images[s : s + self.batch_size])) for s in range(0, len(images), self.batch_size)]
        return torch.cat(out) if out else torch.empty(0, 0)

    # ----- scores ---------------------------------------------------------------------------
    def score_embeddings(self, img_emb: torch.Tensor, txt_emb: torch.Tensor) -> torch.Tensor:
        return pickscore_from_embeddings(img_emb, txt_emb, self.logit_scale)

    def score(self, images: Sequence[Any], texts: Sequence[str]) -> torch.Tensor:
        """PickScore of ``images[i]`` with ``texts[i]`` (float32, shape (N,))."""
        if len(images) != len(texts):
            raise RdmevalError(f"score() pairs image i with text i: got {len(images)} images and {len(texts)} texts")
        return self.score_embeddings(self.embed_images(images), self.embed_texts(texts))
