"""Notebook 00's figures and explorers: forward vs reverse KL fits of one Gaussian to two modes.

The target is p = w N(-d/2, 1) + (1 - w) N(d/2, 1) (``toy.bimodal_1d``); the fits come from
:mod:`course_lib.divergences` (moment matching for the forward KL, Gauss-Hermite quadrature and
L-BFGS-B from three starts for the reverse KL, ~0.1-0.3 s per redraw).
"""

from __future__ import annotations

import ipywidgets as W
import matplotlib.pyplot as plt
import numpy as np
import torch

from course_lib import divergences, toy
from course_lib.widgets.ui import explorer, slider, wide

__all__ = ["plot_forward_reverse_kl", "forward_reverse_kl_explorer"]

_F64 = torch.float64


def _gaussian(mean: float, std: float) -> toy.GaussianMixture:
    """One 1-D Gaussian as a mixture of one component."""
    return toy.GaussianMixture(torch.tensor([[mean]], dtype=_F64), torch.tensor([std], dtype=_F64))


def _density(p: toy.GaussianMixture, x: np.ndarray) -> np.ndarray:
    return p.log_prob(torch.from_numpy(x)[:, None]).exp().numpy()


def plot_forward_reverse_kl(separation: float = 6.0, weight: float = 0.5) -> "plt.Figure":
    """Draw p (bimodal mixture), the forward-KL fit and the reverse-KL fit(s) of one Gaussian.

    Parameters
    ----------
    separation : float
        Distance d between the two unit-variance modes of p = w N(-d/2, 1) + (1 - w) N(d/2, 1).
    weight : float
        Weight w of the left mode, in (0, 1).

    Returns
    -------
    matplotlib.figure.Figure
        p (shaded); the forward-KL fit, mean (1 - 2w) d/2 and variance 1 + w (1 - w) d^2 (moment
        matching, :func:`course_lib.divergences.forward_kl_fit`); the best reverse-KL fit over
        three initialisations (solid, :func:`course_lib.divergences.reverse_kl_fits`) and, when
        there is one, another local minimum (dotted; worse, or equally good when the modes are
        symmetric); the KL values in the legend.

    Raises
    ------
    ValueError
        If ``weight`` is not in (0, 1) or ``separation`` is negative.

    References
    ----------
    Bishop, *Pattern Recognition and Machine Learning* (2006), section 10.1.2 and Fig. 10.3
    (forward vs reverse KL on a bimodal target).
    """
    if not 0.0 < weight < 1.0:
        raise ValueError(f"weight: expected a number in (0, 1), got {weight!r}")
    if separation < 0:
        raise ValueError(f"separation: expected a number >= 0, got {separation!r}")
    p = toy.bimodal_1d(separation, std=1.0, weights=torch.tensor([weight, 1.0 - weight], dtype=_F64),
                       dtype=_F64)
    lo, hi = -separation / 2 - 4.0, separation / 2 + 4.0
    x = np.linspace(min(lo, -6.0), max(hi, 6.0), 800)
    p_x = _density(p, x)

    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    ax.fill_between(x, p_x, color="0.8", label=r"$p$ (data)")
    mu_f, s_f = divergences.forward_kl_fit(p)
    ax.plot(x, _density(_gaussian(mu_f, s_f), x), color="C0", lw=2,
            label=rf"forward: argmin KL$(p\|q)$, $\mu$={mu_f:.2f}, $\sigma$={s_f:.2f}")
    fits = sorted(divergences.reverse_kl_fits(p), key=lambda f: f.kl)
    best = fits[0]
    best_x = _density(_gaussian(best.mean, best.std), x)
    ax.plot(x, best_x, color="C3", lw=2,
            label=rf"reverse: argmin KL$(q\|p)$ = {best.kl:.3f}, $\mu$={best.mean:.2f}, $\sigma$={best.std:.2f}")
    others = [f for f in fits[1:] if abs(f.mean - best.mean) > 1e-2 or abs(f.std - best.std) > 1e-2]
    if others:
        other = others[0]
        kind = "an equally good" if other.kl - best.kl < 5e-4 else "a worse"  # symmetric modes tie
        ax.plot(x, _density(_gaussian(other.mean, other.std), x), color="C3", lw=1.5, ls=":",
                label=rf"reverse, {kind} local min: KL$(q\|p)$ = {other.kl:.3f}")
    ax.set_xlabel("x")
    ax.set_ylabel("density")
    ax.set_ylim(0, max(p_x.max(), best_x.max()) * 1.6)
    ax.set_title(f"one Gaussian fitted to a two-mode mixture (d = {separation:g}, w = {weight:g})")
    ax.legend(loc="upper left", fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


def forward_reverse_kl_explorer() -> W.VBox:
    """Sliders for the separation and weight of p; redraws :func:`plot_forward_reverse_kl`."""
    return explorer(
        plot_forward_reverse_kl,
        "as the modes separate, the forward fit (blue) stretches to cover both and puts mass "
        "where p has none; the reverse fit (red) stops covering both and locks onto one mode, "
        "with KL(q||p) close to -log of that mode's weight.",
        separation=wide(slider("separation d", 0.0, 10.0, 0.25, units="std of one mode",
                               continuous=False)),
        weight=wide(slider("weight w of the left mode", 0.05, 0.95, 0.05, continuous=False)),
    )
