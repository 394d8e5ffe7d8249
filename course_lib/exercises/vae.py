"""Exercises of notebook 02, "VAE, ELBO and the reparameterization trick".

Each exercise is checked against a ``course_lib`` reference on randomized float64 inputs that
include the edges a careless implementation gets wrong: very small and very large variances
(``exp(logvar)`` vs ``exp(logvar / 2)``), posteriors equal to the prior (KL = 0), and importance
log-weights around -1e5, where ``log(mean(exp(log_w)))`` underflows to ``-inf`` unless it is
computed with log-sum-exp.

==============================  ==================================================================
exercise                        reference
==============================  ==================================================================
``gaussian_elbo``               ``gaussian_log_likelihood(x, x_hat, 2 log sigma) - kl_standard_normal``
``iwae_with_encoder``           ``logsumexp_k(log w_k) - log K``, w_k from a reparameterized sample
                                of the encoder (multi-step; ``torch.distributions`` densities)
==============================  ==================================================================
"""

from __future__ import annotations

import math

import torch

from course_lib.exercises import Exercise, register

__all__ = ["gaussian_elbo_reference", "iwae_with_encoder_reference"]

_F64 = torch.float64


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
    mean[0], logvar[0] = 0.0, 0.0                                        # q = prior: KL = 0
    logvar[1] = torch.tensor([-20.0, 4.0], dtype=_F64)                   # exp(logvar) vs exp(logvar / 2)
    return (x, x_hat, mean, logvar, decoder_std), {}


register(Exercise(
    name="gaussian_elbo",
    reference=gaussian_elbo_reference,
    make_inputs=_elbo_inputs,
    description="one-sample ELBO: Gaussian log-likelihood (with its normalizing constant) minus "
                "the KL to N(0, I), x (16, 10), mean/logvar (16, 2) with q = prior and logvar "
                "from -20 to 4, decoder_std a float -> (16,)",
    num_cases=5, rtol=1e-8, atol=1e-9,
))


# ------------------------------------------------------------------------------------------------
# IWAE bound of a linear-Gaussian decoder with a diagonal Gaussian encoder (multi-step)
# ------------------------------------------------------------------------------------------------
def iwae_with_encoder_reference(x: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor,
                                weight: torch.Tensor, bias: torch.Tensor, noise_std: float,
                                eps: torch.Tensor) -> torch.Tensor:
    """Importance-weighted bound L_K ``(N,)`` in nats, with the noise ``eps`` ``(K, N, L)`` given.

    Proposal q(z | x) = N(mean, diag exp(logvar)), ``mean, logvar`` ``(N, L)``; prior N(0, I);
    decoder p(x | z) = N(x; z W^T + b, noise_std^2 I), ``x`` ``(N, D)``, ``weight`` ``(D, L)``,
    ``bias`` ``(D,)``. With z_k = mean + exp(logvar / 2) * eps[k] (Kingma & Welling 2014, eq. 10)
    and log w_k = log p(x | z_k) + log p(z_k) - log q(z_k | x),
    L_K = log (1/K) sum_k w_k (Burda et al. 2016, eq. 8), computed by log-sum-exp. Densities by
    ``torch.distributions.Normal``.
    """
    normal = torch.distributions.Normal
    std = torch.exp(0.5 * logvar)
    z = mean + std * eps                                                      # (K, N, L)
    log_q = normal(mean, std).log_prob(z).sum(-1)                             # (K, N)
    log_prior = normal(torch.zeros_like(z), torch.ones_like(z)).log_prob(z).sum(-1)
    x_mean = z @ weight.mT + bias                                             # (K, N, D)
    log_lik = normal(x_mean, noise_std * torch.ones_like(x_mean)).log_prob(x).sum(-1)
    log_w = log_lik + log_prior - log_q
    return torch.logsumexp(log_w, 0) - math.log(eps.shape[0])


_IWAE_KS = (1, 5, 50, 2, 20)


def _iwae_inputs(generator: torch.Generator):
    # check() seeds case i with seed + i: cycle through K, the edge K = 1 included.
    k = _IWAE_KS[generator.initial_seed() % len(_IWAE_KS)]
    n, d, latent = 8, 5, 2
    kw = dict(generator=generator, dtype=_F64)
    weight = torch.randn(d, latent, **kw)
    bias = torch.randn(d, **kw)
    noise_std = float(torch.empty(1, dtype=_F64).uniform_(0.3, 1.5, generator=generator))
    x = torch.randn(n, d, **kw) * 2
    mean = torch.randn(n, latent, **kw)
    logvar = torch.empty(n, latent, dtype=_F64).uniform_(-5.0, 1.5, generator=generator)
    logvar[0] = torch.tensor([-20.0, 3.0], dtype=_F64)                 # nearly deterministic / wide
    mean[1], logvar[1] = 0.0, 0.0                                      # the prior as proposal
    x[2] = 300.0                                                       # log-weights near -1e5:
    eps = torch.randn(k, n, latent, **kw)                              # exp() underflows to 0
    return (x, mean, logvar, weight, bias, noise_std, eps), {}


register(Exercise(
    name="iwae_with_encoder",
    reference=iwae_with_encoder_reference,
    make_inputs=_iwae_inputs,
    description="IWAE bound L_K (N,) of a linear-Gaussian decoder, x (8, 5), mean/logvar (8, 2), "
                "eps (K, 8, 2) with K in {1, 2, 5, 20, 50}, logvar from -20 to 3, and an x whose "
                "log-weights are near -1e5 (needs log-sum-exp)",
    num_cases=5, rtol=1e-8, atol=1e-7,
))
