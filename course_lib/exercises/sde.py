"""Exercises of notebook 07, "The continuous-time view".

The randomness is passed in (the Gaussian draws ``noise`` of every Euler-Maruyama step), so the
student's function is deterministic and is compared with ``course_lib.sde.reverse_sde_sample``
driven by the same draws. Inputs include the edges a careless implementation gets wrong: a single
step (which adds no noise at all), the final time ``eps = 0``, and one to three dimensions.

==========================  ======================================================================
exercise                    reference
==========================  ======================================================================
``reverse_sde_sampler``     ``course_lib.sde.reverse_sde_sample`` on the VP SDE, noise given, no
                            noise in the last step
``flow_matching_loss``      ``course_lib.sde.flow_matching_loss`` with the draws ``x0``, ``t`` given
==========================  ======================================================================

The derivation of notebook 07 (the probability-flow ODE has the SDE's marginals) is graded by
hand in nbgrader's formgrader; it has no entry here.
"""

from __future__ import annotations

import math

import torch

from course_lib import sde as _sde
from course_lib.exercises import Exercise, register
from course_lib.toy import GaussianMixture

__all__ = ["reverse_sde_sampler_reference", "flow_matching_loss_reference"]

_F64 = torch.float64


def reverse_sde_sampler_reference(score_fn, x1: torch.Tensor, noise: torch.Tensor, beta_min: float,
                                  beta_max: float, eps: float) -> torch.Tensor:
    r"""Euler-Maruyama on the reverse-time VP SDE from :math:`t = 1` to ``eps``, with the noise given.

    With :math:`\beta(t) = \beta_\min + t(\beta_\max - \beta_\min)`, drift
    :math:`f(x, t) = -\tfrac12\beta(t)x` and :math:`g(t)^2 = \beta(t)`, on the grid
    :math:`t_i` = ``linspace(1, eps, K + 1)`` (``K = noise.shape[0]`` steps),

    .. math::  x \leftarrow x - \big[f(x, t_i) - g(t_i)^2\,s(x, t_i)\big]\Delta t_i
               + g(t_i)\sqrt{\Delta t_i}\;z_i,\qquad \Delta t_i = t_i - t_{i+1},

    with :math:`z_i` = ``noise[i]`` and no noise in the last step (``noise[K-1]`` is not used).
    Song et al. (2021), Eq. 6; Anderson (1982).

    Parameters
    ----------
    score_fn : callable
        ``score_fn(x, t) -> (N, D)`` with ``t`` a tensor ``(N,)`` of ``x``'s dtype.
    x1 : tensor (N, D)
        The state at :math:`t = 1`.
    noise : tensor (K, N, D)
        Standard normal draws, one per step.
    beta_min, beta_max : float
    eps : float
        Final time in ``[0, 1)``.

    Returns
    -------
    tensor (N, D)
    """
    num_steps = noise.shape[0]
    times = torch.linspace(1.0, eps, num_steps + 1, dtype=_F64).tolist()
    x = x1.clone()
    for i in range(num_steps):
        t, dt = times[i], times[i] - times[i + 1]
        beta = beta_min + t * (beta_max - beta_min)                  # g(t)^2
        s = score_fn(x, torch.full((x.shape[0],), t, dtype=x.dtype))
        drift = -0.5 * beta * x - beta * s                          # f - g^2 s
        x = x - drift * dt                                          # backwards in time
        if i < num_steps - 1:
            x = x + math.sqrt(beta * dt) * noise[i]
    return x


def _sampler_inputs(generator: torch.Generator):
    k = int(torch.randint(1, 4, (1,), generator=generator))
    d = int(torch.randint(1, 4, (1,), generator=generator))
    n = int(torch.randint(5, 30, (1,), generator=generator))
    weights = 0.2 + torch.rand(k, generator=generator, dtype=_F64)
    mixture = GaussianMixture(2 * torch.randn(k, d, generator=generator, dtype=_F64),
                              0.2 + torch.rand(k, generator=generator, dtype=_F64),
                              weights / weights.sum())
    beta_min = 0.05 + 0.5 * float(torch.rand(1, generator=generator, dtype=_F64))
    beta_max = 5.0 + 20.0 * float(torch.rand(1, generator=generator, dtype=_F64))
    sde = _sde.VPSDE(beta_min, beta_max)
    choice = int(torch.randint(0, 4, (1,), generator=generator))
    num_steps = (1, 2, 25, 60)[choice]                               # one step: no noise at all
    eps = (0.0, 1e-3, 1e-2, 0.1)[int(torch.randint(0, 4, (1,), generator=generator))]
    x1 = torch.randn(n, d, generator=generator, dtype=_F64)
    noise = torch.randn(num_steps, n, d, generator=generator, dtype=_F64)
    return (_sde.mixture_score(mixture, sde), x1, noise, beta_min, beta_max, eps), {}


register(Exercise(
    name="reverse_sde_sampler",
    reference=reverse_sde_sampler_reference,
    make_inputs=_sampler_inputs,
    description="x at t = eps after K Euler-Maruyama steps of the reverse VP SDE (float64, 1 to 60 "
                "steps, eps from 0 to 0.1, D from 1 to 3), noise given, none in the last step",
    num_cases=6, rtol=1e-9, atol=1e-10,
))


# ------------------------------------------------------------------------------------------------
# the conditional flow-matching loss
# ------------------------------------------------------------------------------------------------
def flow_matching_loss_reference(velocity_fn, x1: torch.Tensor, x0: torch.Tensor,
                                 t: torch.Tensor) -> torch.Tensor:
    r"""Scalar :math:`\frac1N\sum_n\|v(x_t^n, t_n) - (x_1^n - x_0^n)\|^2`, :math:`x_t = (1-t)x_0 + t x_1`.

    ``x1`` (data), ``x0`` (noise): (N, D); ``t``: (N,). Sum over dimensions, mean over the batch.
    Lipman et al. (2023), Eq. 23 with :math:`\sigma_\min = 0`; Liu et al. (2023), Eq. 1.
    """
    xt = (1 - t[:, None]) * x0 + t[:, None] * x1
    return ((velocity_fn(xt, t) - (x1 - x0)) ** 2).sum(1).mean()


class _Affine:
    """A velocity field v(x, t) = x A + t b + c, different per case (deep-copyable)."""

    def __init__(self, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor):
        self.a, self.b, self.c = a, b, c

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return x @ self.a + t[:, None] * self.b + self.c


def _fm_inputs(generator: torch.Generator):
    n = int(torch.randint(5, 40, (1,), generator=generator))
    d = int(torch.randint(1, 5, (1,), generator=generator))
    v = _Affine(torch.randn(d, d, generator=generator, dtype=_F64),
                torch.randn(d, generator=generator, dtype=_F64),
                torch.randn(d, generator=generator, dtype=_F64))
    x1 = 2 * torch.randn(n, d, generator=generator, dtype=_F64)
    x0 = torch.randn(n, d, generator=generator, dtype=_F64)
    t = torch.rand(n, generator=generator, dtype=_F64)
    t[:2] = torch.tensor([0.0, 1.0])                                 # both ends of the path
    return (v, x1, x0, t), {}


register(Exercise(
    name="flow_matching_loss",
    reference=flow_matching_loss_reference,
    make_inputs=_fm_inputs,
    description="the conditional flow-matching loss (a scalar: sum over dimensions, mean over the "
                "batch) for an affine velocity field, t including 0 and 1",
    num_cases=5, rtol=1e-10, atol=1e-12,
))
