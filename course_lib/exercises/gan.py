r"""Exercises of notebook 03, "GANs, the optimal discriminator and the log-D trick".

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
``high_quality_counts``         ``course_lib.gan.mode_coverage(...).counts``
``wgan_gp_critic_loss``         ``course_lib.gan.wgan_critic_loss`` plus ``lam`` times the gradient
                                penalty of ``course_lib.gan.gradient_penalty``, with the
                                interpolation weights ``u`` given (multi-step)
==============================  ==================================================================

The optimal discriminator :math:`D^* = \sigma(\log p_{data} - \log p_g)` is a worked example in
the notebook (a one-line transcription of the formula printed above it), no longer an exercise.
"""

from __future__ import annotations

import math

import torch

from course_lib import gan
from course_lib.exercises import Exercise, register

__all__ = ["gan_losses_reference", "high_quality_counts_reference", "wgan_gp_critic_loss_reference",
           "SmoothCritic"]

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


# ------------------------------------------------------------------------------------------------
# the WGAN-GP critic loss (multi-step)
# ------------------------------------------------------------------------------------------------
class SmoothCritic(torch.nn.Module):
    """A small float64 critic ``(N, D) -> (N, 1)``: ``w2 . tanh(W1 x + b1) + b2``, or linear
    ``w . x`` (``hidden=0``). Smooth, so the gradient penalty's own gradient exists everywhere."""

    def __init__(self, dim: int, hidden: int, generator: torch.Generator):
        super().__init__()
        self.hidden = hidden
        if hidden:
            self.w1 = torch.nn.Parameter(torch.randn(dim, hidden, generator=generator, dtype=_F64))
            self.b1 = torch.nn.Parameter(torch.randn(hidden, generator=generator, dtype=_F64))
            self.w2 = torch.nn.Parameter(torch.randn(hidden, 1, generator=generator, dtype=_F64) / hidden ** 0.5)
        else:  # a unit-norm linear critic: its gradient norm is 1 everywhere, the penalty is 0
            w = torch.randn(dim, 1, generator=generator, dtype=_F64)
            self.w2 = torch.nn.Parameter(w / w.norm())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.hidden:
            return torch.tanh(x @ self.w1 + self.b1) @ self.w2
        return x @ self.w2


def wgan_gp_critic_loss_reference(critic, real: torch.Tensor, fake: torch.Tensor, u: torch.Tensor,
                                  lam: float = 10.0):
    r"""``(loss, wasserstein_estimate, penalty)``, three scalars, of one WGAN-GP critic step.

    Gulrajani et al. (2017), eq. 3 and Algorithm 1, lines 4-7: with interpolates
    :math:`\hat x_i = u_i x_i + (1 - u_i)\tilde x_i` (``u`` of shape ``(N, 1)`` given),

    - ``penalty`` :math:`= \frac1N\sum_i (\lVert\nabla_{\hat x} f(\hat x_i)\rVert_2 - 1)^2`,
      differentiable with respect to the critic's weights (``create_graph=True``);
    - ``wasserstein_estimate`` :math:`= \frac1N\sum_i f(x_i) - \frac1N\sum_i f(\tilde x_i)`;
    - ``loss`` :math:`= -\,\text{wasserstein\_estimate} + \lambda\,\text{penalty}`
      (``course_lib.gan.wgan_critic_loss`` plus ``lam`` times ``course_lib.gan.gradient_penalty``).

    ``critic``: ``(N, D) -> (N, 1)`` or ``(N,)``; ``real``, ``fake``: ``(N, D)``.
    """
    real, fake = real.detach(), fake.detach()
    x_hat = (u * real + (1 - u) * fake).requires_grad_(True)
    scores_hat = critic(x_hat).reshape(-1)
    (grad,) = torch.autograd.grad(scores_hat.sum(), x_hat, create_graph=True)
    penalty = (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()
    critic_loss = gan.wgan_critic_loss(critic(real).reshape(-1), critic(fake).reshape(-1))
    return critic_loss + lam * penalty, -critic_loss, penalty


def _wgan_gp_inputs(generator: torch.Generator):
    n = int(torch.randint(16, 48, (1,), generator=generator))
    d = int(torch.randint(1, 4, (1,), generator=generator))
    kind = int(torch.randint(0, 3, (1,), generator=generator))
    critic = SmoothCritic(d, 0 if kind == 0 else 8, generator)               # kind 0: penalty exactly 0
    real = 2 * torch.randn(n, d, generator=generator, dtype=_F64)
    fake = 1.5 + torch.randn(n, d, generator=generator, dtype=_F64)
    u = torch.rand(n, 1, generator=generator, dtype=_F64)
    u[:2, 0] = torch.tensor([0.0, 1.0], dtype=_F64)                          # the endpoints themselves
    fake[2] = real[2]                                                       # a fake equal to a real point
    lam = [10.0, 10.0, 1.0][kind]
    return (critic, real, fake, u), {"lam": lam}


def _compare_wgan_gp(got, expected, args, kwargs):
    names = ("loss", "wasserstein_estimate", "penalty")
    if not isinstance(got, (tuple, list)) or len(got) != 3:
        return f"output: expected a tuple of 3 scalars {names}, got {type(got).__name__}"
    for name, g, e in zip(names, got, expected):
        if not isinstance(g, torch.Tensor) or g.numel() != 1 or g.dim() != 0:
            return f"output {name}: expected a scalar tensor (0-dim), got {g!r:.80}"
        if not torch.isfinite(g):
            return f"output {name}: non-finite value {g.item()}"
        if not torch.allclose(g.detach(), e.detach(), rtol=1e-9, atol=1e-10):
            return (f"output {name}: got {g.item():.10g}, expected {e.item():.10g} (abs difference "
                    f"{abs(g.item() - e.item()):.3g})")
    if got[2].grad_fn is None:
        return ("output penalty: right value, but it is not differentiable with respect to the "
                "critic's weights (it has no grad_fn): take the gradient with create_graph=True, "
                "or the critic's optimizer never sees the penalty")
    return None


register(Exercise(
    name="wgan_gp_critic_loss",
    reference=wgan_gp_critic_loss_reference,
    make_inputs=_wgan_gp_inputs,
    description="(loss, wasserstein_estimate, penalty) for small float64 critics (tanh MLPs and "
                "unit-norm linear ones, penalty 0), u including 0 and 1, a fake equal to a real "
                "point; the penalty must be differentiable w.r.t. the critic's weights",
    num_cases=6, compare=_compare_wgan_gp,
))
