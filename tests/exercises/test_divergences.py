"""Exercises of notebook 00 (course_lib/exercises/divergences.py): references agree with independent
oracles (torch.distributions, scipy), pass their own check, and wrong or naive implementations fail
with a readable message."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.spatial.distance import jensenshannon
from scipy.special import logsumexp
from scipy.stats import norm

from course_lib import grading
from course_lib.exercises import divergences as ex

# --- references against independent oracles --------------------------------------------------------

def test_kl_reference_matches_torch_distributions():
    for (mu1, s1, mu2, s2), _ in grading.cases("kl_univariate_gaussians"):
        got = ex.kl_univariate_gaussians_reference(mu1, s1, mu2, s2)
        want = torch.distributions.kl_divergence(torch.distributions.Normal(mu1, s1),
                                                 torch.distributions.Normal(mu2, s2))
        assert got.shape == mu1.shape and got.dtype == torch.float64
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-10)
        assert (got[:4] == 0).all()  # the identical pairs


def test_js_reference_matches_scipy_and_edges():
    for (p, q), _ in grading.cases("js_divergence"):
        got = ex.js_divergence_reference(p, q)
        assert got.shape == p.shape[:-1] and torch.isfinite(got).all()
        want = jensenshannon(p.numpy(), q.numpy(), axis=-1) ** 2   # natural log; returns sqrt(JS)
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-7, atol=1e-12)
        assert (p == 0).any() and (q == 0).any()                     # exact zeros are exercised
        assert abs(got[0].item()) < 1e-15                              # identical rows
        assert abs(got[1].item() - math.log(2)) < 1e-12                # disjoint supports


def test_mixture_reference_matches_scipy_and_is_finite_far_away():
    for (x, means, stds, weights), _ in grading.cases("mixture_log_prob"):
        got = ex.mixture_log_prob_reference(x, means, stds, weights)
        comps = norm.logpdf(x.numpy()[:, None], means.numpy()[None], stds.numpy()[None])
        want = logsumexp(comps, b=weights.numpy()[None], axis=1)
        assert got.shape == x.shape and torch.isfinite(got).all()
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-10)
        naive = torch.log((weights * torch.exp(torch.distributions.Normal(means, stds)
                                                .log_prob(x[:, None]))).sum(1))
        assert torch.isinf(naive).any()                                # the far points underflow


# --- wrong implementations fail, with readable messages ----------------------------------------------

def test_kl_with_variance_for_std_fails():
    def wrong(mu1, sigma1, mu2, sigma2):  # treats sigma as a variance
        return 0.5 * torch.log(sigma2 / sigma1) + (sigma1 + (mu1 - mu2) ** 2) / (2 * sigma2) - 0.5

    with pytest.raises(AssertionError, match="max abs difference|differ"):
        grading.check("kl_univariate_gaussians", wrong, verbose=False)


def test_kl_with_swapped_arguments_fails():
    def swapped(mu1, sigma1, mu2, sigma2):
        return ex.kl_univariate_gaussians_reference(mu2, sigma2, mu1, sigma1)

    with pytest.raises(AssertionError):
        grading.check("kl_univariate_gaussians", swapped, verbose=False)


def test_js_naive_zero_log_zero_fails_with_nan_message():
    def naive(p, q):
        m = 0.5 * (p + q)
        return 0.5 * (p * torch.log(p / m)).sum(-1) + 0.5 * (q * torch.log(q / m)).sum(-1)

    with pytest.raises(AssertionError, match="(?i)nan|non-finite"):
        grading.check("js_divergence", naive, verbose=False)


def test_js_with_log2_fails():
    def bits(p, q):
        return ex.js_divergence_reference(p, q) / math.log(2)

    with pytest.raises(AssertionError):
        grading.check("js_divergence", bits, verbose=False)


def test_mixture_naive_log_sum_exp_fails_with_inf_message():
    def naive(x, means, stds, weights):
        dens = weights * torch.exp(-0.5 * ((x[:, None] - means) / stds) ** 2) / (stds * math.sqrt(2 * math.pi))
        return torch.log(dens.sum(1))

    with pytest.raises(AssertionError, match="(?i)inf|non-finite"):
        grading.check("mixture_log_prob", naive, verbose=False)


def test_mixture_ignoring_weights_fails():
    def unweighted(x, means, stds, weights):
        return ex.mixture_log_prob_reference(x, means, stds, torch.full_like(weights, 1 / len(weights)))

    with pytest.raises(AssertionError):
        grading.check("mixture_log_prob", unweighted, verbose=False)


# --- mixture_kl_monte_carlo (multi-step) --------------------------------------------------------

def _mixture_kl_numpy(mp, sp, wp, mq, sq, wq, u, eps):
    """The estimator in NumPy/SciPy, written out independently of the reference."""
    mp, sp, wp, mq, sq, wq, u, eps = (t.numpy() for t in (mp, sp, wp, mq, sq, wq, u, eps))
    k = np.minimum(np.searchsorted(np.cumsum(wp), u, side="right"), len(wp) - 1)
    x = mp[k] + sp[k] * eps
    log_p = logsumexp(np.log(wp) + norm.logpdf(x[:, None], mp, sp), axis=1)
    log_q = logsumexp(np.log(wq) + norm.logpdf(x[:, None], mq, sq), axis=1)
    r = log_p - log_q
    return r.mean(), r.std(ddof=1) / math.sqrt(len(r))


def test_mixture_kl_reference_matches_scipy_and_edges():
    kinds = set()
    for case, (args, _) in enumerate(grading.cases("mixture_kl_monte_carlo", num_cases=10)):
        est, se = ex.mixture_kl_monte_carlo_reference(*args)
        assert est.shape == () and se.shape == () and est.dtype == torch.float64
        want = _mixture_kl_numpy(*args)
        np.testing.assert_allclose([est.item(), se.item()], want, rtol=1e-10)
        kind = case % 5
        kinds.add(kind)
        if kind == 1:
            assert est.item() == 0.0 and se.item() == 0.0               # q = p
        if kind == 2:
            assert est.item() > 1e4                                      # log q(x) ~ -1e4 and below
    assert kinds == set(range(5))


def test_mixture_kl_reference_agrees_with_closed_form_and_quadrature():
    """Single Gaussians: within 5 standard errors of the closed-form KL (torch.distributions); a
    bimodal p against one Gaussian: within 5 standard errors of trapezoid quadrature."""
    g = torch.Generator().manual_seed(11)
    f64 = dict(dtype=torch.float64)
    n = 20_000
    one = lambda *v: torch.tensor(v, **f64)  # noqa: E731
    u, eps = torch.rand(n, generator=g, **f64), torch.randn(n, generator=g, **f64)
    est, se = ex.mixture_kl_monte_carlo_reference(one(0.3), one(0.7), one(1.0), one(-1.0), one(1.5),
                                                  one(1.0), u, eps)
    want = torch.distributions.kl_divergence(torch.distributions.Normal(0.3, 0.7),
                                             torch.distributions.Normal(-1.0, 1.5)).item()
    assert abs(est.item() - want) < 5 * se.item()
    mp, sp, wp = one(-2.0, 2.0), one(1.0, 0.5), one(0.3, 0.7)
    mq, sq, wq = one(0.5), one(2.0), one(1.0)
    est, se = ex.mixture_kl_monte_carlo_reference(mp, sp, wp, mq, sq, wq, u, eps)
    t = torch.linspace(-20, 20, 40_001, **f64)
    log_p = torch.logsumexp(torch.log(wp) + torch.distributions.Normal(mp, sp).log_prob(t[:, None]), 1)
    log_q = torch.distributions.Normal(0.5, 2.0).log_prob(t)
    quad = torch.trapezoid(log_p.exp() * (log_p - log_q), t).item()
    assert abs(est.item() - quad) < 5 * se.item()


def _mixture_kl_student(mp, sp, wp, mq, sq, wq, u, eps, *, flip=False, naive=False, ddof=1):
    """A student-style solution with switchable mistakes."""
    cdf = torch.cumsum(wp, 0)
    k = (u[:, None] >= cdf[None, :]).sum(1).clamp(max=len(wp) - 1)
    x = mp[k] + sp[k] * eps

    def log_mix(m, s, w):
        a = torch.log(w) - 0.5 * ((x[:, None] - m) / s) ** 2 - torch.log(s) - 0.5 * math.log(2 * math.pi)
        return torch.log(torch.exp(a).sum(1)) if naive else torch.logsumexp(a, 1)

    r = log_mix(mp, sp, wp) - log_mix(mq, sq, wq)
    if flip:
        r = -r
    n = len(r)
    return r.mean(), torch.sqrt(((r - r.mean()) ** 2).sum() / (n - ddof)) / math.sqrt(n)


def test_mixture_kl_student_style_solution_passes():
    grading.check("mixture_kl_monte_carlo", _mixture_kl_student, num_cases=10, verbose=False)


@pytest.mark.parametrize("mistake, match", [
    (dict(flip=True), "max abs difference"),                  # log q - log p: the sign flipped
    (dict(naive=True), "(?i)inf|non-finite"),                 # log(sum(exp)) underflows
    (dict(ddof=0), "max abs difference"),                     # population std: se too small
])
def test_mixture_kl_mistakes_fail(mistake, match):
    def wrong(*args):
        return _mixture_kl_student(*args, **mistake)

    with pytest.raises(AssertionError, match=match):
        grading.check("mixture_kl_monte_carlo", wrong, verbose=False)
