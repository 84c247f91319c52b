"""GenEval's color path: the crop preprocessing golden case (§6.6) and open_clip ViT-L-14 with random weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from rdmeval.errors import RdmevalError
from rdmeval.prompts.geneval import COLORS
from rdmeval.scorers.geneval.colors import (
    TEMPLATES,
    UNCLASSIFIABLE,
    ClipColorClassifier,
    ColorRequest,
    classifier_key,
    crop_for_color,
)
from rdmeval.scorers.geneval.detections import Detection
from rdmeval.scorers.geneval.judge import JudgeOptions, judge

RED, GRAY = [255, 0, 0], [153, 153, 153]


def red_6x4() -> Image.Image:
    return Image.new("RGB", (6, 4), tuple(RED))


def mask_rows_1_2_cols_1_2() -> np.ndarray:
    m = np.zeros((4, 6), dtype=bool)
    m[1:3, 1:3] = True
    return m


def gradient(w: int = 6, h: int = 4) -> tuple[Image.Image, np.ndarray]:
    """Every pixel distinct: R = x * 40, G = y * 60, B = 7."""
    arr = np.zeros((h, w, 3), dtype=np.uint8)
    arr[..., 0] = np.arange(w)[None, :] * 40
    arr[..., 1] = np.arange(h)[:, None] * 60
    arr[..., 2] = 7
    return Image.fromarray(arr), arr


# ----------------------------------------------------------------------------- §6.6 golden case


def test_golden_composite_and_crop():
    out = crop_for_color(red_6x4(), mask_rows_1_2_cols_1_2(), [1, 1, 4, 3, 0.9])
    assert out.size == (3, 2)
    assert np.asarray(out).tolist() == [[RED, RED, GRAY], [RED, RED, GRAY]]


@pytest.mark.parametrize(
    "box, region",
    [
        ([0.6, 0.4, 3.5, 2.5], (1, 0, 4, 2)),  # 0.6 -> 1, 0.4 -> 0, 3.5 -> 4, 2.5 -> 2
        ([1.5, 0.5, 4.5, 2.5], (2, 0, 4, 2)),  # half-to-even: 1.5 -> 2, 0.5 -> 0, 4.5 -> 4
    ],
)
def test_golden_crop_rounding(box, region):
    image, arr = gradient()
    out = crop_for_color(image, None, box)
    x1, y1, x2, y2 = region
    assert out.size == (x2 - x1, y2 - y1)
    assert np.array_equal(np.asarray(out), arr[y1:y2, x1:x2])


def test_float32_numpy_box_is_accepted():
    # Pillow 13 rejects a numpy array in crop(); the box row of a Detection is a float32 array.
    d = Detection(np.array([1, 1, 4, 3, 0.9], dtype=np.float32), mask_rows_1_2_cols_1_2())
    out = crop_for_color(red_6x4(), d.mask, d.box)
    assert np.asarray(out).tolist() == [[RED, RED, GRAY], [RED, RED, GRAY]]


def test_uint8_mask_pitfall_is_avoided():
    m8 = mask_rows_1_2_cols_1_2().astype(np.uint8)
    # The pitfall itself, with PIL directly: a 0/1 uint8 mask is an opacity of 1/255.
    pitfall = Image.composite(red_6x4(), Image.new("RGB", (6, 4), "#999"), Image.fromarray(m8))
    assert tuple(pitfall.getpixel((1, 1))) == (153, 152, 152)
    # crop_for_color refuses it, and a Detection turns it into a bool mask, which gives red.
    with pytest.raises(RdmevalError, match="bool"):
        crop_for_color(red_6x4(), m8, [1, 1, 4, 3])
    d = Detection(np.array([1, 1, 4, 3, 0.9], dtype=np.float32), m8)
    assert np.asarray(crop_for_color(red_6x4(), d.mask, d.box))[0, 0].tolist() == RED


def test_background_options_and_no_crop():
    image, arr = gradient()
    m = mask_rows_1_2_cols_1_2()
    original = crop_for_color(image, m, [1, 1, 4, 3], bgcolor="original")
    assert np.array_equal(np.asarray(original), arr[1:3, 1:4])
    full = crop_for_color(image, m, [1, 1, 4, 3], crop=False)
    assert full.size == (6, 4)
    expected = np.where(m[..., None], arr, np.array(GRAY, dtype=np.uint8))
    assert np.array_equal(np.asarray(full), expected)
    white = crop_for_color(image, m, [1, 1, 4, 3], bgcolor="white")
    assert np.asarray(white)[0, 2].tolist() == [255, 255, 255]


def test_mask_shape_mismatch_is_refused():
    with pytest.raises(RdmevalError, match=r"\(4, 6\)"):
        crop_for_color(red_6x4(), np.zeros((6, 4), dtype=bool), [0, 0, 2, 2])


def test_classifier_key_depends_on_crop_options():
    ident = {"classifier": "x"}
    base = classifier_key(ident, JudgeOptions())
    assert base == classifier_key(ident, JudgeOptions(threshold=0.5))  # judge-only options do not matter
    assert base != classifier_key(ident, JudgeOptions(bgcolor="original"))
    assert base != classifier_key(ident, JudgeOptions(crop=False))
    assert base != classifier_key({"classifier": "y"}, JudgeOptions())


def test_bad_classifier_arguments():
    with pytest.raises(RdmevalError, match="not a pretrained tag"):
        ClipColorClassifier("ViT-L-14", "no-such-tag")
    with pytest.raises(RdmevalError, match="not an open_clip model"):
        ClipColorClassifier("ViT-XXL-99", None)
    with pytest.raises(RdmevalError, match="no such file"):
        ClipColorClassifier("ViT-L-14", "/nonexistent/ViT-L-14.pt")


# ----------------------------------------------------------------------------- real ViT-L-14, random weights


@pytest.fixture(scope="session")
def clip_random() -> ClipColorClassifier:
    clf = ClipColorClassifier("ViT-L-14", pretrained=None, device="cpu", batch_size=2)
    clf._ensure_model()
    return clf


@pytest.mark.slow
def test_vit_l14_text_classifier_semantics(clip_random):
    clf = clip_random
    model, tok = clf._model, clf._tokenizer
    assert sum(p.numel() for p in model.parameters()) > 400e6  # the real ViT-L-14 architecture
    W = clf.text_classifier("fire hydrant")
    assert clf.text_classifier("fire hydrant") is W  # cached per class
    assert W.shape == (model.text_projection.shape[1], len(COLORS))
    # clip-benchmark's zero_shot_classifier, written out: normalize each template, mean, renormalize
    with torch.no_grad():
        for c in (0, 4, len(COLORS) - 1):  # red, blue, white (the columns are built in one loop)
            color = COLORS[c]
            texts = [f"a photo of a {color} fire hydrant", f"a photo of a {color}-colored fire hydrant",
                     f"a photo of a {color} object"]
            assert texts == [t.format(color=color, object="fire hydrant") for t in TEMPLATES]
            emb = model.encode_text(tok(texts))
            emb = emb / emb.norm(dim=-1, keepdim=True)
            col = emb.mean(0)
            col = col / col.norm()
            assert torch.allclose(W[:, c], col, atol=1e-5)


@pytest.mark.slow
def test_vit_l14_classifies_a_crop_like_the_reference(clip_random, tmp_path):
    clf = clip_random
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, size=(48, 64, 3), dtype=np.uint8)
    path = tmp_path / "img.png"
    Image.fromarray(arr).save(path)
    mask = np.zeros((48, 64), dtype=bool)
    mask[10:30, 5:50] = True
    det = Detection(np.array([5, 10, 50, 30, 0.9], dtype=np.float32), mask)
    crop = crop_for_color(Image.open(path).convert("RGB"), det.mask, det.box)
    assert crop.size == (45, 20)
    # the eval transform: short side to 224 (bicubic), center crop 224, CLIP mean/std
    x = clf._preprocess(crop)
    assert tuple(x.shape) == (3, 224, 224)
    with torch.no_grad():
        f = F.normalize(clf._model.encode_image(x[None]), dim=-1)
        expected = COLORS[int((100.0 * f @ clf.text_classifier("fire hydrant")).argmax())]
    got = clf.predict([ColorRequest(path, "fire hydrant", det)])
    assert got == [expected]
    # the judge's ColorFn on the same detection agrees
    meta = {"tag": "colors", "include": [{"class": "fire hydrant", "count": 1, "color": expected}], "prompt": "p"}
    assert judge(meta, {"fire hydrant": [det]}, clf.color_fn(Image.open(path).convert("RGB"))).correct
    other = next(c for c in COLORS if c != expected)
    meta["include"][0]["color"] = other
    verdict = judge(meta, {"fire hydrant": [det]}, clf.color_fn(Image.open(path).convert("RGB")))
    assert verdict.reason == f"expected {other} fire hydrant>=1, found 0 {other}; and 1 {expected}"


@pytest.mark.slow
def test_batching_does_not_change_predictions(clip_random):
    rng = np.random.default_rng(1)
    crops = [Image.fromarray(rng.integers(0, 256, size=(20 + i, 30, 3), dtype=np.uint8)) for i in range(3)]
    names = ["fire hydrant"] * 3  # its text classifier is cached by the tests above
    batched = clip_random.classify(crops, names)  # batch_size 2: two batches
    single = [clip_random.classify([c], [n])[0] for c, n in zip(crops, names)]
    assert batched == single and all(c in COLORS for c in batched)


def test_empty_crop_is_unclassifiable_without_loading_the_model():
    clf = ClipColorClassifier("ViT-L-14", pretrained=None, device="cpu")
    empty = crop_for_color(red_6x4(), None, [2, 2, 2, 2])
    assert empty.size == (0, 0)
    assert clf.classify([empty], ["car"]) == [UNCLASSIFIABLE]
    assert clf._model is None
