"""The student edition (``make student``, tools/make_student_edition.py) has teeth.

* every lesson is there, with the same cells, the same markdown and the same code outside the
  solution blocks; no solution text is left;
* Run All on the untouched student edition of every lesson reaches the last cell: each check reports
  its exercise unsolved and the lesson goes on with the package's version; figures and widgets appear;
  the last cell lists every exercise. Here for the lessons that need no trained model (early in ``make test``);
  tests/test_student_edition_trained.py runs the others, once the test run's shared models exist.

That each exercise passes with the instructor's solution and fails as handed out, run on its own with
only the cells it needs, is tests/test_grade.py's job (the grader does exactly that).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest
from IPython.core.inputtransformer2 import TransformerManager

from notebook_runner import load_tool, loads_a_model
from student_run_all import assert_reaches_the_last_cell

lesson_cells = load_tool("lesson_cells")
from lesson_cells import BEGIN, CHECK_TAG, END, EXERCISE_TAG, exercises, has_solution, tags  # noqa: E402


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


def test_every_lesson_and_file_is_in_the_student_edition(tmp_path, tool):
    # what the lessons read: e.g. checkpoints/shapes-cpu.pt, which lessons 08–12 load (load_or_train) — every
    # file but the lessons, caches and the lock files of training (make_student_edition.not_course_files). Listed
    # before the edition is made: under `make test` other workers save checkpoints meanwhile.
    left_out = tool("make_student_edition").not_course_files
    assets = [p.relative_to(NOTEBOOKS) for p in NOTEBOOKS.rglob("*") if p.is_file()
              and not left_out(str(p.parent), [p.name]) and not {".ipynb_checkpoints", "__pycache__"} & set(p.parts)]
    edition = tmp_path / "student"
    tool("make_student_edition").make_student_edition(NOTEBOOKS, edition)
    assert sorted(p.name for p in edition.glob("*.ipynb")) == [p.name for p in LESSONS]
    missing = [str(a) for a in assets if not (edition / a).is_file()]
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


@pytest.mark.parametrize("lesson", [p for p in LESSONS if not loads_a_model(p)], ids=lambda p: p.stem)
def test_run_all_on_the_untouched_student_edition_reaches_the_last_cell(lesson, student_run):
    """As a student who has not solved anything presses Run All (lessons 00–06: no trained model needed)."""
    assert_reaches_the_last_cell(lesson, student_run(lesson))


def test_the_edition_file_names_a_release(student_dir):
    edition = json.loads((student_dir / "edition.json").read_text())
    assert edition["edition"] == "student" and re.fullmatch(r"[0-9a-f]{12}", edition["release"])
    for path in sorted(student_dir.glob("*.ipynb")):
        assert read(path).metadata["workbook"]["release"] == edition["release"]
