"""Tests of course_lib.widgets: explorers draw once per change, leave no figure open, and show
errors instead of breaking; slider() builds the right widget with units in its description."""

from __future__ import annotations

import inspect

import matplotlib

matplotlib.use("Agg")

import ipywidgets as W  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from course_lib import widgets  # noqa: E402


class Recorder:
    """A plain plot function that records its calls and opens a figure (plus a stray one)."""

    def __init__(self, stray: bool = False):
        self.calls: list[dict] = []
        self.stray = stray

    def __call__(self, a: float = 1.0, n: int = 3):
        self.calls.append({"a": a, "n": n})
        fig, ax = plt.subplots()
        ax.plot(range(n), [a] * n)
        if self.stray:
            plt.figure()  # a careless plot_fn that opens a second figure
        return fig


def _controls():
    return {"a": widgets.slider("a", 0.0, 2.0, 0.1, 1.0, units="nats"),
            "n": widgets.slider("n", 1, 10, 1, 3)}


def test_explorer_structure_and_first_draw(capsys):
    rec = Recorder()
    before = plt.get_fignums()
    box = widgets.explorer(rec, "look at the line", **_controls())
    assert isinstance(box, W.VBox)
    caption, controls, out = box.children
    assert isinstance(caption, W.HTML) and "look at the line" in caption.value
    assert isinstance(controls, W.HBox) and len(controls.children) == 2
    assert isinstance(out, W.Output)
    assert rec.calls == [{"a": 1.0, "n": 3}]
    assert plt.get_fignums() == before


def test_explorer_redraws_once_per_change():
    rec = Recorder()
    before = plt.get_fignums()
    ctl = _controls()
    box = widgets.explorer(rec, "caption", **ctl)
    ctl["a"].value = 1.5
    assert len(rec.calls) == 2 and rec.calls[-1] == {"a": 1.5, "n": 3}
    ctl["a"].value = 1.5  # no change, no redraw
    assert len(rec.calls) == 2
    ctl["n"].value = 7
    assert len(rec.calls) == 3 and rec.calls[-1] == {"a": 1.5, "n": 7}
    box.redraw()
    assert len(rec.calls) == 4
    assert plt.get_fignums() == before


def test_explorer_closes_every_figure_plot_fn_opens():
    rec = Recorder(stray=True)
    before = plt.get_fignums()
    ctl = _controls()
    widgets.explorer(rec, "caption", **ctl)
    ctl["n"].value = 5
    assert plt.get_fignums() == before


def test_explorer_accepts_axes_result():
    calls = []

    def plot_ax(a=1.0):
        calls.append(a)
        fig, ax = plt.subplots()
        ax.axhline(a)
        return ax

    before = plt.get_fignums()
    widgets.explorer(plot_ax, "caption", a=widgets.slider("a", 0.0, 1.0, 0.5, 1.0))
    assert calls == [1.0] and plt.get_fignums() == before


def test_explorer_shows_errors_without_breaking(capsys):
    def fragile(a=1.0):
        fig, ax = plt.subplots()
        if a < 0.5:
            raise ValueError(f"a: expected >= 0.5, got {a}")
        return fig

    before = plt.get_fignums()
    ctl = widgets.slider("a", 0.0, 1.0, 0.1, 1.0)
    widgets.explorer(fragile, "caption", a=ctl)
    ctl.value = 0.2  # raises inside plot_fn: reported in the output, UI keeps working
    assert "expected >= 0.5" in capsys.readouterr().out
    ctl.value = 0.9
    assert plt.get_fignums() == before


def test_explorer_bad_controls():
    with pytest.raises(ValueError, match="controls"):
        widgets.explorer(Recorder(), "caption")
    with pytest.raises(TypeError, match="controls\\['a'\\]"):
        widgets.explorer(Recorder(), "caption", a=3.0)


# --- slider -------------------------------------------------------------------------------------


def test_slider_float_with_units_and_flags():
    s = widgets.slider("sigma", 0.01, 2.0, 0.01, 0.5, units="data units", continuous=False)
    assert isinstance(s, W.FloatSlider)
    assert s.description == "sigma (data units)"
    assert s.continuous_update is False and s.readout
    assert (s.min, s.max, s.step, s.value) == (0.01, 2.0, 0.01, 0.5)
    assert s.readout_format == ".2f"
    assert widgets.slider("w", 0.0, 1.0, 0.25, 0.5).readout_format == ".2f"
    assert widgets.slider("w", 0.0, 10.0, 0.5, 1.0).readout_format == ".1f"
    assert widgets.slider("d", 0.0, 10.0, 1.0, 1.0).readout_format == ".0f"


def test_slider_int_without_units():
    s = widgets.slider("steps", 1, 100, 1, 10)
    assert isinstance(s, W.IntSlider)
    assert s.description == "steps" and s.continuous_update is True and s.value == 10


def test_slider_log():
    s = widgets.slider("sigma", 0.01, 10.0, 0.1, 1.0, units="nats", log=True)
    assert isinstance(s, W.FloatLogSlider)
    assert s.min == pytest.approx(-2.0) and s.max == pytest.approx(1.0) and s.value == 1.0
    assert s.description == "sigma (nats)"


@pytest.mark.parametrize("args, match", [
    ((2.0, 1.0, 0.1, 1.5), "min, max"),
    ((0.0, 1.0, 0.0, 0.5), "step"),
    ((0.0, 1.0, 0.1, 2.0), "value"),
    ((0.0, float("nan"), 0.1, 0.5), "max"),
])
def test_slider_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        widgets.slider("x", *args)
    with pytest.raises(ValueError, match="log slider"):
        widgets.slider("x", 0.0, 1.0, 0.1, 0.5, log=True)


# --- every notebook explorer builds headless and leaves no figure open --------------------------


def _needs_arguments(fn) -> bool:
    return any(p.default is inspect.Parameter.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
               for p in inspect.signature(fn).parameters.values())


# Explorers over trained models or precomputed results (notebooks 01, 02) need their data and are
# built and redrawn in their own test files (test_widgets_autoencoders.py, test_vae.py).
NOTEBOOK_EXPLORERS = [name for name in widgets.__all__
                      if name.endswith("_explorer") and not _needs_arguments(getattr(widgets, name))]


@pytest.mark.parametrize("name", NOTEBOOK_EXPLORERS)
def test_notebook_explorers_build(name):
    before = plt.get_fignums()
    box = getattr(widgets, name)()
    assert isinstance(box, W.VBox) and isinstance(box.children[-1], W.Output)
    assert plt.get_fignums() == before
