"""Tests of course_lib.gaussians against torch.distributions, scipy.stats and REFERENCES.md A9."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats
from torch.distributions import Independent, Normal, kl_divergence

from course_lib.gaussians import gaussian_kl, gaussian_log_likelihood, kl_standard_normal

F64 = torch.float64


def _std(logvar):
    return torch.exp(0.5 * logvar)


# ------------------------------------------------------------------------------------------------
# fixed points (REFERENCES.md A9)
# ------------------------------------------------------------------------------------------------
def test_reference_values_A9():
    # KL(N(1, 0.5^2) || N(0, 1)) = 0.8181471805599453
    lv = torch.tensor([2 * math.log(0.5)], dtype=F64)
    one = torch.tensor([1.0], dtype=F64)
    assert float(gaussian_kl(one, lv, 0.0, 0.0)) == pytest.approx(0.8181471805599453, rel=1e-14)
    assert float(kl_standard_normal(one[None], lv[None])) == pytest.approx(0.8181471805599453,
                                                                         rel=1e-14)
    # Independent 2-D: N([1, 0], diag[0.25, 4]) vs N(0, I) = 1.625
    mean = torch.tensor([[1.0, 0.0]], dtype=F64)
    logvar = torch.log(torch.tensor([[0.25, 4.0]], dtype=F64))
    assert float(kl_standard_normal(mean, logvar)) == pytest.approx(1.625, rel=1e-14)
    # norm.logpdf(0.3; 1, 0.5) = -1.2057913526447273
    ll = gaussian_log_likelihood(torch.tensor([[0.3]], dtype=F64), torch.tensor([[1.0]], dtype=F64),
                                 2 * math.log(0.5))
    assert float(ll) == pytest.approx(-1.2057913526447273, rel=1e-14)


# ------------------------------------------------------------------------------------------------
# gaussian_kl
# ------------------------------------------------------------------------------------------------
def test_gaussian_kl_matches_torch_distributions(device, generator):
    shape = (64, 5)
    m1, m2 = (3 * torch.randn(shape, generator=generator, dtype=F64) for _ in range(2))
    lv1, lv2 = (4 * torch.randn(shape, generator=generator, dtype=F64) for _ in range(2))
    ours = gaussian_kl(*(t.to(device) for t in (m1, lv1, m2, lv2)))
    assert ours.shape == shape and ours.dtype == F64 and ours.device.type == device.type
    ref = kl_divergence(Normal(m1, _std(lv1)), Normal(m2, _std(lv2)))
    torch.testing.assert_close(ours.cpu(), ref, rtol=1e-10, atol=1e-12)
    # summed over the last axis = KL between the diagonal multivariate Gaussians
    ref_sum = kl_divergence(Independent(Normal(m1, _std(lv1)), 1), Independent(Normal(m2, _std(lv2)), 1))
    torch.testing.assert_close(ours.sum(-1).cpu(), ref_sum, rtol=1e-10, atol=1e-12)


def test_gaussian_kl_broadcasting(generator):
    m1 = torch.randn(8, 3, generator=generator, dtype=F64)
    lv1 = torch.randn(8, 3, generator=generator, dtype=F64)
    m2 = torch.randn(3, generator=generator, dtype=F64)
    lv2 = torch.randn(1, 3, generator=generator, dtype=F64)
    ours = gaussian_kl(m1, lv1, m2, lv2)
    ref = kl_divergence(Normal(m1, _std(lv1)), Normal(m2.expand(8, 3), _std(lv2).expand(8, 3)))
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="mean1, logvar1, mean2, logvar2"):
        gaussian_kl(m1, lv1, torch.zeros(4), lv2)


def test_gaussian_kl_near_equal_variances_is_accurate():
    # delta = logvar1 - logvar2 tiny: KL = (e^delta - 1 - delta)/2 = delta^2/4 + delta^3/12 + ...
    # The naive form logvar2 - logvar1 + exp(logvar1 - logvar2) - 1 loses every digit here.
    delta = torch.tensor([1e-9, -3e-7, 1e-5, 2e-4], dtype=F64)
    kl = gaussian_kl(torch.zeros(4, dtype=F64), 5.0 + delta, torch.zeros(4, dtype=F64),
                     torch.full((4,), 5.0, dtype=F64))
    series = delta ** 2 / 4 + delta ** 3 / 12 + delta ** 4 / 48
    # (5 + delta) - 5 is exact only to ~1e-15 absolute, which bounds the attainable precision
    torch.testing.assert_close(kl, series, rtol=1e-6, atol=0.0)


@given(m1=st.floats(-20, 20), m2=st.floats(-20, 20), lv1=st.floats(-30, 30), lv2=st.floats(-30, 30))
def test_gaussian_kl_nonnegative_zero_iff_equal(m1, m2, lv1, lv2):
    for dtype in (torch.float32, F64):
        a = [torch.tensor([v], dtype=dtype) for v in (m1, lv1, m2, lv2)]
        kl = gaussian_kl(*a)
        assert torch.isfinite(kl).all() and float(kl) >= 0.0
        assert float(gaussian_kl(a[0], a[1], a[0], a[1])) == 0.0
    kl64 = float(gaussian_kl(*[torch.tensor([v], dtype=F64) for v in (m1, lv1, m2, lv2)]))
    if abs(m1 - m2) > 1e-3 or abs(lv1 - lv2) > 1e-3:
        assert kl64 > 0.0
    # independent check against the textbook formula in float64 (mpmath-free: moderate values)
    s1, s2 = math.exp(0.5 * lv1), math.exp(0.5 * lv2)
    ref = math.log(s2 / s1) + (s1 ** 2 + (m1 - m2) ** 2) / (2 * s2 ** 2) - 0.5
    assert kl64 == pytest.approx(ref, rel=1e-9, abs=1e-9 * max(1.0, abs(lv1), abs(lv2)))


@given(diff=st.floats(-60, 60), lv2=st.floats(-30, 30), dm=st.floats(-1e3, 1e3))
def test_gaussian_kl_finite_for_logvar_differences_up_to_60(diff, lv2, dm):
    for dtype in (torch.float32, F64):
        kl = gaussian_kl(torch.tensor([dm], dtype=dtype), torch.tensor([lv2 + diff], dtype=dtype),
                         torch.tensor([0.0], dtype=dtype), torch.tensor([lv2], dtype=dtype))
        assert torch.isfinite(kl).all() and float(kl) >= 0.0


def test_gaussian_kl_equal_means_tiny_variance_no_nan():
    # mean difference exactly 0 while exp(-logvar2) overflows float32: 0 * inf must not be NaN
    kl = gaussian_kl(torch.zeros(2), torch.full((2,), -150.0), torch.zeros(2), torch.full((2,), -200.0))
    assert torch.isfinite(kl).all()
    torch.testing.assert_close(kl, 0.5 * (torch.expm1(torch.tensor(50.0)) - 50.0).expand(2))


def test_gaussian_kl_bad_input():
    with pytest.raises(TypeError, match="mean1"):
        gaussian_kl("a", torch.zeros(2), torch.zeros(2), torch.zeros(2))
    with pytest.raises(TypeError, match="logvar2"):
        gaussian_kl(torch.zeros(2), torch.zeros(2), torch.zeros(2), torch.zeros(2, dtype=torch.long))


# ------------------------------------------------------------------------------------------------
# kl_standard_normal
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(16, 4), (6, 1, 3, 3)])
def test_kl_standard_normal_matches_torch_distributions(device, generator, shape):
    mean = 2 * torch.randn(shape, generator=generator, dtype=F64)
    logvar = 2 * torch.randn(shape, generator=generator, dtype=F64)
    ours = kl_standard_normal(mean.to(device), logvar.to(device))
    assert ours.shape == (shape[0],) and ours.dtype == F64
    nd = len(shape) - 1
    ref = kl_divergence(Independent(Normal(mean, _std(logvar)), nd),
                        Independent(Normal(torch.zeros(shape, dtype=F64), torch.ones(shape, dtype=F64)), nd))
    torch.testing.assert_close(ours.cpu(), ref, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(ours, gaussian_kl(mean, logvar, 0.0, 0.0).to(device).reshape(shape[0], -1).sum(1))


@given(m=st.floats(-1e3, 1e3), lv=st.floats(-60, 60))
def test_kl_standard_normal_finite_nonnegative(m, lv):
    for dtype in (torch.float32, F64):
        kl = kl_standard_normal(torch.tensor([[m, 0.0]], dtype=dtype), torch.tensor([[lv, 0.0]], dtype=dtype))
        assert torch.isfinite(kl).all() and float(kl) >= 0.0
    assert float(kl_standard_normal(torch.zeros(1, 3), torch.zeros(1, 3))) == 0.0


def test_kl_standard_normal_bad_input():
    with pytest.raises(ValueError, match="mean and logvar"):
        kl_standard_normal(torch.zeros(4, 2), torch.zeros(4, 3))
    with pytest.raises(ValueError, match="mean"):
        kl_standard_normal(torch.zeros(()), torch.zeros(()))


# ------------------------------------------------------------------------------------------------
# gaussian_log_likelihood
# ------------------------------------------------------------------------------------------------
def test_log_likelihood_matches_scipy(device, generator):
    x = torch.randn(10, 1, 4, 4, generator=generator, dtype=F64)
    mean = torch.randn(10, 1, 4, 4, generator=generator, dtype=F64)
    logvar = torch.randn(10, 1, 4, 4, generator=generator, dtype=F64)
    ours = gaussian_log_likelihood(x.to(device), mean.to(device), logvar.to(device))
    assert ours.shape == (10,) and ours.dtype == F64
    ref = stats.norm.logpdf(x.numpy(), loc=mean.numpy(), scale=np.exp(0.5 * logvar.numpy()))
    np.testing.assert_allclose(ours.cpu().numpy(), ref.reshape(10, -1).sum(1), rtol=1e-12)


def test_log_likelihood_broadcast_logvar(generator):
    x = torch.randn(7, 3, generator=generator, dtype=F64)
    mean = torch.randn(7, 3, generator=generator, dtype=F64)
    lv = torch.tensor([-1.0, 0.0, 2.0], dtype=F64)
    ref = stats.norm.logpdf(x.numpy(), loc=mean.numpy(), scale=np.exp(0.5 * lv.numpy())).sum(1)
    np.testing.assert_allclose(gaussian_log_likelihood(x, mean, lv).numpy(), ref, rtol=1e-12)
    np.testing.assert_allclose(gaussian_log_likelihood(x, mean, lv[None]).numpy(), ref, rtol=1e-12)
    # scalar logvar 0: the Gaussian decoder is the squared error, -log p = |x - mean|^2 / 2 + D/2 log 2 pi
    ll = gaussian_log_likelihood(x, mean, 0.0)
    torch.testing.assert_close(-ll, 0.5 * ((x - mean) ** 2).sum(1) + 1.5 * math.log(2 * math.pi))
    torch.testing.assert_close(gaussian_log_likelihood(x, mean, torch.tensor(0.0, dtype=F64)), ll)


@given(lv=st.floats(-60, 60), r=st.floats(-1e3, 1e3))
def test_log_likelihood_finite_at_extremes(lv, r):
    for dtype in (torch.float32, F64):
        x = torch.tensor([[r, 0.0]], dtype=dtype)
        ll = gaussian_log_likelihood(x, torch.zeros_like(x), torch.full_like(x, lv))
        assert not torch.isnan(ll).any()
        if abs(r) * math.exp(-0.5 * lv) < 1e15:
            assert torch.isfinite(ll).all()


def test_log_likelihood_zero_residual_huge_precision():
    # exp(-logvar / 2) overflows float32 at logvar = -200; a zero residual still contributes 0
    x = torch.zeros(2, 3)
    ll = gaussian_log_likelihood(x, x.clone(), torch.full((2, 3), -200.0))
    torch.testing.assert_close(ll, torch.full((2,), -1.5 * (math.log(2 * math.pi) - 200.0)))


def test_log_likelihood_bad_input():
    with pytest.raises(ValueError, match="x and mean"):
        gaussian_log_likelihood(torch.zeros(4, 2), torch.zeros(4, 3), 0.0)
    with pytest.raises(ValueError, match="x and mean"):
        gaussian_log_likelihood(torch.zeros(4, 2), torch.zeros(1, 2), 0.0)
    with pytest.raises(ValueError, match="logvar"):
        gaussian_log_likelihood(torch.zeros(4, 2), torch.zeros(4, 2), torch.zeros(3))
    with pytest.raises(ValueError, match="logvar"):
        gaussian_log_likelihood(torch.zeros(4, 2), torch.zeros(4, 2), torch.zeros(5, 4, 2))
    with pytest.raises(TypeError, match="x"):
        gaussian_log_likelihood(torch.zeros(4, 2, dtype=torch.long), torch.zeros(4, 2), 0.0)


# ------------------------------------------------------------------------------------------------
# the one diagonal Gaussian log-density the others call
# ------------------------------------------------------------------------------------------------
def test_diag_gaussian_log_prob_matches_scipy_in_both_parameterizations():
    from course_lib.gaussians import diag_gaussian_log_prob

    g = torch.Generator().manual_seed(0)
    x = torch.randn(6, 4, 3, generator=g, dtype=torch.float64)          # broadcast over (6, 4)
    mean = torch.randn(4, 3, generator=g, dtype=torch.float64)
    logvar = torch.randn(4, 3, generator=g, dtype=torch.float64)
    want = stats.norm.logpdf(x.numpy(), mean.numpy(), np.exp(0.5 * logvar.numpy())).sum(-1)
    np.testing.assert_allclose(diag_gaussian_log_prob(x, mean, logvar).numpy(), want, rtol=1e-12)
    np.testing.assert_allclose(diag_gaussian_log_prob(x, mean, var=logvar.exp()).numpy(), want, rtol=1e-12)
    # the fixed point of REFERENCES.md A9 and the standard normal
    one = torch.tensor([[0.3]], dtype=torch.float64)
    assert diag_gaussian_log_prob(one, 1.0, math.log(0.25)).item() == pytest.approx(-1.2057913526447273, abs=1e-15)
    np.testing.assert_allclose(diag_gaussian_log_prob(x, 0.0, logvar=0.0).numpy(),
                               stats.norm.logpdf(x.numpy()).sum(-1), rtol=1e-12)
    # a zero residual contributes nothing even where exp(-logvar) overflows (no 0 * inf = NaN)
    assert torch.isfinite(diag_gaussian_log_prob(torch.zeros(1, 2), torch.zeros(1, 2),
                                                 torch.full((1, 2), -200.0))).all()
    with pytest.raises(ValueError, match="exactly one"):
        diag_gaussian_log_prob(x, mean)
    with pytest.raises(ValueError, match="exactly one"):
        diag_gaussian_log_prob(x, mean, logvar, var=logvar.exp())


# ------------------------------------------------------------------------------------------------
# full covariances: covariance_sqrt, mean_field_gaussian, covariance_ellipse
# (references: scipy.linalg.sqrtm and scipy.linalg.cholesky, finite differences via gradcheck,
# numerical minimization of torch.distributions' KL with scipy.optimize)
# ------------------------------------------------------------------------------------------------
def _spd(seed, d=4, shift=0.1):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(d, d, generator=g, dtype=F64)
    return a @ a.T + shift * torch.eye(d, dtype=F64)


@pytest.mark.parametrize("seed", range(5))
def test_covariance_sqrt_matches_scipy_and_reproduces_cov(seed):
    from scipy import linalg

    from course_lib.gaussians import covariance_sqrt
    cov = _spd(seed)
    a_eig, a_chol = covariance_sqrt(cov, "eigh"), covariance_sqrt(cov, "cholesky")
    scale = cov.abs().max()
    for a in (a_eig, a_chol):                                  # A A^T = Sigma to float64 rounding
        assert (a @ a.T - cov).abs().max() < 1e-13 * scale
    np.testing.assert_allclose(a_eig.numpy(), np.real(linalg.sqrtm(cov.numpy())), rtol=0, atol=1e-10)
    np.testing.assert_allclose(a_chol.numpy(), linalg.cholesky(cov.numpy(), lower=True), rtol=0, atol=1e-12)
    assert torch.equal(a_eig, a_eig.T) and torch.equal(a_chol, torch.tril(a_chol))
    assert (torch.diagonal(a_chol) > 0).all()
    q = torch.linalg.solve_triangular(a_chol, a_eig, upper=False)   # A_eig = L Q with Q orthogonal
    assert torch.allclose(q @ q.T, torch.eye(4, dtype=F64), atol=1e-12)
    assert (a_eig - a_chol).abs().max() > 1e-3                    # but the two maps differ


def test_covariance_sqrt_batched_psd_and_float32():
    from course_lib.gaussians import covariance_sqrt
    covs = torch.stack([_spd(s, 3) for s in range(6)])
    for method in ("eigh", "cholesky"):
        a = covariance_sqrt(covs, method)
        assert a.shape == (6, 3, 3) and torch.allclose(a @ a.mT, covs, atol=1e-12)
    v = torch.tensor([[1.0], [2.0], [-1.0]], dtype=F64)
    rank_one = v @ v.T                                         # positive semi-definite, singular
    a = covariance_sqrt(rank_one, "eigh")
    assert torch.isfinite(a).all() and torch.allclose(a @ a.T, rank_one, atol=1e-7)
    a32 = covariance_sqrt(covs[0].float(), "eigh")
    assert a32.dtype == torch.float32 and torch.allclose(a32 @ a32.T, covs[0].float(), atol=1e-4)


def test_covariance_sqrt_gradient_matches_finite_differences_also_at_repeated_eigenvalues():
    from course_lib.gaussians import covariance_sqrt
    for cov in (_spd(7, 3), 2.0 * torch.eye(3, dtype=F64), torch.diag(torch.tensor([1.0, 1.0, 3.0], dtype=F64))):
        for method in ("eigh", "cholesky"):
            assert torch.autograd.gradcheck(lambda c, m=method: covariance_sqrt((c + c.T) / 2, m),
                                            (cov.clone().requires_grad_(),))
    # autograd through torch.linalg.eigh is NaN at Sigma = I; the closed-form backward is not
    eye = torch.eye(3, dtype=F64, requires_grad=True)
    covariance_sqrt(eye, "eigh").sum().backward()
    assert torch.allclose(eye.grad, torch.full((3, 3), 0.5, dtype=F64))  # d sqrt(S) = dS / 2 at S = I


def test_covariance_sqrt_bad_input():
    from course_lib.gaussians import covariance_sqrt
    with pytest.raises(ValueError, match="method"):
        covariance_sqrt(torch.eye(2, dtype=F64), "svd")
    with pytest.raises(ValueError, match="cov.*square"):
        covariance_sqrt(torch.ones(2, 3, dtype=F64))
    with pytest.raises(ValueError, match="cov.*symmetric"):
        covariance_sqrt(torch.tensor([[1.0, 0.5], [0.0, 1.0]], dtype=F64))
    with pytest.raises(ValueError, match="cov.*semi-definite"):
        covariance_sqrt(torch.diag(torch.tensor([1.0, -1.0], dtype=F64)), "eigh")
    with pytest.raises(ValueError, match="cov.*positive definite"):
        covariance_sqrt(torch.diag(torch.tensor([1.0, 0.0], dtype=F64)), "cholesky")
    with pytest.raises(TypeError, match="cov"):
        covariance_sqrt(torch.eye(2, dtype=torch.int64))
    with pytest.raises(ValueError, match="cov.*finite"):
        covariance_sqrt(torch.tensor([[1.0, float("nan")], [float("nan"), 1.0]], dtype=F64))


@pytest.mark.parametrize("seed", range(3))
def test_mean_field_gaussian_minimizes_reverse_kl(seed):
    from scipy import optimize
    from torch.distributions import MultivariateNormal

    from course_lib.gaussians import mean_field_gaussian
    cov = _spd(seed, 3, shift=0.5)
    mu = torch.randn(3, generator=torch.Generator().manual_seed(seed), dtype=F64)
    p = MultivariateNormal(mu, cov)

    def kl(params):
        m, lv = torch.tensor(params[:3], dtype=F64), torch.tensor(params[3:], dtype=F64)
        return kl_divergence(MultivariateNormal(m, torch.diag(lv.exp())), p).item()

    res = optimize.minimize(kl, np.zeros(6), method="BFGS", options={"gtol": 1e-10})
    m_mf, lv_mf = mean_field_gaussian(mu, cov)
    np.testing.assert_allclose(m_mf.numpy(), res.x[:3], atol=1e-5)
    np.testing.assert_allclose(lv_mf.numpy(), res.x[3:], atol=1e-5)
    assert kl(np.concatenate([m_mf.numpy(), lv_mf.numpy()])) <= res.fun + 1e-12
    assert (lv_mf.exp() <= torch.diagonal(cov) + 1e-12).all()      # it underestimates the marginals
    # 2-D: KL = -1/2 log(1 - rho^2)
    c2 = torch.tensor([[1.0, 0.6], [0.6, 2.0]], dtype=F64)
    m2, lv2 = mean_field_gaussian(torch.zeros(4, 2, dtype=F64), c2)
    assert m2.shape == lv2.shape == (4, 2)
    rho2 = 0.6**2 / 2.0
    got = kl_divergence(MultivariateNormal(m2[0], torch.diag(lv2[0].exp())), MultivariateNormal(m2[0], c2))
    assert abs(got.item() + 0.5 * math.log(1 - rho2)) < 1e-14


def test_mean_field_gaussian_bad_input():
    from course_lib.gaussians import mean_field_gaussian
    with pytest.raises(ValueError, match="mean"):
        mean_field_gaussian(torch.zeros(3, dtype=F64), torch.eye(2, dtype=F64))
    with pytest.raises(ValueError, match="cov.*positive definite"):
        mean_field_gaussian(torch.zeros(2, dtype=F64), torch.zeros(2, 2, dtype=F64))


def test_covariance_ellipse_is_the_mahalanobis_contour_for_both_methods():
    from course_lib.gaussians import covariance_ellipse
    mu, cov = torch.tensor([0.5, -1.0], dtype=F64), torch.tensor([[2.0, -0.9], [-0.9, 0.8]], dtype=F64)
    for method in ("eigh", "cholesky"):
        pts = covariance_ellipse(mu, cov, radius=2.0, num_points=50, method=method)
        assert pts.shape == (51, 2) and torch.allclose(pts[0], pts[-1])
        r = pts - mu
        maha = (r * torch.linalg.solve(cov, r.T).T).sum(1)
        assert torch.allclose(maha, torch.full_like(maha, 4.0), atol=1e-12)
    with pytest.raises(ValueError, match="mean"):
        covariance_ellipse(torch.zeros(3, dtype=F64), cov)
    with pytest.raises(ValueError, match="radius"):
        covariance_ellipse(mu, cov, radius=0.0)
    with pytest.raises(ValueError, match="num_points"):
        covariance_ellipse(mu, cov, num_points=2)
