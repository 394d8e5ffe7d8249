"""Notebooks 04 and 05's figures and explorers: the scaled chain x_t = a x_{t-1} + b eps, and noised marginals.

Two explorers of the forward process: the chain x_t = a x_{t-1} + b eps (the "magical scalars" of
Chan (2024): only b = sqrt(1 - a^2) keeps the variance at 1; :func:`course_lib.diffusion.scaled_chain`
and :func:`course_lib.diffusion.variance_recursion`), and the noised marginal q(x_t) of a 2-D
mixture (exact, :func:`course_lib.diffusion.noised_mixture`) next to noised digits. A third shows the
learned reverse chain over the same exact marginals. Notebooks 04 and 05 assert the numbers these plots
show.
"""

from __future__ import annotations

import math
from functools import partial

import ipywidgets as W
import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure

from course_lib import diffusion as D
from course_lib import divergences, toy
from course_lib.plotting import density_contours, image_grid, scatter_samples
from course_lib.widgets.ui import checkbox, explorer, plot_defaults, slider

__all__ = ["plot_magical_scalars", "magical_scalars_explorer", "plot_noised_marginals",
           "noised_marginals_explorer", "plot_reverse_marginals", "reverse_marginals_explorer",
           "plot_reverse_conditionals", "plot_vlb_terms", "plot_mmse_vs_posterior",
           "plot_sample_panels"]


def plot_magical_scalars(a: float = 0.99, b: float = 0.3, magical: bool = True,
                         num_steps: int = 300, num_chains: int = 2000, seed: int = 0) -> Figure:
    """Simulate ``x_t = a x_{t-1} + b eps`` from bimodal 1-D data (variance 1) and plot Var[x_t].

    Parameters
    ----------
    a : float
        Mean scaling (``sqrt(alpha)`` in Chan 2024).
    b : float
        Noise standard deviation; ignored when ``magical`` (then ``b = sqrt(1 - a^2)``, which
        needs ``a <= 1``).
    magical : bool
        Use ``b = sqrt(1 - a^2)``.
    num_steps, num_chains, seed : int
        Length and number of simulated chains; seed of their noise.
    """
    if magical:
        if a > 1:
            raise ValueError(f"a: b = sqrt(1 - a^2) needs a <= 1, got {a}")
        b = math.sqrt(1 - a * a)
    g = torch.Generator().manual_seed(seed)
    data = toy.bimodal_1d(2 * math.sqrt(0.96), std=0.2, dtype=torch.float64)   # variance 1
    path = D.scaled_chain(data.sample(num_chains, generator=g)[:, 0], a, b, num_steps, generator=g)
    x0, x = path[0], path[-1]
    var = path.var(dim=1).tolist()
    theory = D.variance_recursion(a, b, 1.0, num_steps)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), layout="constrained")
    ax = axes[0]
    ax.plot(var, label="simulated Var[x_t]")
    ax.plot(theory, "--", label="a^2 v + b^2 recursion")
    if a < 1:
        ax.axhline(b * b / (1 - a * a), color="tab:red", lw=0.8, label="fixed point b^2/(1-a^2)")
    ax.axhline(1.0, color="k", lw=0.6, ls=":")
    ax.set_yscale("log")
    ax.set_xlabel("step t")
    ax.set_title(f"a = {a:.3f}, b = {b:.3f} (magical b = {math.sqrt(max(0.0, 1 - a * a)):.3f})")
    ax.legend(fontsize=8)
    ax = axes[1]
    ax.hist(x0.numpy(), bins=60, density=True, alpha=0.5, label="x_0 (data)")
    ax.hist(x.numpy(), bins=60, density=True, alpha=0.5, label=f"x_{num_steps}")
    s = torch.linspace(-4, 4, 200, dtype=torch.float64)
    standard_normal = toy.GaussianMixture(torch.zeros(1, 1, dtype=torch.float64), 1.0)
    ax.plot(s, standard_normal.log_prob(s[:, None]).exp(), "k", lw=1, label="N(0, 1)")
    ax.set_xlim(-4, 4)
    ax.legend(fontsize=8)
    ax.set_title("histograms")
    return fig


def magical_scalars_explorer() -> W.VBox:
    """Sliders for ``a`` and ``b``; with the box ticked, ``b = sqrt(1 - a^2)`` (and ``a <= 1``)."""
    a = slider("a", 0.9, 1.02, 0.005, units="mean scale, sqrt(alpha)", continuous=False)
    b = slider("b", 0.0, 0.6, 0.01, units="noise std", continuous=False)
    magical = checkbox("b = sqrt(1 - a^2)")

    def limit_a(_change=None):
        # sqrt(1 - a^2) exists only for a <= 1: cap the slider while the box is ticked
        a.max = 1.0 if magical.value else 1.02

    magical.observe(limit_a, names="value")  # registered before the explorer's redraw
    limit_a()
    return explorer(
        plot_magical_scalars,
        "with b = sqrt(1 - a^2) the variance stays 1 and x_t forgets the two modes, becoming N(0, 1). "
        "Untick the box: for a < 1 the variance converges to b^2/(1-a^2), below 1 when b is too "
        "small and above 1 when b is too large; a = 1 (a random walk) makes it grow linearly, "
        "1 + t b^2, without bound.",
        a=a, b=b, magical=magical,
    )


def _within_schedule(plot: partial, schedule) -> partial:
    """``plot`` as it is, or starting at the schedule's last step when its default ``t`` is beyond it."""
    if plot_defaults(plot)["t"] > schedule.num_steps - 1:
        return partial(plot, t=schedule.num_steps - 1)
    return plot


def plot_noised_marginals(mixture, schedule, images, t: int = 10, num_samples: int = 2000,
                          num_images: int = 8, seed: int = 0, lim: float = 3.0) -> Figure:
    """q(x_t) of a 2-D mixture (exact contours + q_sample draws) and ``num_images`` noised digits.

    Parameters
    ----------
    mixture : course_lib.toy.GaussianMixture
        2-D data distribution (standardized units).
    schedule : course_lib.diffusion.NoiseSchedule
    images : tensor (N, 1, H, W)
        Images in [-1, 1]; the first ``num_images`` are noised with the same ``eps`` pattern seed.
    t : int
        **0-based** step (the paper's t + 1).
    """
    T = schedule.num_steps
    if not 0 <= int(t) < T:
        raise ValueError(f"t: expected a 0-based step in [0, {T - 1}], got {t}")
    t = int(t)
    ab = float(schedule.alphas_cumprod[t])
    g = torch.Generator().manual_seed(seed)
    marginal = D.noised_mixture(mixture, schedule, t)                          # exact q(x_t)
    x0 = mixture.sample(num_samples, generator=g)
    tt = torch.full((num_samples,), t, dtype=torch.long)
    xt = D.q_sample(schedule, x0, tt, generator=g)
    imgs = images[:num_images].cpu()
    it = D.q_sample(schedule, imgs, torch.full((imgs.shape[0],), t, dtype=torch.long), generator=g)
    fig = plt.figure(figsize=(10, 4.2), layout="constrained")
    gs = fig.add_gridspec(1, 2, width_ratios=[1, 1.3])
    ax = fig.add_subplot(gs[0])
    density_contours(marginal.log_prob, (-lim, lim), (-lim, lim), ax=ax, resolution=150)
    scatter_samples(xt[:300], ax=ax, s=1, alpha=0.5, color="tab:red")
    ax.set_title(f"q(x_t): index t = {t} (paper t = {t + 1}), abar = {ab:.3g}")
    ax2 = fig.add_subplot(gs[1])
    image_grid(torch.cat([imgs, it]), nrow=imgs.shape[0], ax=ax2,
               title=f"digits (top) and x_t (bottom), SNR = {float(schedule.snr[t]):.3g}")
    return fig


def noised_marginals_explorer(mixture, schedule, images) -> W.VBox:
    """A slider over the 0-based step ``t``; redraws :func:`plot_noised_marginals`."""
    return explorer(
        _within_schedule(partial(plot_noised_marginals, mixture, schedule, images), schedule),
        "as t grows the 25 modes first blur into each other (when sqrt(1 - abar) reaches about half "
        "their spacing times sqrt(abar)), then the whole cloud shrinks toward N(0, I); the digits "
        "stay readable until the SNR abar/(1 - abar) falls below about 1.",
        t=slider("t", 0, schedule.num_steps - 1, 1, units="0-based step, paper t + 1", continuous=False),
    )


def plot_reverse_marginals(path, mixture, schedule, t: int = 10, lim: float = 3.0) -> Figure:
    """Samples of the learned reverse chain at 0-based step ``t`` over the exact q(x_t) contours.

    ``path`` is ``sample(..., trajectory=True)``'s trajectory ``(T+1, N, 2)``: ``path[0]`` is the
    paper's x_T, so the state at 0-based index ``t`` is ``path[T-1-t]`` and ``path[T]`` is x_0.
    """
    T = schedule.num_steps
    if not -1 <= int(t) < T:
        raise ValueError(f"t: expected a 0-based step in [-1, {T - 1}] (-1 = x_0), got {t}")
    t = int(t)
    fig, ax = plt.subplots(figsize=(4.6, 4.2), layout="constrained")
    if t >= 0:
        marginal = D.noised_mixture(mixture, schedule, t)
        title = f"reverse chain at index t = {t} over q(x_t)"
    else:
        marginal, title = mixture, "reverse chain output x_0 over p_data"
    density_contours(marginal.log_prob, (-lim, lim), (-lim, lim), ax=ax, resolution=150)
    scatter_samples(path[T - 1 - t][:500], ax=ax, s=1, alpha=0.5, color="tab:red", title=title)
    return fig


def reverse_marginals_explorer(path, mixture, schedule) -> W.VBox:
    """A slider over the 0-based step (``-1`` = the output x_0); redraws :func:`plot_reverse_marginals`."""
    return explorer(
        _within_schedule(partial(plot_reverse_marginals, path, mixture, schedule), schedule),
        "move t down from T-1: the learned reverse chain's samples follow the exact marginals q(x_t) "
        "of the forward process (contours), splitting into 25 clusters late, at small t.",
        t=slider("t", -1, schedule.num_steps - 1, 1, units="0-based step, -1 = x_0", continuous=False),
    )


def plot_reverse_conditionals(mixture, cases, xts, lim: float = 3.0, num_points: int = 2001) -> Figure:
    """The true reverse step q(x_{t-1} | x_t) of a 1-D mixture, one panel per (schedule, step).

    Each panel draws, for every conditioning value in ``xts``, the exact density
    (:func:`course_lib.diffusion.reverse_conditional`, solid) and its moment-matched Gaussian
    (:func:`course_lib.divergences.forward_kl_fit`, dashed), over the noised marginal q(x_{t-1})
    (grey, :func:`course_lib.diffusion.noised_mixture`).

    Parameters
    ----------
    mixture : course_lib.toy.GaussianMixture
        1-D data distribution.
    cases : sequence of (str, NoiseSchedule, int)
        Panel title, schedule and **0-based** step ``t`` (the paper's step ``t + 1``: the panel shows
        the law of the paper's x_t given x_{t+1}).
    xts : sequence of float
        Conditioning values of the paper's x_{t+1}.
    lim : float
        The x axis spans ``[-lim, lim]``.
    """
    if mixture.dim != 1:
        raise ValueError(f"mixture: expected a 1-D mixture, got dimension {mixture.dim}")
    x = torch.linspace(-lim, lim, num_points, dtype=torch.float64)
    fig, axes = plt.subplots(1, len(cases), figsize=(5 * len(cases), 3.6), layout="constrained",
                             squeeze=False)
    m64 = mixture.to(torch.float64)
    for ax, (title, schedule, t) in zip(axes[0], cases):
        prev = m64 if t == 0 else D.noised_mixture(m64, schedule, t - 1)
        ax.fill_between(x.numpy(), prev.log_prob(x[:, None]).exp().numpy(), color="0.85", label="q(x_{t-1}) (marginal)")
        for k, xt in enumerate(xts):
            rc = D.reverse_conditional(m64, schedule, t, torch.tensor([float(xt)], dtype=torch.float64))
            mean, std = divergences.forward_kl_fit(rc)
            gauss = toy.GaussianMixture(torch.tensor([[mean]], dtype=torch.float64), std)
            color = f"C{k}"
            ax.plot(x, rc.log_prob(x[:, None]).exp(), color=color, label=f"q(x_{{t-1}} | x_t = {xt:g})")
            ax.plot(x, gauss.log_prob(x[:, None]).exp(), color=color, ls="--", lw=1)
        ab = float(schedule.alphas_cumprod[t])
        ax.set(title=f"{title}: paper t = {t + 1} (index {t}), beta_t = {float(schedule.betas[t]):.3g}, "
                     f"abar_t = {ab:.3f}", xlabel="x_{t-1} (paper's subscript)", ylabel="density")
        ax.title.set_fontsize(8)
        ax.legend(fontsize=7)
    return fig


def plot_vlb_terms(terms, title: str = "") -> Figure:
    """Bars of the mean of each term of the variational bound, in nats, as returned by
    :func:`course_lib.diffusion.vlb_terms`.

    The bar at ``i`` is the paper's L_i, the mean of column ``i`` of ``terms.terms`` (L_0 the
    decoder; L_i for i >= 1 the KL of the step from the paper's x_{i+1} to x_i, code index ``i``),
    and the last bar, at ``T``, the prior term L_T. Standard errors of the means are drawn as error bars.

    Parameters
    ----------
    terms : course_lib.diffusion.VLBTerms
        ``prior`` (N,), ``terms`` (N, T).
    title : str
        Appended to the figure's title.
    """
    per_t = terms.terms.detach().double().cpu()
    n, T = per_t.shape
    if n < 2:
        raise ValueError(f"terms: expected at least 2 examples for standard errors, got {n}")
    prior = terms.prior.detach().double().cpu()
    means = torch.cat([per_t.mean(0), prior.mean()[None]])
    ses = torch.cat([per_t.std(0), prior.std()[None]]) / math.sqrt(n)
    fig, ax = plt.subplots(figsize=(8, 3.4), layout="constrained")
    colors = ["tab:green"] + ["tab:blue"] * (T - 1) + ["tab:red"]
    ax.bar(range(T + 1), means.numpy(), yerr=ses.numpy(), color=colors, capsize=1.5)
    ax.set(xlabel="i of L_i (the paper's subscript; L_i for i >= 1 is code index i, the step "
                  "from paper x_{i+1} to x_i)", ylabel="mean over data (nats)",
           title=f"terms of -ELBO: L_0 (green), L_1..L_{T - 1} (blue), L_T (red){title}")
    ax.title.set_fontsize(9)
    ax.xaxis.label.set_fontsize(8)
    return fig


def plot_mmse_vs_posterior(clean, noisy, mmse, posterior) -> Figure:
    """Rows: clean digits, their noisy observations, the MMSE estimates, and posterior samples.

    Parameters
    ----------
    clean, noisy, mmse : tensor (n, 64) or (n, 1, 8, 8)
        Images in [-1, 1] (the noisy row is clipped to it for display only).
    posterior : tensor (m, n, 64) or (m, n, 1, 8, 8)
        ``m`` posterior samples for each of the ``n`` observations, one row each.
    """
    n = clean.shape[0]
    posterior = posterior.reshape(-1, n, 1, 8, 8)
    if posterior.shape[1] != n or noisy.shape[0] != n or mmse.shape[0] != n:
        raise ValueError(f"noisy, mmse, posterior: expected {n} images each (as clean), got "
                         f"{noisy.shape[0]}, {mmse.shape[0]}, {posterior.shape[1]}")
    rows = [clean.reshape(n, 1, 8, 8), noisy.reshape(n, 1, 8, 8).clamp(-1, 1), mmse.reshape(n, 1, 8, 8),
            *posterior]
    fig, ax = plt.subplots(figsize=(1.0 * n, 1.05 * len(rows)), layout="constrained")
    image_grid(torch.cat([r.detach().cpu().float() for r in rows]), nrow=n, ax=ax,
               title="rows: clean, noisy (y = x + sigma eps), MMSE E[x | y], posterior samples x' ~ p(x | y)")
    return fig


def plot_sample_panels(panels, means=None, lim: float = 5.5, max_points: int = 2500) -> Figure:
    """Side-by-side scatter plots of 2-D samples, one panel per ``(title, samples (N, 2))``.

    ``means`` (K, 2), optional: the modes, marked with crosses (the mode-coverage reference).
    """
    panels = list(panels)
    if not panels:
        raise ValueError("panels: expected at least one (title, samples) pair, got none")
    fig, axes = plt.subplots(1, len(panels), figsize=(3.4 * len(panels), 3.4), layout="constrained",
                             squeeze=False)
    for ax, (title, x) in zip(axes[0], panels):
        scatter_samples(x[:max_points].detach().cpu(), ax=ax, s=1, title=title, xlim=(-lim, lim), ylim=(-lim, lim))
        if means is not None:
            m = means.detach().cpu()
            ax.plot(m[:, 0], m[:, 1], "x", color="tab:red", ms=4, lw=0.5)
    return fig
