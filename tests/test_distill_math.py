"""Kernels, reference bundles and the loss against independent fp64 references (torch.cdist, eigh)."""

from __future__ import annotations

import math

import pytest
import torch

from rdmeval.distill.kernels import cross_mean, gamma_from_sigma, self_mean, squared_distances, weighted_cross_mean
from rdmeval.distill.loss import nystrom_mmd, objective, self_normalize
from rdmeval.distill.reference import (
    BundleError, ReferenceBundle, build_bundle, build_reference_bundle, joint_feature, kmeans_landmarks, load_bundle,
    median_sigma, nystrom_alpha, save_bundle,
)

D = torch.float64


def _gram(a, b, sigma):
    return torch.exp(-torch.cdist(a, b) ** 2 / (2 * sigma**2))


def _clusters(n_per, centres, spread, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.cat([c + spread * torch.randn(n_per, c.shape[0], generator=g, dtype=D) for c in centres])


def test_squared_distances_match_cdist_and_are_nonnegative():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(7, 5, generator=g, dtype=D), torch.randn(9, 5, generator=g, dtype=D)
    torch.testing.assert_close(squared_distances(a, b), torch.cdist(a, b) ** 2, rtol=1e-10, atol=1e-12)
    x = 1e3 + torch.randn(50, 8, generator=g)  # large norms: the expansion rounds, the clamp holds
    assert float(squared_distances(x, x).min()) >= 0.0


def test_self_mean_is_chunk_invariant_biased_and_at_least_one_over_n():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(37, 6, generator=g, dtype=D)
    sigma = 0.7
    naive = _gram(x, x, sigma).sum() / 37**2  # diagonal included, divisor N²
    for chunk in (1, 5, 16, 37, 100):
        torch.testing.assert_close(self_mean(x, gamma_from_sigma(sigma), chunk=chunk), naive, rtol=1e-12, atol=0)
    assert float(naive) >= 1 / 37
    # far-apart points: only the diagonal is left (the expansion's diagonal is 0 up to rounding)
    cold = self_mean(3.0 * x, gamma_from_sigma(1e-2), chunk=8)
    assert float(cold) >= (1 / 37) * (1 - 1e-9)
    torch.testing.assert_close(cold, torch.tensor(1 / 37, dtype=D), rtol=1e-9, atol=0)


def test_checkpointed_chunks_give_the_unchunked_gradient():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(20, 4, generator=g, dtype=D)
    grads = []
    for chunk in (3, 20):
        xi = x.clone().requires_grad_(True)
        self_mean(xi, 0.4, chunk=chunk).backward()
        grads.append(xi.grad)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-12, atol=1e-14)


def test_cross_means_match_naive():
    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(11, 3, generator=g, dtype=D), torch.randn(13, 3, generator=g, dtype=D)
    alpha = torch.rand(13, generator=g, dtype=D)
    k = _gram(x, y, 0.9)
    torch.testing.assert_close(cross_mean(x, y, gamma_from_sigma(0.9), chunk=4), k.mean(), rtol=1e-12, atol=0)
    torch.testing.assert_close(weighted_cross_mean(x, y, alpha, gamma_from_sigma(0.9), chunk=4), (k @ alpha).mean(), rtol=1e-12, atol=0)


def test_median_sigma_is_seeded_and_matches_pdist_when_unsampled():
    g = torch.Generator().manual_seed(4)
    x = torch.randn(40, 3, generator=g)
    d2 = torch.pdist(x.double()) ** 2
    assert median_sigma(x, n_sub=1000) == pytest.approx(math.sqrt(float(d2.median())), rel=1e-5)
    big = torch.randn(500, 3, generator=g)
    assert median_sigma(big, n_sub=50, seed=7) == median_sigma(big, n_sub=50, seed=7)
    assert median_sigma(big, n_sub=50, seed=7) != median_sigma(big, n_sub=50, seed=8)
    assert median_sigma(torch.zeros(5, 2)) == 1e-5  # floored


def test_kmeans_covers_separated_clusters_and_converges_to_cluster_means():
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]], dtype=D)
    x = _clusters(30, centres, 0.1, seed=5).float()
    z = kmeans_landmarks(x, 8, iters=20, seed=0)
    assert float(torch.cdist(centres.float(), z).min(dim=1).values.max()) < 0.2  # every cluster has a landmark
    assign = torch.cdist(x, z).argmin(dim=1)  # Lloyd fixed point: each landmark is its points' mean
    for m in range(8):
        members = x[assign == m]
        assert len(members) > 0
        torch.testing.assert_close(z[m], members.mean(dim=0), rtol=1e-5, atol=1e-5)


def test_alpha_form_equals_eigh_psi_form():
    centres = torch.tensor([[0.0, 0.0, 0.0], [3.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 3.0], [3.0, 3.0, 3.0]], dtype=D)
    pool = _clusters(40, centres, 0.5, seed=6)
    gen = _clusters(10, centres + 0.3, 0.5, seed=7)
    sigma, jitter = 1.0, 1e-6
    z = kmeans_landmarks(pool, 12, seed=0).double()
    alpha = nystrom_alpha(z, pool, gamma_from_sigma(sigma), jitter=jitter)
    k_alpha = (_gram(gen, z, sigma) @ alpha).mean()
    # eq. 3: ψ(x) = K_ZZ^{-1/2} k(Z, x), eigenvalues clamped at the jitter; k_gr = mean_i ψ(g_i)ᵀ mean_r ψ(r)
    evals, evecs = torch.linalg.eigh(_gram(z, z, sigma))
    inv_sqrt = evecs @ torch.diag(evals.clamp_min(jitter).rsqrt()) @ evecs.T
    psi_g, psi_r = _gram(gen, z, sigma) @ inv_sqrt, _gram(pool, z, sigma) @ inv_sqrt
    k_eigh = (psi_g @ psi_r.mean(dim=0)).mean()
    torch.testing.assert_close(k_alpha, k_eigh, rtol=1e-6, atol=0)


def _exact_bundle(pool: torch.Tensor, sigma: float) -> ReferenceBundle:
    """Landmarks = the whole reference pool: the Nyström attraction is then the exact cross-mean."""
    return build_bundle(pool, sigma=sigma, num_landmarks=pool.shape[0], landmarks=pool, krr_n=pool.shape[0])


def test_nystrom_with_all_points_equals_exact_cross_mean():
    g = torch.Generator().manual_seed(8)
    pool = 2.0 * torch.randn(30, 4, generator=g, dtype=D)
    gen = torch.randn(17, 4, generator=g, dtype=D)
    b = _exact_bundle(pool, 1.0)
    exact = _gram(gen, pool, 1.0).mean()
    nys = weighted_cross_mean(gen, b.Z.double(), b.alpha.double(), b.gamma)
    torch.testing.assert_close(nys, exact, rtol=1e-5, atol=1e-7)  # jitter 1e-6 and fp32 storage


def test_loss_equals_naive_biased_mmd2_in_fp64():
    g = torch.Generator().manual_seed(9)
    pool = 2.0 * torch.randn(30, 4, generator=g, dtype=D)
    gen = torch.randn(17, 4, generator=g, dtype=D) + 0.5
    sigma = 1.0
    b = _exact_bundle(pool, sigma)
    naive = _gram(gen, gen, sigma).mean() - 2 * _gram(gen, pool, sigma).mean() + _gram(pool, pool, sigma).mean()
    assert b.k_rr == pytest.approx(float(_gram(pool, pool, sigma).mean()), rel=1e-6)
    torch.testing.assert_close(nystrom_mmd(gen, b, gen_chunk=5), naive, rtol=1e-5, atol=1e-7)


def test_k_rr_uses_the_first_krr_n_rows():
    g = torch.Generator().manual_seed(10)
    pool = torch.cat([torch.zeros(10, 2, dtype=D), 5 + torch.randn(30, 2, generator=g, dtype=D)])
    b = build_bundle(pool, sigma=1.0, num_landmarks=4, krr_n=10)
    assert b.k_rr == pytest.approx(1.0, rel=1e-6)  # ten identical rows: every kernel value is 1


def test_self_normalize_gradient_is_grad_over_abs_value():
    for c in (0.3, 5.0):  # raw = x² - c is positive at x = 2 for c = 0.3 and negative for c = 5
        x = torch.tensor(2.0, dtype=D, requires_grad=True)
        raw = x**2 - c
        term = self_normalize(raw, eps=1e-7)
        term.backward()
        expected = 2 * 2.0 / (abs(4.0 - c) + 1e-7)
        assert float(x.grad) == pytest.approx(expected, rel=1e-12)
        assert float(term.detach()) == pytest.approx(math.copysign(1.0, 4.0 - c), rel=1e-6)
    with pytest.raises(ValueError, match="eps"):
        self_normalize(torch.tensor(1.0), eps=0.0)


def test_objective_is_the_weighted_sum_of_self_normalised_terms():
    g = torch.Generator().manual_seed(11)
    pools = {n: torch.randn(20, 3, generator=g, dtype=D) for n in ("a", "b")}
    bundles = {n: _exact_bundle(p, 1.0) for n, p in pools.items()}
    feats = {n: torch.randn(8, 3, generator=g, dtype=D) + 1.0 for n in ("a", "b")}
    value = objective(feats, bundles, {"a": 0.5, "b": 2.0})
    raws = {n: nystrom_mmd(feats[n], bundles[n]) for n in feats}
    expected = sum(w * float(raws[n] / (raws[n].abs() + 1e-7)) for n, w in (("a", 0.5), ("b", 2.0)))
    assert float(value.total) == pytest.approx(expected, rel=1e-12)
    assert value.raw_sum == pytest.approx(float(raws["a"] + raws["b"]), rel=1e-12)


def test_joint_bundle_beta_and_save_load_round_trip(tmp_path):
    g = torch.Generator().manual_seed(12)
    img = torch.randn(60, 5, generator=g)
    txt = torch.nn.functional.normalize(torch.randn(60, 3, generator=g), dim=1)
    b = build_reference_bundle(img, txt, num_landmarks=8, sigma_scale=0.25, s_txt=2.0)
    assert b.sigma == pytest.approx(0.25 * median_sigma(img), rel=1e-6)
    assert b.beta == pytest.approx(b.sigma / 2.0, rel=1e-6)
    assert (b.d_img, b.d_txt, b.d_in, b.M) == (5, 3, 8, 8)
    path = save_bundle(tmp_path / "enc.safetensors", b)
    back = load_bundle(path)
    assert torch.equal(back.Z, b.Z) and torch.equal(back.alpha, b.alpha)
    assert (back.sigma, back.k_rr, back.beta, back.s_txt, back.d_img, back.d_txt) == (b.sigma, b.k_rr, b.beta, b.s_txt, b.d_img, b.d_txt)
    with pytest.raises(BundleError, match="does not exist"):
        load_bundle(tmp_path / "missing.safetensors")
    (tmp_path / "bad.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(BundleError, match="bad.safetensors"):
        load_bundle(tmp_path / "bad.safetensors")


def test_bundle_rejects_inconsistent_fields():
    with pytest.raises(BundleError, match="alpha"):
        ReferenceBundle(Z=torch.zeros(4, 3), alpha=torch.zeros(5), sigma=1.0, k_rr=0.1)
    with pytest.raises(BundleError, match="d_img"):
        ReferenceBundle(Z=torch.zeros(4, 3), alpha=torch.zeros(4), sigma=1.0, k_rr=0.1, beta=1.0, d_img=2, d_txt=2)


def test_kmeans_reseeds_empty_clusters_with_distinct_rows():
    """Twenty copies of one point and five other points, six centres: the seeded init draws copies of the
    repeated point, whose clusters come out empty; each must be reseeded with a different point, so the
    six centres end up the six distinct points (a reseed by random row would pick the repeated one again)."""
    others = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0], [2.0, 2.0]])
    x = torch.cat([torch.zeros(20, 2), others])
    for seed in range(5):
        z = kmeans_landmarks(x, 6, iters=5, seed=seed)
        assert len({tuple(row.tolist()) for row in z}) == 6, f"seed {seed}: duplicate centres {z.tolist()}"
        assert sorted(map(tuple, z.tolist())) == sorted(map(tuple, torch.cat([torch.zeros(1, 2), others]).tolist()))


def test_joint_feature_moves_tau_to_the_features_device_and_dtype():
    img = torch.randn(3, 4, dtype=torch.float64, device="meta")
    tau = torch.randn(3, 2)  # CPU, fp32: the text table usually lives on the host
    out = joint_feature(img, tau, 0.5)
    assert out.device == img.device and out.dtype == torch.float64 and out.shape == (3, 6)


def test_kernel_means_keep_their_digits_on_features_with_a_large_common_offset():
    """Raw encoder features often share an offset far larger than their spread (here norms ~40,
    distances ~0.03). The kernel means translate both sides before ‖a‖² + ‖b‖² − 2ab; in float32 they
    then agree with a float64 difference-based reference to ~1e-6, where the plain expansion is off by
    ~5e-2 (asserted below, so that the first asserts can fail)."""
    g = torch.Generator().manual_seed(13)
    offset = 10.0 * torch.randn(1, 16, generator=g, dtype=D)
    x = offset + 0.02 * torch.randn(48, 16, generator=g, dtype=D)
    z = offset + 0.02 * torch.randn(20, 16, generator=g, dtype=D)
    alpha = torch.rand(20, generator=g, dtype=D)
    sigma = 0.02
    gamma = gamma_from_sigma(sigma)
    x32, z32 = x.float(), z.float()
    exact_self, exact_cross = _gram(x32.double(), x32.double(), sigma).mean(), _gram(x32.double(), z32.double(), sigma)
    rel = lambda a, b: abs(float(a) - float(b)) / abs(float(b))  # noqa: E731
    assert rel(self_mean(x32, gamma, chunk=7), exact_self) < 1e-5
    assert rel(cross_mean(x32, z32, gamma, chunk=7), exact_cross.mean()) < 1e-5
    assert rel(weighted_cross_mean(x32, z32, alpha.float(), gamma, chunk=7), (exact_cross @ alpha.float().double()).mean()) < 1e-5
    plain = torch.exp(-gamma * squared_distances(x32, x32)).mean()  # the expansion on the raw coordinates
    assert rel(plain, exact_self) > 1e-3
    # the translation is detached, and distances do not depend on it: the gradient is the plain one
    xg = x.clone().requires_grad_(True)
    self_mean(xg, gamma, chunk=5).backward()
    xr = x.clone().requires_grad_(True)
    torch.exp(-gamma * ((xr[:, None] - xr[None]) ** 2).sum(-1)).mean().backward()
    torch.testing.assert_close(xg.grad, xr.grad, rtol=1e-6, atol=1e-9)
