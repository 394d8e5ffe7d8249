"""Exercises of notebook 05, "Tweedie, SURE and score matching".

Every exercise gets float64 tensors and plain numbers; the randomness (Langevin noise ``z``, the
DSM noise already applied in ``x_tilde``) is passed in, so the student's function is
deterministic. Inputs include the edges a careless implementation gets wrong: very small and
large noise levels and step sizes, and (for soft thresholding) coordinates on both sides of the
threshold and exactly zero.

==========================  ======================================================================
exercise                    reference
==========================  ======================================================================
``langevin_step``           one step of ``course_lib.score.langevin_dynamics`` with the noise given
``dsm_loss``                ``course_lib.score.denoising_score_matching_loss`` with the noise given
``tweedie_denoise``         ``course_lib.score.tweedie_denoise``
``sure_soft_threshold``     ``course_lib.score.sure`` of the soft-thresholding denoiser
==========================  ======================================================================
"""

from __future__ import annotations

import math

import torch

from course_lib import score as _score
from course_lib.exercises import Exercise, register

__all__ = ["langevin_step_reference", "dsm_loss_reference", "tweedie_denoise_reference",
           "sure_soft_threshold_reference", "soft_threshold"]

_F64 = torch.float64


def _log_uniform(lo: float, hi: float, generator: torch.Generator) -> float:
    u = torch.rand(1, generator=generator, dtype=_F64).item()
    return math.exp(math.log(lo) + u * (math.log(hi) - math.log(lo)))


def _shape(generator: torch.Generator) -> tuple[int, int]:
    n = int(torch.randint(8, 40, (1,), generator=generator))
    d = int(torch.randint(1, 6, (1,), generator=generator))
    return n, d


# ------------------------------------------------------------------------------------------------
# one Langevin step
# ------------------------------------------------------------------------------------------------
def langevin_step_reference(x: torch.Tensor, score: torch.Tensor, step_size: float,
                            z: torch.Tensor) -> torch.Tensor:
    """x + step_size * score + sqrt(2 step_size) z; all tensors (N, D).

    The update of ``course_lib.score.langevin_dynamics`` (NCSN code convention, REFERENCES.md C13).
    """
    return x + step_size * score + math.sqrt(2.0 * step_size) * z


def _langevin_inputs(generator: torch.Generator):
    n, d = _shape(generator)
    x = 3 * torch.randn(n, d, generator=generator, dtype=_F64)
    s = torch.randn(n, d, generator=generator, dtype=_F64) * 5
    z = torch.randn(n, d, generator=generator, dtype=_F64)
    return (x, s, _log_uniform(1e-5, 1.0, generator), z), {}


register(Exercise(
    name="langevin_step",
    reference=langevin_step_reference,
    make_inputs=_langevin_inputs,
    description="x + eta s + sqrt(2 eta) z on (N, D) float64 tensors, eta from 1e-5 to 1",
    num_cases=5, rtol=1e-10, atol=1e-12,
))


# ------------------------------------------------------------------------------------------------
# the denoising score matching loss
# ------------------------------------------------------------------------------------------------
def dsm_loss_reference(score_at_x_tilde: torch.Tensor, x: torch.Tensor, x_tilde: torch.Tensor,
                       sigma: float) -> torch.Tensor:
    """Scalar 1/2 mean_n || s(x~_n) + (x~_n - x_n) / sigma^2 ||^2 (sum over dims, mean over batch).

    ``score_at_x_tilde``, ``x``, ``x_tilde``: (N, D). Vincent (2011); the loss of
    ``course_lib.score.denoising_score_matching_loss``.
    """
    target = -(x_tilde - x) / sigma ** 2
    return 0.5 * ((score_at_x_tilde - target) ** 2).sum(1).mean()


def _dsm_inputs(generator: torch.Generator):
    n, d = _shape(generator)
    sigma = _log_uniform(0.01, 5.0, generator)
    x = 2 * torch.randn(n, d, generator=generator, dtype=_F64)
    x_tilde = x + sigma * torch.randn(n, d, generator=generator, dtype=_F64)
    s = torch.randn(n, d, generator=generator, dtype=_F64) / sigma
    return (s, x, x_tilde, sigma), {}


register(Exercise(
    name="dsm_loss",
    reference=dsm_loss_reference,
    make_inputs=_dsm_inputs,
    description="the DSM loss (a scalar: sum over dimensions, mean over the batch) for sigma from "
                "0.01 to 5",
    num_cases=5, rtol=1e-9, atol=1e-10,
))


# ------------------------------------------------------------------------------------------------
# Tweedie's denoiser
# ------------------------------------------------------------------------------------------------
def tweedie_denoise_reference(y: torch.Tensor, score: torch.Tensor, sigma: float) -> torch.Tensor:
    """E[x | y] = y + sigma^2 grad log p_sigma(y); ``y``, ``score`` (N, D). ``course_lib.score.tweedie_denoise``."""
    return _score.tweedie_denoise(y, score, sigma)


def _tweedie_inputs(generator: torch.Generator):
    n, d = _shape(generator)
    sigma = _log_uniform(1e-3, 10.0, generator)
    y = 3 * torch.randn(n, d, generator=generator, dtype=_F64)
    s = torch.randn(n, d, generator=generator, dtype=_F64) / sigma
    return (y, s, sigma), {}


register(Exercise(
    name="tweedie_denoise",
    reference=tweedie_denoise_reference,
    make_inputs=_tweedie_inputs,
    description="y + sigma^2 score on (N, D) float64 tensors, sigma from 1e-3 to 10",
    num_cases=5, rtol=1e-10, atol=1e-12,
))


# ------------------------------------------------------------------------------------------------
# SURE of soft thresholding
# ------------------------------------------------------------------------------------------------
def soft_threshold(y: torch.Tensor, threshold: float) -> torch.Tensor:
    """sign(y) max(|y| - threshold, 0), elementwise."""
    return torch.sign(y) * torch.relu(y.abs() - threshold)


def sure_soft_threshold_reference(y: torch.Tensor, sigma: float, threshold: float) -> torch.Tensor:
    """Per-example SURE (N,) of f(y) = soft_threshold(y, threshold) for noise std sigma.

    SURE = ||f(y) - y||^2 - D sigma^2 + 2 sigma^2 div f(y), with div f(y) = #{i : |y_i| > threshold}
    (Donoho & Johnstone 1995, SureShrink). Computed by ``course_lib.score.sure`` with the exact
    (autograd) divergence.
    """
    with torch.no_grad():
        return _score.sure(lambda v: soft_threshold(v, threshold), y, sigma)


def _sure_inputs(generator: torch.Generator):
    n, d = _shape(generator)
    sigma = _log_uniform(0.05, 2.0, generator)
    threshold = _log_uniform(0.05, 3.0, generator)
    y = 2 * torch.randn(n, d, generator=generator, dtype=_F64)
    y[0, 0] = 0.0                                    # exactly zero: inside the dead zone
    y[1, 0] = threshold * 1.01                       # just above the threshold
    y[2, 0] = -threshold * 0.99                      # just below it, negative side
    return (y, sigma, threshold), {}


register(Exercise(
    name="sure_soft_threshold",
    reference=sure_soft_threshold_reference,
    make_inputs=_sure_inputs,
    description="per-example SURE (N,) of soft thresholding, with coordinates at 0 and on both "
                "sides of the threshold",
    num_cases=5, rtol=1e-9, atol=1e-10,
))
