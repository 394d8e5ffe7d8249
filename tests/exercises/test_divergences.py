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
