"""Run All on the untouched student edition (what tests/test_student_edition.py and
tests/test_student_edition_trained.py share): the lessons that need no trained model run early in ``make test``,
the others once the shared models exist (conftest's order).

Cell by cell through jupyter_client, in a fresh kernel in the edition's folder (as JupyterLab does): nbclient
can wait out a whole cell timeout after a widget cell (jupyter/nbclient#312).
"""
from __future__ import annotations

from pathlib import Path

import nbformat

from notebook_runner import Kernel, load_tool

tags = load_tool("lesson_cells").tags

#: Output types that show a figure or a widget.
FIGURE, WIDGET = "image/png", "application/vnd.jupyter.widget-view+json"


def run_all(student_dir: Path, lesson: Path) -> dict[int, tuple[str | None, list]]:
    """Every code cell of ``student_dir``'s copy of ``lesson``, in order, in one fresh kernel:
    {cell index: (exception name or None, output messages as (type, content))}."""
    kernel, results = Kernel(student_dir), {}
    try:
        for index, cell in enumerate(nbformat.read(student_dir / lesson.name, as_version=4).cells):
            if cell.cell_type == "code":
                results[index] = kernel.execute(cell.source, timeout=1800)
    finally:
        kernel.close()
    return results


def assert_reaches_the_last_cell(lesson: Path, ran: dict[int, tuple[str | None, list]]) -> None:
    """As a student who has not solved anything presses Run All: every cell ran (only the checks report
    failure, on stderr), every figure and widget appeared, and the last cell listed each exercise as
    running on the package's version."""
    teacher = nbformat.read(lesson, as_version=4)
    names = [e["name"] for e in teacher.metadata["workbook"]["exercises"]]
    for index, (error, messages) in ran.items():
        cell = teacher.cells[index]
        errors = [content for kind, content in messages if kind == "error"]
        assert error is None, f"cell {index} raised {error}: {errors[0]['evalue'] if errors else ''}"
        stderr = "".join(c["text"] for kind, c in messages if kind == "stream" and c["name"] == "stderr")
        if "exercise-check" in tags(cell):
            name = cell.metadata["exercise"]
            assert f"✗ {name} not solved yet" in stderr, f"cell {index}: the check of {name} must report it unsolved"
        kinds = {kind for _, c in messages for kind in c.get("data", {})}
        if "plt.show()" in cell.source:
            assert FIGURE in kinds, f"cell {index} draws a figure, but none appeared"
        if "_explorer(" in cell.source:
            assert WIDGET in kinds, f"cell {index} shows a widget, but none appeared"
    summary = "".join(c.get("text", "") for _, c in ran[len(teacher.cells) - 1][1])
    assert f"0 of {len(names)} exercises solved" in summary
    for name in names:
        assert f"✗ {name}: not solved yet" in summary, f"the summary has no line for {name}"
