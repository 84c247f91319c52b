"""The released-asset importer, on synthetic files shaped like the published ones (sizes scaled down)."""

from __future__ import annotations

import math
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from rdmeval.distill.reference import load_bundle
from rdmeval.distill.released import (
    BUNDLE_DIR,
    TAU_FILE,
    ReleasedAssetError,
    ReleasedLayout,
    import_released,
)
from rdmeval.distill.tables import Table, prompts_sha256, write_table

LAYOUT = ReleasedLayout(encoders={"enc_a": 6, "enc_b": 4}, num_landmarks=8, d_txt=5, pool_rows=30)
# a pool like the generator's: 18 distinct "captions" then 4 prompts tiled x3 (a block repeated, as GenEval x32)
PROMPTS = [f"caption {i}" for i in range(18)] + [f"geneval {j}" for j in range(4)] * 3


def _tau(prompts: list[str]) -> np.ndarray:
    rng = np.random.default_rng(0)
    unique = {p: rng.standard_normal(LAYOUT.d_txt) for p in dict.fromkeys(prompts)}
    rows = np.stack([unique[p] for p in prompts])
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def _bundle(encoder: str, **changes) -> dict:
    g = torch.Generator().manual_seed(len(encoder))
    d_img = LAYOUT.encoders[encoder]
    d_in = d_img + LAYOUT.d_txt
    sigma = 0.37
    obj = {
        "Z": torch.randn(LAYOUT.num_landmarks, d_in, generator=g),
        "alpha": torch.randn(LAYOUT.num_landmarks, generator=g),
        "sigma": sigma, "k_rr": 0.125, "M": LAYOUT.num_landmarks, "d_in": d_in,
        "sigma_scale": 0.25, "s_txt": 1.0, "beta": sigma, "d_img": d_img, "d_txt": LAYOUT.d_txt,
    }
    obj.update(changes)
    return {k: v for k, v in obj.items() if v is not _DROP}


_DROP = object()


def _write(root: Path, bundles: dict[str, dict] | None = None, tau: np.ndarray | None = None) -> Path:
    (root / BUNDLE_DIR).mkdir(parents=True, exist_ok=True)
    (root / TAU_FILE).parent.mkdir(parents=True, exist_ok=True)
    bundles = bundles or {name: _bundle(name) for name in LAYOUT.encoders}
    for name, obj in bundles.items():
        torch.save(obj, LAYOUT.bundle_path(root, name))
    np.save(root / TAU_FILE, _tau(PROMPTS) if tau is None else tau)
    return root


def test_a_consistent_release_converts_exactly(tmp_path: Path) -> None:
    src = _write(tmp_path / "src")
    provenance = import_released(src, tmp_path / "out", layout=LAYOUT, prompts=PROMPTS)
    for name in LAYOUT.encoders:
        original = torch.load(LAYOUT.bundle_path(src, name), weights_only=True)
        converted = load_bundle(tmp_path / "out" / "bundles" / f"{name}.safetensors")
        assert torch.equal(converted.Z, original["Z"]) and torch.equal(converted.alpha, original["alpha"])
        assert converted.sigma == pytest.approx(original["sigma"], rel=1e-7)  # stored as fp32
        assert converted.beta == pytest.approx(original["beta"], rel=1e-7)
        assert (converted.d_img, converted.d_txt) == (original["d_img"], original["d_txt"])
        assert len(provenance["bundles"][name]["sha256"]) == 64
    tau = Table(tmp_path / "out" / "tau")
    assert tau.meta["prompts_sha256"] == prompts_sha256(PROMPTS)
    assert torch.equal(tau[torch.arange(len(PROMPTS))], torch.from_numpy(_tau(PROMPTS)))
    assert provenance["tau"]["row_alignment_checked"] is True


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"alpha": _DROP}, "alpha"),
        ({"Z": torch.randn(8, 11, dtype=torch.float64)}, "'Z'"),
        ({"Z": torch.full((8, 11), math.nan)}, "NaN"),
        ({"M": 16}, "'M'"),
        ({"d_img": 7, "d_in": 12, "Z": torch.randn(8, 12)}, "'d_img'"),
        ({"d_txt": 6}, "'d_txt'"),
        ({"d_in": 12}, "'Z'"),
        ({"beta": 0.5}, "'beta'"),
        ({"sigma_scale": 1.0}, "'sigma_scale'"),
        ({"s_txt": 0.8, "beta": 0.37 / 0.8}, "'s_txt'"),
        ({"sigma": -1.0, "beta": -1.0}, "'sigma'"),
        ({"k_rr": 1.5}, "'k_rr'"),
        ({"M": "8192"}, "'M'"),
    ],
)
def test_each_inconsistent_bundle_field_is_refused(tmp_path: Path, change: dict, field: str) -> None:
    bundles = {"enc_a": _bundle("enc_a", **change), "enc_b": _bundle("enc_b")}
    src = _write(tmp_path / "src", bundles)
    with pytest.raises(ReleasedAssetError, match=field) as info:
        import_released(src, tmp_path / "out", layout=LAYOUT, prompts=PROMPTS)
    assert "enc_a_joint_M8.pt" in str(info.value)
    assert not (tmp_path / "out" / "released.json").exists()


def test_a_missing_bundle_names_the_file_and_the_download(tmp_path: Path) -> None:
    src = _write(tmp_path / "src")
    LAYOUT.bundle_path(src, "enc_b").unlink()
    with pytest.raises(ReleasedAssetError, match=r"enc_b_joint_M8\.pt is missing.*hf download"):
        import_released(src, tmp_path / "out", layout=LAYOUT)


class _Payload:  # pickling this needs code execution on load
    def __reduce__(self):
        return (print, ("unpickled code ran",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_a_bundle_that_needs_code_to_unpickle_is_refused(tmp_path: Path, capsys) -> None:
    src = _write(tmp_path / "src")
    with open(LAYOUT.bundle_path(src, "enc_a"), "wb") as fh:
        pickle.dump({"Z": _Payload()}, fh)
    with pytest.raises(ReleasedAssetError, match="weights_only=True"):
        import_released(src, tmp_path / "out", layout=LAYOUT)
    assert "unpickled code ran" not in capsys.readouterr().out


@pytest.mark.parametrize(
    ("tau", "message"),
    [
        (lambda t: t[:-1], "rows, the generator pool has 30"),
        (lambda t: t.astype(np.float64), "dtype must be float32"),
        (lambda t: t[:, :4], "shape"),
        (lambda t: t * 2, "norm"),
        (lambda t: np.roll(t, 1, axis=0), "not in the pool spec's row order"),
    ],
)
def test_an_inconsistent_tau_table_is_refused(tmp_path: Path, tau, message: str) -> None:
    src = _write(tmp_path / "src", tau=np.ascontiguousarray(tau(_tau(PROMPTS))))
    with pytest.raises(ReleasedAssetError, match=message):
        import_released(src, tmp_path / "out", layout=LAYOUT, prompts=PROMPTS)


def test_a_tau_table_of_the_wrong_prompts_is_refused(tmp_path: Path) -> None:
    # the tiled block is right, but the caption block holds the rows of 6 captions repeated: identical
    # prompts still share rows, so only the distinct-rows check can catch it
    wrong = _tau(PROMPTS)
    wrong[:18] = wrong[[i % 6 for i in range(18)]]
    src = _write(tmp_path / "src", tau=wrong)
    with pytest.raises(ReleasedAssetError, match="share a τ row"):
        import_released(src, tmp_path / "out", layout=LAYOUT, prompts=PROMPTS)


def test_the_ctx_table_must_come_from_the_same_prompts(tmp_path: Path) -> None:
    src = _write(tmp_path / "src")
    ctx = tmp_path / "ctx"
    write_table(ctx, PROMPTS[::-1], lambda batch: torch.zeros(len(batch), 2, 3))
    with pytest.raises(ReleasedAssetError, match="other prompts"):
        import_released(src, tmp_path / "out", layout=LAYOUT, prompts=PROMPTS, ctx_table=ctx)
    good = tmp_path / "ctx_ok"
    write_table(good, PROMPTS, lambda batch: torch.zeros(len(batch), 2, 3), dedupe=True)
    import_released(src, tmp_path / "out", layout=LAYOUT, prompts=PROMPTS, ctx_table=good)


def test_rdmeval_train_import_released(tmp_path: Path, capsys, monkeypatch) -> None:
    import rdmeval.distill.released as released
    from rdmeval.cli.main import main

    monkeypatch.setattr(released, "ReleasedLayout", lambda: LAYOUT)  # the CLI uses the default (released) layout
    src = _write(tmp_path / "src")
    assert main(["train", "import-released", str(src), "--out", str(tmp_path / "out")]) == 0
    assert "2 bundles and the τ table (30 rows, alignment not checked against a pool (pass --pool))" in capsys.readouterr().out
    assert (tmp_path / "out" / "bundles" / "enc_a.safetensors").is_file()
    LAYOUT.bundle_path(src, "enc_a").unlink()
    assert main(["train", "import-released", str(src), "--out", str(tmp_path / "out2")]) == 2
    assert "enc_a_joint_M8.pt is missing" in capsys.readouterr().err


def test_python_m_released_cli_reports_os_errors_in_one_line(tmp_path: Path, capsys, monkeypatch) -> None:
    """`python -m rdmeval.distill.released_cli SRC --out FILE` was a traceback; `rdmeval train import-released` one line."""
    import rdmeval.distill.released as released
    from rdmeval.distill.released_cli import main

    monkeypatch.setattr(released, "ReleasedLayout", lambda: LAYOUT)
    src = _write(tmp_path / "src")
    (tmp_path / "a-file").write_text("")
    assert main([str(src), "--out", str(tmp_path / "a-file")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "a-file" in err and len(err.splitlines()) == 1
