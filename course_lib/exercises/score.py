"""Exercises of notebook 06, "Tweedie, SURE and score matching".

Every exercise gets float64 tensors and plain numbers; the randomness (Langevin noise ``z``, the
DSM noise already applied in ``x_tilde``) is passed in, so the student's function is
deterministic. Inputs include the edges a careless implementation gets wrong: very small and
large noise levels and step sizes, and (for soft thresholding) coordinates on both sides of the
threshold and exactly zero.

==========================  ======================================================================
exercise                    reference
==========================  ======================================================================
``annealed_langevin``       ``course_lib.score.annealed_langevin_dynamics(..., trajectory=True)``
                            with the noise given, optionally with the final Tweedie denoising
                            step: the final points and the state after each level (multi-step)
``dsm_loss``                ``course_lib.score.denoising_score_matching_loss`` with the noise given
``sure_soft_threshold``     ``course_lib.score.sure`` of the soft-thresholding denoiser
==========================  ======================================================================

One Langevin step and Tweedie's denoiser (one-line transcriptions of the formulas printed above
them) are worked examples in the notebook and parts of ``annealed_langevin``.
"""

from __future__ import annotations

import math

import torch

from course_lib import score as _score
from course_lib.exercises import Exercise, register

__all__ = ["annealed_langevin_reference", "GaussianScore", "dsm_loss_reference",
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
# annealed Langevin dynamics (multi-step)
# ------------------------------------------------------------------------------------------------
class GaussianScore:
    """Score of N(mean, diag(var)) convolved with N(0, sigma^2 I): ``-(x - mean) / (var + sigma^2)``,
    called as ``score_fn(x, sigma)`` with ``x`` ``(N, D)`` and ``sigma`` a float."""

    def __init__(self, mean: torch.Tensor, var: torch.Tensor):
        self.mean, self.var = mean, var

    def __call__(self, x: torch.Tensor, sigma: float) -> torch.Tensor:
        return -(x - self.mean) / (self.var + sigma ** 2)


def annealed_langevin_reference(score_fn, x: torch.Tensor, sigmas: torch.Tensor, step_size: float,
                                noise: torch.Tensor, final_denoise: bool = False):
    r"""Annealed Langevin dynamics (Song & Ermon 2019, Algorithm 1) with the noise given.

    For each level :math:`\sigma_i` of ``sigmas`` ``(L,)`` (decreasing), ``K = noise.shape[1]``
    steps :math:`x \leftarrow x + \eta_i s(x, \sigma_i) + \sqrt{2\eta_i}\,z_{i,k}`,
    :math:`\eta_i = \eta\,\sigma_i^2/\sigma_L^2`, with ``z[i, k] = noise[i, k]`` (``noise`` is
    ``(L, K, N, D)``); then, if ``final_denoise``, Tweedie's step
    :math:`x \leftarrow x + \sigma_L^2 s(x, \sigma_L)` (Song & Ermon 2020). ``score_fn(x, sigma)``
    gets ``sigma`` as a Python float. Returns ``(x, path)``: the final points ``(N, D)`` and the
    state after each level ``(L + 1, N, D)``, the initial points first (before the final step). The
    same as ``course_lib.score.annealed_langevin_dynamics(..., trajectory=True)`` with these draws
    (NCSN code's step convention, REFERENCES.md C13).
    """
    sigma_last = float(sigmas[-1])
    path = [x]
    for i, sigma in enumerate(sigmas.tolist()):
        eta = step_size * sigma ** 2 / sigma_last ** 2
        for k in range(noise.shape[1]):
            x = x + eta * score_fn(x, sigma) + math.sqrt(2.0 * eta) * noise[i, k]
        path.append(x)
    if final_denoise:
        x = x + sigma_last ** 2 * score_fn(x, sigma_last)
    return x, torch.stack(path)


def _annealed_inputs(generator: torch.Generator):
    n, d = _shape(generator)
    levels = int(torch.randint(1, 6, (1,), generator=generator))          # L = 1: plain Langevin
    steps = int(torch.randint(1, 5, (1,), generator=generator))
    sigma_max, sigma_min = _log_uniform(1.0, 20.0, generator), _log_uniform(0.01, 0.9, generator)
    sigmas = torch.logspace(math.log10(sigma_max), math.log10(sigma_min), levels, dtype=_F64)
    if levels == 1:
        sigmas = torch.tensor([sigma_min], dtype=_F64)
    score = GaussianScore(torch.randn(d, generator=generator, dtype=_F64),
                          0.1 + torch.rand(d, generator=generator, dtype=_F64))
    step_size = _log_uniform(0.01, 0.5, generator) * sigma_min ** 2       # stable: eta_i / sigma_i^2 < 1
    x = 6 * torch.rand(n, d, generator=generator, dtype=_F64) - 3
    noise = torch.randn(levels, steps, n, d, generator=generator, dtype=_F64)
    final = bool(torch.randint(0, 2, (1,), generator=generator))
    return (score, x, sigmas, step_size, noise), {"final_denoise": final}


register(Exercise(
    name="annealed_langevin",
    reference=annealed_langevin_reference,
    make_inputs=_annealed_inputs,
    description="(x, path) of annealed Langevin from (N, D) float64 points with a Gaussian's noised "
                "score, 1 to 5 levels (sigma from 20 down to 0.01), 1 to 4 steps per level, the noise "
                "(L, K, N, D) given, with and without the final denoising step",
    num_cases=6, rtol=1e-9, atol=1e-11,
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
# SURE of soft thresholding
# ------------------------------------------------------------------------------------------------
def soft_threshold(y: torch.Tensor, threshold: float) -> torch.Tensor:
    """``sign(y) max(|y| - threshold, 0)``, elementwise."""
    return torch.sign(y) * torch.relu(y.abs() - threshold)


def sure_soft_threshold_reference(y: torch.Tensor, sigma: float, threshold: float) -> torch.Tensor:
    """Per-example SURE (N,) of f(y) = soft_threshold(y, threshold) for noise std sigma.

    SURE = ||f(y) - y||^2 - D sigma^2 + 2 sigma^2 div f(y), with div f(y) = ``#{i : |y_i| > threshold}``
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
