"""The student edition (``make student``, tools/make_student_edition.py) has teeth.

* every lesson is there, with the same cells, the same markdown and the same code outside the
  solution blocks; no solution text is left;
* Run All on the untouched student edition of every lesson reaches the last cell: each check reports
  its exercise unsolved and the lesson goes on with the package's version; figures and widgets appear;
  the last cell lists every exercise. Lessons that load lesson 07's model get the test run's shared one
  (the ``lesson_checkpoint`` fixture), and lessons 09 and 11 their saved runs (``shared_runs``).

That each exercise passes with the instructor's solution and fails as handed out, run on its own with
only the cells it needs, is tests/test_grade.py's job (the grader does exactly that).
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import nbformat
import pytest
from IPython.core.inputtransformer2 import TransformerManager

from notebook_runner import Kernel, load_tool

lesson_cells = load_tool("lesson_cells")
from lesson_cells import BEGIN, CHECK_TAG, END, EXERCISE_TAG, exercises, has_solution, tags  # noqa: E402
from retinanet_lite.train import LESSON_CHECKPOINT  # noqa: E402


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


def test_every_lesson_and_file_is_in_the_student_edition(student_dir, tool):
    assert sorted(p.name for p in student_dir.glob("*.ipynb")) == [p.name for p in LESSONS]
    # what the lessons read: e.g. checkpoints/shapes-cpu.pt, which lessons 08–12 load (load_or_train) — every
    # file but the lessons, caches and the lock files of training (make_student_edition.not_course_files)
    left_out = tool("make_student_edition").not_course_files
    assets = [p.relative_to(NOTEBOOKS) for p in NOTEBOOKS.rglob("*") if p.is_file()
              and not left_out(str(p.parent), [p.name]) and not {".ipynb_checkpoints", "__pycache__"} & set(p.parts)]
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


#: Output types that show a figure or a widget.
FIGURE, WIDGET = "image/png", "application/vnd.jupyter.widget-view+json"


@pytest.fixture(scope="module")
def student_run(student_dir, lesson_checkpoint, shared_runs):
    """Run All on the untouched student edition of a lesson, in a fresh kernel in the edition's folder (as
    JupyterLab does): {cell index: (exception name or None, output messages)}. (Cell by cell through
    jupyter_client: nbclient can wait out a whole cell timeout after a widget cell, jupyter/nbclient#312.)"""
    (student_dir / LESSON_CHECKPOINT).parent.mkdir(parents=True, exist_ok=True)
    for checkpoint in (lesson_checkpoint, *shared_runs):  # what lessons 07, 09 and 11 would otherwise train
        shutil.copy2(checkpoint, student_dir / LESSON_CHECKPOINT.parent / checkpoint.name)

    def run(lesson: Path) -> dict[int, tuple[str | None, list]]:
        kernel, results = Kernel(student_dir), {}
        try:
            for index, cell in enumerate(read(student_dir / lesson.name).cells):
                if cell.cell_type == "code":
                    results[index] = kernel.execute(cell.source, timeout=1800)
        finally:
            kernel.close()
        return results
    return run


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: p.stem)
def test_run_all_on_the_untouched_student_edition_reaches_the_last_cell(lesson, student_run):
    """As a student who has not solved anything presses Run All: every cell runs (only the checks report
    failure, on stderr), every figure and widget appears, and the last cell lists each exercise as
    running on the package's version."""
    teacher, ran = read(lesson), student_run(lesson)
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


def test_the_edition_file_names_a_release(student_dir):
    edition = json.loads((student_dir / "edition.json").read_text())
    assert edition["edition"] == "student" and re.fullmatch(r"[0-9a-f]{12}", edition["release"])
    for path in sorted(student_dir.glob("*.ipynb")):
        assert read(path).metadata["workbook"]["release"] == edition["release"]
