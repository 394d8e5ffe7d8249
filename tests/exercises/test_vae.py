"""Exercises of notebook 02 (course_lib/exercises/vae.py): references agree with independent oracles
(torch.distributions, NumPy/SciPy, course_lib.vae), pass their own check, stubs fail as "not
attempted", and typical wrong implementations fail with a readable message."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.special import logsumexp
from scipy.stats import norm

from course_lib import grading
from course_lib.exercises import vae as ex

# --- references against independent oracles ---------------------------------------------------

def test_reparameterize_reference_matches_course_lib_with_same_noise():
    from course_lib.vae import reparameterize

    for (mean, logvar, eps), _ in grading.cases("reparameterize"):
        got = ex.reparameterize_reference(mean, logvar, eps)
        # course_lib draws eps from the generator; reproduce the same eps
        g = torch.Generator().manual_seed(0)
        ref_eps = torch.randn(mean.shape, generator=g, dtype=mean.dtype)
        ref = reparameterize(mean, logvar, torch.Generator().manual_seed(0))
        torch.testing.assert_close(ex.reparameterize_reference(mean, logvar, ref_eps), ref)
        # and against numpy: mean + std * eps
        np.testing.assert_allclose(got.numpy(), mean.numpy() + np.sqrt(np.exp(logvar.numpy())) * eps.numpy(),
                                   rtol=1e-12)


def test_kl_reference_matches_torch_distributions():
    for (mean, logvar), _ in grading.cases("kl_standard_normal"):
        got = ex.kl_standard_normal_reference(mean, logvar)
        q = torch.distributions.Normal(mean, torch.exp(0.5 * logvar))
        p = torch.distributions.Normal(torch.zeros_like(mean), torch.ones_like(mean))
        want = torch.distributions.kl_divergence(q, p).sum(1)
        assert got.shape == (mean.shape[0],) and got.dtype == torch.float64
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-10)
        assert (got[:3] == 0).all()


def test_gaussian_elbo_reference_matches_scipy():
    for (x, x_hat, mean, logvar, s), _ in grading.cases("gaussian_elbo"):
        got = ex.gaussian_elbo_reference(x, x_hat, mean, logvar, s)
        rec = norm.logpdf(x.numpy(), x_hat.numpy(), s).sum(1)
        var = np.exp(logvar.numpy())
        kl = 0.5 * (mean.numpy() ** 2 + var - 1 - logvar.numpy()).sum(1)
        np.testing.assert_allclose(got.numpy(), rec - kl, rtol=1e-10)


def test_iwae_reference_matches_scipy_and_course_lib_definition():
    for (log_w,), _ in grading.cases("iwae_from_log_weights"):
        got = ex.iwae_from_log_weights_reference(log_w)
        want = logsumexp(log_w.numpy(), axis=0) - math.log(log_w.shape[0])
        assert torch.isfinite(got).all()
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)
        naive = torch.log(torch.exp(log_w).mean(0))
        assert not torch.isfinite(naive).all()  # the edges are exercised


# --- wrong implementations fail, with readable messages ---------------------------------------

def test_reparameterize_with_variance_instead_of_std_fails():
    def wrong(mean, logvar, eps):
        return mean + torch.exp(logvar) * eps

    with pytest.raises(AssertionError, match="max abs difference|differ"):
        grading.check("reparameterize", wrong, verbose=False)


def test_kl_without_sum_or_with_wrong_sign_fails():
    def per_dim(mean, logvar):
        return 0.5 * (mean**2 + logvar.exp() - 1 - logvar)

    def wrong_sign(mean, logvar):
        return 0.5 * (mean**2 + logvar.exp() - 1 + logvar).sum(1)

    with pytest.raises(AssertionError, match="shape"):
        grading.check("kl_standard_normal", per_dim, verbose=False)
    with pytest.raises(AssertionError):
        grading.check("kl_standard_normal", wrong_sign, verbose=False)


def test_gaussian_elbo_without_normalizing_constant_fails():
    def l2_only(x, x_hat, mean, logvar, decoder_std):
        kl = 0.5 * (mean**2 + logvar.exp() - 1 - logvar).sum(1)
        return -((x - x_hat) ** 2).sum(1) / (2 * decoder_std**2) - kl

    with pytest.raises(AssertionError):
        grading.check("gaussian_elbo", l2_only, verbose=False)


def test_iwae_naive_log_mean_exp_fails_with_inf_message():
    def naive(log_w):
        return torch.log(torch.exp(log_w).mean(0))

    with pytest.raises(AssertionError, match="(?i)inf|non-finite"):
        grading.check("iwae_from_log_weights", naive, verbose=False)


def test_iwae_averaging_log_weights_fails():
    def elbo_not_iwae(log_w):  # that is the K-sample ELBO, not the IWAE bound
        return log_w.mean(0)

    with pytest.raises(AssertionError):
        grading.check("iwae_from_log_weights", elbo_not_iwae, verbose=False)
