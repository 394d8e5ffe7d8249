"""Notebook 00's widget (course_lib/widgets.py, section "notebook 00"): the forward/reverse-KL fits it
draws agree with independent quadrature (scipy.integrate.quad), and the UI builds and redraws."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from scipy.integrate import quad  # noqa: E402
from scipy.optimize import minimize  # noqa: E402
from scipy.stats import norm  # noqa: E402

from course_lib import widgets  # noqa: E402


def _p(x, d, w):
    return w * norm.pdf(x, -d / 2, 1) + (1 - w) * norm.pdf(x, d / 2, 1)


def _log_p(x, d, w):
    return np.logaddexp(math.log(w) + norm.logpdf(x, -d / 2, 1), math.log(1 - w) + norm.logpdf(x, d / 2, 1))


@pytest.mark.parametrize("d,w", [(0.0, 0.5), (3.0, 0.3), (8.0, 0.8)])
def test_forward_fit_is_the_mixture_moments(d, w):
    mean = quad(lambda x: x * _p(x, d, w), -np.inf, np.inf)[0]
    var = quad(lambda x: (x - mean) ** 2 * _p(x, d, w), -np.inf, np.inf)[0]
    mu, sigma = widgets._nb00_forward_kl_fit(d, w)
    assert abs(mu - mean) < 1e-8 and abs(sigma - math.sqrt(var)) < 1e-8


@pytest.mark.parametrize("mu,sigma,d,w", [(0.0, 1.0, 4.0, 0.5), (-1.5, 0.3, 6.0, 0.2), (2.0, 3.0, 2.0, 0.7)])
def test_reverse_kl_matches_adaptive_quadrature(mu, sigma, d, w):
    nodes, weights = np.polynomial.hermite.hermgauss(widgets._NB00_HERMITE_NODES)
    got = widgets._nb00_reverse_kl(np.array([mu, math.log(sigma)]), d, w, nodes, weights)
    q = norm(mu, sigma)
    want = quad(lambda x: q.pdf(x) * (q.logpdf(x) - _log_p(x, d, w)), mu - 15 * sigma,
                mu + 15 * sigma, points=[mu], limit=200)[0]
    assert abs(got - want) < 1e-6  # Gauss-Hermite converges slowly for wide q; ample for a plot


def test_reverse_fit_locks_onto_the_heavier_mode_when_far_apart():
    fits = widgets._nb00_reverse_kl_fits(10.0, 0.3)
    mu, sigma, kl = min(fits, key=lambda f: f[2])
    assert abs(mu - 5.0) < 1e-3 and abs(sigma - 1.0) < 1e-3
    assert abs(kl + math.log(0.7)) < 1e-3  # KL(q || p) ~ -log(weight of the mode)
    # independent optimisation of the same objective by Nelder-Mead with quad
    def obj(params):
        q = norm(params[0], math.exp(params[1]))
        return quad(lambda x: q.pdf(x) * (q.logpdf(x) - _log_p(x, 10.0, 0.3)),
                    params[0] - 12 * q.std(), params[0] + 12 * q.std(), limit=200)[0]
    res = minimize(obj, x0=[4.0, 0.2], method="Nelder-Mead", options={"xatol": 1e-6, "fatol": 1e-10})
    assert abs(res.x[0] - mu) < 1e-3 and abs(math.exp(res.x[1]) - sigma) < 1e-3


def test_reverse_fit_covers_when_modes_overlap():
    fits = widgets._nb00_reverse_kl_fits(2.0, 0.5)
    for mu, sigma, _ in fits:
        assert abs(mu) < 1e-4 and sigma < math.sqrt(2)  # narrower than the forward fit


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
