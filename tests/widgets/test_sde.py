"""Notebook 07's figures and explorers (course_lib/widgets/sde.py): the SDE-vs-ODE plot draws both
panels at the requested time, its ODE paths are deterministic, it rejects bad input by name, and the
explorer redraws without leaking figures (the samplers themselves are tested in tests/test_sde.py)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest

from course_lib import widgets


def _points(ax):
    return np.concatenate([c.get_offsets() for c in ax.collections if len(c.get_offsets()) > 50])


def test_plot_draws_both_panels_at_the_requested_time():
    fig = widgets.plot_reverse_sde_vs_ode(t=0.5, num_points=80, num_steps=40)
    titles = [ax.get_title() for ax in fig.axes[:2]]
    assert "SDE" in titles[0] and "ODE" in titles[1] and all("t = 0.5" in s for s in titles)
    plt.close(fig)


def test_ode_panel_is_deterministic_and_sde_panel_is_not():
    a = widgets.plot_reverse_sde_vs_ode(t=0.2, num_points=80, num_steps=40, seed=1)
    b = widgets.plot_reverse_sde_vs_ode(t=0.2, num_points=80, num_steps=40, seed=1)
    np.testing.assert_array_equal(_points(a.axes[1]), _points(b.axes[1]))
    np.testing.assert_array_equal(_points(a.axes[0]), _points(b.axes[0]))     # same seed, same noise
    assert not np.allclose(_points(a.axes[0]), _points(a.axes[1]))             # SDE != ODE endpoints
    plt.close(a)
    plt.close(b)


def test_plot_at_the_ends_and_rejects_bad_time():
    for t in (1.0, 0.001):
        plt.close(widgets.plot_reverse_sde_vs_ode(t=t, num_points=60, num_steps=20))
    with pytest.raises(ValueError, match="t"):
        widgets.plot_reverse_sde_vs_ode(t=1.5)


def test_explorer_starts_at_the_plot_default_and_redraws_without_leaking_figures():
    before = set(plt.get_fignums())
    box = widgets.reverse_sde_vs_ode_explorer()
    assert box.controls["t"].value == pytest.approx(0.3)
    box.controls["t"].value = 0.8
    assert set(plt.get_fignums()) == before
