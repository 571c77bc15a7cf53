"""Run a lesson notebook (or its beginning) with some cells replaced: proves that self-checks have teeth.

Cells are addressed by their metadata tags (``"tags": ["impl-iou"]``). ``run_lesson(path,
replace={"impl-iou": WRONG}, stop_after="check-iou")`` executes the notebook's code cells in a fresh
kernel up to and including the first cell tagged ``check-iou``, with every cell tagged ``impl-iou``
replaced by ``WRONG``; it raises ``nbclient.exceptions.CellExecutionError`` when a cell fails.
"""
from __future__ import annotations

from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def tagged(cell: nbformat.NotebookNode, tag: str) -> bool:
    return tag in cell.get("metadata", {}).get("tags", [])


def run_lesson(name: str, replace: dict[str, str] | None = None, stop_after: str | None = None,
               timeout: int = 600) -> nbformat.NotebookNode:
    """Execute ``notebooks/name`` (with ``replace``d cells, up to ``stop_after``); returns the executed notebook."""
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    replace = replace or {}
    missing = [tag for tag in [*replace, *([stop_after] if stop_after else [])]
               if not any(tagged(c, tag) for c in notebook.cells)]
    assert not missing, f"{name} has no cell tagged {missing}"
    cells = []
    for cell in notebook.cells:
        for tag, source in replace.items():
            if tagged(cell, tag):
                cell.source = source
        cells.append(cell)
        if stop_after and tagged(cell, stop_after):
            break
    notebook.cells = cells
    NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    return notebook
