"""Notebook 01's figures and explorers: denoising autoencoders, and decoding random codes.

Denoising explorer: corrupt a few test digits with Gaussian noise of a chosen std (the same eps for
every std, so only its scale changes) and show what a plain and a denoising autoencoder
reconstruct. Random-latent explorer: decode random codes fitted to the training codes
(:func:`course_lib.autoencoders.random_codes`) and show how far the decoded images are from every
training image (:func:`course_lib.metrics.nearest_neighbor_distance`).
"""

from __future__ import annotations

from functools import partial

import ipywidgets as W
import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure

from course_lib._checks import check_int, check_positive, check_tensor
from course_lib._primitives import model_device
from course_lib.autoencoders import corrupt, encode_dataset, random_codes, reconstruction_error
from course_lib.metrics import nearest_neighbor_distance
from course_lib.plotting import image_grid
from course_lib.widgets.ui import explorer, slider, wide

__all__ = ["plot_denoising", "denoising_explorer", "plot_random_latents", "random_latents_explorer"]


def _as_model_dict(models) -> dict:
    if isinstance(models, torch.nn.Module):
        models = {"autoencoder": models}
    if not isinstance(models, dict) or not models:
        raise TypeError(f"models: expected an nn.Module or a non-empty dict name -> nn.Module, "
                        f"got {type(models).__name__}")
    for name, m in models.items():
        if not callable(m):
            raise TypeError(f"models[{name!r}]: expected a callable model, got {type(m).__name__}")
    return models


def plot_denoising(models, images, noise_std: float = 0.5, num_images: int = 8,
                   seed: int = 0) -> Figure:
    """Clean digits, their corrupted versions ``x~ = x + noise_std * eps``, and each model's
    reconstruction ``g(f(x~))`` (Vincent et al. 2008), one row each.

    Parameters
    ----------
    models : nn.Module or dict of str -> nn.Module
        Autoencoders mapping images ``(N, 1, H, W)`` to reconstructions of the same shape.
    images : torch.Tensor, shape (N, 1, H, W)
        Clean images in ``[-1, 1]``; the first ``num_images`` are shown.
    noise_std : float, default 0.5
        Standard deviation of the additive Gaussian corruption (>= 0), in pixel units of the
        ``[-1, 1]`` scale.
    num_images : int, default 8
    seed : int, default 0
        Seed of ``eps``: the same ``eps`` for every ``noise_std``, so only its scale changes.

    Returns
    -------
    matplotlib.figure.Figure
        Each row's title gives the mean squared error to the clean images, summed over pixels.
    """
    models = _as_model_dict(models)
    check_tensor("images", images, ndim=4, floating=True)
    check_positive("noise_std", noise_std, strict=False)
    num_images = min(check_int("num_images", num_images, minimum=1), images.shape[0])
    x = images[:num_images].detach().cpu()
    g = torch.Generator().manual_seed(check_int("seed", seed, minimum=0))
    x_tilde = corrupt(x, noise_std=float(noise_std), generator=g)
    rows = [("clean x", x), (f"corrupted x~ (std {noise_std:.2f})", x_tilde)]
    with torch.no_grad():
        for name, m in models.items():
            dev = model_device(m)
            was = getattr(m, "training", False)
            if hasattr(m, "eval"):
                m.eval()
            rows.append((name, m(x_tilde.to(dev)).cpu()))
            if hasattr(m, "train"):
                m.train(was)
    fig, axes = plt.subplots(len(rows), 1, figsize=(0.55 * num_images + 0.5, 1.0 * len(rows) + 0.3),
                             layout="constrained")
    for ax, (name, imgs) in zip(axes, rows):
        image_grid(imgs, nrow=num_images, ax=ax)
        err = reconstruction_error(imgs.to(x.dtype), x).mean().item()
        ax.set_title(f"{name}: error {err:.2f}" if name != "clean x" else name, fontsize=9)
    return fig


def denoising_explorer(models, images, noise_std: float = 0.5) -> W.VBox:
    """A noise-std slider over :func:`plot_denoising`, starting at ``noise_std`` (the models are
    fixed, only the test corruption changes; a redraw is one forward pass on a few images)."""
    return explorer(
        partial(plot_denoising, models, images, noise_std=float(noise_std)),
        "at the training noise level the denoising autoencoder's reconstructions stay clean "
        "digits while the plain autoencoder passes much of the noise through; at std 0 the "
        "plain one is (slightly) better; far above the training level both fail.",
        noise_std=wide(slider("noise std", 0.0, 1.5, 0.05, units="pixel, range [-1, 1]",
                              continuous=False), "38em"),
    )


def plot_random_latents(model, train_images, test_images, scale: float = 1.0,
                        num_images: int = 12, seed: int = 0) -> Figure:
    """Decode random codes ``z ~ N(m, diag(scale^2 s^2))`` next to reconstructions of test digits.

    ``m`` and ``s`` are the per-dimension mean and standard deviation of the codes of
    ``train_images`` (:func:`course_lib.autoencoders.random_codes`). Each row's title gives the mean
    Euclidean distance (``[-1, 1]`` pixel units) from its images to the nearest training image
    (:func:`course_lib.metrics.nearest_neighbor_distance`): decoded random codes land farther from
    every digit than reconstructions of unseen digits do, because an autoencoder's codes fill only
    a thin part of latent space.

    Parameters
    ----------
    model : nn.Module
        An autoencoder with ``encode``, ``decode`` and ``forward`` (e.g.
        :class:`course_lib.autoencoders.Autoencoder`).
    train_images, test_images : torch.Tensor, shape (N, 1, H, W)
        Images in ``[-1, 1]``.
    scale : float, default 1.0
        Multiplies the per-dimension standard deviation (> 0).
    num_images : int, default 12
    seed : int, default 0

    Returns
    -------
    matplotlib.figure.Figure
    """
    check_tensor("train_images", train_images, floating=True)
    check_tensor("test_images", test_images, floating=True)
    check_positive("scale", scale)
    num_images = min(check_int("num_images", num_images, minimum=1), test_images.shape[0])
    g = torch.Generator().manual_seed(check_int("seed", seed, minimum=0))
    codes = encode_dataset(model, train_images).detach().cpu()
    z = random_codes(codes, num_images, scale=float(scale), generator=g)
    dev = model_device(model)
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            rand = model.decode(z.to(dev)).cpu()
            rec = model(test_images[:num_images].to(dev)).cpu()
    finally:
        model.train(was)
    fig, axes = plt.subplots(2, 1, figsize=(0.55 * num_images + 0.5, 2.6), layout="constrained")
    for ax, (name, imgs) in zip(axes, ((f"decoded random codes (scale {scale:.1f})", rand),
                                       ("reconstructions of test digits", rec))):
        dist = nearest_neighbor_distance(imgs, train_images.cpu())
        image_grid(imgs, nrow=num_images, ax=ax)
        ax.set_title(f"{name}: mean distance to nearest training digit {dist.mean():.2f}",
                     fontsize=9)
    return fig


def random_latents_explorer(model, train_images, test_images, scale: float = 1.0) -> W.VBox:
    """A scale slider over :func:`plot_random_latents`, starting at ``scale``."""
    return explorer(
        partial(plot_random_latents, model, train_images, test_images, scale=float(scale)),
        "a few decoded random codes look like digits, many are blends or broken strokes, and their "
        "mean distance to the nearest training digit stays above that of reconstructions of "
        "unseen digits; small scales give nearly the same average blob, large ones scribbles.",
        scale=wide(slider("scale", 0.1, 3.0, 0.1, units="x std of the training codes",
                          continuous=False), "38em"),
    )
