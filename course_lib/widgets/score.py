"""Notebook 06's figures and explorers: the score field of a noised mixture, and Langevin dynamics.

(1) The score field of the sigma-noised toy mixture p_sigma = p * N(0, sigma^2 I), exact
(``GaussianMixture.convolve(sigma).score``), over its log-density; (2) Langevin dynamics with the
exact score, plain or annealed (:mod:`course_lib.score`), and the fraction of samples that reach
each mode (:func:`course_lib.metrics.mode_fractions`). The toy is
:func:`course_lib.toy.three_mode_mixture`. (3) Figures of results the notebook computes and
asserts (they only draw the arrays they are given): Tweedie's posterior cumulants against the
mixture's closed form, the variance of sliced score matching against the number of projections,
SURE against the true squared error, and a trained noise predictor's score error per step.
"""

from __future__ import annotations

import ipywidgets as W
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from course_lib import score as sm
from course_lib import toy
from course_lib.metrics import mode_fractions
from course_lib.plotting import density_contours, scatter_samples, score_field, trajectories
from course_lib.widgets.ui import checkbox, explorer, slider

__all__ = ["plot_noised_score_field", "score_field_explorer", "plot_langevin", "langevin_explorer",
           "plot_tweedie_cumulants", "plot_sliced_variance", "plot_sure_vs_mse", "plot_score_error_per_step"]


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


# ------------------------------------------------------------------------------------------------
# figures of computed results (no formulas: the notebook computes, these draw)
# ------------------------------------------------------------------------------------------------
def _array(name: str, value, ndim: int) -> np.ndarray:
    arr = np.asarray(value.detach().cpu() if isinstance(value, torch.Tensor) else value, dtype=float)
    if arr.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-D array, got shape {arr.shape}")
    return arr


def plot_tweedie_cumulants(y, tweedie, reference, sigmas) -> Figure:
    """Posterior cumulants of a 1-D mixture against the noisy value, from Tweedie and from Bayes' rule.

    Parameters
    ----------
    y : array (P,)
        Noisy values.
    tweedie, reference : arrays (S, K, P)
        For each of the S noise levels, the first K cumulants of x given y: from derivatives of
        log p_sigma (markers) and from the posterior mixture's closed form (lines).
    sigmas : sequence of S floats
    """
    y = _array("y", y, 1)
    tw, ref = _array("tweedie", tweedie, 3), _array("reference", reference, 3)
    if tw.shape != ref.shape or tw.shape[2] != y.shape[0] or tw.shape[0] != len(sigmas):
        raise ValueError(f"tweedie, reference: expected equal shapes (S, K, P) = ({len(sigmas)}, K, "
                         f"{y.shape[0]}), got {tw.shape} and {ref.shape}")
    k = tw.shape[1]
    fig, axes = plt.subplots(1, k, figsize=(3.6 * k, 3.4), layout="constrained", squeeze=False)
    names = ["mean E[x | y]", "variance Var[x | y]", "third cumulant E[(x - m)^3 | y]"]
    for j, ax in enumerate(axes[0]):
        for i, sig in enumerate(sigmas):
            line, = ax.plot(y, ref[i, j], lw=1.5, label=f"sigma = {sig:g}, Bayes' rule")
            ax.plot(y[::4], tw[i, j, ::4], "o", ms=3.5, mfc="none", color=line.get_color(),
                    label="Tweedie (derivatives of log p_sigma)" if i == 0 else None)
        ax.axhline(0, color="0.8", lw=0.8, zorder=0)
        ax.set_xlabel("noisy value y")
        ax.set_title(names[j] if j < len(names) else f"cumulant {j + 1}", fontsize=10)
    axes[0][-1].legend(fontsize=7)
    return fig


def plot_sliced_variance(num_projections, variances, standard_errors, exact_single) -> Figure:
    """Measured variance of the sliced estimate against M, per example, with the exact Var_1 / M.

    Parameters
    ----------
    num_projections : array (L,)
        The values of M.
    variances, standard_errors : arrays (L, N)
        Sample variance over projection draws, per M and example, and its standard error.
    exact_single : array (N,)
        Exact variance of one projection's term per example (the lines are exact_single / M).
    """
    m = _array("num_projections", num_projections, 1)
    var, se = _array("variances", variances, 2), _array("standard_errors", standard_errors, 2)
    v1 = _array("exact_single", exact_single, 1)
    if var.shape != se.shape or var.shape != (m.shape[0], v1.shape[0]):
        raise ValueError(f"variances, standard_errors: expected shape ({m.shape[0]}, {v1.shape[0]}), "
                         f"got {var.shape} and {se.shape}")
    fig, ax = plt.subplots(figsize=(5.6, 4.2), layout="constrained")
    mm = np.geomspace(m.min(), m.max(), 50)
    for n in range(v1.shape[0]):
        line, = ax.plot(mm, v1[n] / mm, lw=1, alpha=0.7)
        ax.errorbar(m, var[:, n], yerr=2 * se[:, n], fmt="o", ms=3.5, color=line.get_color(), capsize=2)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("projections per example M")
    ax.set_ylabel("variance over the projections")
    ax.set_title("sliced score matching: measured (± 2 s.e.) and exact Var_1 / M", fontsize=10)
    return fig


def plot_sure_vs_mse(per_example: dict, summary) -> Figure:
    """SURE against the true squared error: per example (left) and averaged (right).

    Parameters
    ----------
    per_example : dict
        ``{name: (sure (N,), squared_error (N,))}``, drawn as clouds.
    summary : sequence of (denoiser, sigma, mean SURE, mean squared error, s.e. of the difference)
        One point per denoiser (a colour) and noise level (a marker), with ± 2 standard errors as
        horizontal bars.
    """
    if not per_example or not summary:
        raise ValueError("per_example, summary: expected at least one entry each")
    fig, axes = plt.subplots(1, 2, figsize=(10.5, 4.4), layout="constrained")
    lo, hi = np.inf, -np.inf
    for name, (sure_v, true_v) in per_example.items():
        sv, tv = _array("per_example SURE", sure_v, 1), _array("per_example squared error", true_v, 1)
        axes[0].scatter(tv, sv, s=2, alpha=0.3, label=f"{name} (means {tv.mean():.3f}, {sv.mean():.3f})")
        lo, hi = min(lo, tv.min(), sv.min()), max(hi, tv.max(), sv.max())
    axes[0].plot([lo, hi], [lo, hi], "k--", lw=0.8)
    axes[0].set_xlabel("true squared error ||f(y) - x||^2 (needs x)")
    axes[0].set_ylabel("SURE(f; y) (from y alone)")
    axes[0].set_title("per example: SURE is noisy, unbiased only on average", fontsize=10)
    axes[0].legend(fontsize=7, markerscale=4)
    names = list(dict.fromkeys(str(row[0]) for row in summary))
    levels = list(dict.fromkeys(float(row[1]) for row in summary))
    markers = "osD^v<>"
    pts = []
    for name, level, sure_m, true_m, se in summary:
        c, mk = f"C{names.index(str(name)) % 10}", markers[levels.index(float(level)) % len(markers)]
        axes[1].errorbar(float(true_m), float(sure_m), xerr=2 * float(se), fmt=mk, ms=5, color=c, capsize=2)
        pts += [float(true_m), float(sure_m)]
    axes[1].plot([min(pts), max(pts)], [min(pts), max(pts)], "k--", lw=0.8)
    handles = [plt.Line2D([], [], ls="", marker="o", color=f"C{i % 10}", label=n) for i, n in enumerate(names)]
    handles += [plt.Line2D([], [], ls="", marker=markers[i % len(markers)], color="0.4", label=f"sigma = {lv:g}")
                for i, lv in enumerate(levels)]
    axes[1].legend(handles=handles, fontsize=7)
    axes[1].set_xscale("log")
    axes[1].set_yscale("log")
    axes[1].set_xlabel("mean true squared error (MSE)")
    axes[1].set_ylabel("mean SURE")
    axes[1].set_title("per denoiser and noise level: on the diagonal (± 2 s.e.)", fontsize=10)
    return fig


def plot_score_error_per_step(steps, relative_errors, eps_errors, eps_norms) -> Figure:
    """A trained noise predictor against the exact one, per diffusion step.

    Parameters
    ----------
    steps : array (T,)
        The paper's step t (1-based) of each evaluation.
    relative_errors : array (R, T)
        Per model: E||s_theta - grad log q_t||^2 / E||grad log q_t||^2.
    eps_errors : array (R, T)
        Per model: E||eps_theta - eps*||^2, what L_simple weighs equally at every step.
    eps_norms : array (T,)
        E||eps*||^2 of the exact noise predictor eps* = E[eps | x_t].
    """
    t = _array("steps", steps, 1)
    rel, err = _array("relative_errors", relative_errors, 2), _array("eps_errors", eps_errors, 2)
    ref = _array("eps_norms", eps_norms, 1)
    if rel.shape != err.shape or rel.shape[1] != t.shape[0] or ref.shape != t.shape:
        raise ValueError(f"relative_errors, eps_errors, eps_norms: expected shapes (R, {t.shape[0]}) and "
                         f"({t.shape[0]},), got {rel.shape}, {err.shape}, {ref.shape}")
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
    for r in range(rel.shape[0]):
        axes[0].plot(t, rel[r], "o-", ms=3, lw=1, label=f"model {r + 1}")
        axes[1].plot(t, err[r], "o-", ms=3, lw=1, color=f"C{r}", label=f"E||eps_theta - eps*||^2, model {r + 1}")
    axes[1].plot(t, ref, "k--", lw=1.2, label="E||eps*||^2 (exact)")
    axes[0].axhline(1.0, color="0.5", lw=0.8, ls=":")
    axes[0].annotate("the zero score", (t.min(), 1.0), fontsize=7, xytext=(2, 3), textcoords="offset points")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("diffusion step t (the paper's, 1-based)")
        ax.legend(fontsize=7)
    axes[0].set_title("relative squared score error, trained vs exact", fontsize=10)
    axes[1].set_title("the noise predictor's own error, and the exact predictor's size", fontsize=10)
    return fig
