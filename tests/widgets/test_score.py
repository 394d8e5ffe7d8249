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
