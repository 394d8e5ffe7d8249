"""Notebook 03's widget (course_lib/widgets.py, section "notebook 03"): the optimal discriminator, the
value V(G, D*) and the JSD it reports agree with independent adaptive quadrature (scipy.integrate.quad,
scipy.stats), and the UI builds and redraws."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from scipy.integrate import quad  # noqa: E402
from scipy.stats import norm  # noqa: E402

from course_lib import widgets  # noqa: E402


def test_optimal_d_matches_density_ratio():
    x = np.linspace(-5, 7, 97)
    p, q = norm.pdf(x, 0, 1), norm.pdf(x, 2.0, 0.6)
    np.testing.assert_allclose(widgets._nb03_optimal_d(x, 2.0, 0.6), p / (p + q), rtol=1e-10)


@pytest.mark.parametrize("shift,scale", [(0.0, 1.0), (1.0, 0.5), (3.0, 2.0), (-5.0, 0.25)])
def test_value_and_jsd_match_adaptive_quadrature(shift, scale):
    value, jsd = widgets._nb03_value_and_jsd(shift, scale)
    pd, pg = norm(0, 1), norm(shift, scale)
    lo, hi = min(-12, shift - 12 * scale), max(12, shift + 12 * scale)
    pts = sorted({0.0, shift})

    def m(x):
        return 0.5 * (pd.pdf(x) + pg.pdf(x))

    want_jsd = 0.5 * quad(lambda x: pd.pdf(x) * (pd.logpdf(x) - math.log(m(x))), lo, hi, points=pts, limit=400)[0] \
        + 0.5 * quad(lambda x: pg.pdf(x) * (pg.logpdf(x) - math.log(m(x))), lo, hi, points=pts, limit=400)[0]
    assert abs(jsd - want_jsd) < 1e-7
    assert abs(value - (-math.log(4) + 2 * want_jsd)) < 1e-7  # Goodfellow et al. 2014, Theorem 1
    if shift == 0.0 and scale == 1.0:
        assert abs(value + math.log(4)) < 1e-9 and abs(jsd) < 1e-12


def test_value_approaches_zero_for_disjoint_distributions():
    value, jsd = widgets._nb03_value_and_jsd(40.0, 1.0)
    assert abs(jsd - math.log(2)) < 1e-9 and abs(value) < 1e-8


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
