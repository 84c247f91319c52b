"""The streaming, resumable bundle build against the in-memory fp64 build and the exact kernel means."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from rdmeval.distill.bundle_build import ArrayRows, BundleBuildError, BundleRecipe, build_bundle_streaming
from rdmeval.distill.kernels import cross_mean, gamma_from_sigma, self_mean, weighted_cross_mean
from rdmeval.distill.reference import build_reference_bundle, load_bundle, read_bundle_provenance
from rdmeval.distill.tables import Table, write_table

N, D_IMG, D_TXT = 240, 6, 4


def _pool(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    # features with a large common offset: the case where ‖a‖²+‖b‖²−2ab loses digits in fp32
    image = (rng.standard_normal((N, D_IMG)) + 20.0).astype(np.float32)
    text = rng.standard_normal((N, D_TXT))
    text = (text / np.linalg.norm(text, axis=1, keepdims=True)).astype(np.float32)
    return image, text


RECIPE = BundleRecipe(num_landmarks=12, median_n=100, fit_n=150, kmeans_iters=5, krr="first", krr_n=200, block_rows=64)


def _attraction(bundle, g: torch.Tensor) -> float:
    return float(weighted_cross_mean(g.double(), bundle.Z.double(), bundle.alpha.double(), gamma_from_sigma(bundle.sigma)))


def test_streaming_matches_the_in_memory_fp64_build(tmp_path: Path) -> None:
    image, text = _pool()
    streamed = build_bundle_streaming(ArrayRows(image), ArrayRows(text), tmp_path / "b.safetensors", work=tmp_path / "w", recipe=RECIPE)
    # same landmarks, same k_rr rows (the first 200), everything else in fp64 in memory
    reference = build_reference_bundle(
        torch.from_numpy(image), torch.from_numpy(text), num_landmarks=12, sigma_scale=0.25, s_txt=1.0, median_n=100,
        krr_n=200, landmarks=streamed.Z.double(),
    )
    assert streamed.sigma == pytest.approx(reference.sigma, rel=1e-6)  # same subsample; median of the same pairs
    assert streamed.beta == pytest.approx(reference.beta, rel=1e-6)
    # k_rr: fp32 kernel blocks on centred features vs fp64; the exponent's error is γ·δ(d²) with
    # δ(d²) ≲ 8·eps32·(‖a‖²+‖b‖²) ≈ 1e-6·d² here (centred norms ~ distances), so ~1e-5 relative at most
    assert streamed.k_rr == pytest.approx(reference.k_rr, rel=1e-5)
    g = torch.from_numpy(np.concatenate([image[:50] + 0.05, streamed.beta * text[:50]], axis=1))
    assert _attraction(streamed, g) == pytest.approx(_attraction(reference, g), rel=1e-4)


def test_with_every_row_a_landmark_the_attraction_is_the_exact_cross_mean(tmp_path: Path) -> None:
    image, text = _pool(1)
    beta_probe = build_bundle_streaming(ArrayRows(image), ArrayRows(text), tmp_path / "p.safetensors", work=tmp_path / "wp",
                                        recipe=RECIPE)
    joint = torch.from_numpy(np.concatenate([image, beta_probe.beta * text], axis=1))
    recipe = BundleRecipe(num_landmarks=N, median_n=100, krr="sample", krr_n=N, block_rows=64)
    bundle = build_bundle_streaming(ArrayRows(image), ArrayRows(text), tmp_path / "all.safetensors", work=tmp_path / "wa",
                                    recipe=recipe, landmarks=joint)
    gamma = gamma_from_sigma(bundle.sigma)
    rng = np.random.default_rng(5)
    g = joint[rng.choice(N, 40, replace=False)].double() + 0.02 * torch.from_numpy(rng.standard_normal((40, D_IMG + D_TXT)))
    exact_gr = float(cross_mean(g, joint.double(), gamma))
    # α = (K+εI)⁻¹K·1/N: off the exact 1/N by ε·‖(K+εI)⁻¹‖ relative (K is near I for the cold kernel)
    assert _attraction(bundle, g) == pytest.approx(exact_gr, rel=1e-5)
    assert bundle.k_rr == pytest.approx(float(self_mean(joint.double(), gamma)), rel=1e-5)  # krr_n = N: the whole pool
    # and so the MMD the loss sees is the exact biased MMD² of g against the reference
    mmd = float(self_mean(g, gamma)) - 2 * _attraction(bundle, g) + bundle.k_rr
    exact = float(self_mean(g, gamma)) - 2 * exact_gr + float(self_mean(joint.double(), gamma))
    assert mmd == pytest.approx(exact, rel=1e-4, abs=1e-7)


def test_krr_over_the_first_rows_or_a_seeded_sample(tmp_path: Path) -> None:
    image, text = _pool(2)
    image[:100] += 3.0  # the first block differs, like the GenEval block ahead of COCO
    first = build_bundle_streaming(ArrayRows(image), ArrayRows(text), tmp_path / "f.safetensors", work=tmp_path / "wf",
                                   recipe=RECIPE)
    sample_recipe = BundleRecipe(**{**RECIPE.__dict__, "krr": "sample"})
    sampled = build_bundle_streaming(ArrayRows(image), ArrayRows(text), tmp_path / "s.safetensors", work=tmp_path / "ws",
                                     recipe=sample_recipe, landmarks=None)
    joint = torch.from_numpy(np.concatenate([image, first.beta * text], axis=1)).double()
    gamma = gamma_from_sigma(first.sigma)
    assert first.k_rr == pytest.approx(float(self_mean(joint[:200], gamma)), rel=1e-5)
    assert abs(sampled.k_rr - first.k_rr) > 1e-3 * first.k_rr
    assert read_bundle_provenance(tmp_path / "f.safetensors")["krr_rows"] == "first"
    assert read_bundle_provenance(tmp_path / "s.safetensors")["krr_rows"] == "seeded sample"


_KILLED_BUILD = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from rdmeval.distill.bundle_build import BundleRecipe, build_bundle_streaming
    from rdmeval.distill.tables import Table

    work, stage, at = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    recipe = BundleRecipe(num_landmarks=12, median_n=100, fit_n=150, kmeans_iters=5, krr="sample", krr_n=200, block_rows=64)

    def progress(name, done, total):
        if name == stage and done >= at:
            os.kill(os.getpid(), signal.SIGKILL)

    build_bundle_streaming(Table(work / "image"), Table(work / "text"), work / "bundle.safetensors", work=work / "state",
                           recipe=recipe, on_progress=progress, provenance={"encoder": "enc"})
    """
)


@pytest.mark.parametrize(("stage", "at"), [("mu", 128), ("k_rr", 100)])
def test_a_build_killed_mid_stage_resumes_to_the_same_file(tmp_path: Path, stage: str, at: int) -> None:
    image, text = _pool(3)
    for name, array in (("image", image), ("text", text)):
        for folder in (tmp_path / "killed", tmp_path / "whole"):
            keys = [f"image {i}" for i in range(N)]  # a feature table's rows are keyed by their images
            write_table(folder / name, keys, lambda batch, array=array: torch.from_numpy(array[[int(k.split()[1]) for k in batch]]),
                        shard_rows=50, dtype="float32")
    script = tmp_path / "build.py"
    script.write_text(_KILLED_BUILD)
    killed = subprocess.run([sys.executable, str(script), str(tmp_path / "killed"), stage, str(at)], capture_output=True, text=True)
    assert killed.returncode == -9, killed.stderr
    assert not (tmp_path / "killed" / "bundle.safetensors").exists()
    for folder in (tmp_path / "killed", tmp_path / "whole"):
        done = subprocess.run([sys.executable, str(script), str(folder), "none", "0"], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    # the same file: tensors bit for bit and the same header (safetensors orders header keys freely)
    assert _contents(tmp_path / "killed" / "bundle.safetensors") == _contents(tmp_path / "whole" / "bundle.safetensors")
    assert Table(tmp_path / "whole" / "image").rows(0, N).tobytes() == image.tobytes()


def _contents(path: Path) -> tuple[dict, dict]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt", device="cpu") as fh:
        return fh.metadata(), {k: fh.get_tensor(k).numpy().tobytes() for k in fh.keys()}


def test_a_work_folder_of_another_build_is_refused(tmp_path: Path) -> None:
    image, text = _pool()
    build_bundle_streaming(ArrayRows(image), ArrayRows(text), tmp_path / "b.safetensors", work=tmp_path / "w", recipe=RECIPE)
    other = BundleRecipe(**{**RECIPE.__dict__, "num_landmarks": 8})
    with pytest.raises(BundleBuildError, match="another work folder"):
        build_bundle_streaming(ArrayRows(image), ArrayRows(text), tmp_path / "c.safetensors", work=tmp_path / "w", recipe=other)


def test_the_bundle_loads_and_records_its_provenance(tmp_path: Path) -> None:
    image, text = _pool()
    build_bundle_streaming(ArrayRows(image), ArrayRows(text), tmp_path / "b.safetensors", work=tmp_path / "w", recipe=RECIPE,
                           provenance={"encoder": "enc_a", "pool_sha256": "ab" * 32})
    bundle = load_bundle(tmp_path / "b.safetensors")
    assert (bundle.M, bundle.d_img, bundle.d_txt) == (12, D_IMG, D_TXT)
    record = read_bundle_provenance(tmp_path / "b.safetensors")
    assert record["encoder"] == "enc_a" and record["recipe"]["num_landmarks"] == 12 and record["rows"] == N
