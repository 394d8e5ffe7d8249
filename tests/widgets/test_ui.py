"""Tests of the explorers' harness (course_lib/widgets/ui.py): explorers draw once per change, leave
no figure open, show errors instead of breaking, and start at their plot function's defaults;
slider() builds the right widget with units in its description. Every notebook explorer builds
headless and starts where its plot function does."""

from __future__ import annotations

import inspect
from functools import partial

import ipywidgets as W
import matplotlib.pyplot as plt
import pytest

from course_lib import widgets


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


def test_controls_without_a_value_start_at_the_plot_defaults():
    rec = Recorder()
    box = widgets.explorer(rec, "look", a=widgets.slider("a", 0.0, 2.0, 0.1), n=widgets.slider("n", 1, 10, 1))
    assert box.controls["a"].value == 1.0 and box.controls["n"].value == 3
    assert isinstance(box.controls["n"], W.IntSlider)
    assert rec.calls == [{"a": 1.0, "n": 3}]                    # one first draw, at the defaults
    plt.close("all")

    def plot(flag: bool = True, sigma: float = 0.3):
        return plt.figure()

    box = widgets.explorer(plot, "look", flag=widgets.checkbox("flag"),
                           sigma=widgets.slider("sigma", 0.01, 5.0, 0.05, log=True))
    assert box.controls["flag"].value is True and box.controls["sigma"].value == pytest.approx(0.3)
    # functools.partial binds data arguments and keeps the defaults visible
    box = widgets.explorer(partial(Recorder(), n=5), "look", n=widgets.slider("n", 1, 10, 1))
    assert box.controls["n"].value == 5
    plt.close("all")


def test_controls_without_a_value_need_a_default_in_range():
    with pytest.raises(ValueError, match="no default for 'a'"):
        widgets.explorer(lambda a: plt.figure(), "look", a=widgets.slider("a", 0.0, 1.0, 0.1))
    with pytest.raises(ValueError, match="outside the slider's range"):
        widgets.explorer(Recorder(), "look", a=widgets.slider("a", 2.0, 3.0, 0.1))
    with pytest.raises(ValueError, match="not an int"):
        widgets.explorer(lambda n=2.5: plt.figure(), "look", n=widgets.slider("n", 1, 10, 1))
    with pytest.raises(ValueError, match="not a bool"):
        widgets.explorer(lambda flag=None: plt.figure(), "look", flag=widgets.checkbox("flag"))
    with pytest.raises(ValueError, match="value"):
        widgets.checkbox("flag", value=1)
    assert plt.get_fignums() == []


# --- every notebook explorer builds headless and starts where its plot function starts -----------


def _base(fn):
    while isinstance(fn, partial):
        fn = fn.func
    return fn


@pytest.fixture(scope="module")
def explorer_data():
    """Small stand-ins for what notebooks 01, 02 and 04 pass to their explorers."""
    import torch

    from course_lib import diffusion, toy, vae
    from course_lib.autoencoders import Autoencoder

    torch.manual_seed(0)
    images = torch.rand(40, 1, 8, 8, generator=torch.Generator().manual_seed(1)) * 2 - 1
    model = Autoencoder.mlp((1, 8, 8), latent_dim=3, hidden=(16,), final_activation="tanh")
    sweep = vae.decoder_std_sweep(images, [0.5, 4.0], num_steps=2, hidden_dims=(8,), num_show=4,
                                  generator=torch.Generator().manual_seed(0), device="cpu",
                                  progress=False)
    mixture, schedule = toy.grid_mixture(n_per_side=3, spacing=1.0, std=0.05), diffusion.NoiseSchedule.cosine(20)
    return {
        "denoising_explorer": (model, images),
        "random_latents_explorer": (model, images[:30], images[30:]),
        "decoder_std_explorer": (sweep,),
        "noised_marginals_explorer": (mixture, schedule, images),
        "reverse_marginals_explorer": (torch.randn(21, 50, 2), mixture, schedule),
    }


EXPLORERS = sorted(name for topic in widgets.TOPICS for name in topic.__all__ if name.endswith("_explorer"))


def test_every_explorer_is_exported_and_built_here(explorer_data):
    assert len(EXPLORERS) >= 6 and set(EXPLORERS) <= set(widgets.__all__)
    needs = {name for name in EXPLORERS if any(
        p.default is inspect.Parameter.empty for p in inspect.signature(getattr(widgets, name)).parameters.values())}
    assert needs == set(explorer_data), "give the new explorer's arguments in explorer_data"


@pytest.mark.parametrize("name", EXPLORERS)
def test_explorer_starts_at_its_plot_functions_defaults(name, explorer_data):
    """Every control's starting value is the default of the plot function's parameter of that name
    (the function a notebook calls for the static figure); a default of None means the plot picks
    from its data, and the explorer then binds its choice explicitly."""
    before = set(plt.get_fignums())
    box = getattr(widgets, name)(*explorer_data.get(name, ()))
    assert isinstance(box, W.VBox) and isinstance(box.children[-1], W.Output)
    bound, base = widgets.plot_defaults(box.plot_fn), widgets.plot_defaults(_base(box.plot_fn))
    for control_name, control in box.controls.items():
        assert control_name in base, f"{name}: {control_name!r} has no default in the plot function"
        want = base[control_name] if base[control_name] is not None else bound[control_name]
        assert control.value == pytest.approx(want), (
            f"{name}: control {control_name!r} starts at {control.value!r}, the plot function's "
            f"default is {want!r}")
    assert "Traceback" not in str(box.children[-1].outputs)
    assert set(plt.get_fignums()) == before
