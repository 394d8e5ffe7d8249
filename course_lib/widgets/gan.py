"""Notebook 03's figures and explorers: the optimal discriminator, and why the minimax loss saturates.

1-D data p_data = N(0, 1) against a generator p_g = N(shift, scale^2). For this fixed generator the
best discriminator is D*(x) = p_data / (p_data + p_g) (:func:`course_lib.gan.optimal_discriminator`;
Goodfellow et al. 2014, Prop. 1); the value V(G, D*) (:func:`course_lib.gan.optimal_discriminator_value`)
and -log 4 + 2 JSD (:func:`course_lib.divergences.js_divergence_1d`, Theorem 1) are computed
independently by quadrature. The right panel is the saturation plot of Goodfellow et al. (2014),
Section 3: both generator losses
as functions of D(G(z)) and the magnitude of their gradient in the logit, ``|d loss / d l|`` = D
(minimax) and 1 - D (log-D trick), with the generator's samples' values of D*(G(z)) underneath.
A few milliseconds per redraw.
"""

from __future__ import annotations

import ipywidgets as W
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from course_lib import divergences, gan, toy
from course_lib.widgets.ui import explorer, slider

__all__ = ["plot_optimal_discriminator", "optimal_discriminator_explorer"]

_F64 = torch.float64


def _gaussian(mean: float, std: float) -> toy.GaussianMixture:
    """One 1-D Gaussian as a mixture of one component."""
    return toy.GaussianMixture(torch.tensor([[mean]], dtype=_F64), torch.tensor([std], dtype=_F64))


def _log_density(p: toy.GaussianMixture, x) -> torch.Tensor:
    return p.log_prob(torch.as_tensor(x, dtype=_F64)[:, None])


def _generator_loss_and_slope(d, saturating: bool) -> tuple[np.ndarray, np.ndarray]:
    """:func:`course_lib.gan.generator_loss` of each discriminator output ``d`` (a batch of one
    example each, vectorized) and the magnitude of its derivative in the logit, by autograd."""
    def loss(logit):
        return gan.generator_loss(logit[None], saturating=saturating)

    logits = torch.logit(torch.as_tensor(d, dtype=_F64))
    values = torch.func.vmap(loss)(logits)
    slopes = torch.func.vmap(torch.func.grad(loss))(logits)
    return values.numpy(), slopes.abs().numpy()


def plot_optimal_discriminator(shift: float = 3.0, scale: float = 1.0, num_samples: int = 400,
                               seed: int = 0) -> Figure:
    """The optimal discriminator for 1-D Gaussians, and why the minimax generator loss saturates.

    Parameters
    ----------
    shift : float
        Mean of the generator's distribution p_g = N(shift, scale^2); the data are N(0, 1).
    scale : float
        Standard deviation of p_g (> 0).
    num_samples : int
        Generator samples drawn (seeded) to show where D*(G(z)) falls.
    seed : int
        Seed of those samples.

    Returns
    -------
    matplotlib.figure.Figure
        Left: p_data, p_g and D*(x) = p_data / (p_data + p_g), with V(G, D*), -log 4 + 2 JSD and the
        JSD in the title. Right: the minimax loss log(1 - D) and the log-D-trick loss -log D
        against D = D(G(z)), the magnitudes of their derivatives in the logit (D and 1 - D), and
        the generator samples' D*(G(z)); the legend gives the mean gradient magnitude of each loss
        over those samples.

    Raises
    ------
    ValueError
        If ``scale`` is not positive or ``num_samples < 1``.

    References
    ----------
    Goodfellow et al., "Generative Adversarial Nets" (2014), Proposition 1, Theorem 1, Section 3.
    """
    if not scale > 0:
        raise ValueError(f"scale: expected a number > 0, got {scale!r}")
    if int(num_samples) < 1:
        raise ValueError(f"num_samples: expected an int >= 1, got {num_samples!r}")
    p_data, p_g = _gaussian(0.0, 1.0), _gaussian(float(shift), float(scale))
    grid = divergences.quadrature_grid(p_data, p_g)
    lp, lq = _log_density(p_data, grid), _log_density(p_g, grid)
    value = gan.optimal_discriminator_value(lp, lq, grid)
    jsd = divergences.js_divergence_1d(lp, lq, grid)

    def d_star(x):
        return gan.optimal_discriminator(_log_density(p_data, x), _log_density(p_g, x),
                                         log_densities=True).numpy()

    lo, hi = min(-4.0, shift - 4 * scale), max(4.0, shift + 4 * scale)
    x = np.linspace(lo, hi, 600)
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 3.8), layout="constrained")
    ax.fill_between(x, _log_density(p_data, x).exp().numpy(), color="0.75",
                    label=r"$p_{data} = N(0, 1)$")
    ax.plot(x, _log_density(p_g, x).exp().numpy(), color="C0", lw=2,
            label=rf"$p_g = N({shift:g}, {scale:g}^2)$")
    ax.plot(x, d_star(x), color="C3", lw=2, label=r"$D^*(x) = p_{data}/(p_{data} + p_g)$")
    ax.axhline(0.5, color="k", lw=0.5, ls=":")
    ax.set_ylim(-0.02, 1.05)
    ax.set_xlabel("x")
    ax.set_title(f"V(G, D*) = {value:.4f}, -log 4 + 2 JSD = {-np.log(4) + 2 * jsd:.4f} (JSD {jsd:.4f})",
                 fontsize=9)
    ax.legend(fontsize=8, frameon=False, loc="upper left")

    d = np.linspace(1e-3, 1 - 1e-3, 400)
    minimax, minimax_slope = _generator_loss_and_slope(d, saturating=True)
    log_d, log_d_slope = _generator_loss_and_slope(d, saturating=False)
    bx.plot(d, minimax, color="C1", lw=2, label=r"minimax: $\log(1 - D)$")
    bx.plot(d, log_d, color="C2", lw=2, label=r"log-D trick: $-\log D$")
    bx.plot(d, minimax_slope, color="C1", lw=1, ls="--", label=r"$|\partial/\partial\ell|$ minimax $= D$")
    bx.plot(d, log_d_slope, color="C2", lw=1, ls="--", label=r"$|\partial/\partial\ell|$ log-D $= 1 - D$")
    xs = p_g.sample(int(num_samples), generator=torch.Generator().manual_seed(int(seed)))[:, 0]
    ds = d_star(xs)
    bx.plot(ds, np.full_like(ds, -3.6), "|", color="C0", alpha=0.3, ms=12)
    bx.plot([], [], "|", color="C0", label=rf"$D^*(G(z))$ of {int(num_samples)} samples")
    bx.set_ylim(-4.0, 4.0)
    bx.set_xlabel("D(G(z))")
    bx.set_title(f"mean gradient magnitude over the samples: "
                 f"minimax {_generator_loss_and_slope(ds, True)[1].mean():.3f}, "
                 f"log-D {_generator_loss_and_slope(ds, False)[1].mean():.3f}", fontsize=9)
    bx.legend(fontsize=7, frameon=False, loc="upper right")
    return fig


def optimal_discriminator_explorer() -> W.VBox:
    """Sliders for the generator's shift and scale; redraws :func:`plot_optimal_discriminator`."""
    return explorer(
        plot_optimal_discriminator,
        "as the generator moves away from the data, D* approaches 1 on the data and 0 on the "
        "samples, V(G, D*) rises from -log 4 towards 0 (JSD towards log 2), and the samples' "
        "D*(G(z)) pile up near 0, where the minimax loss is flat (gradient D ~ 0) but the log-D "
        "trick's gradient 1 - D stays near 1.",
        shift=slider("generator shift", -6.0, 6.0, 0.25),
        scale=slider("generator std", 0.25, 3.0, 0.25),
    )
