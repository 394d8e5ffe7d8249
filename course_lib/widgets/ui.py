"""The UI harness of the explorers: ``slider``, ``checkbox`` and ``explorer``.

Every explorer wraps a plain function ``plot_fn(**values) -> matplotlib.figure.Figure`` whose
defaults are what the explorer starts at, so a notebook (and CI, headless) can call the plain
function directly and get the same figure. A control built without a value (``slider(...,
value=None)``, ``checkbox(...)``) takes the default of ``plot_fn``'s parameter of the same name
when :func:`explorer` builds the UI, so a starting value is written once, in the plot function.
The UI redraws the figure once per change into a single output area and closes it afterwards (no
figure is left open in pyplot); slow plots use ``continuous=False`` on their sliders so they
redraw on release only.

Notebook convention: call the plain function with a trailing semicolon (``plot_x();``) so the
figure is shown once, then display the explorer.

Each notebook's figures and explorers live in ``course_lib/widgets/<topic>.py``; they only call
the topic's module (the mathematics) and :mod:`course_lib.plotting`.
"""

from __future__ import annotations

import inspect
import math
import traceback
from collections.abc import Callable

import ipywidgets as W
import matplotlib.pyplot as plt
from IPython.display import display
from matplotlib.axes import Axes
from matplotlib.figure import Figure

__all__ = ["explorer", "slider", "checkbox", "wide", "plot_defaults"]

# Set on a control whose starting value is to be taken from the plot function's default.
_FROM_PLOT_DEFAULT = "_course_value_from_plot_default"


def slider(description: str, min: float, max: float, step: float, value: float | None = None,
           units: str = "", continuous: bool = True, log: bool = False) -> W.ValueWidget:
    """A labelled slider: ``IntSlider`` when every number is an int, else ``FloatSlider``.

    Parameters
    ----------
    description : str
        What the slider sets (use the notebook's symbol, e.g. ``"sigma"``).
    min, max, step : int or float
        Range and step (``step > 0``). With ``log=True`` they are the values themselves (not
        exponents) and ``step`` is the step of ``log10(value)``.
    value : int or float, optional
        Initial value, ``min <= value <= max``. Default (``None``): the default of the plot
        function's parameter that this slider drives, filled in by :func:`explorer`, so an
        explorer starts where its plot function does.
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
        With the readout shown at a precision matching ``step``. An ``IntSlider`` when ``min``,
        ``max``, ``step`` (and ``value`` if given) are ints.

    Raises
    ------
    ValueError
        If ``min >= max``, ``step <= 0``, ``value`` is outside ``[min, max]``, or ``log`` with
        ``min <= 0``.
    """
    lo, hi = min, max
    from_plot = value is None
    if from_plot:
        value = lo  # a placeholder until explorer() sets the plot function's default
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
        control = W.FloatLogSlider(value=value, base=10, min=math.log10(lo), max=math.log10(hi),
                                   step=step, readout_format=".3g", **common)
    elif all(isinstance(v, int) for v in (lo, hi, step, value)):
        control = W.IntSlider(value=value, min=lo, max=hi, step=step, **common)
    else:
        decimals = 0 if step >= 1 else -math.floor(math.log10(step) + 1e-9)
        if abs(step * 10**decimals - round(step * 10**decimals)) > 1e-9:  # e.g. step 0.25
            decimals += 1
        control = W.FloatSlider(value=value, min=lo, max=hi, step=step,
                                readout_format=f".{decimals}f", **common)
    setattr(control, _FROM_PLOT_DEFAULT, from_plot)
    return control


def checkbox(description: str, value: bool | None = None) -> W.Checkbox:
    """A labelled check box for a boolean parameter of a plot function.

    Parameters
    ----------
    description : str
        What ticking it does.
    value : bool, optional
        Initial state. Default (``None``): the plot function's default, filled in by
        :func:`explorer`.

    Returns
    -------
    ipywidgets.Checkbox

    Raises
    ------
    ValueError
        If ``value`` is neither None nor a bool.
    """
    if value is not None and not isinstance(value, bool):
        raise ValueError(f"value: expected None or a bool, got {value!r}")
    control = W.Checkbox(value=bool(value), description=description,
                         style={"description_width": "initial"})
    setattr(control, _FROM_PLOT_DEFAULT, value is None)
    return control


def wide(control: W.ValueWidget, width: str = "30em") -> W.ValueWidget:
    """Give a control with a long description (label + units) room for its track; returns it."""
    control.layout.width = width
    return control


def plot_defaults(plot_fn: Callable[..., object]) -> dict[str, object]:
    """The defaults of ``plot_fn``'s parameters, by name (``functools.partial`` keywords included)."""
    return {name: p.default for name, p in inspect.signature(plot_fn).parameters.items()
            if p.default is not inspect.Parameter.empty}


def _start_at_plot_defaults(plot_fn, controls: dict[str, W.ValueWidget]) -> None:
    """Set every control built without a value to ``plot_fn``'s default for its parameter."""
    defaults = plot_defaults(plot_fn)
    for name, c in controls.items():
        if not getattr(c, _FROM_PLOT_DEFAULT, False):
            continue
        if name not in defaults:
            raise ValueError(f"controls[{name!r}]: built without a value, so it starts at the plot "
                             f"function's default, but the plot function has no default for "
                             f"{name!r}")
        default = defaults[name]
        lo, hi = getattr(c, "min", None), getattr(c, "max", None)
        if isinstance(c, W.FloatLogSlider):  # its min and max are exponents (widened by rounding)
            lo, hi = c.base ** lo * (1 - 1e-12), c.base ** hi * (1 + 1e-12)
        if lo is not None and not (isinstance(default, (int, float)) and lo <= default <= hi):
            raise ValueError(f"controls[{name!r}]: the plot function's default {default!r} is "
                             f"outside the slider's range [{lo:g}, {hi:g}]")
        if isinstance(c, W.Checkbox) and not isinstance(default, bool):
            raise ValueError(f"controls[{name!r}]: the plot function's default {default!r} is not "
                             f"a bool, but the control is a check box")
        if isinstance(c, W.IntSlider) and default != int(default):
            raise ValueError(f"controls[{name!r}]: the plot function's default {default!r} is not "
                             f"an int, but the slider is an IntSlider")
        c.value = default
        setattr(c, _FROM_PLOT_DEFAULT, False)


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
        with :func:`slider`). A control built without a value starts at ``plot_fn``'s default for
        its parameter (use ``functools.partial`` to bind data arguments, not a lambda, so the
        defaults stay visible).

    Returns
    -------
    ipywidgets.VBox
        Caption, controls (in an ``HBox`` that wraps) and the output area; ``.children[-1]`` is
        the output. ``.redraw()`` redraws with the current values; ``.plot_fn`` and
        ``.controls`` (a dict name -> control) are what it was built from.

    Raises
    ------
    ValueError
        If no control is given, or a control built without a value has no plot default to start
        at (or one outside its range).
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
    _start_at_plot_defaults(plot_fn, controls)
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
    box.plot_fn = plot_fn
    box.controls = dict(controls)
    return box
