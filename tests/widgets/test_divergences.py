"""Notebook 00's figures and explorer (course_lib/widgets/divergences.py): the plot draws the fits of
course_lib.divergences (tested in tests/test_divergences.py), rejects bad input by name, and the UI
builds and redraws."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest

from course_lib import widgets


def test_plot_and_explorer():
    fig = widgets.plot_forward_reverse_kl()
    assert isinstance(fig, plt.Figure)
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert any(lbl.startswith("forward") for lbl in labels)
    assert any(lbl.startswith("reverse") for lbl in labels)
    plt.close(fig)
    box = widgets.forward_reverse_kl_explorer()
    slider = box.children[1].children[0]
    slider.value = 9.0  # triggers a redraw; must not raise
    box.redraw()


@pytest.mark.parametrize("kwargs,match", [({"weight": 0.0}, "weight"), ({"weight": 1.5}, "weight"),
                                          ({"separation": -1.0}, "separation")])
def test_plot_rejects_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        widgets.plot_forward_reverse_kl(**kwargs)


def test_legend_calls_a_tied_local_minimum_equally_good():
    """With equal weights the two mode-locked reverse fits tie; with unequal ones the other is worse."""
    for weight, word in ((0.5, "equally good"), (0.3, "a worse")):
        fig = widgets.plot_forward_reverse_kl(6.0, weight)
        labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
        plt.close(fig)
        assert any(word in label for label in labels), labels
