"""Interactive explorers: thin ipywidgets UIs over plain plotting functions.

Every explorer wraps a plain function ``plot_fn(**values) -> matplotlib.figure.Figure`` whose
defaults are what the explorer starts at, so a notebook (and CI, headless) can call the plain
function directly and get the same figure. The UI redraws the figure once per change into a single
output area and closes it afterwards (no figure is left open in pyplot); slow plots use
``continuous=False`` on their sliders so they redraw on release only.

Notebook convention: call the plain function with a trailing semicolon (``plot_x();``) so the
figure is shown once, then display the explorer.

Notebook-specific explorers live at the end of this file, one section per notebook
(``# --- notebook NN``).
"""

from __future__ import annotations

import math
import traceback
from collections.abc import Callable

import ipywidgets as W
import matplotlib.pyplot as plt
from IPython.display import display
from matplotlib.axes import Axes
from matplotlib.figure import Figure

__all__ = ["explorer", "slider"]


def slider(description: str, min: float, max: float, step: float, value: float, units: str = "",
           continuous: bool = True, log: bool = False) -> W.ValueWidget:
    """A labelled slider: ``IntSlider`` when every number is an int, else ``FloatSlider``.

    Parameters
    ----------
    description : str
        What the slider sets (use the notebook's symbol, e.g. ``"sigma"``).
    min, max, step, value : int or float
        Range, step and initial value (``min <= value <= max``, ``step > 0``). With ``log=True``
        they are the values themselves (not exponents) and ``step`` is the step of
        ``log10(value)``.
    units : str
        Appended to the description in parentheses, e.g. ``"nats"``; empty for none.
    continuous : bool
        ``continuous_update``: redraw while dragging (True) or on release only (False, for plots
        slower than ~0.1 s).
    log : bool
        A ``FloatLogSlider`` (base 10), for scales such as noise levels.

    Returns
    -------
    ipywidgets.IntSlider, ipywidgets.FloatSlider or ipywidgets.FloatLogSlider
        With the readout shown at a precision matching ``step``.

    Raises
    ------
    ValueError
        If ``min >= max``, ``step <= 0``, ``value`` is outside ``[min, max]``, or ``log`` with
        ``min <= 0``.
    """
    lo, hi = min, max
    for name, v in (("min", lo), ("max", hi), ("step", step), ("value", value)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ValueError(f"{name}: expected a finite number, got {v!r}")
    if not lo < hi:
        raise ValueError(f"min, max: expected min < max, got {lo!r} and {hi!r}")
    if not step > 0:
        raise ValueError(f"step: expected a number > 0, got {step!r}")
    if not lo <= value <= hi:
        raise ValueError(f"value: expected a number in [{lo}, {hi}], got {value!r}")
    label = f"{description} ({units})" if units else description
    common = dict(description=label, continuous_update=bool(continuous), readout=True,
                  style={"description_width": "initial"})
    if log:
        if lo <= 0:
            raise ValueError(f"min: expected a number > 0 for a log slider, got {lo!r}")
        return W.FloatLogSlider(value=value, base=10, min=math.log10(lo), max=math.log10(hi),
                                step=step, readout_format=".3g", **common)
    if all(isinstance(v, int) for v in (lo, hi, step, value)):
        return W.IntSlider(value=value, min=lo, max=hi, step=step, **common)
    decimals = 0 if step >= 1 else -math.floor(math.log10(step) + 1e-9)
    if abs(step * 10**decimals - round(step * 10**decimals)) > 1e-9:  # e.g. step 0.25
        decimals += 1
    return W.FloatSlider(value=value, min=lo, max=hi, step=step,
                         readout_format=f".{decimals}f", **common)


def explorer(plot_fn: Callable[..., "plt.Figure"], caption: str, **controls: W.ValueWidget) -> W.VBox:
    """Build an explorer: ``controls`` drive ``plot_fn``; the figure is drawn once per change.

    Parameters
    ----------
    plot_fn : callable
        Plain plotting function taking the controls' values as keyword arguments and returning a
        figure (or an Axes, whose figure is shown).
    caption : str
        What to look for, shown above the controls (HTML allowed).
    **controls : ipywidgets.ValueWidget
        One widget per keyword argument of ``plot_fn`` (give each a description with units, e.g.
        with :func:`slider`).

    Returns
    -------
    ipywidgets.VBox
        Caption, controls (in an ``HBox`` that wraps) and the output area; ``.children[-1]`` is
        the output. ``.redraw()`` redraws with the current values.

    Raises
    ------
    ValueError
        If no control is given.
    TypeError
        If a control is not an ipywidgets value widget.

    Notes
    -----
    Each redraw closes every figure ``plot_fn`` opened, so ``plt.get_fignums()`` is unchanged
    after a redraw. An exception in ``plot_fn`` (e.g. a value it rejects) is shown in the output
    area instead of breaking the UI.
    """
    if not controls:
        raise ValueError("controls: expected at least one widget, got none")
    for name, c in controls.items():
        if not isinstance(c, W.ValueWidget):
            raise TypeError(f"controls[{name!r}]: expected an ipywidgets value widget, got "
                            f"{type(c).__name__}")
    out = W.Output()

    def redraw(**values):
        before = set(plt.get_fignums())
        with out:
            out.clear_output(wait=True)
            try:
                result = plot_fn(**values)
                fig = result.figure if isinstance(result, Axes) else result
                if isinstance(fig, Figure):
                    display(fig)
            except Exception:  # show the error where the figure would be
                print(traceback.format_exc(limit=-3))
            finally:
                for num in set(plt.get_fignums()) - before:
                    plt.close(num)

    def on_change(_change=None):
        redraw(**{k: c.value for k, c in controls.items()})

    for c in controls.values():
        c.observe(on_change, names="value")
    on_change()
    box = W.VBox([W.HTML(f"<p><b>What to look for:</b> {caption}</p>"),
                  W.HBox(list(controls.values()), layout=W.Layout(flex_flow="row wrap")), out])
    box.redraw = on_change  # for tests: force a redraw without moving a slider
    return box


# --- notebook 00: generative modeling and divergences -------------------------------------------
# Forward vs reverse KL fit of ONE Gaussian q = N(mu, sigma^2) to the bimodal 1-D mixture
# p = w N(-d/2, 1) + (1 - w) N(d/2, 1). The forward fit (argmin KL(p || q)) is moment matching, in
# closed form; the reverse fit (argmin KL(q || p)) is found by Gauss-Hermite quadrature + L-BFGS-B
# from three initialisations (each mode, and the covering Gaussian), ~0.1-0.3 s per redraw.
# Notebook 00 checks both against an independent optimisation (tests/test_widgets_divergences.py
# against scipy.integrate.quad).

def _wide(control: W.ValueWidget, width: str = "30em") -> W.ValueWidget:
    """Give a slider with a long description (label + units) room for its track."""
    control.layout.width = width
    return control


_NB00_HERMITE_NODES = 160  # Gauss-Hermite nodes for E_q[log p]: error < 1e-6 nats (tested against quad)


def _nb00_bimodal_logpdf(x, separation, weight):
    """log p(x) for p = w N(-d/2, 1) + (1 - w) N(d/2, 1), NumPy float64, via log-sum-exp."""
    import numpy as np
    from scipy.special import logsumexp

    x = np.asarray(x, dtype=np.float64)
    comps = np.stack([-0.5 * (x + separation / 2) ** 2, -0.5 * (x - separation / 2) ** 2])
    logw = np.log(np.array([weight, 1.0 - weight]))[:, None]
    return logsumexp(comps + logw.reshape((2,) + (1,) * x.ndim), axis=0) - 0.5 * np.log(2 * np.pi)


def _nb00_forward_kl_fit(separation, weight):
    """argmin_q KL(p || q) = moments of p: mean (1 - 2w) d/2, variance 1 + w (1 - w) d^2."""
    mean = (1.0 - 2.0 * weight) * separation / 2
    var = 1.0 + weight * (1.0 - weight) * separation ** 2
    return mean, var ** 0.5


def _nb00_reverse_kl(params, separation, weight, nodes, node_weights):
    """KL(q || p) = E_q[log q - log p], q = N(mu, sigma^2), by Gauss-Hermite quadrature."""
    import numpy as np

    mu, log_sigma = params
    sigma = np.exp(log_sigma)
    x = mu + np.sqrt(2.0) * sigma * nodes
    neg_entropy = -0.5 * np.log(2 * np.pi * np.e * sigma ** 2)  # E_q[log q], closed form
    return neg_entropy - np.sum(node_weights * _nb00_bimodal_logpdf(x, separation, weight)) / np.sqrt(np.pi)


def _nb00_reverse_kl_fits(separation, weight, inits=None):
    """Local minimisers of KL(q || p) from each initialisation (mu0, sigma0): list of (mu, sigma, kl)."""
    import numpy as np
    from scipy.optimize import minimize

    nodes, node_weights = np.polynomial.hermite.hermgauss(_NB00_HERMITE_NODES)
    if inits is None:  # on each mode, and on the moment-matching (mode-covering) Gaussian
        inits = ((-separation / 2, 1.0), (separation / 2, 1.0), _nb00_forward_kl_fit(separation, weight))
    fits = []
    for mu0, sigma0 in inits:
        res = minimize(_nb00_reverse_kl, x0=np.array([mu0, np.log(sigma0)]),
                       args=(separation, weight, nodes, node_weights),
                       method="L-BFGS-B", bounds=[(None, None), (np.log(0.05), np.log(50.0))])
        fits.append((float(res.x[0]), float(np.exp(res.x[1])), float(res.fun)))
    return fits


def plot_forward_reverse_kl(separation: float = 6.0, weight: float = 0.5) -> "plt.Figure":
    """Draw p (bimodal mixture), the forward-KL fit and the reverse-KL fit(s) of one Gaussian.

    Parameters
    ----------
    separation : float
        Distance d between the two unit-variance modes of p = w N(-d/2, 1) + (1 - w) N(d/2, 1).
    weight : float
        Weight w of the left mode, in (0, 1).

    Returns
    -------
    matplotlib.figure.Figure
        p (shaded); the forward-KL fit, mean (1 - 2w) d/2 and variance 1 + w (1 - w) d^2 (moment
        matching); the best reverse-KL fit over three initialisations (solid) and, when there is
        one, another local minimum (dotted; worse, or equally good when the modes are symmetric); the
        KL values in the legend.

    Raises
    ------
    ValueError
        If ``weight`` is not in (0, 1) or ``separation`` is negative.

    References
    ----------
    Bishop, *Pattern Recognition and Machine Learning* (2006), section 10.1.2 and Fig. 10.3
    (forward vs reverse KL on a bimodal target).
    """
    import numpy as np

    if not 0.0 < weight < 1.0:
        raise ValueError(f"weight: expected a number in (0, 1), got {weight!r}")
    if separation < 0:
        raise ValueError(f"separation: expected a number >= 0, got {separation!r}")
    lo, hi = -separation / 2 - 4.0, separation / 2 + 4.0
    x = np.linspace(min(lo, -6.0), max(hi, 6.0), 800)
    p = np.exp(_nb00_bimodal_logpdf(x, separation, weight))

    def normal_pdf(mu, sigma):
        return np.exp(-0.5 * ((x - mu) / sigma) ** 2) / (sigma * np.sqrt(2 * np.pi))

    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    ax.fill_between(x, p, color="0.8", label=r"$p$ (data)")
    mu_f, s_f = _nb00_forward_kl_fit(separation, weight)
    ax.plot(x, normal_pdf(mu_f, s_f), color="C0", lw=2,
            label=rf"forward: argmin KL$(p\|q)$, $\mu$={mu_f:.2f}, $\sigma$={s_f:.2f}")
    fits = sorted(_nb00_reverse_kl_fits(separation, weight), key=lambda f: f[2])
    best = fits[0]
    ax.plot(x, normal_pdf(best[0], best[1]), color="C3", lw=2,
            label=rf"reverse: argmin KL$(q\|p)$ = {best[2]:.3f}, $\mu$={best[0]:.2f}, $\sigma$={best[1]:.2f}")
    others = [f for f in fits[1:] if abs(f[0] - best[0]) > 1e-2 or abs(f[1] - best[1]) > 1e-2]
    if others:
        other = others[0]
        kind = "an equally good" if other[2] - best[2] < 5e-4 else "a worse"  # symmetric modes tie
        ax.plot(x, normal_pdf(other[0], other[1]), color="C3", lw=1.5, ls=":",
                label=rf"reverse, {kind} local min: KL$(q\|p)$ = {other[2]:.3f}")
    ax.set_xlabel("x")
    ax.set_ylabel("density")
    ax.set_ylim(0, max(p.max(), normal_pdf(best[0], best[1]).max()) * 1.6)
    ax.set_title(f"one Gaussian fitted to a two-mode mixture (d = {separation:g}, w = {weight:g})")
    ax.legend(loc="upper left", fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


def forward_reverse_kl_explorer() -> W.VBox:
    """Sliders for the separation and weight of p; redraws :func:`plot_forward_reverse_kl`."""
    return explorer(
        plot_forward_reverse_kl,
        "as the modes separate, the forward fit (blue) stretches to cover both and puts mass "
        "where p has none; the reverse fit (red) stops covering both and locks onto one mode, "
        "with KL(q||p) close to -log of that mode's weight.",
        separation=_wide(slider("separation d", 0.0, 10.0, 0.25, 6.0, units="std of one mode",
                                continuous=False)),
        weight=_wide(slider("weight w of the left mode", 0.05, 0.95, 0.05, 0.5, continuous=False)),
    )


__all__ += ["plot_forward_reverse_kl", "forward_reverse_kl_explorer"]


# --- notebook 01: autoencoders -------------------------------------------------------------------
# Denoising explorer: corrupt a few test digits with Gaussian noise of a chosen std (the same eps
# for every std, so only its scale changes) and show what a plain and a denoising autoencoder
# reconstruct. Random-latent explorer: decode z ~ N(mean, diag(scale^2 std^2)) of the training
# codes and show how far the decoded images are from every training image.


def _nb01_models(models) -> dict:
    import torch

    if isinstance(models, torch.nn.Module):
        models = {"autoencoder": models}
    if not isinstance(models, dict) or not models:
        raise TypeError(f"models: expected an nn.Module or a non-empty dict name -> nn.Module, "
                        f"got {type(models).__name__}")
    for name, m in models.items():
        if not callable(m):
            raise TypeError(f"models[{name!r}]: expected a callable model, got {type(m).__name__}")
    return models


def _nb01_device(model):
    import torch

    try:
        return next(model.parameters()).device
    except (AttributeError, StopIteration):
        return torch.device("cpu")


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
    import torch

    from .autoencoders import corrupt, reconstruction_error
    from .plotting import image_grid
    from ._checks import check_int, check_positive, check_tensor

    models = _nb01_models(models)
    check_tensor("images", images, ndim=4, floating=True)
    check_positive("noise_std", noise_std, strict=False)
    num_images = min(check_int("num_images", num_images, minimum=1), images.shape[0])
    x = images[:num_images].detach().cpu()
    g = torch.Generator().manual_seed(check_int("seed", seed, minimum=0))
    x_tilde = corrupt(x, noise_std=float(noise_std), generator=g)
    rows = [("clean x", x), (f"corrupted x~ (std {noise_std:.2f})", x_tilde)]
    with torch.no_grad():
        for name, m in models.items():
            dev = _nb01_device(m)
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
    """A noise-std slider over :func:`plot_denoising` (the models are fixed, only the test
    corruption changes; a redraw is one forward pass on a few images)."""
    from functools import partial

    return explorer(
        partial(plot_denoising, models, images),
        "at the training noise level the denoising autoencoder's reconstructions stay clean "
        "digits while the plain autoencoder passes much of the noise through; at std 0 the "
        "plain one is (slightly) better; far above the training level both fail.",
        noise_std=_wide(slider("noise std", 0.0, 1.5, 0.05, float(noise_std),
                               units="pixel, range [-1, 1]", continuous=False), "38em"),
    )


def nearest_neighbor_distance(x, reference) -> "torch.Tensor":
    """Euclidean distance from each image of ``x`` ``(M, ...)`` to its nearest image in
    ``reference`` ``(N, ...)`` (flattened), shape ``(M,)``, in pixel units."""
    import torch

    a = x.detach().reshape(x.shape[0], -1).to(torch.float64)
    b = reference.detach().reshape(reference.shape[0], -1).to(a)
    return torch.cdist(a, b).min(dim=1).values


def plot_random_latents(model, train_images, test_images, scale: float = 1.0,
                        num_images: int = 12, seed: int = 0) -> Figure:
    """Decode random codes ``z ~ N(m, diag(scale^2 s^2))`` next to reconstructions of test digits.

    ``m`` and ``s`` are the per-dimension mean and standard deviation of the codes of
    ``train_images``. Each row's title gives the mean Euclidean distance (``[-1, 1]`` pixel units)
    from its images to the nearest training image: decoded random codes land farther from every
    digit than reconstructions of unseen digits do, because an autoencoder's codes fill only a
    thin part of latent space.

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
    import torch

    from .autoencoders import encode_dataset
    from .plotting import image_grid
    from ._checks import check_int, check_positive, check_tensor

    check_tensor("train_images", train_images, floating=True)
    check_tensor("test_images", test_images, floating=True)
    check_positive("scale", scale)
    num_images = min(check_int("num_images", num_images, minimum=1), test_images.shape[0])
    g = torch.Generator().manual_seed(check_int("seed", seed, minimum=0))
    codes = encode_dataset(model, train_images).detach().cpu()
    m, s = codes.mean(0), codes.std(0)
    z = m + float(scale) * s * torch.randn(num_images, codes.shape[1], generator=g, dtype=codes.dtype)
    dev = _nb01_device(model)
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
    """A scale slider over :func:`plot_random_latents`."""
    from functools import partial

    return explorer(
        partial(plot_random_latents, model, train_images, test_images),
        "a few decoded random codes look like digits, many are blends or broken strokes, and their "
        "mean distance to the nearest training digit stays above that of reconstructions of "
        "unseen digits; small scales give nearly the same average blob, large ones scribbles.",
        scale=_wide(slider("scale", 0.1, 3.0, 0.1, float(scale), units="x std of the training codes",
                           continuous=False), "38em"),
    )


__all__ += ["plot_denoising", "denoising_explorer", "nearest_neighbor_distance", "plot_random_latents",
            "random_latents_explorer"]


# --- notebook 02: VAE, ELBO and the reparameterization trick ------------------------------------
# (1) The two unbiased estimators of d/dmu E_{z ~ N(mu, sigma^2)}[(z - c)^2] = 2 (mu - c), computed
#     live from a few thousand samples; (2) a precomputed sweep of the decoder's sigma
#     (course_lib.vae.decoder_std_sweep): reconstructions, samples, and the KL term falling to 0.


def plot_gradient_estimators(sigma: float = 1.0, offset: float = 2.0, num_samples: int = 2000,
                             seed: int = 0) -> Figure:
    """Histograms of per-sample gradient estimates, reparameterization vs score function.

    Objective E_{z ~ N(mu, sigma^2)}[(z - c)^2] with mu - c = ``offset``; its gradient in mu is
    2 (mu - c). Reparameterization: 2 (mu + sigma eps - c); score function (REINFORCE):
    (z - c)^2 (z - mu) / sigma^2. Both average to the true value (dashed line); the legend gives
    each estimator's sample mean and standard deviation.
    """
    import math as _m

    import numpy as np
    import torch

    from course_lib.vae import reparameterization_gradient, score_function_gradient

    if not sigma > 0:
        raise ValueError(f"sigma: expected a number > 0, got {sigma!r}")
    mean = torch.zeros(1, dtype=torch.float64)
    logvar = torch.full((1,), 2 * _m.log(sigma), dtype=torch.float64)
    c = -float(offset)

    def f(z):
        return (z[:, 0] - c) ** 2

    rep = reparameterization_gradient(f, mean, logvar, num_samples, torch.Generator().manual_seed(seed)).mean[:, 0]
    sf = score_function_gradient(f, mean, logvar, num_samples, torch.Generator().manual_seed(seed)).mean[:, 0]
    true = 2 * (0.0 - c)
    fig, ax = plt.subplots(figsize=(7, 3.2), layout="constrained")
    lo = min(rep.min().item(), sf.quantile(0.005).item())
    hi = max(rep.max().item(), sf.quantile(0.995).item())
    bins = np.linspace(lo, hi, 80)
    for vals, name, color in ((sf, "score function (REINFORCE)", "tab:red"),
                              (rep, "reparameterization", "tab:blue")):
        ax.hist(vals.numpy(), bins=bins, density=True, alpha=0.55, color=color,
                label=f"{name}: mean {vals.mean():.2f}, std {vals.std():.2f}")
    ax.axvline(true, color="k", ls="--", lw=1, label=f"true gradient 2(mu - c) = {true:.2f}")
    ax.set_xlabel("one-sample estimate of d/dmu E[(z - c)^2]")
    ax.set_ylabel("density")
    ax.set_title(f"sigma = {sigma:g}, mu - c = {offset:g}, {num_samples} samples each")
    ax.legend(fontsize=8, frameon=False)
    return fig


def gradient_estimator_explorer() -> W.VBox:
    """Sliders for sigma and mu - c; redraws :func:`plot_gradient_estimators`."""
    return explorer(
        plot_gradient_estimators,
        "both histograms are centred on the true gradient (unbiased), but the score-function one is "
        "far wider, and gets wider as |mu - c| grows, because it multiplies the value f(z) (not "
        "its slope) by a zero-mean score.",
        sigma=_wide(slider("sigma", 0.1, 3.0, 0.1, 1.0, units="std of q(z), z units", continuous=False)),
        offset=_wide(slider("mu - c", -4.0, 4.0, 0.5, 2.0, units="z units", continuous=False)),
    )


def plot_decoder_std_sweep(sweep, decoder_std: float | None = None) -> Figure:
    """KL and reconstruction error against sigma_dec, and one model's reconstructions and samples.

    Parameters
    ----------
    sweep : list of course_lib.vae.DecoderStdResult
        From :func:`course_lib.vae.decoder_std_sweep` on images.
    decoder_std : float, optional
        Which model to show (default the first).
    """
    from course_lib.plotting import image_grid

    if not sweep:
        raise ValueError("sweep: expected at least one result, got none")
    stds = [r.decoder_std for r in sweep]
    pick = sweep[0] if decoder_std is None else min(sweep, key=lambda r: abs(r.decoder_std - decoder_std))
    fig = plt.figure(figsize=(10, 3.4), layout="constrained")
    gs = fig.add_gridspec(1, 3, width_ratios=[1.3, 1, 1])
    ax = fig.add_subplot(gs[0])
    ax.plot(stds, [r.kl for r in sweep], "o-", color="tab:red", label="KL(q(z|x) || p(z)) (nats)")
    ax.set_xscale("log")
    ax.set_xticks(stds, [f"{sd:g}" for sd in stds])
    ax.set_xticks([], minor=True)
    ax.set_xlabel("decoder std sigma_dec")
    ax.set_ylabel("KL term (nats)", color="tab:red")
    ax2 = ax.twinx()
    ax2.plot(stds, [r.reconstruction_mse for r in sweep], "s--", color="tab:blue")
    ax2.set_ylabel("squared error ||x - x_hat||^2 (pixel^2)", color="tab:blue")
    ax.axvline(pick.decoder_std, color="k", lw=0.8)
    ax.set_title(f"sigma_dec = {pick.decoder_std:g}: KL {pick.kl:.2f} nats")
    n = pick.reconstructions.shape[0]
    image_grid(pick.reconstructions, nrow=max(1, n // 2), ax=fig.add_subplot(gs[1]), title="reconstructions")
    image_grid(pick.samples, nrow=max(1, n // 2), ax=fig.add_subplot(gs[2]), title="samples z ~ N(0, I)")
    return fig


def decoder_std_explorer(sweep) -> W.VBox:
    """A slider over the sweep's sigma_dec values; redraws :func:`plot_decoder_std_sweep`."""
    options = [(f"{r.decoder_std:g}", r.decoder_std) for r in sweep]
    control = W.SelectionSlider(options=options, value=options[0][1],
                                description="decoder std sigma_dec (pixel, range [-1, 1])",
                                continuous_update=False, style={"description_width": "initial"},
                                layout=W.Layout(width="32em"))
    return explorer(
        lambda decoder_std: plot_decoder_std_sweep(sweep, decoder_std),
        "a larger decoder std is a larger weight on the KL term: reconstructions lose detail, and "
        "past the data's spread the KL term drops to ~0 and every x decodes to the same mean digit "
        "(posterior collapse).",
        decoder_std=control,
    )


__all__ += ["plot_gradient_estimators", "gradient_estimator_explorer", "plot_decoder_std_sweep",
            "decoder_std_explorer"]


# --- notebook 03: GANs, the optimal discriminator and the log-D trick ----------------------------
# 1-D data p_data = N(0, 1) against a generator p_g = N(shift, scale^2). For this fixed generator
# the best discriminator is D*(x) = p_data / (p_data + p_g) (Goodfellow et al. 2014, Prop. 1); the
# value V(G, D*) = -log 4 + 2 JSD(p_data || p_g) (Theorem 1) is computed by the trapezoid rule on a
# fine grid. The right panel is seed 004's saturation plot: both generator losses as functions of
# D(G(z)) and the magnitude of their gradient in the logit, |d loss / d l| = D (minimax) and
# 1 - D (log-D trick), with the generator's samples' values of D*(G(z)) underneath. Closed forms
# only (NumPy), a few milliseconds per redraw; tests/test_widgets_gan.py checks the numbers
# against scipy.integrate.quad.

_NB03_GRID = 20_001  # trapezoid nodes on [-12 - |shift|, 12 + |shift|]: error < 1e-9 for scale >= 0.2


def _nb03_log_normal(x, mean, std):
    import numpy as np

    return -0.5 * ((x - mean) / std) ** 2 - np.log(std) - 0.5 * np.log(2 * np.pi)


def _nb03_optimal_d(x, shift, scale):
    """D*(x) = sigmoid(log p_data(x) - log p_g(x)) for p_data = N(0, 1), p_g = N(shift, scale^2)."""
    from scipy.special import expit

    return expit(_nb03_log_normal(x, 0.0, 1.0) - _nb03_log_normal(x, shift, scale))


def _nb03_value_and_jsd(shift, scale):
    """(V(G, D*), JSD(p_data || p_g)) in nats, both by the trapezoid rule, computed independently."""
    import numpy as np

    half = 12.0 + abs(shift) + 12.0 * scale
    x = np.linspace(-half, half, _NB03_GRID)
    lp, lq = _nb03_log_normal(x, 0.0, 1.0), _nb03_log_normal(x, shift, scale)
    lm = np.logaddexp(lp, lq)                       # log(p + q) = log 2M
    p, q = np.exp(lp), np.exp(lq)
    value = np.trapezoid(p * (lp - lm) + q * (lq - lm), x)          # E_p log D* + E_q log(1 - D*)
    log_m = lm - np.log(2.0)
    jsd = 0.5 * np.trapezoid(p * (lp - log_m), x) + 0.5 * np.trapezoid(q * (lq - log_m), x)
    return float(value), float(jsd)


def plot_optimal_discriminator(shift: float = 3.0, scale: float = 1.0, num_samples: int = 400,
                               seed: int = 0) -> Figure:
    """The optimal discriminator for 1-D Gaussians, and why the minimax generator loss saturates.

    Parameters
    ----------
    shift : float
        Mean of the generator's distribution p_g = N(shift, scale^2); the data are N(0, 1).
    scale : float
        Standard deviation of p_g (> 0).
    num_samples : int
        Generator samples drawn (seeded) to show where D*(G(z)) falls.
    seed : int
        Seed of those samples.

    Returns
    -------
    matplotlib.figure.Figure
        Left: p_data, p_g and D*(x) = p_data / (p_data + p_g), with V(G, D*), -log 4 + 2 JSD and the
        JSD in the title. Right: the minimax loss log(1 - D) and the log-D-trick loss -log D
        against D = D(G(z)), the magnitudes of their derivatives in the logit (D and 1 - D), and
        the generator samples' D*(G(z)); the legend gives the mean gradient magnitude of each loss
        over those samples.

    Raises
    ------
    ValueError
        If ``scale`` is not positive or ``num_samples < 1``.

    References
    ----------
    Goodfellow et al., "Generative Adversarial Nets" (2014), Proposition 1, Theorem 1, Section 3.
    """
    import numpy as np

    if not scale > 0:
        raise ValueError(f"scale: expected a number > 0, got {scale!r}")
    if int(num_samples) < 1:
        raise ValueError(f"num_samples: expected an int >= 1, got {num_samples!r}")
    value, jsd = _nb03_value_and_jsd(shift, scale)
    lo, hi = min(-4.0, shift - 4 * scale), max(4.0, shift + 4 * scale)
    x = np.linspace(lo, hi, 600)
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 3.8), layout="constrained")
    ax.fill_between(x, np.exp(_nb03_log_normal(x, 0.0, 1.0)), color="0.75", label=r"$p_{data} = N(0, 1)$")
    ax.plot(x, np.exp(_nb03_log_normal(x, shift, scale)), color="C0", lw=2,
            label=rf"$p_g = N({shift:g}, {scale:g}^2)$")
    ax.plot(x, _nb03_optimal_d(x, shift, scale), color="C3", lw=2,
            label=r"$D^*(x) = p_{data}/(p_{data} + p_g)$")
    ax.axhline(0.5, color="k", lw=0.5, ls=":")
    ax.set_ylim(-0.02, 1.05)
    ax.set_xlabel("x")
    ax.set_title(f"V(G, D*) = {value:.4f}, -log 4 + 2 JSD = {-np.log(4) + 2 * jsd:.4f} (JSD {jsd:.4f})",
                 fontsize=9)
    ax.legend(fontsize=8, frameon=False, loc="upper left")

    d = np.linspace(1e-3, 1 - 1e-3, 400)
    bx.plot(d, np.log1p(-d), color="C1", lw=2, label=r"minimax: $\log(1 - D)$")
    bx.plot(d, -np.log(d), color="C2", lw=2, label=r"log-D trick: $-\log D$")
    bx.plot(d, d, color="C1", lw=1, ls="--", label=r"$|\partial/\partial\ell|$ minimax $= D$")
    bx.plot(d, 1 - d, color="C2", lw=1, ls="--", label=r"$|\partial/\partial\ell|$ log-D $= 1 - D$")
    rng = np.random.default_rng(seed)
    xs = shift + scale * rng.standard_normal(int(num_samples))
    ds = _nb03_optimal_d(xs, shift, scale)
    bx.plot(ds, np.full_like(ds, -3.6), "|", color="C0", alpha=0.3, ms=12)
    bx.plot([], [], "|", color="C0", label=rf"$D^*(G(z))$ of {int(num_samples)} samples")
    bx.set_ylim(-4.0, 4.0)
    bx.set_xlabel("D(G(z))")
    bx.set_title(f"mean gradient magnitude over the samples: minimax {ds.mean():.3f}, "
                 f"log-D {1 - ds.mean():.3f}", fontsize=9)
    bx.legend(fontsize=7, frameon=False, loc="upper right")
    return fig


def optimal_discriminator_explorer() -> W.VBox:
    """Sliders for the generator's shift and scale; redraws :func:`plot_optimal_discriminator`."""
    return explorer(
        plot_optimal_discriminator,
        "as the generator moves away from the data, D* approaches 1 on the data and 0 on the "
        "samples, V(G, D*) rises from -log 4 towards 0 (JSD towards log 2), and the samples' "
        "D*(G(z)) pile up near 0, where the minimax loss is flat (gradient D ~ 0) but the log-D "
        "trick's gradient 1 - D stays near 1.",
        shift=slider("generator shift", -6.0, 6.0, 0.25, 3.0),
        scale=slider("generator std", 0.25, 3.0, 0.25, 1.0),
    )


__all__ += ["plot_optimal_discriminator", "optimal_discriminator_explorer"]


# --- notebook 05: Tweedie, SURE and score matching ----------------------------------------------
# (1) The score field of the sigma-noised toy mixture p_sigma = p * N(0, sigma^2 I), exact
#     (GaussianMixture.convolve(sigma).score), over its log-density; (2) Langevin dynamics with the
#     exact score, plain or annealed, and the fraction of samples that reach each mode.


def nb05_toy_mixture(dtype=None):
    """The notebook-05 toy: three unequal, well separated 2-D Gaussians (weights 0.5, 0.3, 0.2)."""
    import torch

    from course_lib.toy import GaussianMixture

    dtype = dtype or torch.get_default_dtype()
    return GaussianMixture(torch.tensor([[-2.0, -1.0], [2.0, -1.0], [0.0, 2.0]], dtype=dtype),
                           torch.tensor([0.4, 0.6, 0.3], dtype=dtype),
                           torch.tensor([0.5, 0.3, 0.2], dtype=dtype))


def plot_noised_score_field(sigma: float = 0.3, resolution: int = 21, lim: float = 4.0) -> Figure:
    """Log-density and score field of the toy mixture convolved with N(0, sigma^2 I), exactly.

    Left: :math:`\\log p_\\sigma` with the normalized score arrows (colour = log10 of their length);
    right: stream lines of the same field. ``sigma = 0`` is the data itself.
    """
    from course_lib.plotting import density_contours, score_field

    if not sigma >= 0:
        raise ValueError(f"sigma: expected a number >= 0, got {sigma!r}")
    noisy = nb05_toy_mixture().convolve(sigma)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.6), layout="constrained")
    lims = (-lim, lim)
    density_contours(noisy.log_prob, lims, lims, ax=axes[0], log=True, resolution=150, levels=25)
    score_field(noisy.score, lims, lims, ax=axes[0], resolution=resolution)
    axes[0].set_title(f"log p_sigma and its score, sigma = {sigma:g}")
    density_contours(noisy.log_prob, lims, lims, ax=axes[1], log=False, resolution=150, levels=15,
                     cmap="Greys")
    score_field(noisy.score, lims, lims, ax=axes[1], resolution=40, kind="stream")
    axes[1].set_title("stream lines of grad log p_sigma")
    return fig


def score_field_explorer() -> W.VBox:
    """A log slider over sigma; redraws :func:`plot_noised_score_field`."""
    return explorer(
        plot_noised_score_field,
        "for small sigma each mode has its own basin and the field is near zero between modes far "
        "from all of them; as sigma grows the modes merge, the field becomes smooth and points "
        "everywhere toward the overall mean, and its length shrinks like 1/sigma^2.",
        sigma=slider("sigma", 0.01, 5.0, 0.05, 0.3, log=True, continuous=False),
    )


def langevin_mode_fractions(x, mixture) -> "torch.Tensor":
    """Fraction of the points whose most responsible component is k, for each k: ``(K,)``."""
    import torch

    k = mixture.responsibilities(x.to(mixture.dtype)).argmax(1)
    return torch.bincount(k, minlength=mixture.num_components).to(torch.float64) / x.shape[0]


def plot_langevin(step_size: float = 0.05, num_steps: int = 200, annealed: bool = False,
                  num_samples: int = 1000, seed: int = 0) -> Figure:
    """Langevin dynamics with the exact score of the toy mixture, from U[-4, 4]^2.

    Plain: ``num_steps`` steps of :func:`course_lib.score.langevin_dynamics`. Annealed: 10 levels
    from sigma = 3 to 0.1, ``num_steps // 10`` steps each, last-level step ``step_size / 10``
    scaled by sigma_i^2 / sigma_L^2 (NCSN). The title compares the fraction of samples per mode with
    the mixture weights.
    """
    import torch

    from course_lib import score as sm
    from course_lib.plotting import density_contours, scatter_samples, trajectories

    mix = nb05_toy_mixture(torch.float64)
    g = torch.Generator().manual_seed(seed)
    x0 = 8 * torch.rand(num_samples, 2, generator=g, dtype=torch.float64) - 4
    if annealed:
        sigmas = sm.geometric_sigmas(3.0, 0.1, 10)
        per_level = max(1, num_steps // 10)
        x, path = sm.annealed_langevin_dynamics(lambda v, s: mix.convolve(s).score(v), x0, sigmas,
                                                step_size / 10, per_level, generator=g,
                                                trajectory=True)
    else:
        x, path = sm.langevin_dynamics(mix.score, x0, step_size, num_steps, generator=g,
                                       trajectory=True)
    frac = langevin_mode_fractions(x, mix)
    fig, ax = plt.subplots(figsize=(5.5, 5.2), layout="constrained")
    density_contours(mix.log_prob, (-4, 4), (-4, 4), ax=ax, log=True, levels=20, cmap="Greys")
    trajectories(path[:, :15], ax=ax, color="tab:orange", show_ends=False, alpha=0.7)
    scatter_samples(x, ax=ax, s=3, alpha=0.5, color="tab:blue")
    ax.set_xlim(-4, 4)
    ax.set_ylim(-4, 4)
    kind = "annealed" if annealed else "plain"
    ax.set_title(f"{kind} Langevin, step {step_size:g}, {num_steps} steps\n"
                 f"fraction per mode {frac.numpy().round(2)} vs weights "
                 f"{mix.weights.numpy().round(2)}", fontsize=9)
    return fig


def langevin_explorer() -> W.VBox:
    """Sliders for the step size and the number of steps, and a plain/annealed switch."""
    return explorer(
        plot_langevin,
        "a tiny step barely moves the particles; a large one blurs the samples (the O(step) bias) "
        "and eventually diverges. Plain Langevin leaves each particle in the basin where it started, "
        "so the fractions per mode reflect the starting area, not the weights; annealing over "
        "sigma fixes that.",
        step_size=slider("step size eta", 0.001, 0.3, 0.1, 0.05, log=True, continuous=False),
        num_steps=slider("steps", 10, 1000, 10, 200, continuous=False),
        annealed=W.Checkbox(value=False, description="annealed (NCSN)"),
    )


__all__ += ["nb05_toy_mixture", "plot_noised_score_field", "score_field_explorer",
            "langevin_mode_fractions", "plot_langevin", "langevin_explorer"]


# --- notebook 04: DDPM, diffusion kernels, posteriors and the ELBO -------------------------------
# Two explorers: the forward transition x_t = a x_{t-1} + b eps (the "magical scalars" of seed 001:
# only b = sqrt(1 - a^2) keeps the variance at 1), and the noised marginal q(x_t) of a 2-D mixture
# (exact: the mixture scaled by sqrt(abar_t) and convolved with sqrt(1 - abar_t)) next to noised
# digits. Notebook 04 asserts the numbers these plots show.

def nb04_variance_path(a: float, b: float, v0: float, num_steps: int):
    """Var[x_t] for x_t = a x_{t-1} + b eps: v_t = a^2 v_{t-1} + b^2, t = 0..num_steps (NumPy)."""
    import numpy as np

    v = np.empty(num_steps + 1)
    v[0] = v0
    for i in range(num_steps):
        v[i + 1] = a * a * v[i] + b * b
    return v


def plot_magical_scalars(a: float = 0.99, b: float = 0.3, magical: bool = True,
                         num_steps: int = 300, num_chains: int = 2000, seed: int = 0) -> Figure:
    """Simulate ``x_t = a x_{t-1} + b eps`` from bimodal 1-D data (variance 1) and plot Var[x_t].

    Parameters
    ----------
    a : float
        Mean scaling (``sqrt(alpha)`` in seed 001).
    b : float
        Noise standard deviation; ignored when ``magical`` (then ``b = sqrt(1 - a^2)``, which
        needs ``a <= 1``).
    magical : bool
        Use ``b = sqrt(1 - a^2)``.
    num_steps, num_chains, seed : int
        Length and number of simulated chains; seed of their noise.
    """
    import numpy as np
    import torch

    if magical:
        if a > 1:
            raise ValueError(f"a: b = sqrt(1 - a^2) needs a <= 1, got {a}")
        b = math.sqrt(1 - a * a)
    g = torch.Generator().manual_seed(seed)
    sign = torch.where(torch.rand(num_chains, generator=g, dtype=torch.float64) < 0.5, -1.0, 1.0)
    x = sign * math.sqrt(0.96) + 0.2 * torch.randn(num_chains, generator=g, dtype=torch.float64)
    x0 = x.clone()
    var = [x.var().item()]
    for _ in range(num_steps):
        x = a * x + b * torch.randn(num_chains, generator=g, dtype=torch.float64)
        var.append(x.var().item())
    theory = nb04_variance_path(a, b, 1.0, num_steps)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), layout="constrained")
    ax = axes[0]
    ax.plot(var, label="simulated Var[x_t]")
    ax.plot(theory, "--", label="a^2 v + b^2 recursion")
    if a < 1:
        ax.axhline(b * b / (1 - a * a), color="tab:red", lw=0.8, label="fixed point b^2/(1-a^2)")
    ax.axhline(1.0, color="k", lw=0.6, ls=":")
    ax.set_yscale("log")
    ax.set_xlabel("step t")
    ax.set_title(f"a = {a:.3f}, b = {b:.3f} (magical b = {math.sqrt(max(0.0, 1 - a * a)):.3f})")
    ax.legend(fontsize=8)
    ax = axes[1]
    ax.hist(x0.numpy(), bins=60, density=True, alpha=0.5, label="x_0 (data)")
    ax.hist(x.numpy(), bins=60, density=True, alpha=0.5, label=f"x_{num_steps}")
    s = np.linspace(-4, 4, 200)
    ax.plot(s, np.exp(-s * s / 2) / math.sqrt(2 * math.pi), "k", lw=1, label="N(0, 1)")
    ax.set_xlim(-4, 4)
    ax.legend(fontsize=8)
    ax.set_title("histograms")
    return fig


def magical_scalars_explorer() -> W.VBox:
    """Sliders for ``a`` and ``b``; with the box ticked, ``b = sqrt(1 - a^2)`` (and ``a <= 1``)."""
    a = slider("a", 0.9, 1.02, 0.005, 0.99, units="mean scale, sqrt(alpha)", continuous=False)
    b = slider("b", 0.0, 0.6, 0.01, 0.3, units="noise std", continuous=False)
    magical = W.Checkbox(value=True, description="b = sqrt(1 - a^2)")

    def limit_a(_change=None):
        # sqrt(1 - a^2) exists only for a <= 1: cap the slider while the box is ticked
        a.max = 1.0 if magical.value else 1.02

    magical.observe(limit_a, names="value")  # registered before the explorer's redraw
    limit_a()
    return explorer(
        plot_magical_scalars,
        "with b = sqrt(1 - a^2) the variance stays 1 and x_t forgets the two modes, becoming N(0, 1). "
        "Untick the box: a smaller b makes the variance vanish toward b^2/(1-a^2) < 1, a larger b "
        "inflates it, and a = 1 (a random walk) lets it grow without bound.",
        a=a, b=b, magical=magical,
    )


def plot_noised_marginals(mixture, schedule, images, t: int = 10, num_samples: int = 2000,
                          num_images: int = 8, seed: int = 0, lim: float = 3.0) -> Figure:
    """q(x_t) of a 2-D mixture (exact contours + q_sample draws) and ``num_images`` noised digits.

    Parameters
    ----------
    mixture : course_lib.toy.GaussianMixture
        2-D data distribution (standardized units).
    schedule : course_lib.diffusion.NoiseSchedule
    images : tensor (N, 1, H, W)
        Images in [-1, 1]; the first ``num_images`` are noised with the same ``eps`` pattern seed.
    t : int
        **0-based** step (the paper's t + 1).
    """
    import torch

    from course_lib import diffusion as D
    from course_lib.plotting import density_contours, image_grid, scatter_samples

    T = schedule.num_steps
    if not 0 <= int(t) < T:
        raise ValueError(f"t: expected a 0-based step in [0, {T - 1}], got {t}")
    t = int(t)
    ab = float(schedule.alphas_cumprod[t])
    g = torch.Generator().manual_seed(seed)
    marginal = mixture.scale(math.sqrt(ab)).convolve(math.sqrt(1 - ab))        # exact q(x_t)
    x0 = mixture.sample(num_samples, generator=g)
    tt = torch.full((num_samples,), t, dtype=torch.long)
    xt = D.q_sample(schedule, x0, tt, generator=g)
    imgs = images[:num_images].cpu()
    it = D.q_sample(schedule, imgs, torch.full((imgs.shape[0],), t, dtype=torch.long), generator=g)
    fig = plt.figure(figsize=(10, 4.2), layout="constrained")
    gs = fig.add_gridspec(1, 2, width_ratios=[1, 1.3])
    ax = fig.add_subplot(gs[0])
    density_contours(marginal.log_prob, (-lim, lim), (-lim, lim), ax=ax, resolution=150)
    scatter_samples(xt[:300], ax=ax, s=1, alpha=0.5, color="tab:red")
    ax.set_title(f"q(x_t): index t = {t} (paper t = {t + 1}), abar = {ab:.3g}")
    ax2 = fig.add_subplot(gs[1])
    image_grid(torch.cat([imgs, it]), nrow=imgs.shape[0], ax=ax2,
               title=f"digits (top) and x_t (bottom), SNR = {ab / (1 - ab):.3g}")
    return fig


def noised_marginals_explorer(mixture, schedule, images) -> W.VBox:
    """A slider over the 0-based step ``t``; redraws :func:`plot_noised_marginals`."""
    T = schedule.num_steps
    return explorer(
        lambda t: plot_noised_marginals(mixture, schedule, images, t),
        "as t grows the 25 modes first blur into each other (when sqrt(1 - abar) reaches about half "
        "their spacing times sqrt(abar)), then the whole cloud shrinks toward N(0, I); the digits "
        "stay readable until the SNR abar/(1 - abar) falls below about 1.",
        t=slider("t", 0, T - 1, 1, min(10, T - 1), units="0-based step, paper t + 1", continuous=False),
    )


def plot_reverse_marginals(path, mixture, schedule, t: int = 10, lim: float = 3.0) -> Figure:
    """Samples of the learned reverse chain at 0-based step ``t`` over the exact q(x_t) contours.

    ``path`` is ``sample(..., trajectory=True)``'s trajectory ``(T+1, N, 2)``: ``path[0]`` is the
    paper's x_T, so the state at 0-based index ``t`` is ``path[T-1-t]`` and ``path[T]`` is x_0.
    """
    from course_lib.plotting import density_contours, scatter_samples

    T = schedule.num_steps
    if not -1 <= int(t) < T:
        raise ValueError(f"t: expected a 0-based step in [-1, {T - 1}] (-1 = x_0), got {t}")
    t = int(t)
    fig, ax = plt.subplots(figsize=(4.6, 4.2), layout="constrained")
    if t >= 0:
        ab = float(schedule.alphas_cumprod[t])
        marginal = mixture.scale(math.sqrt(ab)).convolve(math.sqrt(1 - ab))
        title = f"reverse chain at index t = {t} over q(x_t)"
    else:
        marginal, title = mixture, "reverse chain output x_0 over p_data"
    density_contours(marginal.log_prob, (-lim, lim), (-lim, lim), ax=ax, resolution=150)
    scatter_samples(path[T - 1 - t][:500], ax=ax, s=1, alpha=0.5, color="tab:red", title=title)
    return fig


def reverse_marginals_explorer(path, mixture, schedule) -> W.VBox:
    """A slider over the 0-based step (``-1`` = the output x_0); redraws :func:`plot_reverse_marginals`."""
    T = schedule.num_steps
    return explorer(
        lambda t: plot_reverse_marginals(path, mixture, schedule, t),
        "move t down from T-1: the learned reverse chain's samples follow the exact marginals q(x_t) "
        "of the forward process (contours), splitting into 25 clusters late, at small t.",
        t=slider("t", -1, T - 1, 1, T // 4, units="0-based step, -1 = x_0", continuous=False),
    )


__all__ += ["nb04_variance_path", "plot_magical_scalars", "magical_scalars_explorer",
            "plot_noised_marginals", "noised_marginals_explorer", "plot_reverse_marginals",
            "reverse_marginals_explorer"]
# --- end of notebook 04 -------------------------------------------------------------------------
