"""The student edition (``make student``, tools/make_student_edition.py) has teeth.

* every lesson is there, with the same cells, the same markdown and the same code outside the
  solution blocks; no solution text is left;
* for every exercise of every lesson: in a fresh kernel, after the lesson's set-up cells and the
  earlier cells the exercise needs (see ``lesson_cells.py``), the student's exercise cell followed
  by its check cell fails (``NotImplementedError`` from the stub, or the check's
  ``AssertionError``) — and with the instructor's solution pasted back, the check passes.

Whole lessons are not run here (nbval does that for the instructor edition); one kernel per
exercise runs only the few cells it needs. Where those load lesson 07's trained model, the test run's
shared one (the ``lesson_checkpoint`` fixture) is copied into the student edition first.
"""
from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import nbformat
import pytest
from IPython.core.inputtransformer2 import TransformerManager

from lesson_cells import (BEGIN, CHECK_TAG, END, EXERCISE_TAG, Exercise, dependency_slice, exercises, has_solution,
                          tags)

from retinanet_lite.train import LESSON_CHECKPOINT

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
LESSONS = sorted(NOTEBOOKS.glob("*.ipynb"))
STUB = "# YOUR CODE HERE\nraise NotImplementedError()"  # nbgrader's Python stub


def read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def solution_blocks(source: str) -> list[list[str]]:
    """The lines between each ``### BEGIN SOLUTION`` and ``### END SOLUTION`` of a cell."""
    return [block.split("\n")[1:-1] for block in re.findall(rf"{BEGIN}.*?\n.*?{END}", source, flags=re.S)]


def without_solutions(source: str) -> str:
    """What the student should see: each solution block replaced by the stub, indented like the
    marker (written independently of nbgrader, to check it)."""
    out, inside = [], False
    for line in source.split("\n"):
        if BEGIN in line:
            inside = True
            indent = line[: len(line) - len(line.lstrip())]
            out += [indent + stub for stub in STUB.split("\n")]
        elif END in line:
            inside = False
        elif not inside:
            out.append(line)
    return "\n".join(out)


@pytest.fixture(scope="module")
def student_dir(tmp_path_factory, tool) -> Path:
    """A freshly generated student edition (in a temporary folder, not build/)."""
    out = tmp_path_factory.mktemp("course") / "student"
    tool("make_student_edition").make_student_edition(NOTEBOOKS, out)
    return out


def test_every_lesson_and_file_is_in_the_student_edition(student_dir):
    assert sorted(p.name for p in student_dir.glob("*.ipynb")) == [p.name for p in LESSONS]
    # what the lessons read: e.g. checkpoints/shapes-cpu.pt, which lessons 08–11 load (load_or_train)
    assets = [p.relative_to(NOTEBOOKS) for p in NOTEBOOKS.rglob("*") if p.is_file() and p.suffix != ".ipynb"
              and not {".ipynb_checkpoints", "__pycache__"} & set(p.parts)]
    missing = [str(a) for a in assets if not (student_dir / a).is_file()]
    assert not missing, f"not copied into the student edition: {missing}"


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: p.stem)
def test_everything_but_the_solutions_is_intact(lesson, student_dir):
    teacher, student = read(lesson), read(student_dir / lesson.name)
    assert len(student.cells) == len(teacher.cells), "the student edition must keep every cell"
    for index, (t, s) in enumerate(zip(teacher.cells, student.cells)):
        assert s.cell_type == t.cell_type and tags(s) == tags(t), f"cell {index}: type or tags changed"
        assert s.source == without_solutions(t.source), f"cell {index}: only solution blocks may change"
        if s.cell_type == "code":
            assert not s.outputs, f"cell {index}: outputs could give a solution away"


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: p.stem)
def test_no_solution_text_is_left(lesson, student_dir):
    teacher, student = read(lesson), read(student_dir / lesson.name)
    student_text = "\n".join(c.source for c in student.cells)
    assert "BEGIN SOLUTION" not in student_text and "END SOLUTION" not in student_text
    # any solution line that appears nowhere else in the lesson must be gone
    elsewhere = "\n".join(without_solutions(c.source) for c in teacher.cells)
    for cell in teacher.cells:
        for block in solution_blocks(cell.source):
            for line in block:
                if line.strip() and line.strip() not in elsewhere:
                    assert line.strip() not in student_text, f"solution line left in the student edition: {line.strip()!r}"


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: p.stem)
def test_student_cells_are_valid_python(lesson, student_dir):
    """The stub must leave a cell a student can run: a solution block inside an expression (e.g.
    between the braces of a dict) becomes a SyntaxError instead of a NotImplementedError."""
    student = read(student_dir / lesson.name)
    for index, cell in enumerate(student.cells):
        if cell.cell_type == "code" and "YOUR CODE HERE" in cell.source:
            try:
                compile(TransformerManager().transform_cell(cell.source), f"cell {index}", "exec")
            except SyntaxError as error:
                pytest.fail(f"cell {index}: the student's version is not valid Python ({error.msg}, line "
                            f"{error.lineno}); put whole statements between the solution markers:\n{cell.source}")


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: p.stem)
def test_exercises_are_tagged(lesson):
    """Exercise cells are tagged ``exercise`` and their checks ``exercise-check`` (the course's
    convention, which these tests and teachers' tools rely on)."""
    notebook = read(lesson)
    found = exercises(notebook)
    assert found, "every lesson has at least one exercise with a solution block"
    untagged = [f"exercise {e.number} (cells {e.cell}, {e.check})" for e in found if not e.tagged]
    assert not untagged, (f"{', '.join(untagged)}: tag the exercise cell '{EXERCISE_TAG}' and its check "
                          f"cell '{CHECK_TAG}' (View → Cell toolbar / property inspector in JupyterLab)")
    solution_cells = {i for i, c in enumerate(notebook.cells) if has_solution(c)}
    assert solution_cells <= {e.cell for e in found}


def needs_lesson_model(lesson: Path, exercise: Exercise) -> bool:
    """Whether the cells this exercise runs load lesson 07's model (``load_or_train``)."""
    notebook = read(lesson)
    return any("load_or_train(" in notebook.cells[i].source
               for i in dependency_slice(notebook, [exercise.cell, exercise.check]))


CASES = [pytest.param(lesson, exercise, id=f"{lesson.stem}-ex{exercise.number}",
                      marks=[pytest.mark.training] if needs_lesson_model(lesson, exercise) else [])
         for lesson in LESSONS for exercise in exercises(read(lesson))]


@pytest.mark.parametrize("lesson, exercise", CASES)
def test_exercise_check_fails_until_solved(lesson, exercise, student_dir, start_kernel, request):
    teacher, student = read(lesson), read(student_dir / lesson.name)
    prelude = dependency_slice(teacher, [exercise.cell, exercise.check])
    if request.node.get_closest_marker("training"):  # the prelude loads lesson 07's model: the shared one
        (student_dir / LESSON_CHECKPOINT).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(request.getfixturevalue("lesson_checkpoint"), student_dir / LESSON_CHECKPOINT)
    kernel = start_kernel(student_dir)
    start = time.perf_counter()
    for index in prelude:
        error, text = kernel.run(teacher.cells[index].source)
        assert error is None, f"set-up cell {index} failed on its own: {text[-2000:]}"
    prelude_seconds = time.perf_counter() - start

    # the student edition, as handed out: the exercise or its check must fail
    error, text = kernel.run(student.cells[exercise.cell].source)
    if error is None:
        error, text = kernel.run(student.cells[exercise.check].source)
    assert error in ("NotImplementedError", "AssertionError"), (
        f"the unsolved exercise should fail with NotImplementedError or AssertionError, got {error}: {text[-2000:]}")

    # the instructor's solution pasted back: the check passes
    for index in (exercise.cell, exercise.check):
        error, text = kernel.run(teacher.cells[index].source)
        assert error is None, (f"with the solution, cell {index} fails ({error}) after the set-up cells "
                               f"{prelude}: {text[-2000:]}")
    print(f"{lesson.stem} exercise {exercise.number}: set-up cells {prelude} in {prelude_seconds:.1f} s")
