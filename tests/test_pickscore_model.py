"""PickScorer on a tiny_clip random CLIP built offline, against an independent computation of the formula."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from rdmeval.errors import RdmevalError
from rdmeval.fixtures.tiny_clip import LOGIT_SCALE
from rdmeval.scorers.pickscore.model import MAX_LENGTH, PickScorer, to_uint8_pil

PROMPTS = [
    "A kitten sleeping on a stack of old books near a window.",
    "a red bowl on the table",
    "a photo of a dog in the city street at night",
]



@pytest.fixture(scope="module")
def reference(tiny_clip):
    """The formula by hand with transformers alone (the PickScore model card's recipe)."""
    from transformers import CLIPModel, CLIPProcessor

    model = CLIPModel.from_pretrained(tiny_clip).eval()
    processor = CLIPProcessor.from_pretrained(tiny_clip)

    def score(pil_images, texts):
        with torch.no_grad():
            pv = processor(images=pil_images, return_tensors="pt")["pixel_values"]
            enc = processor(text=texts, padding=True, truncation=True, max_length=77, return_tensors="pt")
            img = model.get_image_features(pixel_values=pv).pooler_output
            txt = model.get_text_features(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).pooler_output
            img = img / img.norm(dim=-1, keepdim=True)
            txt = txt / txt.norm(dim=-1, keepdim=True)
            return (model.logit_scale.exp() * (img * txt).sum(-1)).numpy()

    score.model, score.processor = model, processor
    return score


@pytest.fixture(scope="module")
def scorer(tiny_clip):
    return PickScorer.from_pretrained(str(tiny_clip), str(tiny_clip), device="cpu", batch_size=2)


def _images(n=3, size=(96, 64), seed=0):
    rng = np.random.default_rng(seed)
    # smooth-ish content so that the CLIP tower sees structure, plus noise
    arrs = []
    for i in range(n):
        y, x = np.mgrid[0 : size[1], 0 : size[0]]
        base = np.stack([(x * (i + 1)) % 256, (y * 3) % 256, ((x + y) * (i + 2)) % 256], axis=-1)
        arrs.append(np.clip(base + rng.integers(-20, 20, base.shape), 0, 255).astype(np.uint8))
    return arrs


def test_scores_equal_the_independent_computation(scorer, reference):
    arrs = _images()
    pil = [Image.fromarray(a) for a in arrs]
    expected = reference(pil, PROMPTS)
    got = scorer.score(pil, PROMPTS).numpy()  # batch_size 2: also exercises batching
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
    assert np.ptp(expected) > 1.0  # the scores differ between pairs, so the comparison has teeth
    # uint8 arrays and CHW uint8 tensors are the same images
    np.testing.assert_allclose(scorer.score(arrs, PROMPTS).numpy(), expected, atol=1e-5)
    chw = [torch.from_numpy(a).permute(2, 0, 1) for a in arrs]
    np.testing.assert_allclose(scorer.score(chw, PROMPTS).numpy(), expected, atol=1e-5)


def test_logit_scale_is_the_models(scorer, reference):
    assert scorer.logit_scale == pytest.approx(float(reference.model.logit_scale.detach()))
    assert scorer.logit_scale == pytest.approx(LOGIT_SCALE, abs=1e-6)


def test_double_rescale_trap(scorer, reference):
    """[0, 1] floats must never reach the processor: it would divide by 255 a second time."""
    arrs = _images(seed=1)
    pil = [Image.fromarray(a) for a in arrs]
    correct = reference(pil, PROMPTS)
    floats = [a.astype(np.float32) / 255.0 for a in arrs]
    # what a scorer that hands floats to the processor computes (the trap is real and visible)
    trapped = reference(floats, PROMPTS)
    assert np.abs(trapped - correct).max() > 1.0

    with pytest.raises(RdmevalError, match="rescaled twice"):
        scorer.score(floats, PROMPTS)  # the default refuses
    rounding = PickScorer(reference.model, reference.processor, device="cpu", float_images="round")
    np.testing.assert_allclose(rounding.score(floats, PROMPTS).numpy(), correct, atol=1e-5)
    tensors = [torch.from_numpy(f).permute(2, 0, 1) for f in floats]  # CHW float tensors, as a decoder returns
    np.testing.assert_allclose(rounding.score(tensors, PROMPTS).numpy(), correct, atol=1e-5)


def test_float_conversion_rules():
    x = np.full((4, 4, 3), 0.5, dtype=np.float32)  # 127.5
    assert np.asarray(to_uint8_pil(x, "round"))[0, 0, 0] == 128
    assert np.asarray(to_uint8_pil(x, "truncate"))[0, 0, 0] == 127
    with pytest.raises(RdmevalError, match=r"not \[0, 1\]"):
        to_uint8_pil(x * 255, "round")  # a 0-255 float image
    with pytest.raises(RdmevalError, match=r"not \[0, 1\]"):
        to_uint8_pil(x * 2 - 1.5, "round")  # a [-1, 1] image
    with pytest.raises(RdmevalError, match="uint8"):
        to_uint8_pil(np.zeros((4, 4, 3), dtype=np.int64))
    with pytest.raises(RdmevalError, match="8-bit"):
        to_uint8_pil(Image.new("F", (4, 4)))
    assert to_uint8_pil(Image.new("L", (4, 4), 7)).mode == "RGB"


def test_truncation_count_and_effect(scorer, reference):
    long_prompt = " ".join(["a red bowl on the table with a green cat"] * 10)
    counts = scorer.count_tokens([PROMPTS[1], long_prompt])
    assert counts[0] <= MAX_LENGTH < counts[1]
    # the long prompt is truncated, not refused: its embedding is the one of its first 77 tokens
    tok = reference.processor.tokenizer
    ids = tok(long_prompt)["input_ids"]
    cut = torch.tensor([ids[: MAX_LENGTH - 1] + [tok.eos_token_id]])
    with torch.no_grad():
        expected = reference.model.get_text_features(input_ids=cut).pooler_output
    torch.testing.assert_close(scorer.embed_texts([long_prompt]), expected, atol=1e-5, rtol=0)


class _TensorFeatures(torch.nn.Module):
    """A CLIP whose get_*_features return tensors (the transformers < 5 convention)."""

    def __init__(self, clip):
        super().__init__()
        self.clip = clip
        self.logit_scale = clip.logit_scale

    def get_image_features(self, **kw):
        return self.clip.get_image_features(**kw).pooler_output

    def get_text_features(self, **kw):
        return self.clip.get_text_features(**kw).pooler_output


def test_both_output_conventions(reference):
    pil = [Image.fromarray(a) for a in _images(seed=2)]
    new = PickScorer(reference.model, reference.processor, device="cpu").score(pil, PROMPTS)
    old = PickScorer(_TensorFeatures(reference.model), reference.processor, device="cpu").score(pil, PROMPTS)
    torch.testing.assert_close(old, new, atol=1e-6, rtol=0)
    np.testing.assert_allclose(new.numpy(), reference(pil, PROMPTS), atol=1e-5)

    class _Unknown(_TensorFeatures):
        def get_image_features(self, **kw):
            return (self.clip.get_image_features(**kw).pooler_output,)  # neither convention

    with pytest.raises(RdmevalError, match="pooler_output"):
        PickScorer(_Unknown(reference.model), reference.processor, device="cpu").score(pil, PROMPTS)


def test_bf16_keeps_the_float32_logit_scale(tiny_clip, reference):
    bf16 = PickScorer.from_pretrained(str(tiny_clip), str(tiny_clip), device="cpu", dtype="bf16")
    assert bf16.model.dtype == torch.bfloat16
    assert bf16.logit_scale == pytest.approx(LOGIT_SCALE, abs=1e-6)  # bf16 would round it to 4.59375
    assert abs(math.exp(float(torch.tensor(LOGIT_SCALE).bfloat16())) - math.exp(LOGIT_SCALE)) > 1.0
    pil = [Image.fromarray(a) for a in _images(seed=3)]
    got = bf16.score(pil, PROMPTS)
    assert got.dtype == torch.float32
    np.testing.assert_allclose(got.numpy(), reference(pil, PROMPTS), atol=3.0)  # bf16 noise only
    assert bf16.identity() != PickScorer.from_pretrained(str(tiny_clip), str(tiny_clip), device="cpu").identity()


def test_bad_inputs_name_the_fix(tiny_clip, reference):
    with pytest.raises(RdmevalError, match="--dtype"):
        PickScorer(reference.model, reference.processor, dtype="int8")
    with pytest.raises(RdmevalError, match="--model"):
        PickScorer(torch.nn.Linear(2, 2), reference.processor)
    with pytest.raises(RdmevalError, match="--model /path"):
        PickScorer.from_pretrained(str(tiny_clip / "does-not-exist"), str(tiny_clip))
    with pytest.raises(RdmevalError, match="pairs image i with text i"):
        PickScorer(reference.model, reference.processor).score([Image.new("RGB", (8, 8))], PROMPTS)


def test_local_identity_does_not_depend_on_the_path(tiny_clip, tmp_path):
    import shutil

    copy = shutil.copytree(tiny_clip, tmp_path / "elsewhere")
    a = PickScorer.from_pretrained(str(tiny_clip), str(tiny_clip), device="cpu")
    b = PickScorer.from_pretrained(str(copy), str(copy), device="cpu")
    assert a.describe()["model"]["path"] != b.describe()["model"]["path"]
    assert a.fingerprint() == b.fingerprint()
