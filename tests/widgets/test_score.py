"""Notebook 06's figures and explorers (course_lib/widgets/score.py): the score-field and Langevin
plots draw with what they promise in their titles, reject bad input by name, and the explorers redraw
without leaking figures (the toy and the mode fractions are tested in tests/test_toy.py and
tests/test_metrics.py)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest

from course_lib import widgets


def test_plots_draw_and_reject_bad_input():
    fig = widgets.plot_noised_score_field(sigma=0.5, resolution=8)
    assert len(fig.axes) >= 2
    plt.close(fig)
    fig = widgets.plot_langevin(num_steps=100, num_samples=400, annealed=True)
    assert "fraction per mode" in fig.axes[0].get_title()
    plt.close(fig)
    with pytest.raises(ValueError, match="sigma"):
        widgets.plot_noised_score_field(sigma=-1.0)


def test_explorers_redraw_without_leaking_figures():
    before = set(plt.get_fignums())
    for box in (widgets.langevin_explorer(), widgets.score_field_explorer()):
        box.redraw()
    box.controls["sigma"].value = 1.0
    assert set(plt.get_fignums()) == before


def test_result_figures_draw_what_they_are_given_and_reject_bad_shapes():
    import numpy as np
    y = np.linspace(-3, 3, 21)
    curves = np.stack([np.stack([y, np.ones_like(y), np.tanh(y)]) for _ in range(2)])     # (S=2, K=3, P)
    fig = widgets.plot_tweedie_cumulants(y, curves, curves, [0.5, 1.0])
    assert len(fig.axes) == 3 and "third cumulant" in fig.axes[2].get_title()
    np.testing.assert_allclose(fig.axes[2].lines[0].get_ydata(), np.tanh(y))              # the reference line
    plt.close(fig)
    with pytest.raises(ValueError, match="tweedie, reference"):
        widgets.plot_tweedie_cumulants(y, curves, curves[:, :, :5], [0.5, 1.0])

    ms, v1 = np.array([1, 4, 16]), np.array([2.0, 0.5])
    fig = widgets.plot_sliced_variance(ms, v1 / ms[:, None], 0.1 * v1 / ms[:, None], v1)
    assert fig.axes[0].get_xscale() == "log" and fig.axes[0].get_yscale() == "log"
    np.testing.assert_allclose(fig.axes[0].lines[0].get_ydata()[[0, -1]], [2.0, 2.0 / 16])   # exact Var_1 / M
    plt.close(fig)
    with pytest.raises(ValueError, match="variances"):
        widgets.plot_sliced_variance(ms, v1[None], v1[None], v1)

    rng = np.random.default_rng(0)
    sure_v, true_v = rng.normal(1, 1, 200), rng.exponential(1, 200)
    fig = widgets.plot_sure_vs_mse({"a": (sure_v, true_v)}, [("a", 0.5, 1.0, 1.01, 0.02), ("b", 1.0, 2.0, 1.98, 0.05)])
    assert len(fig.axes) == 2 and "means" in fig.axes[0].get_legend().get_texts()[0].get_text()
    plt.close(fig)
    with pytest.raises(ValueError, match="per_example"):
        widgets.plot_sure_vs_mse({}, [])

    steps = np.array([1, 10, 100])
    rel = np.array([[10.0, 0.1, 0.01]])
    fig = widgets.plot_score_error_per_step(steps, rel, 0.01 * np.ones((1, 3)), np.array([0.001, 0.1, 1.0]))
    assert "1-based" in fig.axes[0].get_xlabel()
    np.testing.assert_allclose(fig.axes[0].lines[0].get_ydata(), rel[0])
    plt.close(fig)
    with pytest.raises(ValueError, match="relative_errors"):
        widgets.plot_score_error_per_step(steps, rel, rel[:, :2], np.ones(3))
