"""Notebook 01's plotting functions and explorers (course_lib/widgets/autoencoders.py):
they return figures with the promised panels, the numbers in their titles are the quantities they
claim (checked against NumPy), bad input is rejected by name, and redraws leave no figure open."""

from __future__ import annotations

import re

import matplotlib.pyplot as plt
import pytest
import torch
from matplotlib.figure import Figure

from course_lib import metrics, widgets
from course_lib.autoencoders import Autoencoder


@pytest.fixture
def images(generator):
    return torch.rand(40, 1, 8, 8, generator=generator) * 2 - 1


@pytest.fixture
def model():
    torch.manual_seed(0)
    return Autoencoder.mlp((1, 8, 8), latent_dim=3, hidden=(16,), final_activation="tanh")


def _errors(fig):
    return [float(m.group(1)) for ax in fig.axes
            for m in [re.search(r"error ([0-9.]+)", ax.get_title())] if m]


def test_plot_denoising_rows_and_errors(images, model):
    fig = widgets.plot_denoising({"identity": torch.nn.Identity(), "ae": model}, images,
                                 noise_std=0.5, num_images=6)
    assert isinstance(fig, Figure) and len(fig.axes) == 4       # clean, corrupted, 2 models
    corrupted_err, identity_err, _ = _errors(fig)
    # the identity "model" returns the corrupted input: same error as the corrupted row
    assert identity_err == corrupted_err
    # the error is the mean over images of ||x~ - x||^2 = sum of 64 squared N(0, 0.25) draws
    assert 0.5 * 64 * 0.25 < corrupted_err < 1.5 * 64 * 0.25
    plt.close(fig)


def test_plot_denoising_without_noise_has_zero_corruption_error(images, model):
    fig = widgets.plot_denoising(model, images, noise_std=0.0)
    assert _errors(fig)[0] == 0.0
    plt.close(fig)


def test_plot_denoising_same_eps_for_every_std(images):
    f1 = widgets.plot_denoising(torch.nn.Identity(), images, noise_std=0.2)
    f2 = widgets.plot_denoising(torch.nn.Identity(), images, noise_std=0.4)
    e1, e2 = _errors(f1)[0], _errors(f2)[0]
    assert e2 == pytest.approx(4 * e1, rel=1e-2)                 # error scales with std^2
    plt.close("all")


@pytest.mark.parametrize("kwargs, match", [
    (dict(noise_std=-0.1), "noise_std"),
    (dict(num_images=0), "num_images"),
])
def test_plot_denoising_rejects_bad_input(images, model, kwargs, match):
    with pytest.raises(ValueError, match=match):
        widgets.plot_denoising(model, images, **kwargs)


def test_plot_denoising_rejects_bad_models(images):
    with pytest.raises(TypeError, match="models"):
        widgets.plot_denoising({}, images)
    with pytest.raises(ValueError, match="images"):
        widgets.plot_denoising(torch.nn.Identity(), images[0])


def test_plot_random_latents_distances(images, model):
    train, test = images[:30], images[30:]
    fig = widgets.plot_random_latents(model, train, test, scale=1.0, num_images=5)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    titles = [ax.get_title() for ax in fig.axes]
    with torch.no_grad():
        rec = model(test[:5])
    want = metrics.nearest_neighbor_distance(rec, train).mean().item()
    assert f"{want:.2f}" in titles[1]
    plt.close(fig)
    with pytest.raises(ValueError, match="scale"):
        widgets.plot_random_latents(model, train, test, scale=0.0)


def test_explorers_redraw_without_errors_or_leaked_figures(images, model, capsys):
    # Headless (no kernel) the explorer's Output area echoes to stdout: a redraw prints the
    # figure's repr, and an exception in the plot function would print its traceback.
    before = set(plt.get_fignums())
    for box, slider_value in ((widgets.denoising_explorer(model, images), 1.0),
                              (widgets.random_latents_explorer(model, images[:30], images[30:]), 2.0)):
        capsys.readouterr()
        box.children[1].children[0].value = slider_value
        printed = capsys.readouterr().out
        assert "Figure(" in printed and "Traceback" not in printed
    assert set(plt.get_fignums()) == before
