"""Run lesson code in fresh Jupyter kernels: lessons with cells replaced, self-checks fed wrong code.

Cells are addressed by their metadata tags (``"tags": ["impl-iou"]``). ``run_lesson(path,
replace={"impl-iou": WRONG}, stop_after="check-iou")`` executes the notebook's code cells in a fresh
kernel up to and including the first cell tagged ``check-iou``, with every cell tagged ``impl-iou``
replaced by ``WRONG``; it raises ``nbclient.exceptions.CellExecutionError`` when a cell fails.
``check_rejects(path, "impl-iou", WRONG, "check-iou")`` proves the same faster, running only the cells
the check needs. :class:`Kernel` runs code one piece at a time and reports errors instead of raising them.

Lessons 08–11 load the model lesson 07 trains (``load_or_train``); :func:`lesson_checkpoint`
trains it once, by lesson 07's own recipe, so that neither these tests nor nbval train it again.
"""
from __future__ import annotations

import importlib.util
import sys
from functools import cache
from pathlib import Path
from types import ModuleType

import nbformat
from jupyter_client.manager import start_new_kernel
from nbclient import NotebookClient

from retinanet_lite.train import LESSON_CHECKPOINT, train_or_reuse

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"


def load_tool(name: str) -> ModuleType:
    """Import ``tools/<name>.py`` (tools/ is a folder of scripts, not a package) once, under its own name,
    so that tools importing each other (the grader imports lesson_cells) find the same module."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


dependency_slice = load_tool("lesson_cells").dependency_slice
#: The arguments of lesson 07's ``train_or_reuse`` call (tests/test_lesson_07.py checks that they agree).
LESSON_07_TRAINING = {"preset": "shapes-cpu", "seed": 0, "eval_every": 500}


@cache
def lesson_checkpoint() -> Path:
    """notebooks/checkpoints/shapes-cpu.pt, made by lesson 07's recipe: trained here (a couple of
    minutes) if it is missing or was made otherwise, else reused. Lesson 07 (under nbval too) then
    reuses it, and lessons 08–11 load it."""
    path = NOTEBOOKS / LESSON_CHECKPOINT
    train_or_reuse(path, progress=False, **LESSON_07_TRAINING)
    return path


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
    if any("load_or_train(" in cell.source for cell in cells):
        lesson_checkpoint()  # what the lesson will load
    NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    return notebook


def check_rejects(name: str, impl: str, wrong: str, check: str, timeout: int = 600) -> str:
    """Prove that the cell tagged ``check`` in ``notebooks/name`` rejects ``wrong`` in place of the
    cell tagged ``impl``; returns the check's error message.

    In one fresh kernel: the cells the two need (the set-up cells and the earlier cells that define
    a name they use: :func:`lesson_cells.dependency_slice`), then ``wrong`` and the needed cells
    after it up to the check — the first of them to fail must raise an ``AssertionError`` — then the
    lesson's own implementation and the same cells, which must all pass: proof that the cells run
    are enough, so that the ``AssertionError`` is the wrong code's fault. Much faster than
    :func:`run_lesson` when a lesson has slow cells the check does not need.
    """
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    cells = notebook.cells
    found = {tag: [i for i, cell in enumerate(cells) if tagged(cell, tag)] for tag in (impl, check)}
    assert all(len(indices) == 1 for indices in found.values()), f"{name}: cells tagged {found} (one each expected)"
    (impl_index,), (check_index,) = found[impl], found[check]
    needed = dependency_slice(notebook, [impl_index, check_index])
    after = [i for i in needed if impl_index < i < check_index] + [check_index]
    if any("load_or_train(" in cells[i].source for i in needed):
        lesson_checkpoint()  # what the lesson will load
    kernel = Kernel(NOTEBOOKS)
    try:
        for index in (i for i in needed if i < impl_index):
            error, text = kernel.run(cells[index].source, timeout)
            assert error is None, f"{name}: cell {index}, which the check needs, failed: {text[-3000:]}"
        for source in [wrong] + [cells[i].source for i in after]:
            error, message = kernel.run(source, timeout)
            if error is not None:
                break
        assert error == "AssertionError", (f"{name}: with the wrong {impl}, the cells up to {check} should stop "
                                           f"with an AssertionError, got {error}: {message[-3000:]}")
        for index in [impl_index] + after:
            error, text = kernel.run(cells[index].source, timeout)
            assert error is None, (f"{name}: with the lesson's own {impl}, cell {index} fails after the cells "
                                   f"{needed}: {text[-3000:]}")
    finally:
        kernel.close()
    return message


class Kernel:
    """A fresh IPython kernel in ``cwd``; :meth:`run` executes code and reports the error, if any."""

    def __init__(self, cwd: Path):
        self.manager, self.client = start_new_kernel(kernel_name="python3", cwd=str(cwd))

    def run(self, source: str, timeout: float = 600) -> tuple[str | None, str]:
        """Execute ``source``; returns (exception name or None, what it printed, displayed as text, and
        the error message)."""
        error, messages = self.execute(source, timeout)
        text = []
        for kind, content in messages:
            if kind == "stream":
                text.append(content["text"])
            elif kind in ("execute_result", "display_data"):
                text.append(content["data"].get("text/plain", ""))
            elif kind == "error":
                text.append(f"{content['ename']}: {content['evalue']}")
        return error, "".join(text)

    def execute(self, source: str, timeout: float = 600) -> tuple[str | None, list[tuple[str, dict]]]:
        """Execute ``source``; returns (exception name or None, its output messages as (type, content))."""
        messages: list[tuple[str, dict]] = []

        def collect(message: dict) -> None:
            if message["msg_type"] in ("stream", "execute_result", "display_data", "error"):
                messages.append((message["msg_type"], message["content"]))

        reply = self.client.execute_interactive(source, timeout=timeout, output_hook=collect)
        content = reply["content"]
        return (content["ename"] if content["status"] == "error" else None), messages

    def close(self) -> None:
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)
