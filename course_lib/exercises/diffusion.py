"""Exercises of notebooks 04, "DDPM I: kernels, posteriors, ELBO", and 05, "DDPM II: training and sampling".

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
``ddpm_sample``                 Algorithm 2 as a whole: ``course_lib.diffusion.p_mean_variance``
                                (eps, "small") at every step ``T-1, ..., 0``, plus sigma z with
                                the noise ``z`` given, none at ``t = 0`` (multi-step)
==============================  ==================================================================

``predict_x0_from_eps`` (a one-line transcription of the formula printed above it) is a worked
example in the notebook, and one step of Algorithm 2 is part of ``ddpm_sample``.
"""

from __future__ import annotations

import torch

from course_lib import diffusion as _d
from course_lib.exercises import Exercise, register

__all__ = ["q_sample_reference", "q_posterior_reference", "ddpm_sample_reference", "ToyEpsModel"]

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
# ddpm_sample: Algorithm 2 as a whole (multi-step)
# ------------------------------------------------------------------------------------------------
class ToyEpsModel:
    """A fixed, smooth noise predictor for ``(N, D)`` float64 ``x`` and 0-based ``t`` ``(N,)``:
    ``eps(x, t) = sqrt(1 - abar_t) x + 0.3 tanh(x W) + 0.1 c[t]``, the exact predictor of
    standard normal data plus a random perturbation. It depends on both arguments, so a sampler
    that passes the wrong step index or forgets to update ``x`` gives other samples."""

    def __init__(self, betas: torch.Tensor, dim: int, generator: torch.Generator):
        self.scale = torch.sqrt(1 - torch.cumprod(1 - betas, 0))[:, None]      # (T, 1)
        self.w = torch.randn(dim, dim, generator=generator, dtype=_F64)
        self.c = torch.randn(betas.shape[0], dim, generator=generator, dtype=_F64)

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.scale[t] * x + 0.3 * torch.tanh(x @ self.w) + 0.1 * self.c[t]


def ddpm_sample_reference(eps_model, x_T: torch.Tensor, betas: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    r"""Algorithm 2 of Ho et al. (2020) with :math:`\sigma_t^2 = \tilde\beta_t`, the noise given.

    From ``x_T`` ``(N, D)``, for the 0-based steps ``t = T-1, ..., 0``:
    :math:`x \leftarrow \frac{1}{\sqrt{\alpha_t}}\big(x - \frac{\beta_t}{\sqrt{1-\bar\alpha_t}}
    \varepsilon_\theta(x, t)\big) + \sigma_t z_t`, with ``z_t = noise[t]`` (``noise`` is
    ``(T, N, D)``) and no noise at ``t = 0`` (``noise[0]`` is never used). ``eps_model(x, t)`` gets
    ``t`` as a long tensor ``(N,)``. Returns :math:`x_0` ``(N, D)``. The same as
    ``course_lib.diffusion.sample`` with these draws.
    """
    sched = _schedule(betas)
    x = x_T
    for i in reversed(range(sched.num_steps)):
        t = torch.full((x.shape[0],), i, dtype=torch.long)
        out = _d.p_mean_variance(sched, eps_model, x, t, prediction="eps", variance="small")
        x = out.mean + torch.sqrt(out.variance) * noise[i] if i > 0 else out.mean
    return x


def _ddpm_sample_inputs(generator: torch.Generator):
    betas = _random_betas(generator)
    T = betas.shape[0]
    n = int(torch.randint(4, 24, (1,), generator=generator))
    d = int(torch.randint(1, 4, (1,), generator=generator))
    model = ToyEpsModel(betas, d, generator)
    x_T = torch.randn(n, d, generator=generator, dtype=_F64)
    noise = torch.randn(T, n, d, generator=generator, dtype=_F64)
    return (model, x_T, betas, noise), {}


register(Exercise(
    name="ddpm_sample",
    reference=ddpm_sample_reference,
    make_inputs=_ddpm_sample_inputs,
    description="x_0 of Algorithm 2 from x_T (N, D) float64 with a fixed toy eps model and the noise "
                "(T, N, D) given, sigma^2 = posterior variance, no noise at t = 0; linear T = 1000 "
                "and cosine schedules (last beta 0.999)",
    num_cases=4, rtol=1e-7, atol=1e-9,
))
