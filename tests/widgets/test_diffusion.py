"""Notebooks 04 and 05's figures and explorers (course_lib/widgets/diffusion.py): the plots' defaults, bad
input, and that the explorers build and redraw cleanly (the variance recursion, the scaled chain and
the exact marginals they draw are tested in tests/test_diffusion.py)."""

from __future__ import annotations

import ipywidgets as W
import matplotlib.pyplot as plt
import pytest
import torch

from course_lib import diffusion as D
from course_lib import toy, widgets


def _setup():
    mix = toy.grid_mixture(n_per_side=3, spacing=1.0, std=0.05)
    images = torch.rand(8, 1, 8, 8) * 2 - 1
    return mix, D.NoiseSchedule.cosine(20), images


def test_plot_magical_scalars_defaults_and_errors():
    before = plt.get_fignums()
    fig = widgets.plot_magical_scalars(num_steps=50, num_chains=500)
    assert fig.axes and len(fig.axes) == 2
    plt.close(fig)
    assert plt.get_fignums() == before
    with pytest.raises(ValueError, match="a"):
        widgets.plot_magical_scalars(a=1.01, magical=True)


def test_noised_and_reverse_marginal_plots():
    mix, sched, images = _setup()
    for t in (0, 7, 19):
        plt.close(widgets.plot_noised_marginals(mix, sched, images, t=t, num_samples=200))
    with pytest.raises(ValueError, match="t: expected a 0-based step"):
        widgets.plot_noised_marginals(mix, sched, images, t=20)
    path = torch.randn(21, 50, 2)
    for t in (-1, 0, 19):
        plt.close(widgets.plot_reverse_marginals(path, mix, sched, t=t))
    with pytest.raises(ValueError, match="t: expected a 0-based step"):
        widgets.plot_reverse_marginals(path, mix, sched, t=20)


def test_explorers_build_and_redraw():
    mix, sched, images = _setup()
    before = plt.get_fignums()
    for box in (widgets.noised_marginals_explorer(mix, sched, images),
                widgets.reverse_marginals_explorer(torch.randn(21, 50, 2), mix, sched)):
        assert isinstance(box, W.VBox) and isinstance(box.children[-1], W.Output)
        slider = box.children[1].children[0]
        slider.value = 3
        box.redraw()
    assert plt.get_fignums() == before


def test_magical_scalars_explorer_never_offers_an_invalid_a():
    """With the box ticked the slider stops at a = 1 (found by the browser test: a > 1 raised)."""
    box = widgets.magical_scalars_explorer()
    a, b, magical = box.children[1].children
    assert magical.value and a.max == 1.0
    a.value = 1.0
    magical.value = False
    a.value = 1.015
    magical.value = True  # ticking it again clamps a to 1 instead of raising in the output
    assert a.value == 1.0
    assert "Traceback" not in str(box.children[-1].outputs)


def test_plot_reverse_conditionals_and_vlb_terms():
    mix = toy.bimodal_1d(2.0, std=0.2, dtype=torch.float64)
    before = plt.get_fignums()
    fig = widgets.plot_reverse_conditionals(
        mix, [("coarse", D.NoiseSchedule.cosine(5), 1), ("fine", D.NoiseSchedule.cosine(1000), 0)], [0.0, 0.8])
    assert len(fig.axes) == 2 and len(fig.axes[0].lines) == 4      # two densities, two Gaussians
    plt.close(fig)
    with pytest.raises(ValueError, match="mixture"):
        widgets.plot_reverse_conditionals(toy.grid_mixture(), [("x", D.NoiseSchedule.cosine(5), 1)], [0.0])
    sched = D.NoiseSchedule.cosine(6)
    x0 = mix.sample(50, generator=torch.Generator().manual_seed(0))
    terms = D.vlb_terms(sched, D.optimal_eps_model(mix, sched), x0)
    fig = widgets.plot_vlb_terms(terms)
    heights = [p.get_height() for p in fig.axes[0].patches]
    assert len(heights) == 7
    torch.testing.assert_close(torch.tensor(heights[:6], dtype=torch.float64), terms.terms.mean(0))
    assert heights[6] == pytest.approx(terms.prior.mean().item())
    plt.close(fig)
    assert plt.get_fignums() == before
    with pytest.raises(ValueError, match="terms"):
        widgets.plot_vlb_terms(D.VLBTerms(terms.prior[:1], terms.terms[:1], terms.total[:1]))


def test_mmse_and_sample_panel_plots():
    x = torch.rand(5, 64) * 2 - 1
    fig = widgets.plot_mmse_vs_posterior(x, x + torch.randn(5, 64), 0.5 * x, torch.stack([x, -x]))
    assert len(fig.axes) == 1
    plt.close(fig)
    with pytest.raises(ValueError, match="expected 5 images"):
        widgets.plot_mmse_vs_posterior(x, x[:4], x, x[None])
    mix, _, _ = _setup()
    fig = widgets.plot_sample_panels([("a", torch.randn(100, 2)), ("b", torch.randn(50, 2))], mix.means)
    assert len(fig.axes) == 2
    plt.close(fig)
    with pytest.raises(ValueError, match="panels"):
        widgets.plot_sample_panels([])
