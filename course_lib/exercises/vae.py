"""Exercises of notebook 02, "VAE, ELBO and the reparameterization trick".

Each exercise is checked against a ``course_lib`` reference on randomized float64 inputs that
include the edges a careless implementation gets wrong: very small and very large variances
(``exp(logvar)`` vs ``exp(logvar / 2)``), posteriors equal to the prior (KL = 0), and importance
log-weights around -1e4, where ``log(mean(exp(log_w)))`` underflows to ``-inf`` unless it is
computed with log-sum-exp.

==============================  ==================================================================
exercise                        reference
==============================  ==================================================================
``reparameterize``              ``course_lib.vae.reparameterize`` with the noise ``eps`` given
``kl_standard_normal``          ``course_lib.gaussians.kl_standard_normal``
``gaussian_elbo``               ``gaussian_log_likelihood(x, x_hat, 2 log sigma) - kl_standard_normal``
``iwae_from_log_weights``       ``logsumexp(log_w, 0) - log K``, as in ``course_lib.vae.iwae_bound``
==============================  ==================================================================
"""

from __future__ import annotations

import math

import torch

from course_lib.exercises import Exercise, register

__all__ = ["reparameterize_reference", "kl_standard_normal_reference", "gaussian_elbo_reference",
           "iwae_from_log_weights_reference"]

_F64 = torch.float64


# ------------------------------------------------------------------------------------------------
# reparameterize
# ------------------------------------------------------------------------------------------------
def reparameterize_reference(mean: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """z = mean + exp(logvar / 2) * eps, all ``(N, K)`` (Kingma & Welling 2014, eq. 10)."""
    return mean + torch.exp(0.5 * logvar) * eps


def _reparam_inputs(generator: torch.Generator):
    n, k = 32, 3
    mean = 2 * torch.randn(n, k, generator=generator, dtype=_F64)
    logvar = torch.empty(n, k, dtype=_F64).uniform_(-6.0, 4.0, generator=generator)
    logvar[:2] = torch.tensor([[-20.0, 0.0, 10.0], [8.0, -12.0, 0.5]], dtype=_F64)  # extremes
    eps = torch.randn(n, k, generator=generator, dtype=_F64)
    return (mean, logvar, eps), {}


register(Exercise(
    name="reparameterize",
    reference=reparameterize_reference,
    make_inputs=_reparam_inputs,
    description="z = mean + sigma * eps on (32, 3) float64 tensors, logvar from -20 to 10",
    num_cases=5, rtol=1e-9, atol=1e-12,
))


# ------------------------------------------------------------------------------------------------
# KL(q || N(0, I))
# ------------------------------------------------------------------------------------------------
def kl_standard_normal_reference(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, diag exp(logvar)) || N(0, I)) = 1/2 sum_j (mean_j^2 + exp(logvar_j) - 1 - logvar_j).

    ``(N, K) -> (N,)`` nats (Kingma & Welling 2014, Appendix B); ``course_lib.gaussians``.
    """
    from course_lib.gaussians import kl_standard_normal

    return kl_standard_normal(mean, logvar)


def _kl_inputs(generator: torch.Generator):
    n, k = 32, 4
    mean = 1.5 * torch.randn(n, k, generator=generator, dtype=_F64)
    logvar = torch.empty(n, k, dtype=_F64).uniform_(-8.0, 3.0, generator=generator)
    mean[:3], logvar[:3] = 0.0, 0.0                 # q = prior: KL = 0
    logvar[3] = torch.tensor([-25.0, -10.0, 5.0, 0.0], dtype=_F64)  # nearly deterministic / wide
    return (mean, logvar), {}


register(Exercise(
    name="kl_standard_normal",
    reference=kl_standard_normal_reference,
    make_inputs=_kl_inputs,
    description="KL(q(z|x) || N(0, I)) summed over latent dims: (32, 4) -> (32,) float64, "
                "including q = prior (KL = 0) and logvar down to -25",
    num_cases=5, rtol=1e-8, atol=1e-10,
))


# ------------------------------------------------------------------------------------------------
# single-sample ELBO with a Gaussian decoder
# ------------------------------------------------------------------------------------------------
def gaussian_elbo_reference(x: torch.Tensor, x_hat: torch.Tensor, mean: torch.Tensor,
                            logvar: torch.Tensor, decoder_std: float) -> torch.Tensor:
    """One-sample ELBO with a Gaussian decoder N(x; x_hat, decoder_std^2 I), ``(N,)`` nats.

    log N(x; x_hat, s^2 I) - KL(q || N(0, I))
      = -||x - x_hat||^2 / (2 s^2) - D/2 log(2 pi s^2) - 1/2 sum_j (mu_j^2 + sigma_j^2 - 1 - log sigma_j^2).
    """
    from course_lib.gaussians import gaussian_log_likelihood, kl_standard_normal

    rec = gaussian_log_likelihood(x, x_hat, 2.0 * math.log(decoder_std))
    return rec - kl_standard_normal(mean, logvar)


def _elbo_inputs(generator: torch.Generator):
    n, d, k = 16, 10, 2
    x = torch.rand(n, d, generator=generator, dtype=_F64) * 2 - 1
    x_hat = x + 0.3 * torch.randn(n, d, generator=generator, dtype=_F64)
    mean = torch.randn(n, k, generator=generator, dtype=_F64)
    logvar = torch.empty(n, k, dtype=_F64).uniform_(-4.0, 1.0, generator=generator)
    decoder_std = float(torch.empty(1, dtype=_F64).uniform_(0.1, 2.0, generator=generator))
    return (x, x_hat, mean, logvar, decoder_std), {}


register(Exercise(
    name="gaussian_elbo",
    reference=gaussian_elbo_reference,
    make_inputs=_elbo_inputs,
    description="one-sample ELBO: Gaussian log-likelihood (with its normalizing constant) minus "
                "the KL, x (16, 10), mean/logvar (16, 2), decoder_std a float -> (16,)",
    num_cases=5, rtol=1e-8, atol=1e-9,
))


# ------------------------------------------------------------------------------------------------
# IWAE bound from log-weights
# ------------------------------------------------------------------------------------------------
def iwae_from_log_weights_reference(log_w: torch.Tensor) -> torch.Tensor:
    """L_K = log (1/K) sum_k exp(log_w[k]) over the first axis, ``(K, N) -> (N,)``, stably.

    Burda et al. (2016), eq. (8), computed as ``logsumexp(log_w, 0) - log K``.
    """
    return torch.logsumexp(log_w, 0) - math.log(log_w.shape[0])


def _iwae_inputs(generator: torch.Generator):
    k, n = 50, 8
    log_w = 3 * torch.randn(k, n, generator=generator, dtype=_F64)
    log_w[:, :3] -= torch.tensor([1e4, 800.0, 2e3], dtype=_F64)  # exp underflows to 0 here
    log_w[:, 3] += 750.0                                            # and overflows to inf here
    return (log_w,), {}


register(Exercise(
    name="iwae_from_log_weights",
    reference=iwae_from_log_weights_reference,
    make_inputs=_iwae_inputs,
    description="log-mean-exp over K = 50 importance samples, (50, 8) -> (8,) float64, with "
                "log-weights near -1e4 and +750 (needs the max-subtraction trick)",
    num_cases=5, rtol=1e-10, atol=1e-9,
))
