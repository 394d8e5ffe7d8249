"""Notebook 02's figures and explorers (course_lib/widgets/vae.py): the gradient-estimator histograms
and the decoder-std sweep draw, reject bad input by name, and redraw without leaking figures (the
estimators and the sweep are tested in tests/test_vae.py)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest
import torch
from matplotlib.figure import Figure

from course_lib import vae as V
from course_lib import widgets


def test_notebook02_widgets_draw_and_redraw():
    fig = widgets.plot_gradient_estimators(sigma=0.5, offset=-1.0, num_samples=500)
    assert isinstance(fig, Figure)
    plt.close(fig)
    with pytest.raises(ValueError, match="sigma"):
        widgets.plot_gradient_estimators(sigma=0.0)
    data = torch.rand(64, 1, 8, 8) * 2 - 1
    sweep = V.decoder_std_sweep(data, [0.5, 4.0], num_steps=3, hidden_dims=(8,), num_show=4,
                                generator=torch.Generator().manual_seed(0), device="cpu", progress=False)
    fig = widgets.plot_decoder_std_sweep(sweep, decoder_std=4.0)
    assert isinstance(fig, Figure) and "4" in fig.axes[0].get_title()
    plt.close(fig)
    with pytest.raises(ValueError, match="sweep"):
        widgets.plot_decoder_std_sweep([])
    before = set(plt.get_fignums())
    box = widgets.decoder_std_explorer(sweep)
    box.children[1].children[0].value = 4.0  # move the slider: a redraw, no figure left open
    box = widgets.gradient_estimator_explorer()
    box.redraw()
    assert set(plt.get_fignums()) == before


def test_notebook02_ellipse_figures_draw_and_reject_bad_shapes():
    d64 = torch.float64
    mean, cov = torch.tensor([0.5, -0.2], dtype=d64), torch.tensor([[1.0, -0.7], [-0.7, 1.0]], dtype=d64)
    q = {"diagonal": (mean, torch.log(torch.tensor([0.51, 0.51], dtype=d64)))}
    fig = widgets.plot_posterior_ellipses(mean, cov, q, samples=torch.randn(50, 2, dtype=d64))
    assert isinstance(fig, Figure) and len(fig.axes[0].lines) >= 5
    plt.close(fig)
    fig = widgets.plot_square_root_maps(mean, cov, num_samples=100, num_lines=5)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    plt.close(fig)
    with pytest.raises(ValueError, match="mean"):
        widgets.plot_posterior_ellipses(torch.zeros(3, dtype=d64), cov, q)
    with pytest.raises(ValueError, match="cov"):
        widgets.plot_square_root_maps(mean, torch.eye(3, dtype=d64))
