"""Notebook 06's figures and explorers: the score field of a noised mixture, and Langevin dynamics.

(1) The score field of the sigma-noised toy mixture p_sigma = p * N(0, sigma^2 I), exact
(``GaussianMixture.convolve(sigma).score``), over its log-density; (2) Langevin dynamics with the
exact score, plain or annealed (:mod:`course_lib.score`), and the fraction of samples that reach
each mode (:func:`course_lib.metrics.mode_fractions`). The toy is
:func:`course_lib.toy.three_mode_mixture`.
"""

from __future__ import annotations

import ipywidgets as W
import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure

from course_lib import score as sm
from course_lib import toy
from course_lib.metrics import mode_fractions
from course_lib.plotting import density_contours, scatter_samples, score_field, trajectories
from course_lib.widgets.ui import checkbox, explorer, slider

__all__ = ["plot_noised_score_field", "score_field_explorer", "plot_langevin", "langevin_explorer"]


def plot_noised_score_field(sigma: float = 0.3, resolution: int = 21, lim: float = 4.0) -> Figure:
    """Log-density and score field of the toy mixture convolved with N(0, sigma^2 I), exactly.

    Left: :math:`\\log p_\\sigma` with the normalized score arrows (colour = log10 of their length);
    right: stream lines of the same field. ``sigma = 0`` is the data itself.
    """
    if not sigma >= 0:
        raise ValueError(f"sigma: expected a number >= 0, got {sigma!r}")
    noisy = toy.three_mode_mixture().convolve(sigma)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.6), layout="constrained")
    lims = (-lim, lim)
    density_contours(noisy.log_prob, lims, lims, ax=axes[0], log=True, resolution=150, levels=25)
    score_field(noisy.score, lims, lims, ax=axes[0], resolution=resolution)
    axes[0].set_title(f"log p_sigma and its score, sigma = {sigma:g}")
    density_contours(noisy.log_prob, lims, lims, ax=axes[1], log=False, resolution=150, levels=15,
                     cmap="Greys")
    score_field(noisy.score, lims, lims, ax=axes[1], resolution=40, kind="stream")
    axes[1].set_title("stream lines of grad log p_sigma")
    return fig


def score_field_explorer() -> W.VBox:
    """A log slider over sigma; redraws :func:`plot_noised_score_field`."""
    return explorer(
        plot_noised_score_field,
        "for small sigma each mode has its own basin and the field is near zero between modes far "
        "from all of them; as sigma grows the modes merge, the field becomes smooth and points "
        "everywhere toward the overall mean, and its length shrinks like 1/sigma^2.",
        sigma=slider("sigma", 0.01, 5.0, 0.05, log=True, continuous=False),
    )


def plot_langevin(step_size: float = 0.05, num_steps: int = 200, annealed: bool = False,
                  num_samples: int = 1000, seed: int = 0) -> Figure:
    """Langevin dynamics with the exact score of the toy mixture, from U[-4, 4]^2.

    Plain: ``num_steps`` steps of :func:`course_lib.score.langevin_dynamics`. Annealed: 10 levels
    from sigma = 3 to 0.1, ``num_steps // 10`` steps each, last-level step ``step_size / 10``
    scaled by sigma_i^2 / sigma_L^2 (NCSN). The title compares the fraction of samples per mode with
    the mixture weights.
    """
    mix = toy.three_mode_mixture(torch.float64)
    g = torch.Generator().manual_seed(seed)
    x0 = 8 * torch.rand(num_samples, 2, generator=g, dtype=torch.float64) - 4
    if annealed:
        sigmas = sm.geometric_sigmas(3.0, 0.1, 10)
        per_level = max(1, num_steps // 10)
        x, path = sm.annealed_langevin_dynamics(lambda v, s: mix.convolve(s).score(v), x0, sigmas,
                                                step_size / 10, per_level, generator=g,
                                                trajectory=True)
    else:
        x, path = sm.langevin_dynamics(mix.score, x0, step_size, num_steps, generator=g,
                                       trajectory=True)
    frac = mode_fractions(x, mix)
    fig, ax = plt.subplots(figsize=(5.5, 5.2), layout="constrained")
    density_contours(mix.log_prob, (-4, 4), (-4, 4), ax=ax, log=True, levels=20, cmap="Greys")
    trajectories(path[:, :15], ax=ax, color="tab:orange", show_ends=False, alpha=0.7)
    scatter_samples(x, ax=ax, s=3, alpha=0.5, color="tab:blue")
    ax.set_xlim(-4, 4)
    ax.set_ylim(-4, 4)
    kind = "annealed" if annealed else "plain"
    ax.set_title(f"{kind} Langevin, step {step_size:g}, {num_steps} steps\n"
                 f"fraction per mode {frac.numpy().round(2)} vs weights "
                 f"{mix.weights.numpy().round(2)}", fontsize=9)
    return fig


def langevin_explorer() -> W.VBox:
    """Sliders for the step size and the number of steps, and a plain/annealed switch."""
    return explorer(
        plot_langevin,
        "a tiny step barely moves the particles; a large one blurs the samples (the O(step) bias) "
        "and eventually diverges. Plain Langevin leaves each particle in the basin where it started, "
        "so the fractions per mode reflect the starting area, not the weights; annealing over "
        "sigma fixes that.",
        step_size=slider("step size eta", 0.001, 0.3, 0.1, log=True, continuous=False),
        num_steps=slider("steps", 10, 1000, 10, continuous=False),
        annealed=checkbox("annealed (NCSN)"),
    )
