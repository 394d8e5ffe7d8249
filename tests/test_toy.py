"""Tests of course_lib.toy against independent references.

References used: scipy.stats.multivariate_normal (log-density), torch.autograd (score, Hessian),
scipy.integrate.quad (1-D posterior moments and the convolved density), self-normalized importance
sampling with a standard-error tolerance (2-D posterior moments), sample moments with a
standard-error tolerance (convolution, sampling), and REFERENCES.md A9's quadrature values.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy import integrate, special, stats

from course_lib.toy import GaussianMixture, bimodal_1d, checkerboard, grid_mixture, ring_mixture, swiss_roll, two_moons

F64 = torch.float64


def _random_mixture(generator, k=3, d=2, diagonal=True, dtype=F64, device="cpu"):
    means = 2.0 * torch.randn(k, d, generator=generator, dtype=F64)
    shape = (k, d) if diagonal else (k,)
    stds = torch.exp(torch.empty(shape, dtype=F64).uniform_(-1.5, 0.3, generator=generator))
    weights = torch.rand(k, generator=generator, dtype=F64) + 0.1
    weights = weights / weights.sum()
    return GaussianMixture(means, stds, weights).to(dtype).to(device)


def _scipy_log_prob(mix: GaussianMixture, x: np.ndarray) -> np.ndarray:
    """logsumexp_k [log w_k + log N(x; mu_k, diag s_k^2)] with scipy, float64."""
    means, stds, w = (t.detach().cpu().double().numpy() for t in (mix.means, mix.stds, mix.weights))
    comps = np.stack([np.log(w[k]) + stats.multivariate_normal(means[k], np.diag(stds[k] ** 2))
                      .logpdf(x).reshape(-1) for k in range(len(w))], axis=1)
    return special.logsumexp(comps, axis=1)


def _mixture_moments(mix: GaussianMixture):
    """Exact mean (D,) and covariance (D, D) of a mixture, float64."""
    mu, s, w = mix.means.double().cpu(), mix.stds.double().cpu(), mix.weights.double().cpu()
    mean = w @ mu
    second = (w[:, None, None] * (torch.diag_embed(s ** 2) + mu[:, :, None] * mu[:, None, :])).sum(0)
    return mean, second - torch.outer(mean, mean)


# ------------------------------------------------------------------------------------------------
# construction
# ------------------------------------------------------------------------------------------------
def test_stds_stored_as_KD_and_default_uniform_weights():
    mix = GaussianMixture(torch.zeros(3, 2), torch.tensor([0.1, 0.2, 0.3]))
    assert mix.stds.shape == (3, 2)
    torch.testing.assert_close(mix.stds[:, 1], torch.tensor([0.1, 0.2, 0.3]))
    torch.testing.assert_close(mix.weights, torch.full((3,), 1 / 3))
    assert (mix.num_components, mix.dim) == (3, 2)


def test_dtype_kept_and_to():
    mix = GaussianMixture(torch.zeros(2, 1, dtype=F64), torch.ones(2, dtype=F64))
    assert mix.stds.dtype == F64 and mix.weights.dtype == F64
    x = torch.zeros(4, 1, dtype=F64)
    assert mix.log_prob(x).dtype == F64
    assert mix.sample(3).dtype == F64
    m32 = mix.to(torch.float32)
    assert m32.means.dtype == torch.float32 and m32.stds.dtype == torch.float32
    assert m32.log_prob(x.float()).dtype == torch.float32


@pytest.mark.parametrize("kwargs, match", [
    (dict(means=torch.zeros(3), stds=torch.ones(3)), "means"),
    (dict(means=torch.zeros(3, 2), stds=torch.ones(2)), "stds"),
    (dict(means=torch.zeros(3, 2), stds=torch.ones(3, 3)), "stds"),
    (dict(means=torch.zeros(3, 2), stds=torch.tensor([1.0, 0.0, 1.0])), "stds"),
    (dict(means=torch.zeros(3, 2), stds=torch.tensor([1.0, -1.0, 1.0])), "stds"),
    (dict(means=torch.zeros(3, 2), stds=torch.ones(3), weights=torch.ones(2) / 2), "weights"),
    (dict(means=torch.zeros(3, 2), stds=torch.ones(3), weights=torch.tensor([0.5, 0.5, 0.5])),
     r"weights.*sum 1\.5"),
    (dict(means=torch.zeros(2, 2), stds=torch.ones(2), weights=torch.tensor([1.5, -0.5])),
     "weights"),
])
def test_bad_construction(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GaussianMixture(**kwargs)


@given(st.lists(st.floats(0.0, 10.0), min_size=1, max_size=12).filter(lambda w: sum(w) > 1e-3))
def test_weights_summing_to_one_accepted(raw):
    w = torch.tensor(raw, dtype=F64)
    w = w / w.sum()
    mix = GaussianMixture(torch.zeros(len(raw), 2, dtype=F64), torch.ones(len(raw), dtype=F64), w)
    assert abs(float(mix.weights.sum()) - 1.0) < 1e-12
    x = torch.zeros(1, 2, dtype=F64)
    assert abs(float(mix.log_prob(x)) - (-math.log(2 * math.pi))) < 1e-9  # every component N(0, I)
    with pytest.raises(ValueError, match="weights"):
        GaussianMixture(torch.zeros(len(raw), 2, dtype=F64), torch.ones(len(raw), dtype=F64),
                        1.01 * w)


def test_mismatched_dims_x_vs_means():
    mix = ring_mixture()
    with pytest.raises(ValueError, match=r"x: expected shape \(N, 2\)"):
        mix.log_prob(torch.zeros(4, 3))
    with pytest.raises(ValueError, match="x"):
        mix.score(torch.zeros(2))
    with pytest.raises(ValueError, match="y"):
        mix.posterior_mean(torch.zeros(4, 1), 0.1)
    with pytest.raises(ValueError, match="sigma"):
        mix.posterior_mean(torch.zeros(4, 2), -0.1)
    with pytest.raises(ValueError, match="sigma"):
        mix.posterior_mean(torch.zeros(4, 2), torch.ones(3))
    with pytest.raises(ValueError, match="sigma"):
        mix.convolve(-1.0)
    with pytest.raises(ValueError, match="n"):
        mix.sample(-1)


# ------------------------------------------------------------------------------------------------
# log-density, score, Hessian
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("diagonal", [True, False])
def test_log_prob_matches_scipy(device, generator, diagonal):
    mix = _random_mixture(generator, k=4, d=3, diagonal=diagonal, device=device)
    x = 3 * torch.randn(50, 3, generator=generator, dtype=F64)
    x[:4] = mix.means.cpu()
    x[4:6] = torch.tensor([[1e3, -1e3, 5e2], [-80.0, 0.0, 30.0]], dtype=F64)
    ours = mix.log_prob(x.to(device)).cpu()
    ref = _scipy_log_prob(mix, x.numpy())
    np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-10, atol=1e-10)


def test_log_prob_float32_close_to_float64(generator):
    mix = _random_mixture(generator, k=3, d=2)
    x = 2 * torch.randn(100, 2, generator=generator, dtype=F64)
    lp32 = mix.to(torch.float32).log_prob(x.float())
    torch.testing.assert_close(lp32.double(), mix.log_prob(x), rtol=1e-5, atol=1e-4)


@given(r=st.floats(0.0, 1e3), angle=st.floats(0.0, 2 * math.pi), mode=st.integers(0, 7))
def test_log_prob_finite_far_away_and_at_modes(r, angle, mode):
    mix = ring_mixture()  # std 0.01: far points are 1e5 standard deviations away
    at_mode = mix.log_prob(mix.means[mode:mode + 1])
    # at a mode the other modes contribute exp(-(0.765 / 0.01)^2 / 2) = 0 in float32
    expected = math.log(1 / 8) - math.log(2 * math.pi * 0.01 ** 2)
    assert abs(float(at_mode) - expected) < 1e-4
    x = torch.tensor([[r * math.cos(angle), r * math.sin(angle)]])
    for dtype in (torch.float32, F64):
        lp = mix.to(dtype).log_prob(x.to(dtype))
        assert torch.isfinite(lp).all()
        ref = _scipy_log_prob(mix, x.double().numpy())
        np.testing.assert_allclose(lp.double().numpy(), ref, rtol=1e-5 if dtype != F64 else 1e-10,
                                   atol=1e-3 if dtype != F64 else 1e-8)
    s = mix.score(x)
    h = mix.hessian_log_prob(x)
    assert torch.isfinite(s).all() and torch.isfinite(h).all()


def test_responsibilities_rows_sum_to_one(generator):
    mix = _random_mixture(generator, k=5, d=2)
    x = 4 * torch.randn(30, 2, generator=generator, dtype=F64)
    r = mix.responsibilities(x)
    assert r.shape == (30, 5)
    torch.testing.assert_close(r.sum(1), torch.ones(30, dtype=F64))
    # Bayes' rule by hand with scipy densities
    means, stds, w = mix.means.numpy(), mix.stds.numpy(), mix.weights.numpy()
    joint = np.stack([w[k] * stats.multivariate_normal(means[k], np.diag(stds[k] ** 2)).pdf(x.numpy())
                      for k in range(5)], axis=1)
    np.testing.assert_allclose(r.numpy(), joint / joint.sum(1, keepdims=True), rtol=1e-8, atol=1e-12)


def test_score_matches_autograd(device, generator):
    mix = _random_mixture(generator, k=4, d=2, device=device)
    x = (2 * torch.randn(40, 2, generator=generator, dtype=F64)).to(device).requires_grad_(True)
    (grad,) = torch.autograd.grad(mix.log_prob(x).sum(), x)
    torch.testing.assert_close(mix.score(x.detach()), grad, rtol=1e-9, atol=1e-9)


def test_hessian_matches_autograd(device, generator):
    mix = _random_mixture(generator, k=3, d=3, device=device)
    x = 2 * torch.randn(6, 3, generator=generator, dtype=F64)
    x[0] = torch.tensor([15.0, -12.0, 9.0], dtype=F64)  # far from the modes: cancellation-prone
    x = x.to(device)
    ours = mix.hessian_log_prob(x)
    assert ours.shape == (6, 3, 3)
    for i in range(6):
        ref = torch.autograd.functional.hessian(lambda v: mix.log_prob(v[None])[0], x[i])
        torch.testing.assert_close(ours[i], ref, rtol=1e-8, atol=1e-8)
    torch.testing.assert_close(ours, ours.transpose(1, 2))


# ------------------------------------------------------------------------------------------------
# sampling
# ------------------------------------------------------------------------------------------------
def test_sample_moments_and_labels(device, generator):
    mix = _random_mixture(generator, k=3, d=2, device=device)
    n = 20000
    x, labels = mix.sample(n, generator=generator, return_labels=True)
    assert x.shape == (n, 2) and labels.shape == (n,) and x.device.type == device.type
    x, labels = x.cpu(), labels.cpu()
    # component frequencies: binomial standard error sqrt(w (1 - w) / n), 5 SE tolerance
    freq = torch.bincount(labels, minlength=3).double() / n
    w = mix.weights.cpu()
    assert ((freq - w).abs() <= 5 * torch.sqrt(w * (1 - w) / n)).all()
    # per-component mean: SE s_k / sqrt(n_k)
    for k in range(3):
        xk = x[labels == k]
        se = mix.stds[k].cpu() / math.sqrt(len(xk))
        assert ((xk.mean(0) - mix.means[k].cpu()).abs() <= 5 * se).all()
    mean, cov = _mixture_moments(mix)
    se_mean = torch.sqrt(torch.diagonal(cov) / n)
    assert ((x.mean(0) - mean).abs() <= 5 * se_mean).all()


def test_sample_component_spread(generator):
    """Within each component the samples have variance s_k^2 per dimension (chi-square standard
    error s_k^2 sqrt(2 / (n_k - 1)), 5 SE): catches a variance used where the std belongs."""
    mix = _random_mixture(generator, k=3, d=2)
    x, labels = mix.sample(30000, generator=generator, return_labels=True)
    for k in range(3):
        xk = x[labels == k]
        want = mix.stds[k] ** 2
        se = want * math.sqrt(2 / (len(xk) - 1))
        assert ((xk.var(0) - want).abs() <= 5 * se).all(), (k, xk.var(0), want)


def test_sample_reproducible_with_generator():
    mix = grid_mixture()
    a = mix.sample(10, generator=torch.Generator().manual_seed(3))
    b = mix.sample(10, generator=torch.Generator().manual_seed(3))
    c = mix.sample(10, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert mix.sample(0).shape == (0, 2)


# ------------------------------------------------------------------------------------------------
# convolution and denoising
# ------------------------------------------------------------------------------------------------
def test_convolve_against_sampled_moments(generator):
    mix = _random_mixture(generator, k=3, d=2)
    sigma = 0.7
    n = 40000
    x = mix.sample(n, generator=generator)
    y = x + sigma * torch.randn(n, 2, generator=generator, dtype=F64)
    conv = mix.convolve(sigma)
    torch.testing.assert_close(conv.stds ** 2, mix.stds ** 2 + sigma ** 2)
    mean, cov = _mixture_moments(conv)
    # mean: SE sqrt(diag(cov) / n); covariance entries: SE sqrt((C_ii C_jj + C_ij^2) / n) (a
    # Gaussian-approximation standard error), with a generous 6 SE tolerance
    assert ((y.mean(0) - mean).abs() <= 5 * torch.sqrt(torch.diagonal(cov) / n)).all()
    emp_cov = torch.cov(y.T)
    d = torch.diagonal(cov)
    se_cov = torch.sqrt((d[:, None] * d[None, :] + cov ** 2) / n)
    kurt = 3.0  # mixtures are heavier-tailed than Gaussians; widen the tolerance accordingly
    assert ((emp_cov - cov).abs() <= 6 * kurt * se_cov).all()
    # a wrong convolution (variance sigma instead of sigma^2) would be caught:
    wrong = GaussianMixture(mix.means, torch.sqrt(mix.stds ** 2 + sigma), mix.weights)
    assert not ((emp_cov - _mixture_moments(wrong)[1]).abs() <= 6 * kurt * se_cov).all()


def test_convolve_against_quadrature_1d():
    mix = GaussianMixture(torch.tensor([[-2.0], [1.5]], dtype=F64), torch.tensor([0.5, 0.3], dtype=F64),
                          torch.tensor([0.3, 0.7], dtype=F64))
    sigma = 0.8
    conv = mix.convolve(sigma)
    for y in (-3.0, 0.4, 2.2, 6.0):
        # p_sigma(y) = int p(x) N(y - x; 0, sigma^2) dx
        val, _ = integrate.quad(
            lambda x: math.exp(float(mix.log_prob(torch.tensor([[x]], dtype=F64))))
            * stats.norm.pdf(y, loc=x, scale=sigma), -10, 10, points=[-2.0, 1.5], epsabs=1e-13)
        assert abs(float(conv.log_prob(torch.tensor([[y]], dtype=F64))) - math.log(val)) < 1e-8


def _quad_posterior_1d(mix, y, sigma):
    """E[x | y] and Var[x | y] by quadrature of p(x) N(y; x, sigma^2)."""
    def post(x, power):
        px = math.exp(float(mix.log_prob(torch.tensor([[x]], dtype=F64))))
        return x ** power * px * stats.norm.pdf(y, loc=x, scale=sigma)
    kw = dict(a=-12, b=12, points=[float(m) for m in mix.means[:, 0]], epsabs=1e-14, limit=200)
    z = integrate.quad(post, args=(0,), **kw)[0]
    m1 = integrate.quad(post, args=(1,), **kw)[0] / z
    m2 = integrate.quad(post, args=(2,), **kw)[0] / z
    return m1, m2 - m1 ** 2


def test_posterior_moments_1d_quadrature_and_references_A9(device):
    mix = GaussianMixture(torch.tensor([[-2.0], [1.5]], dtype=F64), torch.tensor([0.5, 0.3], dtype=F64),
                          torch.tensor([0.3, 0.7], dtype=F64)).to(device)
    sigma = 0.8
    ys = torch.tensor([[0.4], [-2.5], [1.0], [5.0]], dtype=F64, device=device)
    mean = mix.posterior_mean(ys, sigma).cpu()
    cov = mix.posterior_covariance(ys, sigma).cpu()
    # REFERENCES.md A9 (quadrature, 10 digits): E[x | y = 0.4] = 1.2735122509, Var = 0.3185181591
    # (a float32 round trip of sigma = 0.8 shifts Var by 1.5e-8 and fails this)
    assert abs(float(mean[0, 0]) - 1.2735122509) < 1e-9
    assert abs(float(cov[0, 0, 0]) - 0.3185181591) < 1e-9
    for i, y in enumerate(ys.cpu()[:, 0].tolist()):
        m_ref, v_ref = _quad_posterior_1d(mix.to("cpu"), y, sigma)
        assert abs(float(mean[i, 0]) - m_ref) < 1e-8
        assert abs(float(cov[i, 0, 0]) - v_ref) < 1e-8


def _npdf(x, mean, std):
    return math.exp(-0.5 * ((x - mean) / std) ** 2) / (std * math.sqrt(2 * math.pi))


def test_posterior_third_central_moment_1d_quadrature():
    """E[(x - m)^3 | y] against quadrature of p(x) N(y; x, sigma^2) (no Bayes rule per component)."""
    mix = GaussianMixture(torch.tensor([[-2.0], [1.5]], dtype=F64), torch.tensor([0.5, 0.3], dtype=F64),
                          torch.tensor([0.3, 0.7], dtype=F64))
    for sigma in (0.3, 0.8, 2.0):
        ys = torch.tensor([[0.4], [-2.5], [-0.6], [1.0], [5.0]], dtype=F64)
        got = mix.posterior_third_central_moment(ys, sigma)
        assert got.shape == (5, 1)
        for i, y in enumerate(ys[:, 0].tolist()):
            def post(x, y=y):           # p(x) N(y; x, sigma^2), the prior written out by hand
                px = 0.3 * _npdf(x, -2.0, 0.5) + 0.7 * _npdf(x, 1.5, 0.3)
                return px * _npdf(y, x, sigma)
            # breakpoints where the posterior's mass can sit: the prior's modes, y, and between them
            pts = sorted({-2.0, 1.5, y, (y - 2.0) / 2, (y + 1.5) / 2})
            kw = dict(a=-12, b=12, points=pts, epsabs=0, epsrel=1e-12, limit=400)
            z = integrate.quad(post, **kw)[0]
            m_ref = integrate.quad(lambda x: x * post(x), **kw)[0] / z
            k3 = integrate.quad(lambda x: (x - m_ref) ** 3 * post(x), **kw)[0] / z
            assert abs(float(got[i, 0]) - k3) < 1e-8, (sigma, y, float(got[i, 0]), k3)


def test_posterior_third_central_moment_gaussian_symmetric_and_2d_importance_sampling(generator):
    # a single Gaussian: the posterior is Gaussian, its third central moment 0
    gauss = GaussianMixture(torch.tensor([[0.5, -1.0]], dtype=F64), torch.tensor([[0.7, 1.3]], dtype=F64))
    y = 3 * torch.randn(20, 2, generator=generator, dtype=F64)
    assert gauss.posterior_third_central_moment(y, 0.9).abs().max() < 1e-12
    # a symmetric mixture at its centre: 0; off centre, skewed toward the far mode
    sym = bimodal_1d(4.0, 0.5, dtype=F64)
    k3 = sym.posterior_third_central_moment(torch.tensor([[0.0], [0.5], [-0.5]], dtype=F64), 1.0)
    assert abs(float(k3[0, 0])) < 1e-12 and float(k3[1, 0]) < 0 < float(k3[2, 0])
    torch.testing.assert_close(k3[1], -k3[2], rtol=1e-12, atol=1e-14)
    assert (sym.posterior_third_central_moment(torch.tensor([[0.3]], dtype=F64), 0.0) == 0).all()
    # 2-D, diagonal slice, against self-normalized importance sampling with its delta-method s.e.
    mix = _random_mixture(generator, k=3, d=2)
    sigma = 0.9
    ys = torch.tensor([[0.5, -0.3], [2.0, 1.0], [-1.5, 0.0]], dtype=F64)
    got = mix.posterior_third_central_moment(ys, sigma)
    x = mix.sample(200000, generator=generator)
    for i, yv in enumerate(ys):
        w = torch.softmax(-0.5 * ((yv - x) ** 2).sum(1) / sigma ** 2, 0)
        m_is = (w[:, None] * x).sum(0)
        f = (x - m_is) ** 3
        k3_is = (w[:, None] * f).sum(0)
        se = torch.sqrt((w[:, None] ** 2 * (f - k3_is) ** 2).sum(0))
        assert ((got[i] - k3_is).abs() <= 5 * se + 1e-6).all(), (got[i], k3_is, se)


def test_posterior_moments_2d_importance_sampling(generator):
    mix = _random_mixture(generator, k=3, d=2)
    sigma = 0.9
    ys = torch.tensor([[0.5, -0.3], [2.0, 1.0], [-1.5, 0.0]], dtype=F64)
    mean = mix.posterior_mean(ys, sigma)
    cov = mix.posterior_covariance(ys, sigma)
    n = 200000
    x = mix.sample(n, generator=generator)
    for i, y in enumerate(ys):
        # self-normalized importance sampling: proposal p(x), weights N(y; x, sigma^2 I)
        logw = -0.5 * ((y - x) ** 2).sum(1) / sigma ** 2
        w = torch.softmax(logw, 0)
        m_is = (w[:, None] * x).sum(0)
        c = x - m_is
        cov_is = (w[:, None, None] * c[:, :, None] * c[:, None, :]).sum(0)
        # delta-method standard errors of a self-normalized estimate: sqrt(sum_i w_i^2 (f_i - f)^2)
        se_m = torch.sqrt((w[:, None] ** 2 * c ** 2).sum(0))
        f = c[:, :, None] * c[:, None, :]
        se_c = torch.sqrt((w[:, None, None] ** 2 * (f - cov_is) ** 2).sum(0))
        assert ((mean[i] - m_is).abs() <= 5 * se_m + 1e-6).all(), (mean[i], m_is, se_m)
        assert ((cov[i] - cov_is).abs() <= 5 * se_c + 1e-6).all(), (cov[i], cov_is, se_c)


def test_tweedie_first_and_second_order(device, generator):
    """E[x|y] = y + sigma^2 score_sigma(y); Cov[x|y] = sigma^2 (I + sigma^2 H_sigma(y))."""
    mix = _random_mixture(generator, k=4, d=2, device=device)
    sigma = 0.6
    y = (3 * torch.randn(25, 2, generator=generator, dtype=F64)).to(device)
    conv = mix.convolve(sigma)
    torch.testing.assert_close(mix.posterior_mean(y, sigma), y + sigma ** 2 * conv.score(y),
                               rtol=1e-9, atol=1e-9)
    eye = torch.eye(2, dtype=F64, device=device)
    torch.testing.assert_close(mix.posterior_covariance(y, sigma),
                               sigma ** 2 * (eye + sigma ** 2 * conv.hessian_log_prob(y)),
                               rtol=1e-8, atol=1e-9)


def test_posterior_per_example_sigma_and_zero_sigma(generator):
    mix = _random_mixture(generator, k=3, d=2)
    y = torch.randn(5, 2, generator=generator, dtype=F64)
    sigmas = torch.tensor([0.1, 0.5, 1.0, 2.0, 0.0], dtype=F64)
    batched = mix.posterior_mean(y, sigmas)
    cov = mix.posterior_covariance(y, sigmas)
    for i, s in enumerate(sigmas.tolist()):
        torch.testing.assert_close(batched[i], mix.posterior_mean(y[i:i + 1], s)[0])
        torch.testing.assert_close(cov[i], mix.posterior_covariance(y[i:i + 1], s)[0])
    torch.testing.assert_close(batched[4], y[4])  # sigma = 0: nothing to denoise
    torch.testing.assert_close(cov[4], torch.zeros(2, 2, dtype=F64))


@given(y0=st.floats(-50, 50), y1=st.floats(-50, 50), sigma=st.floats(1e-3, 20.0))
def test_posterior_covariance_symmetric_psd(y0, y1, sigma):
    mix = grid_mixture(std=0.3, dtype=F64)
    y = torch.tensor([[y0, y1]], dtype=F64)
    cov = mix.posterior_covariance(y, sigma)[0]
    assert torch.isfinite(cov).all()
    torch.testing.assert_close(cov, cov.T)
    eig = torch.linalg.eigvalsh(cov)
    # within-component variance alone is >= min_k s_k^2 sigma^2 / (s_k^2 + sigma^2) > 0
    floor = 0.3 ** 2 * sigma ** 2 / (0.3 ** 2 + sigma ** 2)
    assert float(eig.min()) >= floor * (1 - 1e-9)
    m = mix.posterior_mean(y, sigma)
    assert torch.isfinite(m).all()


def test_scale_gives_law_of_scaled_variable(generator):
    mix = _random_mixture(generator, k=2, d=2)
    a = -0.5
    scaled = mix.scale(a)
    x = torch.randn(10, 2, generator=generator, dtype=F64)
    # change of variables: log p_{aX}(x) = log p_X(x / a) - D log|a|
    torch.testing.assert_close(scaled.log_prob(x), mix.log_prob(x / a) - 2 * math.log(abs(a)))
    with pytest.raises(ValueError, match="factor"):
        mix.scale(0.0)


# ------------------------------------------------------------------------------------------------
# benchmark mixtures and sample-only toys
# ------------------------------------------------------------------------------------------------
def test_ring_geometry():
    mix = ring_mixture()
    assert mix.means.shape == (8, 2)
    torch.testing.assert_close(mix.means.norm(dim=1), torch.ones(8))
    d = torch.cdist(mix.means, mix.means) + 10 * torch.eye(8)
    # 8 distinct modes, neighbours 2 sin(pi/8) = 0.765 apart (the linspace-endpoint bug gives 0)
    assert float(d.min()) == pytest.approx(2 * math.sin(math.pi / 8), rel=1e-5)
    torch.testing.assert_close(mix.stds, torch.full((8, 2), 0.01))
    torch.testing.assert_close(mix.weights, torch.full((8,), 1 / 8))
    assert ring_mixture(n_modes=3, radius=2.0).means.norm(dim=1).allclose(torch.full((3,), 2.0))


def test_grid_geometry():
    mix = grid_mixture()
    assert mix.means.shape == (25, 2)
    expected = {(float(a), float(b)) for a, b in itertools.product([-4, -2, 0, 2, 4], repeat=2)}
    assert {tuple(m) for m in mix.means.tolist()} == expected
    torch.testing.assert_close(mix.stds, torch.full((25, 2), 0.05))
    torch.testing.assert_close(mix.means.mean(0), torch.zeros(2))


def test_bimodal_1d():
    mix = bimodal_1d(separation=4.0, std=0.5)
    torch.testing.assert_close(mix.means, torch.tensor([[-2.0], [2.0]]))
    assert mix.stds.shape == (2, 1)


def test_two_moons(generator):
    x = two_moons(2000, noise=0.0, generator=generator, dtype=F64)
    assert x.shape == (2000, 2) and x.dtype == F64
    # undo the scaling: each point lies on the unit circle centred at (0, 0) or at (1, 0.5)
    u = 1.5 * x + torch.tensor([0.5, 0.25], dtype=F64)
    r_outer = u.norm(dim=1)
    r_inner = (u - torch.tensor([1.0, 0.5], dtype=F64)).norm(dim=1)
    on_outer = (r_outer - 1).abs() < 1e-9
    on_inner = (r_inner - 1).abs() < 1e-9
    assert (on_outer | on_inner).all()
    assert abs(int(on_outer.sum()) - 1000) <= 1
    assert float(x[:, 0].abs().max()) <= 1 + 1e-9 and float(x[:, 1].abs().max()) <= 0.5 + 1e-9
    noisy = two_moons(500, generator=torch.Generator().manual_seed(0))
    assert noisy.dtype == torch.get_default_dtype() and torch.isfinite(noisy).all()
    assert torch.equal(noisy, two_moons(500, generator=torch.Generator().manual_seed(0)))


def test_swiss_roll(generator):
    x = swiss_roll(2000, generator=generator, dtype=F64)
    assert x.shape == (2000, 2)
    r = x.norm(dim=1)
    assert float(r.max()) <= 1 + 1e-12 and float(r.min()) >= 1 / 3 - 1e-12
    # the angle equals the radius times 4.5 pi (mod 2 pi): a spiral
    t = r * 4.5 * math.pi
    torch.testing.assert_close(x, torch.stack([torch.cos(t), torch.sin(t)], 1) * r[:, None])


def test_checkerboard(generator):
    n = 8000
    x = checkerboard(n, generator=generator, dtype=F64)
    assert x.shape == (n, 2)
    assert float(x.abs().max()) <= 1
    col = torch.floor((x[:, 0] + 1) * 2).long()
    row = torch.floor((x[:, 1] + 1) * 2).long()
    assert ((col + row) % 2 == 0).all()
    counts = torch.bincount(col * 4 + row, minlength=16).double()
    dark = counts[counts > 0]
    assert len(dark) == 8
    # multinomial: each dark square has probability 1/8, SE sqrt(n p (1 - p))
    assert ((dark - n / 8).abs() <= 5 * math.sqrt(n / 8 * 7 / 8)).all()


@pytest.mark.parametrize("fn", [two_moons, swiss_roll, checkerboard])
def test_toys_on_device(fn, device):
    g = torch.Generator().manual_seed(0)
    x = fn(64, generator=g, device=device)
    assert x.shape == (64, 2) and x.device.type == device.type and torch.isfinite(x).all()
    with pytest.raises((ValueError, TypeError), match="n"):
        fn(-1)


# ------------------------------------------------------------------------------------------------
# notebook 06's named toy
# ------------------------------------------------------------------------------------------------
def test_three_mode_mixture_is_notebook_05s_toy():
    from course_lib.toy import three_mode_mixture

    mix = three_mode_mixture(torch.float64)
    assert mix.dtype == torch.float64 and (mix.num_components, mix.dim) == (3, 2)
    torch.testing.assert_close(mix.weights, torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64))
    torch.testing.assert_close(mix.means, torch.tensor([[-2.0, -1.0], [2.0, -1.0], [0.0, 2.0]],
                                                       dtype=torch.float64))
    torch.testing.assert_close(mix.stds[:, 0], torch.tensor([0.4, 0.6, 0.3], dtype=torch.float64))
    # well separated: every pair of means more than 5 (larger) standard deviations apart
    for i, j in itertools.combinations(range(3), 2):
        gap = (mix.means[i] - mix.means[j]).norm()
        assert gap > 5 * max(mix.stds[i, 0], mix.stds[j, 0])
    # its density against scipy.stats
    x = torch.tensor([[0.3, -0.7], [-2.0, -1.0], [1.0, 2.0]], dtype=torch.float64)
    want = np.log(sum(w * stats.multivariate_normal(m, s * s).pdf(x.numpy())
                      for w, m, s in zip([0.5, 0.3, 0.2], mix.means.numpy(), [0.4, 0.6, 0.3])))
    np.testing.assert_allclose(mix.log_prob(x).numpy(), want, rtol=1e-10)
    assert three_mode_mixture().dtype == torch.get_default_dtype()
