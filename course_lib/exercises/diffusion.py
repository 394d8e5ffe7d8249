"""Exercises of notebook 04, "DDPM: kernels, posteriors, ELBO".

Every exercise gets the schedule as a plain float64 tensor ``betas`` of shape ``(T,)`` and a
**0-based** step index ``t`` (an integer tensor ``(N,)``, ``t`` in ``{0, ..., T-1}``; index ``t``
is the paper's step ``t+1``), so the student writes the cumulative product and the indexing
themselves. Inputs include the edges a careless implementation gets wrong: ``t = 0`` (where
:math:`\\bar\\alpha_{t-1} = 1`, the posterior variance is exactly 0 and Algorithm 2 adds no noise),
``t = T-1`` of a cosine schedule (where :math:`1/\\sqrt{\\bar\\alpha}` is about 2e4), linear and
cosine schedules with ``T`` from 5 to 1000.

==============================  ==================================================================
exercise                        reference
==============================  ==================================================================
``q_sample``                    ``course_lib.diffusion.q_sample`` with the noise ``eps`` given
``q_posterior``                 ``course_lib.diffusion.q_posterior_mean_variance`` (mean, variance)
``predict_x0_from_eps``         ``course_lib.diffusion.predict_x0_from_eps``
``ddpm_step``                   ``course_lib.diffusion.p_mean_variance`` (eps, "small") + sigma z,
                                no noise at ``t = 0`` (Algorithm 2, line 4)
==============================  ==================================================================
"""

from __future__ import annotations

import torch

from course_lib import diffusion as _d
from course_lib.exercises import Exercise, register

__all__ = ["q_sample_reference", "q_posterior_reference", "predict_x0_from_eps_reference",
           "ddpm_step_reference"]

_F64 = torch.float64


def _schedule(betas: torch.Tensor) -> _d.NoiseSchedule:
    return _d.NoiseSchedule(betas)


# ------------------------------------------------------------------------------------------------
# Shared inputs: a random schedule, 0-based steps with both edges, float64 data
# ------------------------------------------------------------------------------------------------
def _random_betas(generator: torch.Generator) -> torch.Tensor:
    kind = int(torch.randint(0, 3, (1,), generator=generator))
    if kind == 0:
        return _d.NoiseSchedule.linear(1000).betas.clone()                  # DDPM's schedule
    T = int(torch.randint(5, 200, (1,), generator=generator))
    if kind == 1:
        return _d.NoiseSchedule.cosine(T).betas.clone()
    return _d.NoiseSchedule.linear(max(T, 21), rescale=True).betas.clone()


def _random_steps(n: int, T: int, generator: torch.Generator) -> torch.Tensor:
    t = torch.randint(0, T, (n,), generator=generator)
    t[:3] = torch.tensor([0, T - 1, 0])                                     # both edges
    t[3] = min(1, T - 1)
    return t


def _data(n: int, d: int, generator: torch.Generator) -> torch.Tensor:
    return 2 * torch.randn(n, d, generator=generator, dtype=_F64)


# ------------------------------------------------------------------------------------------------
# q_sample
# ------------------------------------------------------------------------------------------------
def q_sample_reference(x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor,
                       betas: torch.Tensor) -> torch.Tensor:
    """x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps, abar_t = prod_{s <= t} (1 - beta_s).

    ``x0``, ``eps`` (N, D); ``t`` (N,) 0-based; ``betas`` (T,). Ho et al. (2020), Eq. 4.
    """
    return _d.q_sample(_schedule(betas), x0, t, noise=eps)


def _q_sample_inputs(generator: torch.Generator):
    betas = _random_betas(generator)
    n = 32
    x0 = _data(n, 2, generator)
    eps = torch.randn(n, 2, generator=generator, dtype=_F64)
    return (x0, _random_steps(n, betas.shape[0], generator), eps, betas), {}


register(Exercise(
    name="q_sample",
    reference=q_sample_reference,
    make_inputs=_q_sample_inputs,
    description="x_t of the diffusion kernel for (32, 2) float64 data, 0-based t including 0 and "
                "T-1, linear and cosine schedules",
    num_cases=5, rtol=1e-9, atol=1e-11,
))


# ------------------------------------------------------------------------------------------------
# q_posterior
# ------------------------------------------------------------------------------------------------
def q_posterior_reference(x0: torch.Tensor, xt: torch.Tensor, t: torch.Tensor,
                          betas: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and variance of q(x_{t-1} | x_t, x0), both (N, D) (Ho et al. 2020, Eqs. 6-7).

    mean = sqrt(abar_{t-1}) beta_t / (1 - abar_t) x0 + sqrt(alpha_t) (1 - abar_{t-1}) / (1 - abar_t) x_t,
    variance = (1 - abar_{t-1}) / (1 - abar_t) beta_t, with abar_{t-1} = 1 at t = 0 (0-based), where
    the variance is exactly 0 and the mean is x0.
    """
    mean, variance, _ = _d.q_posterior_mean_variance(_schedule(betas), x0, xt, t)
    return mean, variance


def _q_posterior_inputs(generator: torch.Generator):
    betas = _random_betas(generator)
    n = 32
    x0, xt = _data(n, 2, generator), _data(n, 2, generator)
    return (x0, xt, _random_steps(n, betas.shape[0], generator), betas), {}


register(Exercise(
    name="q_posterior",
    reference=q_posterior_reference,
    make_inputs=_q_posterior_inputs,
    description="(mean, variance) of q(x_{t-1} | x_t, x_0), each (32, 2) float64, 0-based t "
                "including t = 0 (variance exactly 0, mean x0)",
    num_cases=5, rtol=1e-8, atol=1e-11,
))


# ------------------------------------------------------------------------------------------------
# predict_x0_from_eps
# ------------------------------------------------------------------------------------------------
def predict_x0_from_eps_reference(xt: torch.Tensor, t: torch.Tensor, eps: torch.Tensor,
                                  betas: torch.Tensor) -> torch.Tensor:
    """x0_hat = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t), all (N, D); t (N,) 0-based."""
    return _d.predict_x0_from_eps(_schedule(betas), xt, t, eps)


def _predict_x0_inputs(generator: torch.Generator):
    betas = _random_betas(generator)
    n = 32
    xt, eps = _data(n, 2, generator), torch.randn(n, 2, generator=generator, dtype=_F64)
    return (xt, _random_steps(n, betas.shape[0], generator), eps, betas), {}


register(Exercise(
    name="predict_x0_from_eps",
    reference=predict_x0_from_eps_reference,
    make_inputs=_predict_x0_inputs,
    description="x0 estimated from x_t and eps, (32, 2) float64, including t = T-1 of a cosine "
                "schedule where 1/sqrt(abar) is about 2e4",
    num_cases=5, rtol=1e-8, atol=1e-10,
))


# ------------------------------------------------------------------------------------------------
# ddpm_step
# ------------------------------------------------------------------------------------------------
def ddpm_step_reference(xt: torch.Tensor, t: torch.Tensor, eps_pred: torch.Tensor, z: torch.Tensor,
                        betas: torch.Tensor) -> torch.Tensor:
    """One step of Algorithm 2 (Ho et al. 2020) with sigma_t^2 = beta~_t (posterior variance):

    x_{t-1} = (x_t - beta_t / sqrt(1 - abar_t) eps_pred) / sqrt(alpha_t) + sigma_t z,
    and z = 0 where t == 0 (0-based). All (N, D); t (N,).
    """
    sched = _schedule(betas)
    out = _d.p_mean_variance(sched, lambda x, s: eps_pred, xt, t, prediction="eps", variance="small")
    nonzero = (t != 0).to(xt.dtype)[:, None]
    return out.mean + nonzero * torch.sqrt(out.variance) * z


def _ddpm_step_inputs(generator: torch.Generator):
    betas = _random_betas(generator)
    n = 32
    xt = _data(n, 2, generator)
    eps_pred = torch.randn(n, 2, generator=generator, dtype=_F64)
    z = torch.randn(n, 2, generator=generator, dtype=_F64)
    return (xt, _random_steps(n, betas.shape[0], generator), eps_pred, z, betas), {}


register(Exercise(
    name="ddpm_step",
    reference=ddpm_step_reference,
    make_inputs=_ddpm_step_inputs,
    description="x_{t-1} of one ancestral step with sigma^2 = posterior variance, (32, 2) float64, "
                "no noise at t = 0",
    num_cases=5, rtol=1e-8, atol=1e-10,
))
