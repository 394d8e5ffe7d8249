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

from course_lib import divergences, gan, plotting, toy
from course_lib.widgets.ui import explorer, slider

__all__ = ["plot_optimal_discriminator", "optimal_discriminator_explorer", "plot_gaussian_fits",
           "plot_gan_losses", "plot_discriminator_vs_optimal", "plot_latent_interpolation"]

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


def plot_gaussian_fits(p: toy.GaussianMixture, fits: dict, ax=None, title: str | None = None):
    """A 1-D mixture ``p`` and Gaussians fitted to it, one curve each (notebook 03, the log-D trick).

    Parameters
    ----------
    p : course_lib.toy.GaussianMixture
        A 1-D mixture (the data).
    fits : dict[str, course_lib.divergences.GaussianFit or (mean, std)]
        Label -> the fitted Gaussian (e.g. from :func:`course_lib.divergences.gaussian_fits`).
    ax : matplotlib.axes.Axes, optional
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure or matplotlib.axes.Axes
        One line per fit after the shaded data density.

    Raises
    ------
    ValueError
        ``fits`` empty, or a standard deviation that is not positive.
    """
    if not fits:
        raise ValueError("fits: expected a non-empty dict {label: (mean, std)}")
    spans = [(float(f[0]), float(f[1])) for f in fits.values()]
    for label, (_, std) in zip(fits, spans):
        if not std > 0:
            raise ValueError(f"fits[{label!r}]: expected a standard deviation > 0, got {std!r}")
    mu = p.means[:, 0].to(_F64)
    lo = min(float(mu.min()) - 4.0, *(m - 3.5 * s for m, s in spans))
    hi = max(float(mu.max()) + 4.0, *(m + 3.5 * s for m, s in spans))
    x = np.linspace(lo, hi, 800)
    curves = {"data p": _log_density(p, x).exp().numpy()}
    for label, (m, s_) in zip(fits, spans):
        curves[label] = _log_density(_gaussian(m, s_), x).exp().numpy()
    out = plotting.plot_1d_densities(x, curves, ax=ax, title=title)
    axes = out if ax is not None else out.axes[0]
    axes.lines[0].set(color="0.5", lw=4, alpha=0.4)
    for i, line in enumerate(axes.lines[1:]):     # fits that coincide stay visible: solid, then dashed
        line.set(lw=2, ls="-" if i % 2 == 0 else "--")
    axes.legend(fontsize=8, frameon=False)
    return out


def plot_gan_losses(histories: dict, smooth: int = 50, saturating_labels=()):
    """GAN loss curves: the discriminator's and the generator's loss per generator step, with the
    values of a discriminator that cannot tell (``D = 1/2``, logit 0), computed by
    :func:`course_lib.gan.discriminator_loss` and :func:`course_lib.gan.generator_loss`.

    Parameters
    ----------
    histories : dict[str, course_lib.gan.GANHistory]
        Label -> the history returned by :func:`course_lib.gan.train_gan` (with an ensemble of runs,
        each value is the mean over the runs).
    smooth : int
        Width of the trailing moving average (raw values drawn faintly behind).
    saturating_labels : iterable of str
        Labels trained with the saturating (minimax) generator loss, whose reference at ``D = 1/2``
        is ``-log 2`` instead of ``log 2``.

    Returns
    -------
    matplotlib.figure.Figure
        Two panels: discriminator losses (reference ``log 4``) and generator losses.

    Raises
    ------
    ValueError
        ``histories`` empty.
    """
    if not histories:
        raise ValueError("histories: expected a non-empty dict {label: GANHistory}")
    half = torch.zeros(1, dtype=_F64)                            # logit 0: D = 1/2
    d_ref = float(gan.discriminator_loss(half, half))
    g_ref = {False: float(gan.generator_loss(half)), True: float(gan.generator_loss(half, saturating=True))}
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 3.4), layout="constrained")
    plotting.loss_curve({k: h.d_losses for k, h in histories.items()}, ax=ax, smooth=smooth, show_raw=True,
                        xlabel="generator step", ylabel="discriminator loss (nats)")
    plotting.loss_curve({k: h.g_losses for k, h in histories.items()}, ax=bx, smooth=smooth, show_raw=True,
                        xlabel="generator step", ylabel="generator loss (nats)")
    ax.axhline(d_ref, color="k", ls=":", lw=1, label=f"D = 1/2: log 4 = {d_ref:.3f}")
    sat = set(saturating_labels)
    for saturating in sorted({k in sat for k in histories}):
        bx.axhline(g_ref[saturating], color="k", ls=":", lw=1,
                   label=f"D = 1/2: {'-log 2' if saturating else 'log 2'} = {g_ref[saturating]:.3f}")
    for a in (ax, bx):
        a.legend(fontsize=7, frameon=False)
    return fig


def plot_discriminator_vs_optimal(points, d_trained, d_optimal, data=None, samples=None, titles=None):
    """A trained discriminator beside an (estimated) optimal one, as two maps over the same 2-D points.

    Parameters
    ----------
    points : tensor (H * W, 2)
        A regular grid of points, row-major (``W`` points per row, ``H`` rows; ``H = W``).
    d_trained, d_optimal : tensor (H * W,)
        Discriminator outputs in [0, 1] at those points.
    data, samples : tensor (N, 2), optional
        Scattered on both maps (data grey, generator samples red).
    titles : (str, str), optional

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError
        Shapes that do not match, or a non-square grid.
    """
    pts = torch.as_tensor(points).detach().cpu()
    n = pts.shape[0]
    side = int(round(n ** 0.5))
    if pts.dim() != 2 or pts.shape[1] != 2 or side * side != n:
        raise ValueError(f"points: expected a square grid (H * H, 2), got shape {tuple(pts.shape)}")
    maps = []
    for name, v in (("d_trained", d_trained), ("d_optimal", d_optimal)):
        v = torch.as_tensor(v).detach().cpu()
        if tuple(v.shape) != (n,):
            raise ValueError(f"{name}: expected shape ({n},), got {tuple(v.shape)}")
        maps.append(v.reshape(side, side).numpy())
    extent = (float(pts[:, 0].min()), float(pts[:, 0].max()), float(pts[:, 1].min()), float(pts[:, 1].max()))
    titles = titles or ("trained D", "optimal D*")
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.2), layout="constrained")
    for a, m, title in zip(axes, maps, titles):
        im = a.imshow(m, origin="lower", extent=extent, vmin=0, vmax=1, cmap="RdBu_r", aspect="equal")
        if data is not None:
            a.scatter(*torch.as_tensor(data).cpu().T.numpy(), s=1, color="0.3", alpha=0.4)
        if samples is not None:
            a.scatter(*torch.as_tensor(samples).cpu().T.numpy(), s=1, color="C3", alpha=0.4)
        a.set_xlim(extent[:2])
        a.set_ylim(extent[2:])
        a.set_title(title, fontsize=9)
    fig.colorbar(im, ax=axes, shrink=0.8, label="D(x)")
    return fig


def plot_latent_interpolation(generator, start, end, num_points: int = 9, pixel_row: bool = True):
    """Images along latent paths from ``start`` to ``end`` (:func:`course_lib.gan.interpolate`): one row
    linear, one spherical (slerp), and, for comparison, the pixel-space blend of the two end images.

    Parameters
    ----------
    generator : callable
        ``z (N, latent_dim) -> images (N, 1, H, W)`` in [-1, 1] (in eval mode, no gradient needed).
    start, end : tensor (latent_dim,)
        The two latents.
    num_points : int
        Images per row (>= 2).
    pixel_row : bool
        Add the row ``(1 - t) G(z0) + t G(z1)``.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError
        As :func:`course_lib.gan.interpolate`.
    """
    rows, labels = [], []
    with torch.no_grad():
        for method in ("linear", "slerp"):
            path = gan.interpolate(start, end, num_points, method=method)
            rows.append(generator(path).detach().cpu())
            labels.append(f"latent, {method}")
        if pixel_row:
            ends = rows[0][[0, -1]]
            rows.append(gan.interpolate(ends[:1], ends[1:], num_points)[0])
            labels.append("pixels, linear")
    fig, axes = plt.subplots(len(rows), 1, figsize=(num_points * 0.75, 1.05 * len(rows)), layout="constrained")
    for a, images, label in zip(np.atleast_1d(axes), rows, labels):
        plotting.image_grid(images, nrow=num_points, ax=a)
        a.set_title(label, fontsize=8, loc="left")
    return fig
