"""Notebook 02's figures and explorers: gradient estimators, the decoder-std sweep, posterior ellipses.

(1) The two unbiased estimators of d/dmu E_{z ~ N(mu, sigma^2)}[(z - c)^2] = 2 (mu - c)
(:func:`course_lib.vae.reparameterization_gradient`, :func:`course_lib.vae.score_function_gradient`),
computed live from a few thousand samples; (2) a precomputed sweep of the decoder's sigma
(:func:`course_lib.vae.decoder_std_sweep`): reconstructions, samples, and the KL term falling to 0;
(3) ellipses of 2-D Gaussians (:func:`course_lib.gaussians.covariance_ellipse`): a diagonal q(z|x)
against the exact posterior, and the two square-root maps of :func:`course_lib.vae.reparameterize_full`.
"""

from __future__ import annotations

import math
from functools import partial

import ipywidgets as W
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from course_lib.gaussians import covariance_ellipse
from course_lib.plotting import image_grid
from course_lib.vae import reparameterization_gradient, reparameterize_full, score_function_gradient
from course_lib.widgets.ui import explorer, plot_defaults, slider, wide

__all__ = ["plot_gradient_estimators", "gradient_estimator_explorer", "plot_decoder_std_sweep",
           "decoder_std_explorer", "plot_posterior_ellipses", "plot_square_root_maps"]


def plot_gradient_estimators(sigma: float = 1.0, offset: float = 2.0, num_samples: int = 2000,
                             seed: int = 0) -> Figure:
    """Histograms of per-sample gradient estimates, reparameterization vs score function.

    Objective E_{z ~ N(mu, sigma^2)}[(z - c)^2] with mu - c = ``offset``; its gradient in mu is
    2 (mu - c). Reparameterization: 2 (mu + sigma eps - c); score function (REINFORCE):
    (z - c)^2 (z - mu) / sigma^2. Both average to the true value (dashed line); the legend gives
    each estimator's sample mean and standard deviation.
    """
    if not sigma > 0:
        raise ValueError(f"sigma: expected a number > 0, got {sigma!r}")
    mean = torch.zeros(1, dtype=torch.float64)
    logvar = torch.full((1,), 2 * math.log(sigma), dtype=torch.float64)
    c = -float(offset)

    def f(z):
        return (z[:, 0] - c) ** 2

    rep = reparameterization_gradient(f, mean, logvar, num_samples, torch.Generator().manual_seed(seed)).mean[:, 0]
    sf = score_function_gradient(f, mean, logvar, num_samples, torch.Generator().manual_seed(seed)).mean[:, 0]
    true = 2 * (0.0 - c)
    fig, ax = plt.subplots(figsize=(7, 3.2), layout="constrained")
    lo = min(rep.min().item(), sf.quantile(0.005).item())
    hi = max(rep.max().item(), sf.quantile(0.995).item())
    bins = np.linspace(lo, hi, 80)
    for vals, name, color in ((sf, "score function (REINFORCE)", "tab:red"),
                              (rep, "reparameterization", "tab:blue")):
        ax.hist(vals.numpy(), bins=bins, density=True, alpha=0.55, color=color,
                label=f"{name}: mean {vals.mean():.2f}, std {vals.std():.2f}")
    ax.axvline(true, color="k", ls="--", lw=1, label=f"true gradient 2(mu - c) = {true:.2f}")
    ax.set_xlabel("one-sample estimate of d/dmu E[(z - c)^2]")
    ax.set_ylabel("density")
    ax.set_title(f"sigma = {sigma:g}, mu - c = {offset:g}, {num_samples} samples each")
    ax.legend(fontsize=8, frameon=False)
    return fig


def gradient_estimator_explorer() -> W.VBox:
    """Sliders for sigma and mu - c; redraws :func:`plot_gradient_estimators`."""
    return explorer(
        plot_gradient_estimators,
        "both histograms are centred on the true gradient (unbiased), but the score-function one is "
        "far wider, and gets wider as |mu - c| grows, because it multiplies the value f(z) (not "
        "its slope) by a zero-mean score.",
        sigma=wide(slider("sigma", 0.1, 3.0, 0.1, units="std of q(z), z units", continuous=False)),
        offset=wide(slider("mu - c", -4.0, 4.0, 0.5, units="z units", continuous=False)),
    )


def plot_decoder_std_sweep(sweep, decoder_std: float | None = None) -> Figure:
    """KL and reconstruction error against sigma_dec, and one model's reconstructions and samples.

    Parameters
    ----------
    sweep : list of course_lib.vae.DecoderStdResult
        From :func:`course_lib.vae.decoder_std_sweep` on images.
    decoder_std : float, optional
        Which model to show (default the first).
    """
    if not sweep:
        raise ValueError("sweep: expected at least one result, got none")
    stds = [r.decoder_std for r in sweep]
    pick = sweep[0] if decoder_std is None else min(sweep, key=lambda r: abs(r.decoder_std - decoder_std))
    fig = plt.figure(figsize=(10, 3.4), layout="constrained")
    gs = fig.add_gridspec(1, 3, width_ratios=[1.3, 1, 1])
    ax = fig.add_subplot(gs[0])
    ax.plot(stds, [r.kl for r in sweep], "o-", color="tab:red", label="KL(q(z|x) || p(z)) (nats)")
    ax.set_xscale("log")
    ax.set_xticks(stds, [f"{sd:g}" for sd in stds])
    ax.set_xticks([], minor=True)
    ax.set_xlabel("decoder std sigma_dec")
    ax.set_ylabel("KL term (nats)", color="tab:red")
    ax2 = ax.twinx()
    ax2.plot(stds, [r.reconstruction_mse for r in sweep], "s--", color="tab:blue")
    ax2.set_ylabel("squared error ||x - x_hat||^2 (pixel^2)", color="tab:blue")
    ax.axvline(pick.decoder_std, color="k", lw=0.8)
    ax.set_title(f"sigma_dec = {pick.decoder_std:g}: KL {pick.kl:.2f} nats")
    n = pick.reconstructions.shape[0]
    image_grid(pick.reconstructions, nrow=max(1, n // 2), ax=fig.add_subplot(gs[1]), title="reconstructions")
    image_grid(pick.samples, nrow=max(1, n // 2), ax=fig.add_subplot(gs[2]), title="samples z ~ N(0, I)")
    return fig


def decoder_std_explorer(sweep) -> W.VBox:
    """A slider over the sweep's sigma_dec values; redraws :func:`plot_decoder_std_sweep`."""
    options = [(f"{r.decoder_std:g}", r.decoder_std) for r in sweep]
    plot = partial(plot_decoder_std_sweep, sweep, decoder_std=options[0][1])  # starts at the first
    control = W.SelectionSlider(options=options, value=plot_defaults(plot)["decoder_std"],
                                description="decoder std sigma_dec (pixel, range [-1, 1])",
                                continuous_update=False, style={"description_width": "initial"},
                                layout=W.Layout(width="32em"))
    return explorer(
        plot,
        "a larger decoder std is a larger weight on the KL term: reconstructions lose detail, and "
        "past the data's spread the KL term drops to ~0 and every x decodes to the same mean digit "
        "(posterior collapse).",
        decoder_std=control,
    )


def plot_posterior_ellipses(mean: torch.Tensor, cov: torch.Tensor, approximations: dict,
                            samples: torch.Tensor | None = None, ax=None):
    """One- and two-standard-deviation ellipses of a 2-D posterior and of diagonal approximations.

    Parameters
    ----------
    mean : tensor (2,)
        Mean of the exact posterior p(z | x).
    cov : tensor (2, 2)
        Its covariance.
    approximations : dict
        ``label -> (mean (2,), logvar (2,))`` of diagonal Gaussians q(z | x) (drawn dashed).
    samples : tensor (M, 2), optional
        Draws from the exact posterior, scattered.
    ax : matplotlib Axes, optional

    Returns
    -------
    Figure
    """
    if tuple(mean.shape) != (2,) or tuple(cov.shape) != (2, 2):
        raise ValueError(f"mean, cov: expected shapes (2,) and (2, 2), got {tuple(mean.shape)} and "
                         f"{tuple(cov.shape)}")
    if ax is None:
        _, ax = plt.subplots(figsize=(5.2, 4.6), layout="constrained")
    if samples is not None:
        ax.scatter(*samples.detach().cpu().T, s=2, c="0.6", alpha=0.5, label="samples of p(z|x)")
    for r, lw in ((1.0, 2.0), (2.0, 1.0)):
        pts = covariance_ellipse(mean, cov, radius=r)
        ax.plot(*pts.detach().cpu().T, color="k", lw=lw, label="exact p(z|x)" if r == 1 else None)
    colors = ("tab:red", "tab:blue", "tab:green", "tab:purple")
    for (label, (m, lv)), color in zip(approximations.items(), colors):
        diag = torch.diag(lv.exp())
        for r, lw in ((1.0, 2.0), (2.0, 1.0)):
            pts = covariance_ellipse(m, diag, radius=r)
            ax.plot(*pts.detach().cpu().T, ls="--", color=color, lw=lw, label=label if r == 1 else None)
    ax.plot(*mean.detach().cpu(), "k+", ms=10)
    ax.set(xlabel="z1", ylabel="z2", aspect="equal", title="posterior and diagonal q(z|x): 1 and 2 std ellipses")
    ax.legend(fontsize=7, loc="upper right", frameon=False)
    return ax.figure


def plot_square_root_maps(mean: torch.Tensor, cov: torch.Tensor, num_samples: int = 2000,
                          num_lines: int = 12, seed: int = 0):
    """The maps w -> mean + Sigma^{1/2} w and w -> mean + L w on the same standard normal draws.

    Left: the draws w ~ N(0, I) (``num_lines`` of them in black). Right: their images under both maps
    (same ellipse, same cloud), with a segment joining the two images (dark blue: eigh, brown:
    Cholesky) of each black draw: different points.
    """
    if tuple(mean.shape) != (2,) or tuple(cov.shape) != (2, 2):
        raise ValueError(f"mean, cov: expected shapes (2,) and (2, 2), got {tuple(mean.shape)} and "
                         f"{tuple(cov.shape)}")
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(num_samples, 2, generator=g, dtype=cov.dtype)
    means = mean.to(cov.dtype).expand(num_samples, 2)
    x_eig = reparameterize_full(means, cov, "eigh", noise=w)
    x_chol = reparameterize_full(means, cov, "cholesky", noise=w)
    fig, axes = plt.subplots(1, 2, figsize=(9, 4), layout="constrained")
    axes[0].scatter(*w.T, s=2, c="0.5")
    axes[0].scatter(*w[:num_lines].T, s=18, c="k")
    axes[0].set(title="w ~ N(0, I)", aspect="equal", xlabel="w1", ylabel="w2")
    axes[1].scatter(*x_eig.T, s=2, c="tab:blue", alpha=0.4, label="mu + Sigma^(1/2) w (eigh)")
    axes[1].scatter(*x_chol.T, s=2, c="tab:orange", alpha=0.4, label="mu + L w (Cholesky)")
    for a, b in zip(x_eig[:num_lines], x_chol[:num_lines]):
        axes[1].plot([a[0], b[0]], [a[1], b[1]], "k-", lw=1.5)
    axes[1].scatter(*x_eig[:num_lines].T, s=25, c="navy", zorder=3)
    axes[1].scatter(*x_chol[:num_lines].T, s=25, c="saddlebrown", zorder=3)
    axes[1].plot(*covariance_ellipse(mean.to(cov.dtype), cov, radius=2.0).T, "k--", lw=1, label="2 std ellipse")
    axes[1].set(title="same w, two maps:\ndifferent points, same distribution", aspect="equal",
                xlabel="x1", ylabel="x2")
    axes[1].legend(fontsize=7, frameon=False, markerscale=4)
    return fig
