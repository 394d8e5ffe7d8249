"""Notebook 07's figures and explorers: the reverse-time SDE and the probability-flow ODE side by side.

From the same starting points at :math:`t = 1`, the reverse-time SDE (Euler-Maruyama,
:func:`course_lib.sde.reverse_sde_sample`) and the probability-flow ODE
(:func:`course_lib.sde.probability_flow_trajectory`) carry prior draws to the toy mixture
(:func:`course_lib.toy.three_mode_mixture`) under the VP SDE, with the exact score
(:func:`course_lib.sde.mixture_score`). Both are drawn over the exact marginal density
:math:`p_t` (:func:`course_lib.sde.marginal_mixture`) at the time chosen with the slider: the SDE's
paths are rough, the ODE's smooth and deterministic, and both clouds of points follow :math:`p_t`.
"""

from __future__ import annotations

import ipywidgets as W
import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure

from course_lib import sde as S
from course_lib import toy
from course_lib.plotting import density_contours, scatter_samples, trajectories
from course_lib.widgets.ui import explorer, slider

__all__ = ["plot_reverse_sde_vs_ode", "reverse_sde_vs_ode_explorer"]


def plot_reverse_sde_vs_ode(t: float = 0.3, num_points: int = 300, num_paths: int = 6,
                            num_steps: int = 200, seed: int = 0) -> Figure:
    """Reverse-time SDE (left) and probability-flow ODE (right) from the same prior draws, up to time ``t``.

    Both panels: contours of the exact :math:`\\log p_t`, the first ``num_paths`` paths from
    :math:`t = 1` down to ``t``, and all ``num_points`` particles at ``t``. The SDE runs
    ``num_steps`` Euler-Maruyama steps on ``[1, 1e-3]``; the ODE is solved accurately (DOP853) on
    the same time grid. ``t`` is rounded to that grid.
    """
    if not 0.001 <= t <= 1.0:
        raise ValueError(f"t: expected a time in [0.001, 1], got {t!r}")
    mix = toy.three_mode_mixture(torch.float64)
    sde = S.VPSDE()
    score_fn = S.mixture_score(mix, sde)
    g = torch.Generator().manual_seed(seed)
    x1 = sde.prior_sample((num_points, 2), generator=g, dtype=torch.float64)
    times = torch.linspace(1.0, 1e-3, num_steps + 1, dtype=torch.float64)
    j = int((times >= t - 1e-12).sum()) - 1                  # last grid time not below t
    _, sde_path = S.reverse_sde_sample(sde, score_fn, x1.shape, num_steps, generator=g, x1=x1,
                                       trajectory=True, denoise=False)
    ode_path = (S.probability_flow_trajectory(sde, score_fn, x1, times[: j + 1].tolist()) if j > 0
                else x1[None])
    t_shown = float(times[j])
    marginal = S.marginal_mixture(mix, sde, t_shown)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.8), layout="constrained", sharex=True, sharey=True)
    for ax, path, name, color in ((axes[0], sde_path[: j + 1], "reverse-time SDE", "tab:red"),
                                  (axes[1], ode_path, "probability-flow ODE", "tab:blue")):
        density_contours(marginal.log_prob, (-4, 4), (-4, 4), ax=ax, log=True, levels=20, cmap="Greys")
        if j > 0:
            trajectories(path[:, :num_paths], ax=ax, color=color, show_ends=False, alpha=0.8)
        scatter_samples(path[-1], ax=ax, s=4, alpha=0.6, color=color)
        ax.set_xlim(-4, 4)
        ax.set_ylim(-4, 4)
        ax.set_title(f"{name}, t = {t_shown:.3f}\n(contours: exact log p_t)", fontsize=10)
    return fig


def reverse_sde_vs_ode_explorer() -> W.VBox:
    """A slider over the time t; redraws :func:`plot_reverse_sde_vs_ode`."""
    return explorer(
        plot_reverse_sde_vs_ode,
        "move t from 1 (the prior) down to 0 (the data). The SDE's paths jitter and cross each "
        "other; the ODE's are smooth and never cross (it is a deterministic map). Both clouds "
        "follow the same exact density p_t at every t, yet a given start ends in different places: "
        "same marginals, different couplings.",
        t=slider("time t", 0.001, 1.0, 0.01, continuous=False),
    )
