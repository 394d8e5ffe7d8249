"""Interactive explorers: thin ipywidgets UIs over plain plotting functions.

Every explorer wraps a plain function ``plot_fn(**values) -> matplotlib.figure.Figure`` whose
defaults are what the explorer starts at, so a notebook (and CI, headless) can call the plain
function directly and get the same figure. The UI redraws the figure once per change into a single
output area; slow plots use ``continuous_update=False`` on their sliders.

Notebook convention: call the plain function with a trailing semicolon (``plot_x();``) so the
figure is shown once, then display the explorer.
"""

from __future__ import annotations

from collections.abc import Callable

import ipywidgets as W
import matplotlib.pyplot as plt
from IPython.display import display

__all__ = ["explorer"]


def explorer(plot_fn: Callable[..., "plt.Figure"], caption: str, **controls: W.ValueWidget) -> W.VBox:
    """Build an explorer: ``controls`` drive ``plot_fn``; the figure is drawn once per change.

    Parameters
    ----------
    plot_fn : callable
        Plain plotting function taking the controls' values as keyword arguments and returning a
        figure.
    caption : str
        What to look for, shown above the controls (HTML allowed).
    **controls : ipywidgets.ValueWidget
        One widget per keyword argument of ``plot_fn`` (give each a description with units).

    Returns
    -------
    ipywidgets.VBox
        Caption, controls and the output area; ``.children[-1]`` is the output.
    """
    if not controls:
        raise ValueError("controls: expected at least one widget, got none")
    out = W.Output()

    def redraw(**values):
        with out:
            out.clear_output(wait=True)
            fig = plot_fn(**values)
            display(fig)
            plt.close(fig)

    def on_change(_change=None):
        redraw(**{k: c.value for k, c in controls.items()})

    for c in controls.values():
        c.observe(on_change, names="value")
    on_change()
    box = W.VBox([W.HTML(f"<p><b>What to look for:</b> {caption}</p>"),
                  W.HBox(list(controls.values())), out])
    box.redraw = on_change  # for tests: force a redraw without moving a slider
    return box
