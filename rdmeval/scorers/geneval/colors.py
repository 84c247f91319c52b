"""GenEval's color classifier: masked crops, open_clip ViT-L-14 (OpenAI weights), 10 colors x 3 templates.

As in the official ``evaluate_images.py`` (docs/geneval.md, "The official scoring rules", Colors):

1. :func:`crop_for_color`: the detection's pixels (its bool mask, as a PIL mode ``"1"`` image) over a
   solid ``#999`` canvas (or the original image for ``bgcolor="original"``), cropped to the box with
   PIL's own rounding (a tuple of Python floats is passed: Pillow 13 rejects numpy arrays);
2. the model's eval transform (resize the short side to 224, bicubic; center crop; CLIP mean/std);
3. a zero-shot classifier per object class with clip-benchmark's ``zero_shot_classifier`` semantics:
   each of the 3 template embeddings L2-normalized, averaged, renormalized, one column per color;
4. ``logits = 100 * normalize(encode_image(x)) @ W``, argmax over the 10 colors in
   :data:`~rdmeval.prompts.geneval.COLORS` order, under fp16 autocast on CUDA (clip-benchmark's
   ``amp=True``; a no-op on CPU).

Text classifiers are cached per class name. Images and crops are batched across detections.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from rdmeval.errors import RdmevalError, require
from rdmeval.prompts.geneval import COLORS
from rdmeval.scorers.geneval.detections import Detection
from rdmeval.scorers.geneval.judge import ColorFn, JudgeOptions

#: The three templates of the official scorer; ``{color}`` comes from COLORS, ``{object}`` is the class.
TEMPLATES: tuple[str, ...] = (
    "a photo of a {color} {object}",
    "a photo of a {color}-colored {object}",
    "a photo of a {color} object",
)
#: What :meth:`ClipColorClassifier.classify` returns for a crop with zero width or height (the official
#: scorer would crash on it). Not a color, so a color clause fails on it. Mask2Former cannot produce
#: one above threshold: an empty mask scores 0.
UNCLASSIFIABLE = "none"


def load_image(path: str | os.PathLike[str]) -> Image.Image:
    """The image as the official scorer sees it for colors: EXIF-transposed, RGB."""
    try:
        with Image.open(path) as im:
            return ImageOps.exif_transpose(im).convert("RGB")
    except (OSError, ValueError) as exc:
        raise RdmevalError(f"cannot read image {path}: {exc}") from None


def crop_for_color(
    image: Image.Image,
    mask: np.ndarray | None,
    box: Sequence[float],
    bgcolor: str = "#999",
    crop: bool = True,
) -> Image.Image:
    """The classifier's input for one detection (before the CLIP transform).

    ``mask`` must be a bool ``H x W`` array (it is composited as PIL mode ``"1"``; a uint8 0/1 mask
    would act as opacity 1/255, which is why non-bool masks are refused) or None for an unmasked
    crop. ``box`` is ``[x1, y1, x2, y2, ...]``; PIL rounds each coordinate half-to-even and treats
    the right and bottom edges as exclusive.
    """
    image = image.convert("RGB")
    if mask is not None:
        mask = np.asarray(mask)
        if mask.dtype != np.bool_:
            raise RdmevalError(f"color crop masks must be bool arrays, got dtype {mask.dtype}")
        if mask.shape != (image.height, image.width):
            raise RdmevalError(
                f"mask shape {mask.shape} does not match the image ({image.height}, {image.width}) (H, W)"
            )
        background = image if bgcolor == "original" else Image.new("RGB", image.size, bgcolor)
        image = Image.composite(image, background, Image.fromarray(mask))
    if crop:
        image = image.crop(tuple(float(v) for v in list(box)[:4]))
    return image


@dataclass(frozen=True)
class ColorRequest:
    """One detection whose color is wanted: the image file, the class and the detection."""

    image: Path
    class_name: str
    detection: Detection


class ClipColorClassifier:
    """open_clip zero-shot color classifier; ``pretrained=None`` gives seeded random weights (tests).

    ``pretrained`` is an open_clip tag (``"openai"``, the official choice) or a local weights file.
    The model loads on first use.
    """

    def __init__(
        self,
        model_name: str = "ViT-L-14",
        pretrained: str | None = "openai",
        *,
        device: str | None = None,
        batch_size: int = 16,
    ) -> None:
        self.open_clip = require("open_clip", "geneval", "GenEval's color classifier (open_clip ViT-L-14)")
        if model_name not in self.open_clip.list_models():
            raise RdmevalError(f"--clip-model {model_name!r} is not an open_clip model; GenEval uses ViT-L-14")
        if batch_size < 1:
            raise RdmevalError(f"color batch size must be >= 1, got {batch_size}")
        self.model_name = model_name
        self.pretrained = pretrained
        self.batch_size = batch_size
        self._device = device
        weights_sha256 = None
        if pretrained is not None and (os.sep in pretrained or Path(pretrained).suffix in {".pt", ".pth", ".bin", ".safetensors"}):
            if not Path(pretrained).is_file():
                raise RdmevalError(f"--clip-pretrained {pretrained}: no such file (or pass an open_clip tag such as 'openai')")
            from rdmeval.io import sha256_file

            weights_sha256 = sha256_file(pretrained)
        elif pretrained is not None and pretrained not in self.open_clip.list_pretrained_tags_by_model(model_name):
            raise RdmevalError(
                f"--clip-pretrained {pretrained!r} is not a pretrained tag of {model_name}; GenEval uses 'openai' "
                f"(available: {', '.join(self.open_clip.list_pretrained_tags_by_model(model_name))})"
            )
        self._identity = {
            "classifier": "open_clip-zero-shot-colors",
            "model": model_name,
            "pretrained": pretrained if weights_sha256 is None else Path(pretrained).name,
            "pretrained_sha256": weights_sha256,
            "random_init_seed": 0 if pretrained is None else None,
            "templates": list(TEMPLATES),
            "colors": list(COLORS),
            "open_clip": getattr(self.open_clip, "__version__", "?"),
        }
        self._model = None
        self._preprocess = None
        self._tokenizer = None
        self._text: dict[str, Any] = {}

    @property
    def identity(self) -> dict[str, Any]:
        return dict(self._identity)

    @property
    def device(self) -> str:
        if self._device is None:
            import torch

            self._device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}" if torch.cuda.is_available() else "cpu"
        return self._device

    # ------------------------------------------------------------------ model
    def load(self) -> None:
        """Load the model now (else the first classification does)."""
        self._ensure_model()

    def _ensure_model(self) -> None:
        if self._model is not None:
            return
        import torch

        logging.getLogger(__name__).info("loading the GenEval color classifier (open_clip %s, %s) on %s ...", self.model_name,
                                         self.pretrained or "random weights", self.device)

        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                model, _, preprocess = self.open_clip.create_model_and_transforms(
                    self.model_name, pretrained=self.pretrained, device=self.device
                )
        except Exception as exc:  # download/offline/file errors from open_clip and huggingface_hub
            raise RdmevalError(
                f"cannot load open_clip {self.model_name} pretrained={self.pretrained!r}: {exc}. "
                "On an offline machine, pass --clip-pretrained PATH to a local weights file"
            ) from None
        self._model = model.eval()
        self._preprocess = preprocess
        self._tokenizer = self.open_clip.get_tokenizer(self.model_name)

    def _autocast(self):
        import torch

        if torch.device(self.device).type == "cuda":
            return torch.autocast("cuda", dtype=torch.float16)
        return contextlib.nullcontext()

    def text_classifier(self, class_name: str):
        """The ``(D, 10)`` zero-shot weights for one object class (cached)."""
        if class_name not in self._text:
            import torch
            import torch.nn.functional as F

            self._ensure_model()
            columns = []
            with torch.no_grad(), self._autocast():
                for color in COLORS:
                    texts = [t.format(color=color, object=class_name) for t in TEMPLATES]
                    emb = self._model.encode_text(self._tokenizer(texts).to(self.device))
                    mean = F.normalize(emb, dim=-1).mean(dim=0)
                    columns.append(mean / mean.norm())
                self._text[class_name] = torch.stack(columns, dim=1)
        return self._text[class_name]

    def classify(self, crops: Sequence[Image.Image], class_names: Sequence[str]) -> list[str]:
        """The predicted color of each crop, against its own class's text classifier."""
        if len(crops) != len(class_names):
            raise RdmevalError(f"classify: {len(crops)} crops but {len(class_names)} class names")
        import torch
        import torch.nn.functional as F

        out = [UNCLASSIFIABLE] * len(crops)
        valid = [i for i, c in enumerate(crops) if c.width > 0 and c.height > 0]
        if not valid:
            return out
        self._ensure_model()
        for start in range(0, len(valid), self.batch_size):
            chunk = valid[start : start + self.batch_size]
            pixels = torch.stack([self._preprocess(crops[i]) for i in chunk]).to(self.device)
            with torch.no_grad(), self._autocast():
                feats = F.normalize(self._model.encode_image(pixels), dim=-1)
                for row, i in enumerate(chunk):
                    logits = 100.0 * feats[row] @ self.text_classifier(class_names[i])
                    out[i] = COLORS[int(logits.argmax())]
        return out

    def predict(self, requests: Sequence[ColorRequest], opts: JudgeOptions = JudgeOptions()) -> list[str]:
        """Colors for detections in several images (each image is read once)."""
        crops: list[Image.Image] = []
        images: dict[Path, Image.Image] = {}
        for req in requests:
            if req.image not in images:
                images.clear()  # requests arrive grouped by image; keep one decoded image at a time
                images[req.image] = load_image(req.image)
            det = req.detection
            crops.append(crop_for_color(images[req.image], det.mask, det.box, opts.bgcolor, opts.crop))
        return self.classify(crops, [r.class_name for r in requests])

    def color_fn(self, image: Image.Image, opts: JudgeOptions = JudgeOptions()) -> ColorFn:
        """A ColorFn for the judge, classifying detections of this one image on demand."""

        def fn(class_name: str, found: list[Detection]) -> list[str]:
            crops = [crop_for_color(image, d.mask, d.box, opts.bgcolor, opts.crop) for d in found]
            return self.classify(crops, [class_name] * len(crops))

        return fn


def classifier_key(identity: dict[str, Any], opts: JudgeOptions) -> str:
    """Cache key of color predictions: the classifier plus the crop options that change its input."""
    import json

    payload = {"classifier": identity, "bgcolor": opts.bgcolor, "crop": bool(opts.crop)}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]
