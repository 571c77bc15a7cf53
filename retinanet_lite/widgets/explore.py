"""The shared helper of every explorer: wire controls to a draw function's keyword arguments."""
from __future__ import annotations

from typing import Any, Callable

import ipywidgets as widgets
import matplotlib.pyplot as plt


def explore(draw: Callable[..., Any], **controls: Any) -> widgets.interactive:
    """Wire ``controls`` (ipywidgets or ``interact``-style abbreviations) to ``draw``'s keyword arguments.

    ``draw`` may be a ``functools.partial`` that fixes the arguments without a control (a model, a
    dataset). Returns the ``interactive`` widget (display it, or read ``.result`` for the last return
    value); each redraw shows the new figure and closes it so figures do not pile up.
    """
    def redraw(**values: Any) -> Any:
        result = draw(**values)
        plt.show()
        return result

    redraw.__name__ = getattr(getattr(draw, "func", draw), "__name__", "redraw")
    return widgets.interactive(redraw, {"manual": False}, **controls)
