"""Exercises of notebook 03, "GANs, the optimal discriminator and the log-D trick".

Each exercise is checked against ``course_lib.gan`` on randomized float64 inputs that include the
edges a careless implementation gets wrong: logits of +-1e4, where ``log(sigmoid(l))`` is
``log(0) = -inf`` (the losses must be computed from logits with ``softplus``); log densities around
-1e4, where ``p_data / (p_data + p_g)`` is ``0 / 0 = nan`` after ``exp`` (the optimal discriminator
must be computed as ``sigmoid(log p_data - log p_g)``); and samples exactly 3 standard deviations
from a mode, which the VEEGAN / PacGAN protocol does **not** count as high quality (strict ``<``).

==============================  ==================================================================
exercise                        reference
==============================  ==================================================================
``gan_losses``                  ``course_lib.gan.discriminator_loss`` and ``generator_loss`` (both)
``optimal_discriminator``       ``course_lib.gan.optimal_discriminator(..., log_densities=True)``
``high_quality_counts``         ``course_lib.gan.mode_coverage(...).counts``
==============================  ==================================================================
"""

from __future__ import annotations

import math

import torch

from course_lib import gan
from course_lib.exercises import Exercise, register

__all__ = ["gan_losses_reference", "optimal_discriminator_reference", "high_quality_counts_reference"]

_F64 = torch.float64


# ------------------------------------------------------------------------------------------------
# the three GAN losses from logits
# ------------------------------------------------------------------------------------------------
def gan_losses_reference(real_logits: torch.Tensor, fake_logits: torch.Tensor):
    r"""``(d_loss, g_loss_non_saturating, g_loss_saturating)``, three scalars in nats.

    With :math:`D = \sigma(\ell)` (Goodfellow et al. 2014, eq. 1 and Section 3):

    - ``d_loss`` :math:`= -\frac1N\sum\log D(x_i) - \frac1M\sum\log(1 - D(G(z_j)))`
      (``course_lib.gan.discriminator_loss``);
    - ``g_loss_non_saturating`` :math:`= -\frac1M\sum\log D(G(z_j))` (the log-D trick);
    - ``g_loss_saturating`` :math:`= \frac1M\sum\log(1 - D(G(z_j)))` (the minimax loss),

    the last two from ``course_lib.gan.generator_loss``.
    """
    return (gan.discriminator_loss(real_logits, fake_logits),
            gan.generator_loss(fake_logits, saturating=False),
            gan.generator_loss(fake_logits, saturating=True))


def _losses_inputs(generator: torch.Generator):
    n, m = 40, 24
    real = 3 * torch.randn(n, generator=generator, dtype=_F64)
    fake = 3 * torch.randn(m, generator=generator, dtype=_F64)
    # edges: a discriminator that is sure (+-1e4) and right, or sure and wrong
    real[:3] = torch.tensor([1e4, -1e4, 40.0], dtype=_F64)
    fake[:3] = torch.tensor([-1e4, 1e4, -40.0], dtype=_F64)
    return (real, fake), {}


register(Exercise(
    name="gan_losses",
    reference=gan_losses_reference,
    make_inputs=_losses_inputs,
    description="(d_loss, g_loss_non_saturating, g_loss_saturating) from (N,) and (M,) float64 "
                "logits, including logits of +-1e4 (sigmoid then log gives -inf there)",
    num_cases=5, rtol=1e-9, atol=1e-9,
))


# ------------------------------------------------------------------------------------------------
# optimal discriminator from log densities
# ------------------------------------------------------------------------------------------------
def optimal_discriminator_reference(log_p_data: torch.Tensor, log_p_model: torch.Tensor) -> torch.Tensor:
    r""":math:`D^*(x) = p_{data}(x) / (p_{data}(x) + p_g(x)) = \sigma(\log p_{data}(x) - \log p_g(x))`.

    Goodfellow et al. (2014), Proposition 1, from log densities of shape ``(N,)``;
    ``course_lib.gan.optimal_discriminator(..., log_densities=True)``.
    """
    return gan.optimal_discriminator(log_p_data, log_p_model, log_densities=True)


def _dstar_inputs(generator: torch.Generator):
    n = 64
    x = 4 * torch.randn(n, generator=generator, dtype=_F64)
    mu, s = float(torch.randn((), generator=generator, dtype=_F64)), 0.3 + float(torch.rand((), generator=generator))
    log_p_data = -0.5 * x**2 - 0.5 * math.log(2 * math.pi)                                     # N(0, 1)
    log_p_model = -0.5 * ((x - mu) / s) ** 2 - math.log(s) - 0.5 * math.log(2 * math.pi)     # N(mu, s^2)
    # edges: far in the tails both densities underflow to 0 after exp (0 / 0); equal densities
    log_p_data[:4] = torch.tensor([-1e4, -2e4, -800.0, -3.0], dtype=_F64)
    log_p_model[:4] = torch.tensor([-1.2e4, -1.5e4, -900.0, -3.0], dtype=_F64)
    return (log_p_data, log_p_model), {}


register(Exercise(
    name="optimal_discriminator",
    reference=optimal_discriminator_reference,
    make_inputs=_dstar_inputs,
    description="D* = p_data / (p_data + p_g) from (N,) float64 log densities, including log "
                "densities of -1e4 (exp underflows: 0 / 0 = nan) and equal densities (D* = 1/2)",
    num_cases=5, rtol=1e-9, atol=1e-12,
))


# ------------------------------------------------------------------------------------------------
# high-quality samples per mode (the VEEGAN / PacGAN protocol)
# ------------------------------------------------------------------------------------------------
def high_quality_counts_reference(samples: torch.Tensor, means: torch.Tensor, std: float,
                                  threshold: float = 3.0) -> torch.Tensor:
    r"""High-quality samples per mode, a long tensor ``(K,)``.

    A sample's nearest mode is the :math:`k` minimizing :math:`\lVert x - \mu_k\rVert / s`; it is of
    high quality when that distance is **strictly** below ``threshold`` standard deviations
    (Srivastava et al. 2017; Lin et al. 2018 and their ``MetricLogger``). ``counts[k]`` is the
    number of high-quality samples whose nearest mode is ``k``;
    ``course_lib.gan.mode_coverage(samples, means, std, threshold).counts``.
    """
    return gan.mode_coverage(samples, means, std, threshold).counts


def _hq_inputs(generator: torch.Generator):
    k = int(torch.randint(3, 9, (1,), generator=generator))
    angles = 2 * math.pi * torch.arange(k, dtype=_F64) / k
    means = torch.stack([torch.cos(angles), torch.sin(angles)], 1) * 2.0
    std = 0.125  # a power of two, so the points placed at exactly 3 std below are exact in float64
    n = 200
    which = torch.randint(0, k - 1, (n,), generator=generator)  # the last mode gets no sample
    samples = means[which] + std * 2.0 * torch.randn(n, 2, generator=generator, dtype=_F64)
    # edges: exactly 3 std from a mode (not counted) and just inside (counted)
    samples[0] = means[0] + torch.tensor([3 * std, 0.0], dtype=_F64)
    samples[1] = means[0] + torch.tensor([0.0, -3 * std + 1e-9], dtype=_F64)
    samples[2] = torch.zeros(2, dtype=_F64)  # the centre: far from every mode
    return (samples, means, std), {"threshold": 3.0}


def _compare_counts(got, expected, args, kwargs):
    if not isinstance(got, torch.Tensor):
        return f"output: expected a torch.Tensor of counts, got {type(got).__name__}"
    if tuple(got.shape) != tuple(expected.shape):
        return f"output: shape: expected {tuple(expected.shape)} (one count per mode), got {tuple(got.shape)}"
    if got.dtype.is_floating_point or got.dtype == torch.bool:
        return f"output: dtype: expected integer counts (e.g. torch.long), got {got.dtype}"
    bad = (got.cpu() != expected.cpu()).nonzero()
    if len(bad):
        k = int(bad[0])
        extra = ""
        if int(got.sum()) == int(expected.sum()) + 1 or int(got.sum()) > int(expected.sum()):
            extra = (" (too many samples counted: is a sample exactly threshold std away counted? "
                     "the protocol uses a strict '<')")
        return (f"output: {len(bad)} of {got.numel()} counts differ; first at mode {k}: got "
                f"{int(got[k])}, expected {int(expected[k])}; total high-quality samples: got "
                f"{int(got.sum())}, expected {int(expected.sum())}{extra}")
    return None


register(Exercise(
    name="high_quality_counts",
    reference=high_quality_counts_reference,
    make_inputs=_hq_inputs,
    description="high-quality samples per mode, (K,) integer counts, for (200, 2) float64 samples "
                "around K ring modes, with samples exactly at and just inside 3 std",
    num_cases=5, compare=_compare_counts,
))
