"""Tests of course_lib.plotting: each function draws the expected artists with the expected data,
accepts tensors on any device, returns a Figure (new figure) or the given Axes, and rejects bad
shapes with a ValueError naming the argument."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection, PathCollection
from matplotlib.contour import QuadContourSet
from matplotlib.figure import Figure
from matplotlib.quiver import Quiver

from course_lib import plotting

# An animation drawn frame by frame in a test (not rendered) warns when garbage-collected.
pytestmark = pytest.mark.filterwarnings("ignore:Animation was deleted without rendering")


@pytest.fixture(autouse=True)
def _no_show_and_close(monkeypatch):
    """plt.show() must never be called; every test closes what it opened."""
    def _fail(*a, **k):
        raise AssertionError("plotting called plt.show()")

    monkeypatch.setattr(plt, "show", _fail)
    before = set(plt.get_fignums())
    yield
    for num in set(plt.get_fignums()) - before:
        plt.close(num)


def _std_normal_log_prob(device):
    """log N(x; 0, I) in 2-D via torch.distributions (independent of the plotting code)."""
    dist = torch.distributions.MultivariateNormal(torch.zeros(2, dtype=torch.float64, device=device),
                                                  torch.eye(2, dtype=torch.float64, device=device))
    seen = {}

    def log_prob(x):
        seen["device"], seen["shape"] = x.device, tuple(x.shape)
        return dist.log_prob(x)

    return log_prob, seen


def _only(ax, kind):
    found = [c for c in ax.collections if isinstance(c, kind)]
    assert len(found) == 1, ax.collections
    return found[0]


# --- new_figure -------------------------------------------------------------------------------------


def test_new_figure_shapes_and_size():
    fig, ax = plotting.new_figure()
    assert isinstance(fig, Figure) and isinstance(ax, Axes)
    fig, axes = plotting.new_figure(ncols=3, nrows=2, size=2.0)
    assert axes.shape == (2, 3)
    assert tuple(fig.get_size_inches()) == pytest.approx((6.0, 4.0))
    fig, axes = plotting.new_figure(ncols=2, size=(3.0, 1.5))
    assert axes.shape == (2,) and tuple(fig.get_size_inches()) == pytest.approx((6.0, 1.5))
    with pytest.raises(ValueError, match="ncols"):
        plotting.new_figure(ncols=0)
    with pytest.raises(ValueError, match="size"):
        plotting.new_figure(size=-1.0)


# --- density_contours -------------------------------------------------------------------------------


def test_density_contours_new_figure_values_and_labels(device):
    log_prob, seen = _std_normal_log_prob(device)
    fig = plotting.density_contours(log_prob, (-3, 3), (-3, 3), resolution=201,
                                    dtype=torch.float64, device=device)
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    assert seen == {"device": device, "shape": (201 * 201, 2)}
    ax = fig.axes[0]
    cs = _only(ax, QuadContourSet)
    assert cs.filled
    # 0 is a grid point (odd resolution): the maximum is the exact peak 1 / (2 pi).
    assert cs.zmax == pytest.approx(1 / (2 * math.pi), rel=1e-12)
    assert cs.zmin == pytest.approx(math.exp(-9) / (2 * math.pi), rel=1e-9)  # corner (3, 3)
    assert ax.get_xlabel() and ax.get_ylabel()
    assert ax.get_xlim() == (-3.0, 3.0) and ax.get_ylim() == (-3.0, 3.0)


def test_density_contours_log_lines_levels_and_colorbar():
    log_prob, _ = _std_normal_log_prob("cpu")
    levels = [-8.0, -6.0, -4.0, -2.0]
    fig = plotting.density_contours(log_prob, (-2, 2), (-1, 1), resolution=41, levels=levels,
                                    filled=False, log=True, colorbar=True, dtype=torch.float64)
    ax = fig.axes[0]
    cs = _only(ax, QuadContourSet)
    assert not cs.filled and list(cs.levels) == levels
    assert cs.zmax == pytest.approx(-math.log(2 * math.pi), rel=1e-12)
    assert len(fig.axes) == 2 and "nats" in fig.axes[1].get_ylabel()  # the colour bar


def test_density_contours_draws_on_given_axes():
    fig, axes = plotting.new_figure(ncols=2)
    nfig = len(plt.get_fignums())
    log_prob, _ = _std_normal_log_prob("cpu")
    out = plotting.density_contours(log_prob, (-1, 1), (-1, 1), ax=axes[1], resolution=20,
                                    title="N(0, I)")
    assert out is axes[1] and len(plt.get_fignums()) == nfig
    assert len(axes[0].collections) == 0 and len(axes[1].collections) == 1
    assert axes[1].get_title() == "N(0, I)"


def test_density_contours_bad_input():
    log_prob, _ = _std_normal_log_prob("cpu")
    with pytest.raises(ValueError, match="xlim"):
        plotting.density_contours(log_prob, (1, -1), (-1, 1))
    with pytest.raises(ValueError, match="ylim"):
        plotting.density_contours(log_prob, (-1, 1), (0, float("inf")))
    with pytest.raises(ValueError, match="resolution"):
        plotting.density_contours(log_prob, (-1, 1), (-1, 1), resolution=1)
    with pytest.raises(ValueError, match="log_prob_fn"):
        plotting.density_contours(lambda x: x, (-1, 1), (-1, 1), resolution=5)  # (N, 2), not (N,)
    with pytest.raises(ValueError, match="log_prob_fn.*NaN"):
        plotting.density_contours(lambda x: x[:, 0].log(), (-1, 1), (-1, 1), resolution=5)
    assert plt.get_fignums() == []  # validation happens before a figure is made


# --- score_field ------------------------------------------------------------------------------------


def test_score_field_quiver_directions_normalized(device):
    seen = {}

    def score(x):  # score of N(c, I) with c = (0.3, 0.1), off the grid: -(x - c)
        seen["device"] = x.device
        return -(x - torch.tensor([0.3, 0.1], dtype=x.dtype, device=x.device))

    fig = plotting.score_field(score, (-2, 2), (-1, 1), resolution=9, device=device)
    assert seen["device"] == device
    ax = fig.axes[0]
    q = _only(ax, Quiver)
    assert q.N == 81
    xy = q.XY if hasattr(q, "XY") else np.asarray(q.get_offsets())
    uv = np.stack([q.U, q.V], axis=1)
    expected = -(xy - np.array([0.3, 0.1]))
    norm = np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(uv, expected / norm, atol=1e-6)  # unit arrows, right direction
    assert ax.get_xlabel() and ax.get_ylabel()


def test_score_field_unnormalized_keeps_magnitudes():
    fig = plotting.score_field(lambda x: -3.0 * x, (-1, 1), (-1, 1), resolution=5, normalize=False,
                               color="k")
    q = _only(fig.axes[0], Quiver)
    xy = np.asarray(q.XY if hasattr(q, "XY") else q.get_offsets())
    np.testing.assert_allclose(np.stack([q.U, q.V], 1), -3.0 * xy, atol=1e-6)


def test_score_field_stream_and_autograd_score():
    def score(x):  # score computed by autograd of an unnormalized log-density
        x = x.detach().requires_grad_(True)
        energy = 0.5 * (x**2).sum(1)
        return -torch.autograd.grad(energy.sum(), x)[0]

    fig, ax = plotting.new_figure()
    out = plotting.score_field(score, (-2, 2), (-2, 2), ax=ax, resolution=15, kind="stream")
    assert out is ax
    assert any(isinstance(c, LineCollection) for c in ax.collections)
    assert len(ax.patches) > 0  # the stream-line arrows


def test_score_field_bad_input():
    with pytest.raises(ValueError, match="kind"):
        plotting.score_field(lambda x: -x, (-1, 1), (-1, 1), kind="arrows")
    with pytest.raises(ValueError, match="score_fn"):
        plotting.score_field(lambda x: x[:, 0], (-1, 1), (-1, 1), resolution=4)
    with pytest.raises(ValueError, match="score_fn.*non-finite"):
        plotting.score_field(lambda x: x / 0.0, (-1, 1), (-1, 1), resolution=4)
    with pytest.raises(ValueError, match="xlim"):
        plotting.score_field(lambda x: -x, (0, 0), (-1, 1))


# --- scatter_samples --------------------------------------------------------------------------------


def test_scatter_samples_offsets_and_legend(device, generator):
    x = torch.randn(50, 2, generator=generator).to(device)
    fig = plotting.scatter_samples(x, label="data", title="samples")
    ax = fig.axes[0]
    pc = _only(ax, PathCollection)
    np.testing.assert_allclose(pc.get_offsets(), x.cpu().numpy(), rtol=1e-6)
    assert ax.get_legend() is not None and ax.get_title() == "samples"
    assert ax.get_xlabel() and ax.get_ylabel()


def test_scatter_samples_overlay_on_given_axes(generator):
    fig, ax = plotting.new_figure()
    plotting.scatter_samples(torch.randn(10, 2, generator=generator), ax=ax, color="k")
    out = plotting.scatter_samples(np.zeros((5, 2)), ax=ax, color="r", xlim=(-3, 3), ylim=(-2, 2))
    assert out is ax and len(ax.collections) == 2
    assert ax.get_xlim() == (-3.0, 3.0) and ax.get_ylim() == (-2.0, 2.0)


@pytest.mark.parametrize("shape", [(10,), (10, 3), (2, 10, 2)])
def test_scatter_samples_bad_shape(shape):
    with pytest.raises(ValueError, match=r"x: expected shape \(N, 2\)"):
        plotting.scatter_samples(torch.zeros(shape))


def test_scatter_samples_bad_alpha():
    with pytest.raises(ValueError, match="alpha"):
        plotting.scatter_samples(torch.zeros(3, 2), alpha=2.0)


# --- make_grid / image_grid -------------------------------------------------------------------------


def test_make_grid_layout_and_contents(generator):
    n, h, w = 13, 8, 6  # H != W catches a transposed tile
    images = torch.rand(n, 1, h, w, generator=generator) * 2 - 1
    grid = plotting.make_grid(images, nrow=5, padding=1, pad_value=0.25)
    rows, ncol = 3, 5
    assert grid.shape == (rows * h + (rows + 1) * 1, ncol * w + (ncol + 1) * 1)
    for k in (0, 4, 5, 12):
        r, c = divmod(k, 5)
        top, left = 1 + r * (h + 1), 1 + c * (w + 1)
        np.testing.assert_allclose(grid[top:top + h, left:left + w], images[k, 0].numpy(), rtol=1e-6)
    assert grid[0].tolist() == [0.25] * grid.shape[1]  # border
    assert np.all(grid[-1 - h:-1, 1 + 3 * (w + 1):] == 0.25)  # unused cells of the last row
    grid0 = plotting.make_grid(images[:, 0], nrow=20, padding=0)  # (N, H, W); fewer than nrow
    assert grid0.shape == (h, n * w)
    np.testing.assert_allclose(grid0[:, w:2 * w], images[1, 0].numpy(), rtol=1e-6)


def test_make_grid_clips_and_colour():
    images = torch.full((2, 1, 2, 2), 3.0)
    assert plotting.make_grid(images).max() == 1.0
    rgb = plotting.make_grid(torch.zeros(4, 3, 5, 5), nrow=2, padding=2)
    assert rgb.shape == (2 * 5 + 3 * 2, 2 * 5 + 3 * 2, 3)


def test_image_grid_figure(device, generator):
    images = (torch.rand(20, 1, 8, 8, generator=generator) * 2 - 1).to(device)
    fig = plotting.image_grid(images, nrow=10, title="digits")
    ax = fig.axes[0]
    assert len(ax.images) == 1
    im = ax.images[0]
    assert im.get_array().shape == (2 * 8 + 3, 10 * 8 + 11)
    assert im.get_clim() == (-1.0, 1.0)  # fixed scale, never auto-scaled
    np.testing.assert_allclose(np.asarray(im.get_array())[1:9, 1:9], images[0, 0].cpu().numpy(),
                               rtol=1e-6)
    assert ax.get_title() == "digits"


def test_image_grid_on_given_axes():
    fig, axes = plotting.new_figure(ncols=2)
    out = plotting.image_grid(torch.zeros(4, 8, 8), nrow=2, ax=axes[0], padding=0)
    assert out is axes[0] and axes[0].images[0].get_array().shape == (16, 16)


@pytest.mark.parametrize("shape", [(4, 2, 8, 8), (8, 8), (1, 1, 1, 8, 8)])
def test_image_grid_bad_shape(shape):
    with pytest.raises(ValueError, match="images"):
        plotting.image_grid(torch.zeros(shape))


def test_image_grid_bad_arguments():
    with pytest.raises(ValueError, match="images"):
        plotting.make_grid(torch.zeros(0, 1, 8, 8))
    with pytest.raises(ValueError, match="nrow"):
        plotting.make_grid(torch.zeros(2, 1, 8, 8), nrow=0)
    with pytest.raises(ValueError, match="padding"):
        plotting.make_grid(torch.zeros(2, 1, 8, 8), padding=-1)


# --- trajectories -----------------------------------------------------------------------------------


def test_trajectories_segments(device, generator):
    path = torch.randn(7, 5, 2, generator=generator).cumsum(0).to(device)
    fig = plotting.trajectories(path)
    ax = fig.axes[0]
    lines = _only(ax, LineCollection)
    segs = lines.get_segments()
    assert len(segs) == 5
    np.testing.assert_allclose(segs[3], path[:, 3].cpu().numpy(), rtol=1e-6)
    starts_ends = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert len(starts_ends) == 2
    np.testing.assert_allclose(starts_ends[0].get_offsets(), path[0].cpu().numpy(), rtol=1e-6)
    np.testing.assert_allclose(starts_ends[1].get_offsets(), path[-1].cpu().numpy(), rtol=1e-6)
    # autoscaled to the paths
    lo, hi = ax.get_xlim()
    assert lo <= path[..., 0].min().item() and hi >= path[..., 0].max().item()


def test_trajectories_max_paths_and_given_axes(generator):
    fig, ax = plotting.new_figure()
    out = plotting.trajectories(torch.randn(4, 30, 2, generator=generator), ax=ax, max_paths=10,
                                show_ends=False)
    assert out is ax
    assert len(_only(ax, LineCollection).get_segments()) == 10


@pytest.mark.parametrize("shape", [(7, 5), (7, 5, 3), (0, 5, 2)])
def test_trajectories_bad_shape(shape):
    with pytest.raises(ValueError, match="path"):
        plotting.trajectories(torch.zeros(shape))


# --- plot_1d_densities / loss_curve -----------------------------------------------------------------


def test_plot_1d_densities_lines(device):
    xs = torch.linspace(-3, 3, 101, device=device)
    curves = {"p": torch.exp(-xs**2 / 2), "q": np.ones(101) * 0.1}
    fig = plotting.plot_1d_densities(xs, curves, ylabel="density (1/x)", fill=True)
    ax = fig.axes[0]
    assert len(ax.lines) == 2
    np.testing.assert_allclose(ax.lines[0].get_ydata(), curves["p"].cpu().numpy(), rtol=1e-6)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["p", "q"]
    assert ax.get_ylabel() == "density (1/x)" and ax.get_xlabel()


def test_plot_1d_densities_bad_input():
    xs = torch.linspace(0, 1, 5)
    with pytest.raises(ValueError, match=r"curves\['q'\]"):
        plotting.plot_1d_densities(xs, {"p": torch.ones(5), "q": torch.ones(4)})
    with pytest.raises(ValueError, match="curves"):
        plotting.plot_1d_densities(xs, {})
    with pytest.raises(ValueError, match="xs"):
        plotting.plot_1d_densities(torch.zeros(2, 5), {"p": torch.ones(5)})


def test_loss_curve_smoothing_and_dict():
    y = np.arange(10.0) ** 2
    fig = plotting.loss_curve(y, smooth=3)
    line = fig.axes[0].lines[0]
    full = np.convolve(y, np.ones(3) / 3, mode="valid")  # windows ending at steps 2..9
    np.testing.assert_allclose(line.get_ydata()[2:], full)
    assert line.get_ydata()[0] == y[0] and line.get_ydata()[1] == pytest.approx(y[:2].mean())
    fig = plotting.loss_curve({"G": [3.0, 2.0], "D": torch.tensor([1.0, 0.5])}, log_y=True)
    assert len(fig.axes[0].lines) == 2 and fig.axes[0].get_yscale() == "log"
    with pytest.raises(ValueError, match="losses"):
        plotting.loss_curve([])
    with pytest.raises(ValueError, match="smooth"):
        plotting.loss_curve([1.0], smooth=0)


# --- animate_samples --------------------------------------------------------------------------------


def test_animate_samples_frames_and_offsets(device, generator):
    from matplotlib.animation import FuncAnimation

    path = torch.randn(100, 6, 2, generator=generator).cumsum(0).to(device)
    anim = plotting.animate_samples(path, max_frames=10, title="reverse process")
    assert isinstance(anim, FuncAnimation)
    assert anim.frame_indices[0] == 0 and anim.frame_indices[-1] == 99
    assert len(anim.frame_indices) == 10
    ax = anim._fig.axes[0]
    pc = _only(ax, PathCollection)
    anim._func(anim.frame_indices[4])  # draw frame 4
    np.testing.assert_allclose(pc.get_offsets(), path[anim.frame_indices[4]].cpu().numpy(), rtol=1e-6)
    assert ax.get_title() == f"reverse process (t = {anim.frame_indices[4]})"
    lo, hi = ax.get_xlim()  # fixed limits covering the whole path
    assert lo <= path[..., 0].min().item() and hi >= path[..., 0].max().item()
    with pytest.raises(ValueError, match="path"):
        plotting.animate_samples(torch.zeros(5, 2))
    with pytest.raises(ValueError, match="max_frames"):
        plotting.animate_samples(torch.zeros(5, 3, 2), max_frames=1)


def test_animate_samples_renders_to_html(generator):
    anim = plotting.animate_samples(torch.randn(20, 4, 2, generator=generator), max_frames=3)
    html = anim.to_jshtml(fps=5)
    assert html.count("data:image/png;base64") == 3  # one embedded image per frame
