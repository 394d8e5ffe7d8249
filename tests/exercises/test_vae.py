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

def test_gaussian_elbo_reference_matches_scipy():
    for (x, x_hat, mean, logvar, s), _ in grading.cases("gaussian_elbo"):
        got = ex.gaussian_elbo_reference(x, x_hat, mean, logvar, s)
        rec = norm.logpdf(x.numpy(), x_hat.numpy(), s).sum(1)
        var = np.exp(logvar.numpy())
        kl = 0.5 * (mean.numpy() ** 2 + var - 1 - logvar.numpy()).sum(1)
        np.testing.assert_allclose(got.numpy(), rec - kl, rtol=1e-10)


def _iwae_numpy(x, mean, logvar, weight, bias, s, eps):
    """The IWAE bound in NumPy/SciPy, written out independently of the reference."""
    x, mean, logvar, weight, bias, eps = (t.numpy() for t in (x, mean, logvar, weight, bias, eps))
    std = np.exp(logvar / 2)
    z = mean + std * eps                                            # (K, N, L)
    log_w = (norm.logpdf(x, np.einsum("knl,dl->knd", z, weight) + bias, s).sum(-1)
             + norm.logpdf(z).sum(-1) - norm.logpdf(z, mean, std).sum(-1))
    return logsumexp(log_w, axis=0) - math.log(eps.shape[0])


def test_iwae_with_encoder_reference_matches_scipy():
    ks = set()
    for args, _ in grading.cases("iwae_with_encoder", num_cases=10):
        got = ex.iwae_with_encoder_reference(*args)
        assert got.shape == (args[0].shape[0],) and torch.isfinite(got).all()
        np.testing.assert_allclose(got.numpy(), _iwae_numpy(*args), rtol=1e-9, atol=1e-9)
        assert got[2] < -1e4                                        # the underflow edge is there
        ks.add(args[-1].shape[0])
    assert ks == {1, 2, 5, 20, 50}


def test_iwae_with_encoder_reference_is_exact_with_the_exact_posterior():
    """With W of orthogonal columns the exact posterior is diagonal, every weight equals p(x), and
    L_K = log p(x) for any noise and any K: an oracle independent of the formula (Woodbury)."""
    from course_lib.vae import LinearGaussianModel

    g = torch.Generator().manual_seed(7)
    q, _ = torch.linalg.qr(torch.randn(6, 3, generator=g, dtype=torch.float64))
    model = LinearGaussianModel(q * torch.tensor([2.0, 1.0, 0.4], dtype=torch.float64),
                                torch.randn(6, generator=g, dtype=torch.float64), noise_std=0.7)
    x = model.sample(5, generator=g)
    mean, logvar = model.encode(x)
    for k in (1, 3, 40):
        eps = 3 * torch.randn(k, 5, 3, generator=g, dtype=torch.float64)
        got = ex.iwae_with_encoder_reference(x, mean, logvar, model.weight, model.bias, 0.7, eps)
        torch.testing.assert_close(got, model.log_marginal(x), rtol=0, atol=1e-10)


def test_iwae_with_encoder_reference_rises_toward_log_p():
    """The prior as proposal on a non-orthogonal model: the bound averaged over repeats is below
    log p(x) at K = 1 and rises toward it at K = 500 (within 5 standard errors)."""
    from course_lib.vae import LinearGaussianModel

    g = torch.Generator().manual_seed(3)
    model = LinearGaussianModel(torch.randn(4, 2, generator=g, dtype=torch.float64),
                                torch.zeros(4, dtype=torch.float64), noise_std=0.5)
    x = model.sample(1, generator=g).expand(200, -1)
    prior = torch.zeros(200, 2, dtype=torch.float64)
    log_p = model.log_marginal(x[:1]).item()
    est = {}
    for k in (1, 500):
        eps = torch.randn(k, 200, 2, generator=g, dtype=torch.float64)
        b = ex.iwae_with_encoder_reference(x, prior, prior, model.weight, model.bias, 0.5, eps)
        est[k] = (b.mean().item(), b.std().item() / math.sqrt(200))
    assert est[1][0] < log_p - 5 * est[1][1]
    assert abs(est[500][0] - log_p) < 5 * est[500][1] + 0.05 * (log_p - est[1][0])


# --- wrong implementations fail, with readable messages ---------------------------------------

def test_gaussian_elbo_without_normalizing_constant_fails():
    def l2_only(x, x_hat, mean, logvar, decoder_std):
        kl = 0.5 * (mean**2 + logvar.exp() - 1 - logvar).sum(1)
        return -((x - x_hat) ** 2).sum(1) / (2 * decoder_std**2) - kl

    with pytest.raises(AssertionError):
        grading.check("gaussian_elbo", l2_only, verbose=False)


def _iwae_student(x, mean, logvar, weight, bias, noise_std, eps, *, std_power=0.5, q_sign=1.0,
                  reduce="logsumexp"):
    """A student-style solution with switchable mistakes."""
    z = mean + torch.exp(std_power * logvar) * eps
    c = 0.5 * math.log(2 * math.pi)
    log_q = (-0.5 * eps**2 - 0.5 * logvar - c).sum(-1)
    log_prior = (-0.5 * z**2 - c).sum(-1)
    r = x - (z @ weight.T + bias)
    log_lik = (-0.5 * r**2 / noise_std**2 - math.log(noise_std) - c).sum(-1)
    log_w = log_lik + log_prior - q_sign * log_q
    if reduce == "naive":
        return torch.log(torch.exp(log_w).mean(0))
    if reduce == "mean":                       # the K-sample ELBO, not the IWAE bound
        return log_w.mean(0)
    return torch.logsumexp(log_w, 0) - math.log(eps.shape[0])


def test_iwae_with_encoder_student_style_solution_passes():
    grading.check("iwae_with_encoder", _iwae_student, num_cases=10, verbose=False)


@pytest.mark.parametrize("mistake, match", [
    (dict(reduce="naive"), "(?i)inf|non-finite"),
    (dict(reduce="mean"), "max abs difference"),
    (dict(std_power=1.0), "max abs difference"),        # exp(logvar) used as the std
    (dict(q_sign=-1.0), "max abs difference"),          # + log q instead of - log q
])
def test_iwae_with_encoder_mistakes_fail(mistake, match):
    def wrong(*args):
        return _iwae_student(*args, **mistake)

    with pytest.raises(AssertionError, match=match):
        grading.check("iwae_with_encoder", wrong, verbose=False)
