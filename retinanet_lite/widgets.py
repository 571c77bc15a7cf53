"""Interactive explorers for the lessons (ipywidgets).

Every explorer has two halves:

* a plain **draw function** that takes the knob values as keyword arguments, draws a matplotlib
  figure and returns what it computed (so tests can call it directly, with no browser), and
* an ``*_explorer()`` function that puts sliders and dropdowns on those keyword arguments with
  :func:`explore`.

They also work headless (nbval, a plain script): the draw function runs once when the explorer is
built and again whenever a control's value changes.
"""
from __future__ import annotations

from typing import Any, Callable

import ipywidgets as widgets
import matplotlib.pyplot as plt


def explore(draw: Callable[..., Any], **controls: Any) -> widgets.interactive:
    """Wire ``controls`` (ipywidgets or ``interact``-style abbreviations) to ``draw``'s keyword arguments.

    Returns the ``interactive`` widget (display it, or read ``.result`` for the last return value);
    each redraw shows the new figure and closes it so figures do not pile up.
    """
    def redraw(**values: Any) -> Any:
        result = draw(**values)
        plt.show()
        return result

    redraw.__name__ = getattr(draw, "__name__", "redraw")
    return widgets.interactive(redraw, {"manual": False}, **controls)


# ------------------------------------------------------------------------------------ lessons
# Explorers are added below, one section per lesson, in lesson order.
