"""Notebook 03's figure and explorer (course_lib/widgets/gan.py): the numbers in its title are those of
course_lib.gan and course_lib.divergences (tested against scipy in tests/test_gan.py and
tests/test_divergences.py), bad input is rejected by name, and the UI builds and redraws."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest

from course_lib import widgets


def test_plot_and_explorer():
    fig = widgets.plot_optimal_discriminator()
    assert isinstance(fig, plt.Figure) and len(fig.axes) == 2
    labels = [line.get_label() for line in fig.axes[1].get_lines()]
    assert any("minimax" in lbl for lbl in labels) and any("log-D" in lbl for lbl in labels)
    plt.close(fig)
    with pytest.raises(ValueError, match="scale"):
        widgets.plot_optimal_discriminator(scale=0.0)
    box = widgets.optimal_discriminator_explorer()
    shift = box.children[1].children[0]
    shift.value = -5.0  # triggers a redraw; must not raise
    box.redraw()
    assert plt.get_fignums() == []
