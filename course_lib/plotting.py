"""Plain plotting functions for the course: densities, score fields, samples, image grids, paths.

Every function follows one convention:

- ``ax=None`` (the default): a new figure is made with :func:`new_figure` and the
  :class:`~matplotlib.figure.Figure` is returned;
- ``ax`` given: the function draws onto that axes (e.g. one panel of a multi-panel figure, or on
  top of an earlier plot) and returns the same :class:`~matplotlib.axes.Axes`.

Inputs may be torch tensors on any device (they are detached and moved to the CPU here), NumPy
arrays, or lists. Functions that evaluate a model on a grid (:func:`density_contours`,
:func:`score_field`) build the grid in ``dtype`` (default: torch's default dtype) on ``device``
(default: CPU). Nothing here calls ``plt.show()``: in a notebook, end the cell with a semicolon
(``plotting.scatter_samples(x);``) so the inline backend shows the figure exactly once.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure

__all__ = [
    "new_figure", "density_contours", "score_field", "scatter_samples", "make_grid", "image_grid",
    "trajectories", "animate_samples", "plot_1d_densities", "loss_curve",
]

PANEL_SIZE = 4.0  # inches per panel


# --- helpers ------------------------------------------------------------------------------------


def _to_numpy(name: str, x) -> np.ndarray:
    """Tensor (any device, with or without grad), array or list -> float64 NumPy array on CPU."""
    if isinstance(x, torch.Tensor):
        x = x.detach().to("cpu")
        if x.is_complex():
            raise TypeError(f"{name}: expected real values, got dtype {x.dtype}")
        return x.to(torch.float64).numpy()
    try:
        return np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name}: expected a tensor or array-like of numbers, got "
                        f"{type(x).__name__}") from exc


def _check_lim(name: str, lim) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in lim)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a pair (low, high) of numbers, got {lim!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"{name}: expected finite low < high, got {lim!r}")
    return lo, hi


def _check_resolution(name: str, value, minimum: int = 2) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value!r}")
    return int(value)


def _target(ax: Axes | None, size=None) -> tuple[Figure, Axes]:
    if ax is None:
        fig, ax = new_figure(size=size)
        return fig, ax
    if not isinstance(ax, Axes):
        raise TypeError(f"ax: expected a matplotlib Axes or None, got {type(ax).__name__}")
    return ax.figure, ax


def _result(fig: Figure, ax: Axes, given: Axes | None):
    return ax if given is not None else fig


def _label_plane(ax: Axes, xlabel: str, ylabel: str, title: str | None, equal: bool = True) -> None:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title is not None:
        ax.set_title(title)
    if equal:
        ax.set_aspect("equal", adjustable="box")


def _grid_points(xlim, ylim, resolution: int, dtype, device):
    """Regular grid including the limits: X, Y of shape (R, R) (row i has y = ys[i]), points (R*R, 2)."""
    xs = np.linspace(*xlim, resolution)
    ys = np.linspace(*ylim, resolution)
    X, Y = np.meshgrid(xs, ys)  # (R, R), row i has y = ys[i]
    pts = torch.as_tensor(np.stack([X.ravel(), Y.ravel()], axis=1),
                          dtype=dtype or torch.get_default_dtype(), device=device or "cpu")
    return X, Y, pts


# --- figures ------------------------------------------------------------------------------------


def new_figure(ncols: int = 1, nrows: int = 1, size: float | tuple[float, float] | None = None):
    """A new figure with a grid of panels (``plt.subplots`` with the tight layout engine).

    Parameters
    ----------
    ncols, nrows : int
        Number of panel columns and rows.
    size : float or (float, float), optional
        Size of one panel in inches (square if a float); default 4.

    Returns
    -------
    fig : matplotlib.figure.Figure
    ax : matplotlib.axes.Axes or numpy.ndarray of Axes
        A single Axes when ``ncols == nrows == 1``, else an array shaped like ``plt.subplots``'
        (squeezed).

    Raises
    ------
    ValueError
        If ``ncols``/``nrows`` is not a positive int or ``size`` is not positive.
    """
    ncols = _check_resolution("ncols", ncols, 1)
    nrows = _check_resolution("nrows", nrows, 1)
    if size is None:
        size = PANEL_SIZE
    w, h = (size, size) if np.isscalar(size) else tuple(size)
    if not (w > 0 and h > 0):
        raise ValueError(f"size: expected positive panel size(s) in inches, got {size!r}")
    return plt.subplots(nrows, ncols, figsize=(w * ncols, h * nrows), layout="tight")


def density_contours(log_prob_fn: Callable[[torch.Tensor], torch.Tensor], xlim, ylim,
                     ax: Axes | None = None, resolution: int = 200, levels: int | Sequence[float] = 20,
                     filled: bool = True, log: bool = False, cmap: str = "viridis",
                     colorbar: bool = False, title: str | None = None,
                     dtype: torch.dtype | None = None, device=None):
    """Contours of a 2-D density :math:`p(x) = \\exp \\log p(x)` on a regular grid.

    Parameters
    ----------
    log_prob_fn : callable
        ``log_prob_fn(x) -> (N,)`` for points ``x`` of shape ``(N, 2)``, in nats (e.g.
        ``GaussianMixture.log_prob``). Evaluated once, without gradients, on all
        ``resolution**2`` grid points.
    xlim, ylim : (float, float)
        Plotted range of :math:`x_1` and :math:`x_2`.
    ax : matplotlib.axes.Axes, optional
        Draw onto this axes instead of a new figure.
    resolution : int
        Grid points per axis (>= 2).
    levels : int or sequence of float
        Number of contour levels, or the levels themselves (in the plotted quantity's units).
    filled : bool
        ``contourf`` (filled) or ``contour`` (lines).
    log : bool
        Plot :math:`\\log p` (nats, clipped 30 nats below its maximum so that far tails do not
        swamp the colour scale) instead of :math:`p`.
    cmap : str
        Colormap name.
    colorbar : bool
        Add a colour bar labelled with the plotted quantity.
    title : str, optional
        Axes title.
    dtype, device : optional
        Dtype (default: torch's default) and device (default: CPU) of the grid passed to
        ``log_prob_fn``.

    Returns
    -------
    matplotlib.figure.Figure or matplotlib.axes.Axes
        The new figure, or ``ax`` when given. The contour set is ``ax.collections[0]`` (or a
        :class:`~matplotlib.contour.QuadContourSet` among ``ax.collections``).

    Raises
    ------
    ValueError
        If ``xlim``/``ylim`` are not increasing pairs, ``resolution < 2``, or ``log_prob_fn``
        does not return ``N`` values.
    """
    xlim, ylim = _check_lim("xlim", xlim), _check_lim("ylim", ylim)
    resolution = _check_resolution("resolution", resolution)
    X, Y, pts = _grid_points(xlim, ylim, resolution, dtype, device)
    with torch.no_grad():
        out = log_prob_fn(pts)
    logp = _to_numpy("log_prob_fn(x)", out)
    if logp.shape not in ((pts.shape[0],), (pts.shape[0], 1)):
        raise ValueError(f"log_prob_fn: expected an output of shape ({pts.shape[0]},) for input "
                         f"({pts.shape[0]}, 2), got {logp.shape}")
    logp = logp.reshape(X.shape)
    if np.isnan(logp).any():
        raise ValueError("log_prob_fn: returned NaN on the plotting grid")
    if log:
        top = np.max(logp)
        Z = np.maximum(logp, top - 30.0) if np.isfinite(top) else logp
        label = r"$\log p(x)$ (nats)"
    else:
        Z = np.exp(logp)
        label = r"density $p(x)$"
    fig, ax_ = _target(ax)
    draw = ax_.contourf if filled else ax_.contour
    cs = draw(X, Y, Z, levels=levels, cmap=cmap)
    if colorbar:
        fig.colorbar(cs, ax=ax_, label=label)
    _label_plane(ax_, "$x_1$", "$x_2$", title)
    ax_.set_xlim(*xlim)
    ax_.set_ylim(*ylim)
    return _result(fig, ax_, ax)


def score_field(score_fn: Callable[[torch.Tensor], torch.Tensor], xlim, ylim, ax: Axes | None = None,
                resolution: int = 20, kind: str = "quiver", normalize: bool = True,
                color: str | None = None, cmap: str = "cool", title: str | None = None,
                dtype: torch.dtype | None = None, device=None):
    """The vector field :math:`s(x) \\approx \\nabla_x \\log p(x)` drawn as arrows or stream lines.

    Parameters
    ----------
    score_fn : callable
        ``score_fn(x) -> (N, 2)`` for points ``x`` of shape ``(N, 2)`` (e.g.
        ``GaussianMixture.score``; gradients stay enabled, so a score computed by autograd works).
    xlim, ylim : (float, float)
        Plotted range of :math:`x_1` and :math:`x_2`.
    ax : matplotlib.axes.Axes, optional
        Draw onto this axes (e.g. over :func:`density_contours`) instead of a new figure.
    resolution : int
        Grid points per axis (>= 2).
    kind : {"quiver", "stream"}
        Arrows (``ax.quiver``) or stream lines (``ax.streamplot``).
    normalize : bool
        Quiver only: draw every arrow with the same length, so directions stay readable where the
        score is large (it grows like :math:`|x - \\mu| / s^2`); the colour then shows
        :math:`\\log_{10} |s(x)|`. Unnormalized arrows are scaled by matplotlib's autoscale.
    color : str, optional
        A single colour instead of colouring by magnitude.
    cmap : str
        Colormap for the magnitude colouring.
    title : str, optional
        Axes title.
    dtype, device : optional
        Dtype (default: torch's default) and device (default: CPU) of the grid passed to
        ``score_fn``.

    Returns
    -------
    matplotlib.figure.Figure or matplotlib.axes.Axes
        The new figure, or ``ax`` when given. Quiver: a :class:`~matplotlib.quiver.Quiver` in
        ``ax.collections``; stream: a :class:`~matplotlib.collections.LineCollection` of the lines.

    Raises
    ------
    ValueError
        If ``kind`` is unknown, the limits or resolution are invalid, or ``score_fn`` does not
        return shape ``(N, 2)``.
    """
    if kind not in ("quiver", "stream"):
        raise ValueError(f"kind: expected 'quiver' or 'stream', got {kind!r}")
    xlim, ylim = _check_lim("xlim", xlim), _check_lim("ylim", ylim)
    resolution = _check_resolution("resolution", resolution)
    X, Y, pts = _grid_points(xlim, ylim, resolution, dtype, device)
    s = _to_numpy("score_fn(x)", score_fn(pts))
    if s.shape != (pts.shape[0], 2):
        raise ValueError(f"score_fn: expected an output of shape ({pts.shape[0]}, 2) for input "
                         f"({pts.shape[0]}, 2), got {s.shape}")
    if not np.isfinite(s).all():
        raise ValueError("score_fn: returned non-finite values on the plotting grid")
    U, V = s[:, 0].reshape(X.shape), s[:, 1].reshape(X.shape)
    mag = np.hypot(U, V)
    logmag = np.log10(np.maximum(mag, 1e-12))
    fig, ax_ = _target(ax)
    if kind == "quiver":
        if normalize:
            safe = np.where(mag > 0, mag, 1.0)
            U, V = U / safe, V / safe
            # one arrow spans ~80% of a grid cell
            cell = min((xlim[1] - xlim[0]), (ylim[1] - ylim[0])) / (resolution - 1)
            kw = dict(angles="xy", scale_units="xy", scale=1.0 / (0.8 * cell))
        else:
            kw = dict(angles="xy")
        if color is None:
            ax_.quiver(X, Y, U, V, logmag, cmap=cmap, **kw)
        else:
            ax_.quiver(X, Y, U, V, color=color, **kw)
    else:
        c = logmag if color is None else color
        ax_.streamplot(X, Y, U, V, color=c, cmap=cmap if color is None else None, density=1.2,
                       linewidth=0.8, arrowsize=0.8)
    _label_plane(ax_, "$x_1$", "$x_2$", title)
    ax_.set_xlim(*xlim)
    ax_.set_ylim(*ylim)
    return _result(fig, ax_, ax)


def scatter_samples(x, ax: Axes | None = None, s: float = 2, alpha: float = 0.5,
                    label: str | None = None, color=None, title: str | None = None,
                    xlim=None, ylim=None):
    """Scatter plot of 2-D samples.

    Parameters
    ----------
    x : tensor or array, shape (N, 2)
        Samples (any device).
    ax : matplotlib.axes.Axes, optional
        Draw onto this axes (e.g. over contours, or to overlay data and model samples).
    s : float
        Marker area in points^2.
    alpha : float
        Marker opacity in [0, 1].
    label : str, optional
        Legend label; a legend is drawn when given.
    color : optional
        Marker colour (default: the axes' next colour).
    title : str, optional
        Axes title.
    xlim, ylim : (float, float), optional
        Axis ranges (default: matplotlib's autoscale).

    Returns
    -------
    matplotlib.figure.Figure or matplotlib.axes.Axes
        The new figure, or ``ax`` when given. The points are a
        :class:`~matplotlib.collections.PathCollection` in ``ax.collections``.

    Raises
    ------
    ValueError
        If ``x`` is not of shape ``(N, 2)`` or ``alpha`` is outside [0, 1].
    """
    pts = _to_numpy("x", x)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"x: expected shape (N, 2), got {pts.shape}")
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha: expected a number in [0, 1], got {alpha!r}")
    fig, ax_ = _target(ax)
    ax_.scatter(pts[:, 0], pts[:, 1], s=s, alpha=alpha, label=label, color=color,
                edgecolors="none", rasterized=len(pts) > 5000)
    if label is not None:
        leg = ax_.legend(loc="best", markerscale=max(1.0, 16 / max(s, 1e-3)) ** 0.5)
        for h in leg.legend_handles:
            h.set_alpha(1.0)
    if xlim is not None:
        ax_.set_xlim(*_check_lim("xlim", xlim))
    if ylim is not None:
        ax_.set_ylim(*_check_lim("ylim", ylim))
    _label_plane(ax_, "$x_1$", "$x_2$", title)
    return _result(fig, ax_, ax)


def make_grid(images, nrow: int = 8, padding: int = 1, pad_value: float = 0.0) -> np.ndarray:
    """Tile images into one array, like ``torchvision.utils.make_grid``.

    Parameters
    ----------
    images : tensor or array, shape (N, C, H, W) with C in {1, 3}, or (N, H, W)
        Images in [-1, 1] (values outside are clipped).
    nrow : int
        Images per row of the grid; the grid has ``ncol = min(nrow, N)`` columns and
        ``rows = ceil(N / nrow)`` rows.
    padding : int
        Pixels of ``pad_value`` between images and around the border.
    pad_value : float
        Value of the padding, in the images' [-1, 1] scale (0 is mid-grey).

    Returns
    -------
    numpy.ndarray
        Shape ``(rows * H + (rows + 1) * padding, ncol * W + (ncol + 1) * padding)`` for one
        channel, with a trailing channel axis of 3 for colour images; values in [-1, 1]. Unused
        cells of the last row hold ``pad_value``.

    Raises
    ------
    ValueError
        If the shape is not one of the above, ``N == 0``, or ``nrow``/``padding`` are invalid.
    """
    arr = _to_numpy("images", images)
    if arr.ndim == 3:
        arr = arr[:, None]
    if arr.ndim != 4 or arr.shape[1] not in (1, 3):
        raise ValueError(f"images: expected shape (N, 1, H, W), (N, 3, H, W) or (N, H, W), "
                         f"got {tuple(np.shape(images))}")
    n, c, h, w = arr.shape
    if n == 0:
        raise ValueError("images: expected at least one image, got N = 0")
    nrow = _check_resolution("nrow", nrow, 1)
    if isinstance(padding, bool) or not isinstance(padding, (int, np.integer)) or padding < 0:
        raise ValueError(f"padding: expected an int >= 0, got {padding!r}")
    ncol = min(nrow, n)
    rows = math.ceil(n / nrow)
    grid = np.full((c, rows * h + (rows + 1) * padding, ncol * w + (ncol + 1) * padding),
                   float(pad_value))
    arr = np.clip(np.nan_to_num(arr, nan=0.0), -1.0, 1.0)
    for k in range(n):
        r, q = divmod(k, nrow)
        top, left = padding + r * (h + padding), padding + q * (w + padding)
        grid[:, top:top + h, left:left + w] = arr[k]
    return grid[0] if c == 1 else np.moveaxis(grid, 0, -1)


def image_grid(images, nrow: int = 8, ax: Axes | None = None, title: str | None = None,
               padding: int = 1, pad_value: float = 0.0, cmap: str = "gray", scale: float = 0.5):
    """Show images in [-1, 1] as one grid (-1 black, +1 white for ``cmap="gray"``).

    Parameters
    ----------
    images : tensor or array, shape (N, 1, H, W), (N, 3, H, W) or (N, H, W)
        Images in [-1, 1] (any device; values outside are clipped for display).
    nrow : int
        Images per row.
    ax : matplotlib.axes.Axes, optional
        Draw onto this axes instead of a new figure.
    title : str, optional
        Axes title.
    padding, pad_value :
        See :func:`make_grid`.
    cmap : str
        Colormap for one-channel images; the colour scale is fixed to [-1, 1] (never
        auto-scaled, so grids are comparable).
    scale : float
        Inches per image in a new figure.

    Returns
    -------
    matplotlib.figure.Figure or matplotlib.axes.Axes
        The new figure, or ``ax`` when given; ``ax.images[0].get_array()`` is the grid of
        :func:`make_grid` (shape ``(rows*H + (rows+1)*padding, ncol*W + (ncol+1)*padding)``).

    Raises
    ------
    ValueError
        As :func:`make_grid`.
    """
    grid = make_grid(images, nrow=nrow, padding=padding, pad_value=pad_value)
    if ax is None:
        n = np.shape(images)[0]
        ncol, rows = min(nrow, n), math.ceil(n / nrow)
        fig, ax_ = plt.subplots(figsize=(max(2.0, scale * ncol), max(1.0, scale * rows) + 0.4),
                                layout="tight")
    else:
        fig, ax_ = _target(ax)
    if grid.ndim == 2:
        ax_.imshow(grid, cmap=cmap, vmin=-1.0, vmax=1.0, interpolation="nearest")
    else:
        ax_.imshow((grid + 1.0) / 2.0, interpolation="nearest")
    ax_.set_axis_off()
    if title is not None:
        ax_.set_title(title)
    return _result(fig, ax_, ax)


def trajectories(path, ax: Axes | None = None, max_paths: int | None = 200, color=None,
                 alpha: float = 0.4, linewidth: float = 0.7, show_ends: bool = True,
                 title: str | None = None):
    """Paths of 2-D particles over time (e.g. Langevin dynamics, the reverse diffusion).

    Parameters
    ----------
    path : tensor or array, shape (T, N, 2)
        Positions of ``N`` particles at ``T`` times (index 0 = start).
    ax : matplotlib.axes.Axes, optional
        Draw onto this axes (e.g. over :func:`density_contours`).
    max_paths : int, optional
        Draw only the first ``max_paths`` particles (None: all).
    color : optional
        Line colour (default: matplotlib's next colour).
    alpha, linewidth : float
        Line opacity and width.
    show_ends : bool
        Mark the start (open circles) and end (dots) of each path.
    title : str, optional
        Axes title.

    Returns
    -------
    matplotlib.figure.Figure or matplotlib.axes.Axes
        The new figure, or ``ax`` when given; the paths are one
        :class:`~matplotlib.collections.LineCollection` with one segment list per particle.

    Raises
    ------
    ValueError
        If ``path`` is not of shape ``(T, N, 2)`` with ``T >= 1``, ``N >= 1``.
    """
    p = _to_numpy("path", path)
    if p.ndim != 3 or p.shape[2] != 2 or p.shape[0] < 1 or p.shape[1] < 1:
        raise ValueError(f"path: expected shape (T, N, 2) with T, N >= 1, got {p.shape}")
    if max_paths is not None:
        p = p[:, :_check_resolution("max_paths", max_paths, 1)]
    fig, ax_ = _target(ax)
    if color is None:
        color = ax_._get_lines.get_next_color()
    lines = LineCollection(list(np.moveaxis(p, 1, 0)), colors=color, alpha=alpha,
                           linewidths=linewidth, label="paths")
    ax_.add_collection(lines)
    if show_ends:
        ax_.scatter(p[0, :, 0], p[0, :, 1], s=12, facecolors="none", edgecolors=color,
                    linewidths=0.8, label="start", zorder=3)
        ax_.scatter(p[-1, :, 0], p[-1, :, 1], s=8, color="k", label="end", zorder=3)
    ax_.autoscale_view()
    _label_plane(ax_, "$x_1$", "$x_2$", title)
    return _result(fig, ax_, ax)


def plot_1d_densities(xs, curves: Mapping[str, object], ax: Axes | None = None,
                      xlabel: str = "$x$", ylabel: str = "density", title: str | None = None,
                      fill: bool = False, log_y: bool = False):
    """Several 1-D curves (densities, log-densities) over the same points, one line each.

    Parameters
    ----------
    xs : tensor or array, shape (M,)
        Points on the horizontal axis.
    curves : dict[str, tensor or array of shape (M,)]
        Label -> values at ``xs``.
    ax : matplotlib.axes.Axes, optional
        Draw onto this axes instead of a new figure.
    xlabel, ylabel : str
        Axis labels (give units, e.g. ``"log-density (nats)"``).
    title : str, optional
        Axes title.
    fill : bool
        Shade the area under each curve.
    log_y : bool
        Logarithmic vertical axis.

    Returns
    -------
    matplotlib.figure.Figure or matplotlib.axes.Axes
        The new figure, or ``ax`` when given; one ``Line2D`` per curve in ``ax.lines``, with a
        legend.

    Raises
    ------
    ValueError
        If ``xs`` is not 1-D, ``curves`` is empty, or a curve's shape differs from ``xs``'.
    """
    x = _to_numpy("xs", xs)
    if x.ndim != 1:
        raise ValueError(f"xs: expected a 1-D array (M,), got shape {x.shape}")
    if not isinstance(curves, Mapping) or not curves:
        raise ValueError("curves: expected a non-empty dict {label: values}")
    ys = {}
    for label, values in curves.items():
        y = _to_numpy(f"curves[{label!r}]", values)
        if y.shape != x.shape:
            raise ValueError(f"curves[{label!r}]: expected shape {x.shape} (like xs), got {y.shape}")
        ys[label] = y
    fig, ax_ = _target(ax, size=(6.0, 3.5))
    for label, y in ys.items():
        (line,) = ax_.plot(x, y, label=str(label))
        if fill:
            ax_.fill_between(x, y, alpha=0.2, color=line.get_color())
    if log_y:
        ax_.set_yscale("log")
    ax_.legend(loc="best")
    _label_plane(ax_, xlabel, ylabel, title, equal=False)
    return _result(fig, ax_, ax)


def loss_curve(losses, ax: Axes | None = None, xlabel: str = "step", ylabel: str = "loss",
               title: str | None = None, smooth: int = 1, log_y: bool = False,
               show_raw: bool = False):
    """Training curve(s): one sequence, or a dict label -> sequence of per-step values.

    Parameters
    ----------
    losses : sequence of float, 1-D tensor/array, or dict[str, sequence]
        Values per step (index = step).
    ax : matplotlib.axes.Axes, optional
        Draw onto this axes instead of a new figure.
    xlabel, ylabel : str
        Axis labels (give units, e.g. ``"loss (nats)"``).
    title : str, optional
        Axes title.
    smooth : int
        Width of a trailing moving average (1 = raw values).
    log_y : bool
        Logarithmic vertical axis.
    show_raw : bool
        With ``smooth > 1``, also draw the raw values, faintly, behind each moving average.

    Returns
    -------
    matplotlib.figure.Figure or matplotlib.axes.Axes
        The new figure, or ``ax`` when given; one line per sequence.

    Raises
    ------
    ValueError
        If a sequence is empty or not 1-D, or ``smooth < 1``.
    """
    smooth = _check_resolution("smooth", smooth, 1)
    series = dict(losses) if isinstance(losses, Mapping) else {None: losses}
    fig, ax_ = _target(ax, size=(6.0, 3.5))
    for label, values in series.items():
        y = _to_numpy("losses" if label is None else f"losses[{label!r}]", values)
        if y.ndim != 1 or y.size == 0:
            raise ValueError(f"losses: expected a non-empty 1-D sequence, got shape {y.shape}")
        color = None
        if smooth > 1:
            if show_raw:
                color = ax_.plot(np.arange(y.size), y, alpha=0.3, lw=0.8)[0].get_color()
            c = np.cumsum(np.insert(y, 0, 0.0))
            k = np.minimum(np.arange(1, y.size + 1), smooth)
            y = (c[1:] - c[np.arange(1, y.size + 1) - k]) / k
        ax_.plot(np.arange(y.size), y, color=color, label=None if label is None else str(label))
    if log_y:
        ax_.set_yscale("log")
    if any(label is not None for label in series):
        ax_.legend(loc="best")
    _label_plane(ax_, xlabel, ylabel, title, equal=False)
    return _result(fig, ax_, ax)


def animate_samples(path, ax: Axes | None = None, max_frames: int = 60, interval: int = 80,
                    s: float = 4, alpha: float = 0.6, color=None, xlim=None, ylim=None,
                    title: str | None = None):
    """Animate 2-D particles along ``path`` (e.g. the reverse diffusion x_T -> x_0).

    Parameters
    ----------
    path : tensor or array, shape (T, N, 2)
        Positions at ``T`` times (index 0 = first frame).
    ax : matplotlib.axes.Axes, optional
        Animate on this axes (e.g. over :func:`density_contours`) instead of a new figure.
    max_frames : int
        At most this many frames, evenly spaced in time; the first and last are always shown.
    interval : int
        Milliseconds between frames.
    s, alpha, color :
        Marker area (points^2), opacity and colour.
    xlim, ylim : (float, float), optional
        Axis ranges (default: the range of the whole path, so the axes do not move).
    title : str, optional
        Axes title; the frame's time index is appended (``"... (t = 17)"``).

    Returns
    -------
    matplotlib.animation.FuncAnimation
        ``anim.frame_indices`` lists the time index shown in each frame. In a notebook show it
        with ``IPython.display.HTML(anim.to_jshtml())`` and then ``plt.close(anim._fig)`` so the
        static figure is not shown a second time.

    Raises
    ------
    ValueError
        If ``path`` is not of shape ``(T, N, 2)`` or ``max_frames < 2``.
    """
    from matplotlib.animation import FuncAnimation

    p = _to_numpy("path", path)
    if p.ndim != 3 or p.shape[2] != 2 or p.shape[0] < 1 or p.shape[1] < 1:
        raise ValueError(f"path: expected shape (T, N, 2) with T, N >= 1, got {p.shape}")
    max_frames = _check_resolution("max_frames", max_frames, 2)
    t_count = p.shape[0]
    frames = np.unique(np.round(np.linspace(0, t_count - 1, min(max_frames, t_count))).astype(int))
    fig, ax_ = _target(ax)
    pad = lambda lo, hi: (lo - 0.05 * (hi - lo + 1e-12), hi + 0.05 * (hi - lo + 1e-12))  # noqa: E731
    ax_.set_xlim(*(_check_lim("xlim", xlim) if xlim is not None else pad(p[..., 0].min(), p[..., 0].max())))
    ax_.set_ylim(*(_check_lim("ylim", ylim) if ylim is not None else pad(p[..., 1].min(), p[..., 1].max())))
    _label_plane(ax_, "$x_1$", "$x_2$", None)
    points = ax_.scatter(p[0, :, 0], p[0, :, 1], s=s, alpha=alpha, color=color, edgecolors="none")
    label = (title + " " if title else "") + "(t = {})"

    def update(t):
        points.set_offsets(p[t])
        ax_.set_title(label.format(t))
        return (points,)

    anim = FuncAnimation(fig, update, frames=list(frames), interval=interval, blit=False)
    anim.frame_indices = [int(t) for t in frames]
    update(frames[0])
    return anim
