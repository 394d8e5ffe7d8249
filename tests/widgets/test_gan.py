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


def test_new_figures_build_and_reject_bad_input():
    import torch

    from course_lib import divergences, gan, toy

    p = toy.bimodal_1d(6.0, 1.0, dtype=torch.float64)
    fig = widgets.plot_gaussian_fits(p, {"forward": divergences.forward_kl_fit(p), "on a mode": (3.0, 1.0)})
    assert len(fig.axes[0].lines) == 3
    plt.close(fig)
    with pytest.raises(ValueError, match="fits"):
        widgets.plot_gaussian_fits(p, {"bad": (0.0, 0.0)})

    hist = gan.GANHistory(d_losses=[1.3, 1.2, 1.25], g_losses=[0.7, 0.8, 0.75])
    fig = widgets.plot_gan_losses({"a": hist, "b, saturating": hist}, smooth=2, saturating_labels=["b, saturating"])
    labels = [line.get_label() for line in fig.axes[0].get_lines() + fig.axes[1].get_lines()]
    assert any("log 4" in lbl for lbl in labels) and any("-log 2" in lbl for lbl in labels)
    plt.close(fig)

    pts = torch.cartesian_prod(torch.linspace(-1, 1, 5), torch.linspace(-1, 1, 5))
    fig = widgets.plot_discriminator_vs_optimal(pts, torch.full((25,), 0.5), torch.rand(25), data=pts[:3])
    plt.close(fig)
    with pytest.raises(ValueError, match="d_optimal"):
        widgets.plot_discriminator_vs_optimal(pts, torch.rand(25), torch.rand(24))
    with pytest.raises(ValueError, match="points"):
        widgets.plot_discriminator_vs_optimal(pts[:24], torch.rand(24), torch.rand(24))

    G = gan.DCGANGenerator(latent_dim=4, channels=2).eval()
    fig = widgets.plot_latent_interpolation(G, torch.zeros(4) + 1, torch.ones(4) * -1, num_points=5)
    assert len(fig.axes) == 3
    plt.close(fig)
    with pytest.raises(ValueError, match="num_points"):
        widgets.plot_latent_interpolation(G, torch.zeros(4), torch.ones(4), num_points=1)
    assert plt.get_fignums() == []
