r"""Generative adversarial networks: losses from logits, the optimal discriminator, mode coverage.

The value function of Goodfellow et al. (2014, eq. 1) is

.. math::  V(D, G) = \mathbb E_{x\sim p_{data}}[\log D(x)] + \mathbb E_{z\sim p_z}[\log(1 - D(G(z)))].

Every loss here takes the discriminator's **logits** :math:`\ell` (``D = sigmoid(l)``) and uses the
identities :math:`-\log \sigma(\ell) = \mathrm{softplus}(-\ell)` and
:math:`-\log(1-\sigma(\ell)) = \mathrm{softplus}(\ell)`, which are finite for logits of any size
(REFERENCES.md C8); ``sigmoid`` followed by ``log`` is not (``log(0) = -inf`` at ``l = -1e4``).

Mode coverage follows the protocol of VEEGAN (Srivastava et al. 2017) and PacGAN (Lin et al. 2018,
REFERENCES.md B1-B2) exactly, so numbers computed here can be put beside the published tables.

References
----------
- I. Goodfellow et al., "Generative Adversarial Nets", NeurIPS 2014 (eq. 1, Proposition 1,
  Theorem 1, Algorithm 1; the non-saturating "log D trick" in Section 3).
- A. Radford, L. Metz, S. Chintala, "Unsupervised representation learning with deep convolutional
  GANs" (DCGAN), ICLR 2016, Section 3 (architecture guidelines).
- I. Gulrajani et al., "Improved training of Wasserstein GANs", NeurIPS 2017 (eq. 3, Algorithm 1).
- A. Srivastava et al., "VEEGAN", NeurIPS 2017; Z. Lin et al., "PacGAN", NeurIPS 2018 (Table 1).
- M. Arjovsky, L. Bottou, "Towards principled methods for training generative adversarial networks",
  ICLR 2017 (Theorem 2.5: the log-D trick's gradient against D*).
- X. Mao et al., "Least squares generative adversarial networks" (LSGAN), ICCV 2017.
- T. White, "Sampling generative networks", arXiv:1609.04468, 2016 (spherical latent interpolation).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from course_lib._checks import check_int, check_log_densities_on_grid, check_positive, check_tensor
from course_lib._primitives import progress as progress_bar
from course_lib._primitives import rand, randint, randn
from course_lib.nets import MLP, make_activation

__all__ = [
    "discriminator_loss", "generator_loss", "optimal_discriminator", "ModeCoverage",
    "mode_coverage", "affine_generator_vs_optimal_discriminator", "gradient_penalty",
    "wgan_critic_loss", "wgan_generator_loss", "mlp_generator", "mlp_discriminator", "MLPEnsemble",
    "DCGANGenerator", "DCGANDiscriminator",
    "GANHistory", "train_gan", "train_discriminator",
]


def _logits(name: str, logits) -> torch.Tensor:
    """Logits as a floating ``(N,)`` tensor; ``(N, 1)`` is accepted and flattened."""
    check_tensor(name, logits, ndim=(1, 2), floating=True)
    if logits.dim() == 2:
        if logits.shape[1] != 1:
            raise ValueError(f"{name}: expected shape (N,) or (N, 1), got {tuple(logits.shape)}")
        logits = logits[:, 0]
    if logits.shape[0] < 1:
        raise ValueError(f"{name}: expected at least one logit, got shape {tuple(logits.shape)}")
    return logits


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor,
                       reduction: str = "mean") -> torch.Tensor:
    r"""The discriminator's loss :math:`-\mathbb E \log D(x) - \mathbb E \log(1 - D(G(z)))`, from logits.

    .. math::  \mathcal L_D = \mathbb E_x[\mathrm{softplus}(-\ell(x))] + \mathbb E_z[\mathrm{softplus}(\ell(G(z)))]

    i.e. ``-V(D, G)`` of Goodfellow et al. (2014, eq. 1), which D minimizes.

    Parameters
    ----------
    real_logits : tensor (N,) or (N, 1)
        Discriminator logits on data samples.
    fake_logits : tensor (M,) or (M, 1)
        Discriminator logits on generated samples.
    reduction : {"mean", "none"}
        ``"mean"``: the two expectations estimated separately (``N`` and ``M`` may differ), a
        scalar. ``"none"``: the per-pair loss ``softplus(-real_i) + softplus(fake_i)``, shape
        ``(N,)``, which pairs real and fake examples and so needs ``N == M``.

    Returns
    -------
    tensor
        Scalar (nats), or ``(N,)`` with ``reduction="none"``. Finite for logits of +-1e4.

    Raises
    ------
    ValueError
        Wrong shapes, an unknown ``reduction``, or ``N != M`` with ``reduction="none"``.
    """
    real_logits = _logits("real_logits", real_logits)
    fake_logits = _logits("fake_logits", fake_logits)
    if reduction == "mean":
        return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
    if reduction == "none":
        if real_logits.shape != fake_logits.shape:
            raise ValueError(f"real_logits and fake_logits: reduction='none' pairs them, so they need "
                             f"the same batch size, got {tuple(real_logits.shape)} and "
                             f"{tuple(fake_logits.shape)}")
        return F.softplus(-real_logits) + F.softplus(fake_logits)
    raise ValueError(f"reduction: expected 'mean' or 'none', got {reduction!r}")


def generator_loss(fake_logits: torch.Tensor, saturating: bool = False,
                   reduction: str = "mean") -> torch.Tensor:
    r"""The generator's loss, non-saturating (default) or the original minimax (saturating) one.

    - non-saturating ("log D trick", Goodfellow et al. 2014, Section 3):
      :math:`-\mathbb E_z \log D(G(z)) = \mathbb E_z\,\mathrm{softplus}(-\ell)`;
    - saturating (minimax, eq. 1): :math:`\mathbb E_z \log(1 - D(G(z))) = -\mathbb E_z\,\mathrm{softplus}(\ell)`.

    Both are minimized by G. The saturating loss has gradient
    :math:`\partial/\partial\ell = -\sigma(\ell) = -D`, which vanishes when D confidently rejects the
    samples (``D(G(z)) -> 0``, early in training); the non-saturating one has
    :math:`-(1 - D)`, which is then close to -1.

    Parameters
    ----------
    fake_logits : tensor (N,) or (N, 1)
        Discriminator logits on generated samples.
    saturating : bool
        Use the original minimax loss instead of the non-saturating one.
    reduction : {"mean", "none"}
        ``"mean"``: the batch mean, a scalar; ``"none"``: the per-example loss ``(N,)`` (e.g. to
        weight examples, as :func:`affine_generator_vs_optimal_discriminator` does with quadrature
        weights).

    Returns
    -------
    tensor
        Scalar (nats), or ``(N,)`` with ``reduction="none"``; finite for logits of +-1e4.

    Raises
    ------
    ValueError
        Wrong shape, or an unknown ``reduction``.
    """
    fake_logits = _logits("fake_logits", fake_logits)
    if reduction not in ("mean", "none"):
        raise ValueError(f"reduction: expected 'mean' or 'none', got {reduction!r}")
    if saturating:
        per_example = -F.softplus(fake_logits)
    else:
        per_example = F.softplus(-fake_logits)
    return per_example.mean() if reduction == "mean" else per_example


def optimal_discriminator(p_data, p_model, log_densities: bool = False) -> torch.Tensor:
    r"""The optimal discriminator :math:`D^*(x) = p_{data}(x) / (p_{data}(x) + p_g(x))`.

    Goodfellow et al. (2014), Proposition 1. Where both densities are zero, ``D*`` is undefined
    and 1/2 is returned (no evidence either way). With ``log_densities=True`` the inputs are log
    densities and ``D* = sigmoid(log p_data - log p_g)``, stable for any values.

    Parameters
    ----------
    p_data, p_model : tensor, same shape
        Density values (non-negative), or log densities with ``log_densities=True``.
    log_densities : bool
        Whether the inputs are log densities.

    Returns
    -------
    tensor
        ``D*`` in ``[0, 1]``, same shape as the inputs.

    Raises
    ------
    ValueError
        Shapes differ, or a density is negative or NaN.
    """
    p_data = torch.as_tensor(p_data)
    p_model = torch.as_tensor(p_model)
    if p_data.shape != p_model.shape:
        raise ValueError(f"p_data and p_model: expected the same shape, got {tuple(p_data.shape)} "
                         f"and {tuple(p_model.shape)}")
    if log_densities:
        if bool(torch.isnan(p_data).any() | torch.isnan(p_model).any()):
            raise ValueError("p_data, p_model: expected log densities, got NaN")
        diff = p_data - p_model
        both_zero = torch.isneginf(p_data) & torch.isneginf(p_model)
        return torch.where(both_zero, torch.full_like(diff, 0.5), torch.sigmoid(diff.nan_to_num(0.0)))
    for name, p in (("p_data", p_data), ("p_model", p_model)):
        if bool((~(p >= 0)).any()):
            raise ValueError(f"{name}: expected non-negative density values, got "
                             f"{p[~(p >= 0)].flatten()[0].item()!r}")
    total = p_data + p_model
    return torch.where(total > 0, p_data / torch.where(total > 0, total, torch.ones_like(total)),
                       torch.full_like(total, 0.5))


class ModeCoverage(NamedTuple):
    """Result of :func:`mode_coverage`.

    Attributes
    ----------
    modes : int
        Number of modes captured (nearest mode of at least one high-quality sample).
    high_quality_fraction : float
        Fraction of samples within ``threshold`` standard deviations of their nearest mode.
    reverse_kl : float
        KL(p_hat || uniform) in nats, p_hat the histogram of high-quality samples over modes;
        ``inf`` when no sample is of high quality.
    counts : tensor (K,)
        High-quality samples per mode (long).
    """

    modes: int
    high_quality_fraction: float
    reverse_kl: float
    counts: torch.Tensor


def mode_coverage(samples: torch.Tensor, means: torch.Tensor, std, threshold: float = 3.0) -> ModeCoverage:
    r"""Mode coverage of samples from a Gaussian-mixture target: the VEEGAN / PacGAN protocol.

    For every sample, the nearest mode is the one with the smallest per-dimension standardized
    distance :math:`d_k(x) = \sqrt{\sum_j (x_j - \mu_{kj})^2 / s_{kj}^2}`. A sample is of **high
    quality** when :math:`d < ` ``threshold`` (strictly, as in PacGAN's ``MetricLogger``:
    a sample exactly at 3 std does not count). A mode is **captured** when it is the nearest mode of
    at least one high-quality sample. The **reverse KL** is
    :math:`\sum_k \hat p_k \log(\hat p_k K)`, with :math:`\hat p` the histogram of high-quality
    samples over the K modes and :math:`0 \log 0 = 0`. The published protocol evaluates
    **2500** samples (pass that many).

    Parameters
    ----------
    samples : tensor (N, D)
        Generated samples.
    means : tensor (K, D)
        Mode centres (e.g. ``ring_mixture().means``).
    std : float or tensor (K,) or (K, D)
        Component standard deviations (0.01 for the ring, 0.05 for the grid).
    threshold : float
        High-quality radius in standard deviations (3 in VEEGAN and PacGAN).

    Returns
    -------
    ModeCoverage
        ``modes``, ``high_quality_fraction``, ``reverse_kl`` (nats), ``counts`` (K,).

    Raises
    ------
    ValueError
        ``samples`` and ``means`` of different dimension, ``std <= 0`` or of the wrong shape,
        ``threshold <= 0``, or no samples.

    References
    ----------
    Srivastava et al. (2017), Section 5.1; Lin et al. (2018), Section 5.1 and the code's
    ``MetricLogger`` (REFERENCES.md B2).
    """
    check_tensor("samples", samples, ndim=2, floating=True)
    check_tensor("means", means, ndim=2)
    if samples.shape[0] < 1:
        raise ValueError("samples: expected at least one sample, got shape "
                         f"{tuple(samples.shape)}")
    K, D = means.shape
    if samples.shape[1] != D:
        raise ValueError(f"samples and means: expected the same dimension D, got samples "
                         f"{tuple(samples.shape)} and means {tuple(means.shape)}")
    check_positive("threshold", threshold)
    means = means.to(samples)
    std = torch.as_tensor(std, dtype=samples.dtype, device=samples.device)
    if std.dim() == 0:
        std = std.expand(K, D)
    elif std.dim() == 1 and std.shape[0] == K:
        std = std[:, None].expand(K, D)
    elif tuple(std.shape) != (K, D):
        raise ValueError(f"std: expected a number, shape ({K},) or ({K}, {D}), got {tuple(std.shape)}")
    check_positive("std", std)
    z = (samples[:, None, :] - means[None, :, :]) / std[None, :, :]  # (N, K, D)
    dist = z.pow(2).sum(-1).sqrt()
    best, nearest = dist.min(dim=1)
    hq = best < threshold
    counts = torch.bincount(nearest[hq], minlength=K).cpu()
    n_hq = int(counts.sum())
    if n_hq == 0:
        reverse_kl = float("inf")
    else:
        p = counts.double() / n_hq
        nz = p > 0
        reverse_kl = float((p[nz] * torch.log(p[nz] * K)).sum())
    return ModeCoverage(modes=int((counts > 0).sum()), high_quality_fraction=n_hq / samples.shape[0],
                        reverse_kl=reverse_kl, counts=counts)


def affine_generator_vs_optimal_discriminator(data_mean: float, data_std: float, mean: float, std: float,
                                              num_steps: int, lr: float, saturating: bool = False,
                                              num_nodes: int = 300) -> torch.Tensor:
    r"""The 1-D GAN game against a perfect discriminator, with no sampling noise: plain gradient descent.

    Data :math:`p_{data} = N(\mu, \sigma^2)` (``data_mean``, ``data_std``); an affine generator
    :math:`G_\theta(z) = a z + b`, :math:`z \sim N(0, 1)`, so :math:`p_g = N(b, a^2)`, starting at
    ``b = mean``, ``a = std``. At every step the discriminator is the optimal one for the current
    generator (Goodfellow et al. 2014, Proposition 1), whose logit is the log density ratio

    .. math::  \ell^*(x) = \log p_{data}(x) - \log p_g(x),

    held fixed while the generator takes one plain gradient-descent step
    :math:`\theta \leftarrow \theta - \mathrm{lr}\,\nabla_\theta\,\mathbb E_z[\mathrm{loss}(\ell^*(G_\theta(z)))]`
    on :func:`generator_loss` (saturating or not). The expectation over :math:`z` is Gauss-Hermite
    quadrature with ``num_nodes`` nodes (exact for polynomials of degree below ``2 num_nodes``), so
    the whole trajectory is deterministic: the limit of Algorithm 1 with ``k -> infinity``
    discriminator steps and infinite batches.

    Because :math:`D^*` maximizes :math:`V(G, \cdot)` pointwise, the saturating gradient is
    :math:`\nabla_\theta\, 2\,\mathrm{JSD}(p_{data} \| p_\theta)` (from Goodfellow et al. 2014,
    Theorem 1), and the non-saturating one is
    :math:`\nabla_\theta [\mathrm{KL}(p_\theta \| p_{data}) - 2\,\mathrm{JSD}(p_{data} \| p_\theta)]`
    (Arjovsky and Bottou 2017, Theorem 2.5); ``tests/test_gan.py`` checks both against finite
    differences of these divergences computed by ``scipy`` quadrature. When the two
    distributions barely overlap, the JSD is flat (close to :math:`\log 2`) and the saturating
    generator stalls, while the KL term keeps pulling the non-saturating one.

    Plain gradient descent is used on purpose: the step is proportional to the gradient, as in the
    analysis. Adam divides by a running gradient scale, which hides part of the saturation.

    Parameters
    ----------
    data_mean, data_std : float
        The data distribution (``data_std > 0``).
    mean, std : float
        The generator's initial ``b`` and ``a`` (``std > 0``).
    num_steps : int
        Gradient steps (>= 1).
    lr : float
        Step size (> 0).
    saturating : bool
        The minimax generator loss :math:`\log(1 - D)` instead of the log-D trick.
    num_nodes : int
        Gauss-Hermite nodes, 2 to 360 (NumPy's weights overflow above about 370). The default 300
        resolves the sharp rise of :math:`D^*(G(z))` in the tail of :math:`z` that carries the
        saturating gradient far from the data: in the notebook's example (data N(4, 0.5^2),
        generator N(0, 1)) the first gradient's relative error against quadrature is about 3e-4
        with 100 nodes, 1e-4 with 200 and 5e-6 with 300.

    Returns
    -------
    tensor (num_steps + 1, 2), float64
        ``(b, |a|)``, the mean and standard deviation of :math:`p_g`, before every step and after
        the last.

    Raises
    ------
    ValueError
        Non-positive ``data_std``, ``std``, ``lr``; fewer than 1 step; nodes outside 2..360.

    References
    ----------
    Goodfellow et al. (2014), Proposition 1, Theorem 1, Section 3; M. Arjovsky and L. Bottou,
    "Towards principled methods for training generative adversarial networks", ICLR 2017,
    Theorem 2.5.
    """
    import numpy as np

    check_positive("data_std", data_std)
    check_positive("std", std)
    check_positive("lr", lr)
    num_steps = check_int("num_steps", num_steps, minimum=1)
    num_nodes = check_int("num_nodes", num_nodes, minimum=2)
    if num_nodes > 360:
        raise ValueError(f"num_nodes: expected at most 360 Gauss-Hermite nodes, got {num_nodes}")
    nodes, weights = np.polynomial.hermite_e.hermegauss(num_nodes)   # weight exp(-z^2/2)
    z = torch.tensor(nodes, dtype=torch.float64)
    w = torch.tensor(weights / weights.sum(), dtype=torch.float64)   # the N(0, 1) expectation

    def log_normal(x, m, s):
        return -0.5 * ((x - m) / s) ** 2 - torch.log(s) - 0.5 * math.log(2 * math.pi)

    data_mean_t = torch.tensor(float(data_mean), dtype=torch.float64)
    data_std_t = torch.tensor(float(data_std), dtype=torch.float64)
    theta = torch.tensor([float(mean), float(std)], dtype=torch.float64, requires_grad=True)
    path = [torch.stack([theta.detach()[0], theta.detach()[1].abs()])]
    for _ in range(num_steps):
        b, a = theta[0], theta[1]
        b_d, a_d = b.detach(), a.detach().abs()                       # D* of the current p_g, fixed
        x = a * z + b
        logit = log_normal(x, data_mean_t, data_std_t) - log_normal(x, b_d, a_d)
        loss = (w * generator_loss(logit, saturating=saturating, reduction="none")).sum()
        (grad,) = torch.autograd.grad(loss, theta)
        with torch.no_grad():
            theta -= lr * grad
        if not bool(torch.isfinite(theta.detach()).all()) or float(theta.detach()[1]) == 0.0:
            raise FloatingPointError(f"affine_generator_vs_optimal_discriminator: the generator "
                                     f"diverged or collapsed (b, a = {theta.tolist()}); lower lr")
        path.append(torch.stack([theta.detach()[0], theta.detach()[1].abs()]))
    return torch.stack(path)


def gradient_penalty(D: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor, fake: torch.Tensor,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    r"""WGAN-GP penalty :math:`\mathbb E_{\hat x}[(\lVert\nabla_{\hat x} D(\hat x)\rVert_2 - 1)^2]`.

    :math:`\hat x = u x + (1 - u)\tilde x` with :math:`u \sim U[0, 1]` per example (Gulrajani et al.
    2017, eq. 3 and Algorithm 1). Differentiable with respect to D's parameters.

    Parameters
    ----------
    D : callable
        Critic, ``(N, ...) -> (N,)`` or ``(N, 1)``.
    real, fake : tensor (N, ...)
        Same shape.
    generator : torch.Generator, optional

    Returns
    -------
    tensor
        Scalar.
    """
    if real.shape != fake.shape:
        raise ValueError(f"real and fake: expected the same shape, got {tuple(real.shape)} and "
                         f"{tuple(fake.shape)}")
    shape = (real.shape[0],) + (1,) * (real.dim() - 1)
    u = rand(shape, generator, real.device, real.dtype)
    x_hat = (u * real.detach() + (1 - u) * fake.detach()).requires_grad_(True)
    out = _logits("D(x_hat)", D(x_hat))
    (grad,) = torch.autograd.grad(out.sum(), x_hat, create_graph=True)
    return (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()


def wgan_critic_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    r"""WGAN critic loss :math:`\mathbb E[D(\tilde x)] - \mathbb E[D(x)]` (add :func:`gradient_penalty`)."""
    return _logits("fake_scores", fake_scores).mean() - _logits("real_scores", real_scores).mean()


def wgan_generator_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    r"""WGAN generator loss :math:`-\mathbb E[D(G(z))]`."""
    return -_logits("fake_scores", fake_scores).mean()


# ----------------------------------------------------------------------------------------------
# networks
# ----------------------------------------------------------------------------------------------
def mlp_generator(latent_dim: int = 2, data_dim: int = 2, hidden=(128, 128, 128),
                  activation: str = "relu") -> nn.Module:
    """MLP generator ``z (N, latent_dim) -> x (N, data_dim)`` for 1-D/2-D toys (linear output)."""
    return MLP(latent_dim, data_dim, hidden=hidden, activation=activation)


def mlp_discriminator(data_dim: int = 2, hidden=(128, 128, 128), activation: str = "leaky_relu") -> nn.Module:
    """MLP discriminator ``x (N, data_dim) -> logits (N, 1)`` for 1-D/2-D toys."""
    return MLP(data_dim, 1, hidden=hidden, activation=activation)


class MLPEnsemble(nn.Module):
    r"""``num_models`` independent MLPs, evaluated at once with batched matrix products.

    Member ``i`` is an :class:`course_lib.nets.MLP` ``(in_dim, out_dim, hidden, activation)``,
    initialized as that class initializes it (PyTorch's ``nn.Linear`` default); its weights are
    stacked with the others'. The input's rows are split into ``num_models`` equal consecutive
    chunks, and chunk ``i`` goes through member ``i``: ``x`` of shape ``(num_models * n, in_dim)``
    gives ``(num_models * n, out_dim)``, rows ``i*n .. (i+1)*n - 1`` from member ``i``.

    This is how the notebooks run **independent trials** of a training run cheaply: give
    :func:`train_gan` an ensemble generator and an ensemble discriminator and a batch size of
    ``num_models * n``, and every member sees its own minibatch of ``n`` data points and ``n``
    noises. The losses are means over all rows, i.e. the mean over members of each member's own
    loss, so member ``i``'s gradient is ``1 / num_models`` times what it would be alone; Adam is
    invariant to that constant factor (up to its ``eps``), so each member follows the run it would
    follow alone, with its own data and noise. ``tests/test_gan.py`` checks both facts.

    Parameters
    ----------
    num_models : int
        Number of members (>= 1).
    in_dim, out_dim : int
        Input and output widths.
    hidden : sequence of int
        Hidden widths (``()``: each member is an affine map).
    activation : str or nn.Module class
        As in :class:`course_lib.nets.MLP` (stateless activations only).

    Raises
    ------
    ValueError
        In ``forward``: input not ``(N, in_dim)`` or ``N`` not a multiple of ``num_models``.
    """

    def __init__(self, num_models: int, in_dim: int, out_dim: int, hidden=(128, 128),
                 activation="silu"):
        super().__init__()
        self.num_models = check_int("num_models", num_models, minimum=1)
        members = [MLP(in_dim, out_dim, hidden=hidden, activation=activation) for _ in range(num_models)]
        self.in_dim, self.out_dim, self.hidden = members[0].in_dim, members[0].out_dim, members[0].hidden
        self._activation_spec = activation
        layers = [[m for m in member.net if isinstance(m, nn.Linear)] for member in members]
        # weights (num_models, fan_in, fan_out) for x @ W; biases (num_models, 1, fan_out)
        self.weights = nn.ParameterList(
            nn.Parameter(torch.stack([lin[j].weight.detach().T for lin in layers]).contiguous())
            for j in range(len(layers[0])))
        self.biases = nn.ParameterList(
            nn.Parameter(torch.stack([lin[j].bias.detach()[None, :] for lin in layers]))
            for j in range(len(layers[0])))
        self.activation = make_activation(activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_tensor("x", x, ndim=2, floating=True)
        if x.shape[1] != self.in_dim or x.shape[0] % self.num_models != 0:
            raise ValueError(f"x: MLPEnsemble of {self.num_models} members expected shape "
                             f"(num_models * n, {self.in_dim}), got {tuple(x.shape)}")
        h = x.reshape(self.num_models, -1, self.in_dim)
        last = len(self.weights) - 1
        for j, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = torch.baddbmm(b, h, w)
            if j < last:
                h = self.activation(h)
        return h.reshape(x.shape[0], self.out_dim)

    def split(self, out: torch.Tensor) -> torch.Tensor:
        """Rows ``(num_models * n, D)`` as ``(num_models, n, D)``: member ``i``'s rows at index ``i``."""
        check_tensor("out", out, ndim=2)
        if out.shape[0] % self.num_models != 0:
            raise ValueError(f"out: expected a multiple of {self.num_models} rows, got {tuple(out.shape)}")
        return out.reshape(self.num_models, -1, out.shape[1])

    def member(self, i: int) -> MLP:
        """A stand-alone copy of member ``i`` as a :class:`course_lib.nets.MLP`."""
        i = check_int("i", i, minimum=0)
        if i >= self.num_models:
            raise ValueError(f"i: expected a member index below {self.num_models}, got {i}")
        mlp = MLP(self.in_dim, self.out_dim, hidden=self.hidden, activation=self._activation_spec)
        lins = [m for m in mlp.net if isinstance(m, nn.Linear)]
        with torch.no_grad():
            for lin, w, b in zip(lins, self.weights, self.biases):
                lin.weight.copy_(w[i].T)
                lin.bias.copy_(b[i, 0])
        return mlp.to(self.weights[0].device)


class DCGANGenerator(nn.Module):
    """DCGAN-style generator for 8x8 images: ``z (N, latent_dim) -> x (N, 1, 8, 8)`` in ``[-1, 1]``.

    Follows the DCGAN guidelines (Radford et al. 2016, Section 3): a projection of z
    reshaped to a 2x2 feature map, then fractionally-strided convolutions (no pooling, no fully
    connected hidden layers), batch normalization on every layer but the output, ReLU inside and
    tanh at the output.
    """

    def __init__(self, latent_dim: int = 32, channels: int = 64):
        super().__init__()
        self.latent_dim = check_int("latent_dim", latent_dim, minimum=1)
        c = check_int("channels", channels, minimum=1)
        self.project = nn.Sequential(nn.Linear(latent_dim, 2 * c * 2 * 2, bias=False),
                                     nn.BatchNorm1d(2 * c * 2 * 2), nn.ReLU())
        self.net = nn.Sequential(
            nn.ConvTranspose2d(2 * c, c, 4, stride=2, padding=1, bias=False),  # 2 -> 4
            nn.BatchNorm2d(c), nn.ReLU(),
            nn.ConvTranspose2d(c, 1, 4, stride=2, padding=1),  # 4 -> 8
            nn.Tanh(),
        )
        self._c = c

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        check_tensor("z", z, shape=(None, self.latent_dim), floating=True)
        return self.net(self.project(z).view(-1, 2 * self._c, 2, 2))


class DCGANDiscriminator(nn.Module):
    """DCGAN-style discriminator for 8x8 images: ``x (N, 1, 8, 8) -> logits (N, 1)``.

    Strided convolutions instead of pooling, LeakyReLU(0.2), batch normalization on every layer
    but the input layer (Radford et al. 2016, Section 3).
    """

    def __init__(self, channels: int = 64):
        super().__init__()
        c = check_int("channels", channels, minimum=1)
        self.net = nn.Sequential(
            nn.Conv2d(1, c, 4, stride=2, padding=1), nn.LeakyReLU(0.2),  # 8 -> 4
            nn.Conv2d(c, 2 * c, 4, stride=2, padding=1, bias=False),  # 4 -> 2
            nn.BatchNorm2d(2 * c), nn.LeakyReLU(0.2),
            nn.Flatten(), nn.Linear(2 * c * 2 * 2, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_tensor("x", x, shape=(None, 1, 8, 8), floating=True)
        return self.net(x)


# ----------------------------------------------------------------------------------------------
# training
# ----------------------------------------------------------------------------------------------
@dataclass
class GANHistory:
    """Losses per generator step and metrics recorded every ``eval_every`` steps."""

    d_losses: list[float] = field(default_factory=list)
    g_losses: list[float] = field(default_factory=list)
    metrics: list[tuple[int, dict]] = field(default_factory=list)

    def plot(self, ax=None):
        """Loss curves of both players (:func:`course_lib.plotting.loss_curve`); returns the figure."""
        import matplotlib.pyplot as plt

        from course_lib.plotting import loss_curve

        if ax is None:
            _, ax = plt.subplots(figsize=(6, 3.2))
        loss_curve({"discriminator": self.d_losses, "generator": self.g_losses}, ax=ax,
                   xlabel="generator step", ylabel="loss (nats)")
        return ax.figure


def train_gan(G: nn.Module, D: nn.Module, data: torch.Tensor, num_steps: int, latent_dim: int,
              batch_size: int = 128, d_steps: int = 1, loss: str = "non_saturating",
              lr_g: float = 2e-4, lr_d: float = 2e-4, betas=(0.5, 0.999), gp_weight: float = 10.0,
              device: torch.device | str | None = None, generator: torch.Generator | None = None,
              eval_every: int | None = None, eval_fn: Callable[[nn.Module], dict] | None = None,
              progress: bool = True) -> GANHistory:
    r"""Alternating GAN training: ``d_steps`` discriminator updates per generator update.

    Goodfellow et al. (2014), Algorithm 1 (``k = d_steps``), with Adam. For each generator step:
    ``d_steps`` times sample a data minibatch and noise, update D on :func:`discriminator_loss`
    (or the WGAN-GP critic loss); then sample noise and update G on :func:`generator_loss`.

    Parameters
    ----------
    G, D : nn.Module
        Generator ``z (N, latent_dim) -> x`` and discriminator ``x -> logits (N, 1)``.
    data : tensor (N_data, ...)
        Training samples; minibatches are drawn with replacement using ``generator``.
    num_steps : int
        Generator updates (>= 1).
    latent_dim : int
        Dimension of :math:`z \sim N(0, I)`.
    batch_size, d_steps : int
    loss : {"non_saturating", "saturating", "wgan-gp"}
    lr_g, lr_d : float
        Adam learning rates; ``betas`` Adam's betas (DCGAN: 0.5, 0.999).
    gp_weight : float
        :math:`\lambda` of WGAN-GP (10 in Gulrajani et al.).
    device : optional
        Default: ``course_lib.get_device()``.
    generator : torch.Generator, optional
        CPU generator for minibatches and noise (reproducible on CPU).
    eval_every, eval_fn : optional
        Call ``eval_fn(G)`` (in eval mode, no grad) every ``eval_every`` generator steps and at the
        end; the returned dicts are recorded in ``history.metrics``.
    progress : bool
        tqdm progress bar (notebook or terminal).

    Returns
    -------
    GANHistory
    """
    from course_lib import get_device

    num_steps = check_int("num_steps", num_steps, minimum=1)
    d_steps = check_int("d_steps", d_steps, minimum=1)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    latent_dim = check_int("latent_dim", latent_dim, minimum=1)
    if loss not in ("non_saturating", "saturating", "wgan-gp"):
        raise ValueError(f"loss: expected 'non_saturating', 'saturating' or 'wgan-gp', got {loss!r}")
    check_tensor("data", data, floating=True)
    device = torch.device(device) if device is not None else get_device()
    G.to(device)
    D.to(device)
    data = data.to(device)
    opt_g = torch.optim.Adam(G.parameters(), lr=lr_g, betas=betas)
    opt_d = torch.optim.Adam(D.parameters(), lr=lr_d, betas=betas)
    hist = GANHistory()

    def noise(n):
        return randn((n, latent_dim), generator, device)

    def batch():
        return data[randint(data.shape[0], (batch_size,), generator, device)]

    def evaluate(step):
        if eval_fn is None:
            return
        G.eval()
        with torch.no_grad():
            hist.metrics.append((step, eval_fn(G)))
        G.train()

    bar = progress_bar(range(1, num_steps + 1), progress, f"GAN ({loss})", leave=True)
    for step in bar:
        for _ in range(d_steps):
            real = batch()
            with torch.no_grad():
                fake = G(noise(batch_size))
            if loss == "wgan-gp":
                d_loss = wgan_critic_loss(D(real), D(fake)) + gp_weight * gradient_penalty(
                    D, real, fake, generator=generator)
            else:
                d_loss = discriminator_loss(D(real), D(fake))
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
        fake_logits = D(G(noise(batch_size)))
        if loss == "wgan-gp":
            g_loss = wgan_generator_loss(fake_logits)
        else:
            g_loss = generator_loss(fake_logits, saturating=(loss == "saturating"))
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        d_val, g_val = float(d_loss.detach()), float(g_loss.detach())
        if not (torch.isfinite(torch.tensor([d_val, g_val])).all()):
            raise FloatingPointError(f"train_gan: non-finite loss at step {step} "
                                     f"(D: {d_val}, G: {g_val})")
        hist.d_losses.append(d_val)
        hist.g_losses.append(g_val)
        if eval_every and step % eval_every == 0 and step != num_steps:
            evaluate(step)
        if progress and step % 50 == 0:
            bar.set_postfix(d=f"{d_val:.3f}", g=f"{g_val:.3f}")
    evaluate(num_steps)
    return hist


def train_discriminator(D: nn.Module, sample_data: Callable[[int], torch.Tensor],
                        sample_model: Callable[[int], torch.Tensor], num_steps: int,
                        batch_size: int = 256, lr: float = 1e-3,
                        device: torch.device | str | None = None) -> list[float]:
    r"""Train D alone against a **fixed** generator: the inner maximization of the minimax game.

    Each step draws ``batch_size`` data and ``batch_size`` model samples and takes one Adam step on
    :func:`discriminator_loss` :math:`= -V(D, G)`, G held fixed. For a flexible enough D the
    maximizer is :math:`D^* = p_{data} / (p_{data} + p_g)` (Goodfellow et al. 2014,
    Proposition 1), which notebook 03 compares with the trained D.

    Parameters
    ----------
    D : nn.Module
        Discriminator ``x -> logits (N, 1)``.
    sample_data, sample_model : callable
        ``n -> (n, ...)`` samples from p_data and from the fixed generator (seed them yourself,
        e.g. with a closure over a ``torch.Generator``).
    num_steps : int
        Adam steps (>= 1).
    batch_size : int
        Samples of each kind per step.
    lr : float
        Adam learning rate.
    device : optional
        Where D is trained (default ``course_lib.get_device()``); samples are moved there.

    Returns
    -------
    list of float
        The loss :math:`-V(D, G)` (nats) after each step; :math:`\log 4` is the value of D = 1/2.
    """
    from course_lib import get_device

    num_steps = check_int("num_steps", num_steps, minimum=1)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    check_positive("lr", lr)
    device = torch.device(device) if device is not None else get_device()
    D.to(device)
    opt = torch.optim.Adam(D.parameters(), lr=lr)
    losses = []
    for _ in range(num_steps):
        real = sample_data(batch_size).to(device)
        fake = sample_model(batch_size).to(device)
        loss = discriminator_loss(D(real), D(fake))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses


# ----------------------------------------------------------------------------------------------
# the value of the game at the optimal discriminator, by quadrature (1-D)
# ----------------------------------------------------------------------------------------------
def optimal_discriminator_value(log_p_data, log_p_model, x) -> float:
    r"""The value :math:`V(G, D^*)` of the game at the optimal discriminator, by the trapezoid rule in 1-D.

    .. math::  V(G, D^*) = \int p_{data}(x)\log D^*(x)\,dx + \int p_g(x)\log\big(1 - D^*(x)\big)\,dx,
               \qquad D^* = \frac{p_{data}}{p_{data} + p_g}

    with :math:`\log D^* = \log\sigma(\log p_{data} - \log p_g)` and
    :math:`\log(1 - D^*) = \log\sigma(\log p_g - \log p_{data})`, stable where either density is
    tiny. Goodfellow et al.'s Theorem 1 says it equals :math:`-\log 4 + 2\,\mathrm{JSD}(p_{data}\|p_g)`
    (compare :func:`course_lib.divergences.js_divergence_1d`, computed independently).

    Parameters
    ----------
    log_p_data, log_p_model : tensor or array (N,)
        Log-densities of the data and of the generator at the grid points (finite, or ``-inf``
        where a density is zero).
    x : tensor or array (N,)
        Strictly increasing grid covering both densities' mass, e.g.
        :func:`course_lib.divergences.quadrature_grid`.

    Returns
    -------
    float
        Nats, in :math:`[-\log 4, 0]` up to the quadrature error.

    Raises
    ------
    ValueError
        Shapes that differ from the grid's, NaN or ``+inf`` log-densities, a grid that is not
        strictly increasing or has fewer than 2 points.

    References
    ----------
    Goodfellow et al., "Generative Adversarial Nets" (2014), Eq. 1, Proposition 1 and Theorem 1.
    """
    x, lp, lq = check_log_densities_on_grid(x, log_p_data=log_p_data, log_p_model=log_p_model)
    diff = (lp - lq).nan_to_num(0.0)             # -inf - -inf: no mass from either density there
    p, q = torch.exp(lp), torch.exp(lq)
    zero = torch.zeros_like(p)
    # p log D* + q log(1 - D*), with 0 log 0 = 0 where a density vanishes
    integrand = (torch.where(p > 0, p * F.logsigmoid(diff), zero)
                 + torch.where(q > 0, q * F.logsigmoid(-diff), zero))
    return float(torch.trapezoid(integrand, x))


__all__ += ["optimal_discriminator_value"]


# ----------------------------------------------------------------------------------------------
# what the generator minimizes against D*, by quadrature (1-D): the log-D trick as a reverse KL
# ----------------------------------------------------------------------------------------------
def generator_loss_at_optimum(log_p_data, log_p_model, x, saturating: bool = False) -> float:
    r"""The generator's loss against the optimal discriminator, :math:`\mathbb E_{p_g}[\mathrm{loss}(D^*(x))]`, in 1-D.

    - non-saturating (log-D trick): :math:`\mathbb E_{p_g}[-\log D^*(x)] = \int p_g\,\mathrm{softplus}(-\ell^*)`;
    - saturating (minimax): :math:`\mathbb E_{p_g}[\log(1 - D^*(x))] = -\int p_g\,\mathrm{softplus}(\ell^*)`,

    with the optimal logit :math:`\ell^* = \log p_{data} - \log p_g` (Goodfellow et al. 2014,
    Proposition 1), by the trapezoid rule on the grid ``x``. This is the *value*; writing
    :math:`M = (p_{data} + p_g)/2`, the non-saturating one equals
    :math:`\mathrm{KL}(p_g\|p_{data}) - \mathrm{KL}(p_g\|M) + \log 2` (notebook 03, Exercise 2). The
    gradient the generator follows against a *frozen* :math:`D^*` is that of
    :func:`non_saturating_objective` instead.

    Parameters
    ----------
    log_p_data, log_p_model : tensor or array (N,)
        Log-densities at the grid points (finite, or ``-inf`` where a density is zero).
    x : tensor or array (N,)
        Strictly increasing grid covering both densities' mass (e.g.
        :func:`course_lib.divergences.quadrature_grid`).
    saturating : bool
        The minimax loss :math:`\log(1 - D)` instead of the log-D trick :math:`-\log D`.

    Returns
    -------
    float
        Nats. The non-saturating value is >= 0 (it is :math:`\log 2` when :math:`p_g = p_{data}`);
        the saturating one is <= 0 (:math:`-\log 2` when :math:`p_g = p_{data}`).

    Raises
    ------
    ValueError
        As :func:`optimal_discriminator_value` (shapes, NaN or ``+inf``, grid not increasing).

    References
    ----------
    Goodfellow et al. (2014), Proposition 1 and Section 3; Arjovsky and Bottou (2017), Section 2.2.
    """
    x, lp, lq = check_log_densities_on_grid(x, log_p_data=log_p_data, log_p_model=log_p_model)
    q = torch.exp(lq)
    logit = (lp - lq).nan_to_num(0.0)
    per_point = -F.softplus(logit) if saturating else F.softplus(-logit)
    integrand = torch.where(q > 0, q * per_point, torch.zeros_like(q))
    return float(torch.trapezoid(integrand, x))


def non_saturating_objective(log_p_data, log_p_model, x) -> float:
    r"""What the log-D trick's generator descends against a frozen :math:`D^*`: :math:`2\,\mathrm{KL}(M\|p_{data})`.

    Arjovsky and Bottou (2017, Theorem 2.5): with :math:`D^*` the optimal discriminator for the
    current generator :math:`p_{\theta_0}`, held fixed,

    .. math::  \mathbb E_z\big[-\nabla_\theta \log D^*(G_\theta(z))\big]_{\theta_0}
               = \nabla_\theta\big[\mathrm{KL}(p_\theta\|p_{data})
                 - 2\,\mathrm{JSD}(p_{data}\|p_\theta)\big]_{\theta_0}.

    The bracket simplifies: with :math:`M = (p_{data} + p_g)/2`,
    :math:`\mathrm{KL}(p_g\|p_{data}) - 2\,\mathrm{JSD} = \int (p_{data} + p_g)\log\frac{M}{p_{data}}
    = 2\,\mathrm{KL}(M\,\|\,p_{data})`, a reverse KL (the model's side first) that is 0 exactly when
    :math:`p_g = p_{data}`. It is what this function returns, by the trapezoid rule:
    :math:`2\int M(\log M - \log p_{data})`, with :math:`\log M` from ``logaddexp`` (no underflow).

    Parameters
    ----------
    log_p_data, log_p_model : tensor or array (N,)
        Log-densities at the grid points (finite, or ``-inf`` where a density is zero).
    x : tensor or array (N,)
        Strictly increasing grid covering both densities' mass.

    Returns
    -------
    float
        Nats, >= 0 (``inf`` where :math:`p_{data} = 0` on the support of :math:`p_g`).

    Raises
    ------
    ValueError
        As :func:`optimal_discriminator_value`.

    References
    ----------
    M. Arjovsky, L. Bottou, "Towards principled methods for training generative adversarial
    networks", ICLR 2017, Theorem 2.5.
    """
    x, lp, lq = check_log_densities_on_grid(x, log_p_data=log_p_data, log_p_model=log_p_model)
    log_m = torch.logaddexp(lp, lq) - math.log(2.0)
    m = torch.exp(log_m)
    integrand = torch.where(m > 0, m * (log_m - lp), torch.zeros_like(m))
    return float(2.0 * torch.trapezoid(integrand, x))


# ----------------------------------------------------------------------------------------------
# LSGAN: least-squares losses (Mao et al. 2017)
# ----------------------------------------------------------------------------------------------
def _lsgan_targets(**targets) -> dict:
    out = {}
    for name, v in targets.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ValueError(f"{name}: expected a finite number (an LSGAN target), got {v!r}")
        out[name] = float(v)
    return out


def lsgan_discriminator_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor,
                             a: float = -1.0, b: float = 1.0) -> torch.Tensor:
    r"""LSGAN discriminator loss :math:`\tfrac12\mathbb E_x[(D(x) - b)^2] + \tfrac12\mathbb E_z[(D(G(z)) - a)^2]`.

    Mao et al. (2017), eq. 2: the discriminator regresses its raw output (a score, no sigmoid) to
    ``b`` on data and to ``a`` on samples. Its minimizer for a fixed generator is
    :func:`lsgan_optimal_discriminator`. The defaults ``a = -1, b = 1`` with ``c = 0`` in
    :func:`lsgan_generator_loss` satisfy ``b - c = 1``, ``b - a = 2`` (Mao et al., Section 3.2), under
    which the generator minimizes a Pearson :math:`\chi^2` divergence (:func:`lsgan_generator_value`).

    Parameters
    ----------
    real_scores : tensor (N,) or (N, 1)
        Discriminator outputs on data.
    fake_scores : tensor (M,) or (M, 1)
        Discriminator outputs on generated samples.
    a, b : float
        Targets for fake and real data (finite, ``a != b``).

    Returns
    -------
    tensor
        Scalar (squared score units).

    Raises
    ------
    ValueError
        Wrong shapes, non-finite targets, or ``a == b`` (then D has nothing to separate).

    References
    ----------
    X. Mao et al., "Least squares generative adversarial networks", ICCV 2017, eq. 2.
    """
    t = _lsgan_targets(a=a, b=b)
    if t["a"] == t["b"]:
        raise ValueError(f"a and b: expected different targets for fake and real data, got a = b = {a!r}")
    real_scores = _logits("real_scores", real_scores)
    fake_scores = _logits("fake_scores", fake_scores)
    return 0.5 * (real_scores - t["b"]).pow(2).mean() + 0.5 * (fake_scores - t["a"]).pow(2).mean()


def lsgan_generator_loss(fake_scores: torch.Tensor, c: float = 0.0) -> torch.Tensor:
    r"""LSGAN generator loss :math:`\tfrac12\mathbb E_z[(D(G(z)) - c)^2]` (Mao et al. 2017, eq. 2).

    ``c`` is the value the generator wants the discriminator to believe for its samples (default 0,
    with ``a = -1``, ``b = 1``: the Pearson :math:`\chi^2` setting of Mao et al., Section 3.2).

    Parameters
    ----------
    fake_scores : tensor (M,) or (M, 1)
        Discriminator outputs on generated samples.
    c : float
        Finite target.

    Returns
    -------
    tensor
        Scalar.

    Raises
    ------
    ValueError
        Wrong shape, non-finite ``c``.
    """
    t = _lsgan_targets(c=c)
    return 0.5 * (_logits("fake_scores", fake_scores) - t["c"]).pow(2).mean()


def lsgan_optimal_discriminator(p_data, p_model, a: float = -1.0, b: float = 1.0,
                                log_densities: bool = False) -> torch.Tensor:
    r"""LSGAN's optimal discriminator :math:`D^*(x) = \frac{b\,p_{data}(x) + a\,p_g(x)}{p_{data}(x) + p_g(x)}`.

    Mao et al. (2017), Section 3.2: at every ``x`` the discriminator loss
    :math:`\tfrac12[p_{data}(D - b)^2 + p_g(D - a)^2]` is a parabola in ``D`` with this minimum.
    Equivalently :math:`D^* = a + (b - a)\,D^*_{GAN}` with the GAN's
    :func:`optimal_discriminator`; that form is used (stable from log densities too). Where both
    densities vanish the midpoint ``(a + b) / 2`` is returned.

    Parameters
    ----------
    p_data, p_model : tensor, same shape
        Density values, or log densities with ``log_densities=True``.
    a, b : float
        The targets of :func:`lsgan_discriminator_loss` (finite, ``a != b``).
    log_densities : bool

    Returns
    -------
    tensor
        Same shape as the inputs, between ``a`` and ``b``.

    Raises
    ------
    ValueError
        As :func:`optimal_discriminator`, non-finite targets, or ``a == b``.

    References
    ----------
    Mao et al. (2017), Section 3.2 (the optimal discriminator of the extended objective).
    """
    t = _lsgan_targets(a=a, b=b)
    if t["a"] == t["b"]:
        raise ValueError(f"a and b: expected different targets for fake and real data, got a = b = {a!r}")
    d = optimal_discriminator(p_data, p_model, log_densities=log_densities)
    return t["a"] + (t["b"] - t["a"]) * d


def lsgan_generator_value(log_p_data, log_p_model, x, a: float = -1.0, b: float = 1.0,
                          c: float = 0.0) -> float:
    r"""The LSGAN generator's objective at the optimal discriminator, by the trapezoid rule in 1-D.

    Mao et al. (2017), Section 3.2: the generator's loss of eq. 2 extended by a term that does not depend on the
    generator, :math:`C(G) = \tfrac12\mathbb E_{p_{data}}[(D^*(x) - c)^2] + \tfrac12\mathbb E_{p_g}[(D^*(x) - c)^2]`,
    with :math:`D^*` of :func:`lsgan_optimal_discriminator`. For ``b - c = 1`` and ``b - a = 2``


    .. math::  2\,C(G) = \int \frac{\big(2p_g - (p_{data} + p_g)\big)^2}{p_{data} + p_g}\,dx
               = \chi^2_{\mathrm{Pearson}}(p_{data} + p_g\,\|\,2p_g),

    in Mao et al.'s convention :math:`\chi^2_{\mathrm{Pearson}}(P\|Q) = \int (Q - P)^2 / P`; that is,
    :math:`C(G) = \tfrac12\int (p_{data} - p_g)^2 / (p_{data} + p_g)`. Computed here from the definition
    (the squares of :math:`D^* - c`), not from that formula.

    Parameters
    ----------
    log_p_data, log_p_model : tensor or array (N,)
        Log-densities at the grid points.
    x : tensor or array (N,)
        Strictly increasing grid covering both densities' mass.
    a, b, c : float
        LSGAN targets (finite, ``a != b``).

    Returns
    -------
    float
        Squared score units; for ``b - c = 1``, ``b - a = 2`` in :math:`[0, 1]` (0 iff
        :math:`p_g = p_{data}`, 1 for disjoint supports).

    Raises
    ------
    ValueError
        As :func:`optimal_discriminator_value`; non-finite targets or ``a == b``.

    References
    ----------
    Mao et al., "Least squares generative adversarial networks", ICCV 2017, Section 3.2.
    """
    t = _lsgan_targets(a=a, b=b, c=c)
    x, lp, lq = check_log_densities_on_grid(x, log_p_data=log_p_data, log_p_model=log_p_model)
    d_star = lsgan_optimal_discriminator(lp, lq, a=t["a"], b=t["b"], log_densities=True)
    total = torch.exp(lp) + torch.exp(lq)
    return float(0.5 * torch.trapezoid(total * (d_star - t["c"]).pow(2), x))


# ----------------------------------------------------------------------------------------------
# latent interpolation and a kernel density estimate (for D* where p_g is only sampled)
# ----------------------------------------------------------------------------------------------
def interpolate(start: torch.Tensor, end: torch.Tensor, num_points: int,
                method: str = "linear") -> torch.Tensor:
    r"""Points on a path from ``start`` to ``end``: linear or spherical (slerp), endpoints exact.

    With :math:`t_j = j/(n-1)`, :math:`j = 0, \ldots, n-1`:

    - ``"linear"``: :math:`(1 - t)\,z_0 + t\,z_1`;
    - ``"slerp"`` (Shoemake 1985; for GAN latents White 2016):
      :math:`\frac{\sin((1-t)\Omega)}{\sin\Omega} z_0 + \frac{\sin(t\Omega)}{\sin\Omega} z_1` with
      :math:`\cos\Omega = \langle z_0, z_1\rangle / (\lVert z_0\rVert\lVert z_1\rVert)`: a great-circle
      arc when the norms are equal. Where :math:`\sin\Omega` is below ``1e-6`` (parallel or
      antiparallel vectors, no unique plane) the linear path is returned.

    The endpoints are ``start`` and ``end`` bitwise (:math:`1\cdot z_0 + 0\cdot z_1`), so a
    generator maps them to exactly ``G(start)`` and ``G(end)``. Linear interpolation of two
    independent :math:`N(0, I_d)` latents passes, at :math:`t = 1/2`, through norms near
    :math:`\sqrt{d/2}`, far inside the shell of radius :math:`\approx\sqrt d` where the prior's mass
    is; slerp stays near the shell (Radford et al. 2016 interpolate linearly; White 2016 argues for
    slerp).

    Parameters
    ----------
    start, end : tensor (N, ...) or (D,)
        Same shape, floating; a batch of ``N`` pairs, each flattened to a vector for slerp's angle.
    num_points : int
        Points on each path (>= 2), including both endpoints.
    method : {"linear", "slerp"}

    Returns
    -------
    tensor (N, num_points, ...) (or (num_points, D) for 1-D inputs)

    Raises
    ------
    ValueError
        Shapes differ, ``num_points < 2``, an unknown ``method``, non-finite values.
    TypeError
        Non-floating inputs.

    References
    ----------
    K. Shoemake, "Animating rotation with quaternion curves", SIGGRAPH 1985; T. White, "Sampling
    generative networks", arXiv:1609.04468, 2016; Radford et al. (2016), Section 6.1.
    """
    check_tensor("start", start, floating=True)
    check_tensor("end", end, floating=True)
    if start.shape != end.shape:
        raise ValueError(f"start and end: expected the same shape, got {tuple(start.shape)} and "
                         f"{tuple(end.shape)}")
    if start.dim() == 0:
        raise ValueError("start: expected a vector (D,) or a batch (N, ...), got a scalar")
    num_points = check_int("num_points", num_points, minimum=2)
    if method not in ("linear", "slerp"):
        raise ValueError(f"method: expected 'linear' or 'slerp', got {method!r}")
    if not bool(torch.isfinite(start).all() & torch.isfinite(end).all()):
        raise ValueError("start, end: expected finite values, got NaN or inf")
    single = start.dim() == 1
    z0, z1 = (start[None], end[None]) if single else (start, end)
    n = z0.shape[0]
    a0, a1 = z0.reshape(n, -1), z1.reshape(n, -1)
    t = torch.linspace(0.0, 1.0, num_points, dtype=z0.dtype, device=z0.device)
    t[0], t[-1] = 0.0, 1.0                                          # exact, whatever linspace rounds
    w0 = (1 - t)[None, :].expand(n, num_points)                      # (N, T)
    w1 = t[None, :].expand(n, num_points)
    if method == "slerp":
        norms = a0.norm(dim=1) * a1.norm(dim=1)
        cos = ((a0 * a1).sum(dim=1) / torch.where(norms > 0, norms, torch.ones_like(norms))).clamp(-1, 1)
        omega = torch.arccos(cos)                                    # (N,)
        sin = torch.sin(omega)
        curved = sin > 1e-6
        safe_sin = torch.where(curved, sin, torch.ones_like(sin))[:, None]
        s0 = torch.sin((1 - t)[None, :] * omega[:, None]) / safe_sin
        s1 = torch.sin(t[None, :] * omega[:, None]) / safe_sin
        s0[:, 0], s1[:, 0], s0[:, -1], s1[:, -1] = 1.0, 0.0, 0.0, 1.0   # endpoints bitwise
        w0 = torch.where(curved[:, None], s0, w0)
        w1 = torch.where(curved[:, None], s1, w1)
    path = w0[:, :, None] * a0[:, None, :] + w1[:, :, None] * a1[:, None, :]   # (N, T, D)
    path = path.reshape(n, num_points, *z0.shape[1:])
    return path[0] if single else path


def kde_log_prob(x: torch.Tensor, samples: torch.Tensor, bandwidth: float,
                 chunk_size: int = 2048) -> torch.Tensor:
    r"""Log-density of an isotropic Gaussian kernel density estimate, :math:`\log\frac1n\sum_i N(x; x_i, h^2 I)`.

    Used to estimate :math:`D^*` where the generator's :math:`p_g` is known only through samples
    (notebook 03: the trained discriminator against :math:`\hat D^* = \sigma(\log p_{data} -
    \log\hat p_g)` on the 2-D runs). Computed with ``logsumexp`` in chunks of ``chunk_size``
    query points (memory ``chunk_size * n``).

    Parameters
    ----------
    x : tensor (M, D)
        Query points.
    samples : tensor (n, D)
        The sample the estimate is built from (``n >= 1``).
    bandwidth : float
        Kernel standard deviation ``h > 0`` (same units as ``x``).
    chunk_size : int

    Returns
    -------
    tensor (M,)
        Nats, in ``x``'s dtype.

    Raises
    ------
    ValueError
        Shapes that are not ``(M, D)`` and ``(n, D)``, no samples, ``bandwidth <= 0``.

    References
    ----------
    B. W. Silverman, *Density Estimation for Statistics and Data Analysis*, 1986, Section 4.2.
    """
    check_tensor("x", x, ndim=2, floating=True)
    check_tensor("samples", samples, ndim=2, floating=True)
    if samples.shape[0] < 1 or samples.shape[1] != x.shape[1]:
        raise ValueError(f"samples: expected shape (n >= 1, {x.shape[1]}) like x's columns, got "
                         f"{tuple(samples.shape)}")
    check_positive("bandwidth", bandwidth)
    chunk_size = check_int("chunk_size", chunk_size, minimum=1)
    samples = samples.to(x)
    n, dim = samples.shape
    h = float(bandwidth)
    const = -math.log(n) - 0.5 * dim * math.log(2 * math.pi * h * h)
    out = [torch.logsumexp(-0.5 * torch.cdist(xc, samples).pow(2) / (h * h), dim=1) + const
           for xc in x.split(chunk_size)]
    return torch.cat(out) if out else x.new_zeros(0)


__all__ += ["generator_loss_at_optimum", "non_saturating_objective", "lsgan_discriminator_loss",
            "lsgan_generator_loss", "lsgan_optimal_discriminator", "lsgan_generator_value",
            "interpolate", "kde_log_prob"]
