"""GenEval's detector: class names, checkpoint pinning, the mmdet-3 adapter, and real Mask2Former
inference on CPU with random weights from the config shipped inside mmdet.

Tests marked ``mmdet`` need mmdet 3.3.0 + mmcv with compiled ops (scripts/install_mmcv.sh). They are
skipped when the stack is missing, except under CI (CI=true), where that is a failure.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from rdmeval.cli.main import main
from rdmeval.errors import ChecksumError, RdmevalError
from rdmeval.scorers.geneval.cache import detection_path, read_detections
from rdmeval.scorers.geneval.detections import load_object_names
from rdmeval.scorers.geneval.detector import (
    CHECKPOINT_URL,
    CONFIG_NAME,
    MMDET_TO_GENEVAL_NAMES,
    adapt_pred_instances,
    geneval_object_names,
    names_sha256,
    resolve_checkpoint,
)

OBJECT_NAMES_SHA256 = "608f6a0e5c8ca1c7a92b818430141fe268c85b7930b50f4160f1d65893b5bacd"


@pytest.fixture(scope="module")
def mmdet_stack():
    try:
        import mmcv.ops  # noqa: F401
        import mmdet  # noqa: F401
    except ImportError as exc:
        msg = f"the mmdet/mmcv stack is not installed ({exc}); run scripts/install_mmcv.sh and pip install mmdet==3.3.0"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)


@pytest.fixture(scope="module")
def random_detector(mmdet_stack):
    from rdmeval.scorers.geneval.detector import MMDetDetector

    detector = MMDetDetector(checkpoint=None, random_init=True, device="cpu", mask_score_floor=0.0, progress=False)
    detector._build()
    return detector


# ----------------------------------------------------------------------------- class names


@pytest.mark.mmdet
def test_object_names_derived_from_mmdet_equal_genevals_file(mmdet_stack, shared_data):
    path = shared_data / "geneval" / "object_names.txt"
    names = geneval_object_names()
    assert names == load_object_names(path)
    assert names_sha256(names) == hashlib.sha256(path.read_bytes()).hexdigest() == OBJECT_NAMES_SHA256
    assert names[64:67] == ["computer mouse", "tv remote", "computer keyboard"]


def test_object_names_renames_and_bad_input():
    coco = [f"c{i}" for i in range(80)]
    coco[64:67] = ["mouse", "remote", "keyboard"]
    names = geneval_object_names(coco)
    assert names[64:67] == [MMDET_TO_GENEVAL_NAMES[c] for c in ("mouse", "remote", "keyboard")]
    assert names[:64] == coco[:64] and names[67:] == coco[67:]
    with pytest.raises(RdmevalError, match="80"):
        geneval_object_names(coco[:79])


# ----------------------------------------------------------------------------- the adapter (§6.7)


class _Pred:
    """The attributes of mmdet-3 ``pred_instances`` the adapter reads."""

    def __init__(self, labels, scores, masks=True, size=(6, 8)):
        n = len(labels)
        self.labels = torch.tensor(labels, dtype=torch.int64)
        self.scores = torch.tensor(scores, dtype=torch.float32)
        self.bboxes = torch.arange(n * 4, dtype=torch.float32).reshape(n, 4)
        if masks:
            self.masks = torch.zeros((n, *size), dtype=torch.bool)
            for i in range(n):
                self.masks[i, i % size[0], : i + 1] = True


def test_adapter_golden_case_with_geneval_names():
    names = load_names_fallback()
    pred = _Pred([74, 13, 74, 64], [0.5, 0.95, 0.97, 0.8])
    dets = adapt_pred_instances(pred, names, mask_score_floor=0.0)
    assert set(dets) == {"clock", "bench", "computer mouse"}
    assert sorted(float(d.score) for d in dets["clock"]) == [0.5, pytest.approx(0.97)]
    assert [float(d.score) for d in dets["bench"]] == [pytest.approx(0.95)]
    assert [float(d.score) for d in dets["computer mouse"]] == [pytest.approx(0.8)]
    for items in dets.values():
        for d in items:
            assert d.box.dtype == np.float32 and d.box.shape == (5,)
            assert d.mask.dtype == np.bool_ and d.mask.shape == (6, 8)
    # box rows keep the instance's own box: instance 1 (bench) has bboxes row [4, 5, 6, 7]
    assert dets["bench"][0].box[:4].tolist() == [4, 5, 6, 7]


def test_adapter_keeps_masks_only_above_the_floor():
    names = load_names_fallback()
    pred = _Pred([74, 74, 13], [0.05, 0.0501, 0.01])
    dets = adapt_pred_instances(pred, names, mask_score_floor=0.05)
    clock = {round(float(d.score), 4): d for d in dets["clock"]}
    assert clock[0.0501].mask is not None and clock[0.05].mask is None  # strict float32 ">"
    assert dets["bench"][0].mask is None
    assert sum(len(v) for v in dets.values()) == 3  # boxes and scores of every instance are kept
    no_masks = adapt_pred_instances(_Pred([1], [0.9], masks=False), names)
    assert no_masks["bicycle"][0].mask is None


def load_names_fallback() -> list[str]:
    """GenEval's names without mmdet: mmdet's COCO list as printed in mmdet/datasets/coco.py, renamed."""
    coco = (
        "person bicycle car motorcycle airplane bus train truck boat traffic_light fire_hydrant stop_sign "
        "parking_meter bench bird cat dog horse sheep cow elephant bear zebra giraffe backpack umbrella handbag "
        "tie suitcase frisbee skis snowboard sports_ball kite baseball_bat baseball_glove skateboard surfboard "
        "tennis_racket bottle wine_glass cup fork knife spoon bowl banana apple sandwich orange broccoli carrot "
        "hot_dog pizza donut cake chair couch potted_plant bed dining_table toilet tv laptop mouse remote keyboard "
        "cell_phone microwave oven toaster sink refrigerator book clock vase scissors teddy_bear hair_drier toothbrush"
    ).split()
    return geneval_object_names([c.replace("_", " ") for c in coco])


# ----------------------------------------------------------------------------- checkpoint pinning


def _file(path: Path, data: bytes = b"weights") -> str:
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def test_local_checkpoint_hash_suffix_is_verified(tmp_path):
    digest = hashlib.sha256(b"weights").hexdigest()
    good = tmp_path / f"model_20220504-{digest[:8]}.pth"
    _file(good)
    assert resolve_checkpoint(good) == (good, digest)
    bad = tmp_path / "model_20220504-00000000.pth"
    _file(bad)
    with pytest.raises(ChecksumError, match="00000000"):
        resolve_checkpoint(bad)
    plain = tmp_path / "mine.pth"
    _file(plain, b"other")
    assert resolve_checkpoint(plain)[1] == hashlib.sha256(b"other").hexdigest()  # no suffix, recorded only


def test_mmdet2_checkpoint_is_refused(tmp_path):
    v2 = tmp_path / "mask2former_swin-s-p4-w7-224_lsj_8x2_50e_coco_20220504_001756-743b7d99.pth"
    _file(v2)
    with pytest.raises(RdmevalError, match="mmdet 2.x checkpoint"):
        resolve_checkpoint(v2)


def test_missing_and_offline_checkpoints(tmp_path):
    with pytest.raises(RdmevalError, match="no such file"):
        resolve_checkpoint(tmp_path / "absent.pth")
    with pytest.raises(RdmevalError, match="--detector-checkpoint PATH"):
        resolve_checkpoint(None)  # conftest sets RDMEVAL_OFFLINE=1 and an empty cache


def test_cached_default_checkpoint_must_match_the_pinned_prefix(tmp_path):
    from rdmeval.cache import cache_dir

    cached = cache_dir() / "detectors" / CHECKPOINT_URL.rsplit("/", 1)[1]
    cached.parent.mkdir(parents=True)
    _file(cached, b"not the real checkpoint")
    with pytest.raises(ChecksumError, match="Delete"):
        resolve_checkpoint(None)


@pytest.mark.mmdet
def test_no_checkpoint_needs_explicit_random_init(mmdet_stack):
    from rdmeval.scorers.geneval.detector import MMDetDetector

    with pytest.raises(RdmevalError, match="random"):
        MMDetDetector(checkpoint=None)


# ----------------------------------------------------------------------------- real mmdet inference (CPU)


@pytest.mark.mmdet
def test_builtin_config_and_identity(random_detector):
    import mmdet

    path = random_detector.config_path
    assert path.name == CONFIG_NAME and path.is_relative_to(Path(mmdet.__file__).parent)
    ident = random_detector.identity
    assert ident["checkpoint"] == "random-init(seed=0)" and ident["config_builtin"]
    assert ident["object_names_sha256"] == OBJECT_NAMES_SHA256
    assert len(ident["config_sha256"]) == 64 and ident["mmdet"] == "3.3.0"
    assert type(random_detector._model).__name__ == "Mask2Former"
    assert type(random_detector._model.backbone).__name__ == "SwinTransformer"
    assert random_detector._model.backbone.stages[2].blocks.__len__() == 18  # Swin-S depths [2, 2, 18, 2]


@pytest.mark.mmdet
def test_random_weights_inference_on_cpu(random_detector, tmp_path):
    rng = np.random.default_rng(0)
    w, h = 80, 64  # not square: catches H/W mix-ups
    path = tmp_path / "0000.png"
    Image.fromarray(rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)).save(path)
    (out,) = list(random_detector.detect([path], batch_size=1))
    assert (out.height, out.width) == (h, w)
    names = set(load_names_fallback())
    assert set(out.detections) <= names
    all_dets = [d for items in out.detections.values() for d in items]
    assert len(all_dets) == 100  # test_cfg max_per_image: the top-100 (query, class) pairs
    for d in all_dets:
        assert d.box.dtype == np.float32 and d.box.shape == (5,)
        assert 0.0 < d.score < 1.0
        assert d.mask.dtype == np.bool_ and d.mask.shape == (h, w)
        # Mask2Former's box is the tight extent of its mask (exclusive right/bottom), [0,0,0,0] if empty
        if d.mask.any():
            ys, xs = np.nonzero(d.mask)
            assert d.box[:4].tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
        else:
            assert d.box[:4].tolist() == [0, 0, 0, 0]


@pytest.mark.mmdet
def test_cli_scores_a_run_with_the_random_detector(mmdet_stack, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["generate", "--model", "dummy", "--prompts", "demo-geneval", "--out", str(run), "--resolution", "64",
                 "--rng-device", "cpu", "--limit", "1", "--n-per-prompt", "1", "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["score", "geneval", str(run), "--random-detector", "--device", "cpu", "--no-progress",
                 "--n-resamples", "20"]) == 0
    out = capsys.readouterr().out
    assert "Total images: 1" in out and "meaningless" in out
    rows = [json.loads(line) for line in (run / "scores" / "geneval" / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 1 and rows[0]["correct"] is False  # random weights score ~0.02: nothing passes 0.3
    assert rows[0]["reason"] == "expected umbrella>=1, found 0"
    cached = read_detections(detection_path(run, 0, 0))
    assert cached.detector["checkpoint"] == "random-init(seed=0)"
    assert sum(len(v) for v in cached.detections(with_masks=False).values()) == 100


@pytest.mark.gpu
def test_mmcv_cuda_kernels(mmdet_stack):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    from rdmeval.scorers.geneval.detector import check_mmcv_ops

    check_mmcv_ops("cuda:0")  # raises with the rebuild instruction if the kernels are missing


def test_ops_check_is_a_no_op_on_cpu():
    from rdmeval.scorers.geneval.detector import check_mmcv_ops

    check_mmcv_ops("cpu")


@pytest.mark.mmdet
def test_ops_check_fails_loudly_without_a_kernel(mmdet_stack):
    # mmcv has no CPU kernel for the compiled deformable attention: the same failure a CPU-only
    # build shows on a GPU ("implementation for device cuda:0 not found") must stop with the fix.
    from rdmeval.scorers.geneval.detector import verify_ms_deform_attn

    with pytest.raises(RdmevalError, match="install_mmcv.sh --force") as err:
        verify_ms_deform_attn("cpu")
    assert "not found" in str(err.value)


# ----------------------------------------------------------------------------- checkpoint loading is weights-only


class _NotData:
    """A pickled object that is not data: it must never be unpickled."""


@pytest.mark.mmdet
def test_checkpoint_with_numpy_meta_loads_weights_only_and_code_is_refused(random_detector, tmp_path):
    from rdmeval.scorers.geneval.detector import MMDetDetector

    state = {k: v.detach().clone() for k, v in random_detector._model.state_dict().items()}
    good = tmp_path / "m2f_numpy_meta.pth"
    torch.save({"state_dict": state, "meta": {"epoch": np.int64(50), "dtype": np.dtype("float32"), "hist": np.zeros(3)}}, good)
    det = MMDetDetector(checkpoint=good, device="cpu", progress=False)
    det._build()
    loaded = det._model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state.items())

    evil = tmp_path / "m2f_object.pth"
    torch.save({"state_dict": state, "meta": {"obj": _NotData()}}, evil)
    det = MMDetDetector(checkpoint=evil, device="cpu", progress=False)
    with pytest.raises(RdmevalError, match="never unpickles"):
        det._build()
