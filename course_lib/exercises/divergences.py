"""Exercises of notebook 00, "Generative modeling and divergences".

Each exercise is checked against a ``course_lib`` reference on randomized float64 inputs that
include the edges a careless implementation gets wrong: tiny standard deviations, probabilities
that are exactly zero (``0 log 0 = 0``) or near zero, disjoint supports, and points so far from every
mixture component that ``log(sum(exp(...)))`` underflows to ``-inf`` unless it is computed with
log-sum-exp.

==============================  ==================================================================
exercise                        reference
==============================  ==================================================================
``kl_univariate_gaussians``     ``course_lib.gaussians.gaussian_kl`` with ``logvar = 2 log sigma``
``js_divergence``               ``course_lib.metrics.js_divergence_discrete``
``mixture_log_prob``            ``course_lib.toy.GaussianMixture(...).log_prob`` in 1-D
``mixture_kl_monte_carlo``      Monte Carlo KL(p || q) between 1-D mixtures, ancestral sampling
                                from given noise (multi-step)
==============================  ==================================================================
"""

from __future__ import annotations

import math

import torch

from course_lib.exercises import Exercise, register
from course_lib.gaussians import gaussian_kl
from course_lib.metrics import js_divergence_discrete
from course_lib.toy import GaussianMixture

__all__ = ["kl_univariate_gaussians_reference", "js_divergence_reference",
           "mixture_log_prob_reference", "mixture_kl_monte_carlo_reference"]


# ------------------------------------------------------------------------------------------------
# KL divergence between two univariate Gaussians
# ------------------------------------------------------------------------------------------------
def kl_univariate_gaussians_reference(mu1: torch.Tensor, sigma1: torch.Tensor,
                                      mu2: torch.Tensor, sigma2: torch.Tensor) -> torch.Tensor:
    """KL(N(mu1, sigma1^2) || N(mu2, sigma2^2)), elementwise, in nats.

    KL = log(sigma2 / sigma1) + (sigma1^2 + (mu1 - mu2)^2) / (2 sigma2^2) - 1/2,
    computed by ``course_lib.gaussians.gaussian_kl`` with ``logvar = 2 log sigma``.
    """
    return gaussian_kl(mu1, 2 * torch.log(sigma1), mu2, 2 * torch.log(sigma2))


def _kl_inputs(generator: torch.Generator):
    n = 64
    kw = dict(generator=generator, dtype=torch.float64)
    mu1 = 3 * torch.randn(n, **kw)
    mu2 = 3 * torch.randn(n, **kw)
    sigma1 = torch.exp(torch.empty(n, dtype=torch.float64).uniform_(-3.0, 2.0, generator=generator))
    sigma2 = torch.exp(torch.empty(n, dtype=torch.float64).uniform_(-3.0, 2.0, generator=generator))
    # edges: identical distributions (KL = 0), tiny standard deviations on either side
    mu2[:4], sigma2[:4] = mu1[:4], sigma1[:4]
    sigma1[4:8] = torch.tensor([1e-4, 1e-3, 1e-6, 1e-2], dtype=torch.float64)
    sigma2[8:12] = torch.tensor([1e-3, 1e-2, 5e-3, 1e-1], dtype=torch.float64)
    return (mu1, sigma1, mu2, sigma2), {}


register(Exercise(
    name="kl_univariate_gaussians",
    reference=kl_univariate_gaussians_reference,
    make_inputs=_kl_inputs,
    description="KL(N(mu1, sigma1^2) || N(mu2, sigma2^2)) elementwise on (N,) float64 tensors, "
                "including equal distributions and sigmas down to 1e-6",
    num_cases=5,
    rtol=1e-7,
    atol=1e-9,
))


# ------------------------------------------------------------------------------------------------
# Jensen-Shannon divergence between discrete distributions
# ------------------------------------------------------------------------------------------------
def js_divergence_reference(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """JSD(p || q) = KL(p || m)/2 + KL(q || m)/2, m = (p + q)/2, over the last axis, in nats.

    Terms with zero probability contribute 0 (``0 log 0 = 0``); computed by
    ``course_lib.metrics.js_divergence_discrete``.
    """
    return js_divergence_discrete(p, q)


def _random_simplex(shape, generator, zero_fraction):
    w = torch.rand(shape, generator=generator, dtype=torch.float64)
    w = w ** 3  # skewed: many small probabilities
    zero = torch.rand(shape, generator=generator, dtype=torch.float64) < zero_fraction
    w = torch.where(zero, torch.zeros_like(w), w)
    w[..., 0] = w[..., 0] + 1e-3  # never an all-zero row
    return w / w.sum(-1, keepdim=True)


def _js_inputs(generator: torch.Generator):
    b = 32
    k = int(torch.randint(3, 12, (1,), generator=generator))
    p = _random_simplex((b, k), generator, zero_fraction=0.3)
    q = _random_simplex((b, k), generator, zero_fraction=0.3)
    # edges: identical rows (JSD = 0), disjoint supports (JSD = log 2), near-zero probabilities
    q[0] = p[0]
    p[1] = 0.0
    p[1, 0] = 1.0
    q[1] = 0.0
    q[1, 1:] = 1.0 / (k - 1)
    p[2] = 1e-30
    p[2, 0] = 1.0 - (k - 1) * 1e-30
    q[3] = torch.full((k,), 1.0 / k, dtype=torch.float64)
    return (p, q), {}


register(Exercise(
    name="js_divergence",
    reference=js_divergence_reference,
    make_inputs=_js_inputs,
    description="JSD(p || q) over the last axis of (B, K) float64 probability tensors, with exact "
                "zeros (0 log 0 = 0), probabilities of 1e-30 and disjoint supports (JSD = log 2)",
    num_cases=5,
    rtol=1e-7,
    atol=1e-9,
))


# ------------------------------------------------------------------------------------------------
# Log-density of a 1-D Gaussian mixture
# ------------------------------------------------------------------------------------------------
def mixture_log_prob_reference(x: torch.Tensor, means: torch.Tensor, stds: torch.Tensor,
                               weights: torch.Tensor) -> torch.Tensor:
    """log p(x) = log sum_k w_k N(x; m_k, s_k^2) for 1-D points ``x`` (N,), components (K,).

    Computed by ``course_lib.toy.GaussianMixture(means[:, None], stds, weights).log_prob``.
    """
    return GaussianMixture(means[:, None], stds, weights).log_prob(x[:, None])


def _mixture_inputs(generator: torch.Generator):
    n = 48
    k = int(torch.randint(2, 6, (1,), generator=generator))
    kw = dict(generator=generator, dtype=torch.float64)
    means = 4 * torch.randn(k, **kw)
    stds = torch.exp(torch.empty(k, dtype=torch.float64).uniform_(math.log(0.05), math.log(2.0),
                                                                   generator=generator))
    weights = torch.rand(k, **kw) + 0.05
    weights = weights / weights.sum()
    x = 5 * torch.randn(n, **kw)
    # edges: points on the means, and points so far away that every exp(...) underflows to 0
    x[:k] = means
    x[k:k + 4] = torch.tensor([60.0, -80.0, 150.0, -300.0], dtype=torch.float64)
    return (x, means, stds, weights), {}


register(Exercise(
    name="mixture_log_prob",
    reference=mixture_log_prob_reference,
    make_inputs=_mixture_inputs,
    description="log-density of a 1-D Gaussian mixture at (N,) float64 points, including points "
                "hundreds of standard deviations from every component (needs log-sum-exp)",
    num_cases=5,
    rtol=1e-7,
    atol=1e-8,
))


# ------------------------------------------------------------------------------------------------
# Monte Carlo KL between two 1-D Gaussian mixtures, with its standard error (multi-step)
# ------------------------------------------------------------------------------------------------
def mixture_kl_monte_carlo_reference(means_p: torch.Tensor, stds_p: torch.Tensor,
                                     weights_p: torch.Tensor, means_q: torch.Tensor,
                                     stds_q: torch.Tensor, weights_q: torch.Tensor,
                                     u: torch.Tensor, eps: torch.Tensor):
    """Monte Carlo estimate of KL(p || q) between 1-D Gaussian mixtures, and its standard error.

    ``p`` has components ``means_p, stds_p, weights_p`` ``(K_p,)``, ``q`` likewise ``(K_q,)``.
    Sample ``i`` is drawn ancestrally from ``p`` with the given randomness: its component is the
    first ``k`` with ``u[i] < cumsum(weights_p)[k]`` (the inverse CDF of the categorical, the last
    component if rounding leaves none), and ``x_i = means_p[k] + stds_p[k] * eps[i]``; ``u, eps``
    ``(N,)``. Returns ``(estimate, standard_error)``, two 0-dim tensors in nats: the mean of
    ``log p(x_i) - log q(x_i)`` and its sample standard deviation (``N - 1`` in the denominator)
    over ``sqrt(N)``. Densities by ``course_lib.toy.GaussianMixture`` (log-sum-exp).
    """
    k = torch.searchsorted(torch.cumsum(weights_p, 0), u, right=True).clamp(max=len(weights_p) - 1)
    x = means_p[k] + stds_p[k] * eps
    p = GaussianMixture(means_p[:, None], stds_p, weights_p)
    q = GaussianMixture(means_q[:, None], stds_q, weights_q)
    log_ratio = p.log_prob(x[:, None]) - q.log_prob(x[:, None])
    return log_ratio.mean(), log_ratio.std() / math.sqrt(len(x))


def _random_mixture(k, generator, spread=4.0):
    kw = dict(generator=generator, dtype=torch.float64)
    means = spread * torch.randn(k, **kw)
    stds = torch.exp(torch.empty(k, dtype=torch.float64).uniform_(math.log(0.1), math.log(2.0),
                                                                   generator=generator))
    weights = torch.rand(k, **kw) + 0.05
    return means, stds, weights / weights.sum()


def _mixture_kl_inputs(generator: torch.Generator):
    # check() seeds case i with seed + i; the kind of case cycles with it, edges included.
    kind = generator.initial_seed() % 5
    n = int(torch.randint(200, 2000, (1,), generator=generator))
    p = _random_mixture(int(torch.randint(1, 6, (1,), generator=generator)), generator)
    q = _random_mixture(int(torch.randint(1, 6, (1,), generator=generator)), generator)
    if kind == 1:                       # q = p: every log-ratio is 0, estimate and error exactly 0
        q = tuple(t.clone() for t in p)
    elif kind == 2:                     # q far from every sample of p: log q(x) ~ -1e4 (log-sum-exp)
        q = (q[0] + 400.0, 0.5 * q[1], q[2])
    elif kind == 3:                     # single Gaussians on both sides
        p, q = _random_mixture(1, generator), _random_mixture(1, generator)
    u = torch.rand(n, generator=generator, dtype=torch.float64)
    u[:2] = torch.tensor([0.0, 1.0 - 2.0**-53], dtype=torch.float64)   # the ends of [0, 1)
    eps = torch.randn(n, generator=generator, dtype=torch.float64)
    return (*p, *q, u, eps), {}


register(Exercise(
    name="mixture_kl_monte_carlo",
    reference=mixture_kl_monte_carlo_reference,
    make_inputs=_mixture_kl_inputs,
    description="(estimate, standard error) of KL(p || q) between 1-D Gaussian mixtures from the "
                "given u, eps (N,) float64: components by inverse CDF, including q = p (exactly 0), "
                "q 400 away (log q ~ -1e4: needs log-sum-exp), single Gaussians, u = 0 and u -> 1",
    num_cases=5, rtol=1e-9, atol=1e-9,
))
