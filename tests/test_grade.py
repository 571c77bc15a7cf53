"""`make grade` (tools/grade.py) grades a class fairly and never crashes on a bad submission.

One grading run serves every test here (one fresh process per exercise): the instructor's solutions for
every lesson (full marks: the cells the grader picks for each exercise are enough), and, for lesson 01,
the untouched student edition (zero) and submissions with every kind of problem.
"""
from __future__ import annotations

import copy
import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from notebook_runner import load_tool
from retinanet_lite.train import LESSON_CHECKPOINT

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
LESSON_01 = "01_boxes_and_iou"
TIMEOUT = 120.0  # per exercise (the grader's default)
LOOP_TIMEOUT = 8.0  # the run with the endless loop: lesson 01's other exercises take 0.1-0.2 s each here, so 8 s
# leaves room for a machine four times slower under load, and the loop burns a core for no longer than that

pytestmark = pytest.mark.notebook


def answer_cell(notebook: dict, exercise: str) -> dict:
    return next(c for c in notebook["cells"] if c["metadata"].get("exercise") == exercise
                and "exercise" in c["metadata"].get("tags", []))


def check_cell(notebook: dict, exercise: str) -> dict:
    return next(c for c in notebook["cells"] if c["metadata"].get("exercise") == exercise
                and "exercise-check" in c["metadata"].get("tags", []))


OTHER_BOX_IOU = '''def box_iou(a, b):
    wh = (torch.min(a[:, None, 2:], b[:, 2:]) - torch.max(a[:, None, :2], b[:, :2])).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    return inter / ((a[:, 2:] - a[:, :2]).prod(1)[:, None] + (b[:, 2:] - b[:, :2]).prod(1) - inter)
'''


def bad_submissions(student_lesson: dict, solved_lesson: dict) -> dict[str, dict | str]:
    """Lesson 01 as handed in by students who did something wrong (name → notebook JSON or raw text).
    ``messy`` collects several independent problems in one notebook, so that one grading covers them."""
    subs: dict[str, dict | str] = {"not_json": '{"cells": [', "not_a_notebook": '{"hello": 1}'}
    messy = copy.deepcopy(solved_lesson)
    answer_cell(messy, "box_formats")["source"] = "def xyxy_to_xywh(boxes:\n"  # a syntax error
    answer_cell(messy, "box_iou")["source"] = "def box_iou(a, b):\n    return B.box_iou(a, b)\n"  # calls the package
    answer_cell(messy, "giou")["source"] = "def giou(a, b):\n    return a[:, 0] * 0\n"  # wrong, and its check
    check_cell(messy, "giou")["source"] = 'print("all good")'  # replaced by a print
    messy["cells"].remove(answer_cell(messy, "iou_pair"))  # an exercise cell deleted
    cells = messy["cells"]
    deleted = next(i for i, c in enumerate(cells) if c["cell_type"] == "markdown" and i > 3)
    del cells[deleted]  # a markdown cell deleted, two cells swapped
    cells[deleted], cells[deleted + 1] = cells[deleted + 1], cells[deleted]
    subs["messy"] = messy
    patches = copy.deepcopy(solved_lesson)
    answer_cell(patches, "box_iou")["source"] = OTHER_BOX_IOU + "B.box_iou = box_iou\n"
    subs["patches_package"] = patches
    return subs


def endless_loop(solved_lesson: dict) -> dict:
    """Lesson 01 whose last exercise never returns (graded in a run of its own, with a short time limit)."""
    loops = copy.deepcopy(solved_lesson)
    answer_cell(loops, "shift_for_iou")["source"] = "def shift_for_iou(side, iou):\n    while True:\n        pass\n"
    return loops


@pytest.fixture(scope="module")
def graded(tmp_path_factory, lesson_checkpoint, shared_runs):
    """Grade the whole class once: (rows as dicts, release id, the output folder)."""
    grade = load_tool("grade")
    base = tmp_path_factory.mktemp("grading")
    release = base / "release"
    load_tool("make_student_edition").make_student_edition(NOTEBOOKS, release)
    for checkpoint in (lesson_checkpoint, *shared_runs):  # as after the teacher has run lessons 07, 09 and 11
        shutil.copy(checkpoint, release / LESSON_CHECKPOINT.parent / checkpoint.name)
    release_id = json.loads((release / "edition.json").read_text())["release"]
    submissions = base / "submissions"
    for student in ("solutions", "untouched"):
        (submissions / student).mkdir(parents=True)
    for path in sorted(release.glob("*.ipynb")):
        student_lesson = json.loads(path.read_text())
        solved = json.loads((NOTEBOOKS / path.name).read_text())
        solved["metadata"].setdefault("workbook", {})["release"] = release_id  # as a student's solved copy
        (submissions / "solutions" / path.name).write_text(json.dumps(solved))
        if path.stem == LESSON_01:  # (the untouched edition of the other lessons: test_student_edition.py)
            (submissions / "untouched" / path.name).write_text(json.dumps(student_lesson))
            for name, notebook in bad_submissions(student_lesson, solved).items():
                (submissions / name).mkdir()
                text = notebook if isinstance(notebook, str) else json.dumps(notebook)
                (submissions / name / path.name).write_text(text)
            (base / "looping" / "loops").mkdir(parents=True)
            (base / "looping" / "loops" / path.name).write_text(json.dumps(endless_loop(solved)))
    out = base / "grades"
    grade.grade(submissions, release, out, timeout=TIMEOUT)
    grade.grade(base / "looping", release, base / "loop-grades", timeout=LOOP_TIMEOUT)
    rows = []
    for folder in (out, base / "loop-grades"):
        with open(folder / "grades.csv", newline="", encoding="utf-8") as f:
            rows += list(csv.DictReader(f))
    return rows, release_id, out, release


def rows_of(graded, student, lesson=None):
    rows = [r for r in graded[0] if r["student"] == student and (lesson is None or r["lesson"] == lesson)]
    assert rows, f"no rows for {student}"
    return rows


def row(graded, student, exercise, lesson=LESSON_01):
    return next(r for r in rows_of(graded, student, lesson) if r["exercise"] == exercise)


def test_csv_has_the_columns_and_every_exercise_of_every_lesson(graded):
    rows, _, out, release = graded
    assert list(rows[0]) == ["student", "lesson", "exercise", "passed", "points", "max_points", "message"]
    for path in sorted(release.glob("*.ipynb")):
        listed = [e["name"] for e in nbformat.read(path, as_version=4).metadata["workbook"]["exercises"]]
        graded_names = [r["exercise"] for r in rows_of(graded, "solutions", path.stem)]
        assert graded_names == listed, f"{path.stem}: exercises graded in a different order or missing"


def test_the_solutions_get_full_marks(graded):
    failed = [(r["lesson"], r["exercise"], r["message"]) for r in rows_of(graded, "solutions") if r["passed"] != "1"]
    assert not failed, f"the instructor's solutions must pass when graded: {failed}"
    assert all(float(r["points"]) == float(r["max_points"]) > 0 for r in rows_of(graded, "solutions"))


def test_the_untouched_student_edition_gets_zero(graded):
    rows = rows_of(graded, "untouched")
    assert all(r["passed"] == "0" and float(r["points"]) == 0 for r in rows)
    assert all("not written yet" in r["message"] for r in rows), [r["message"] for r in rows if "not written" not in r["message"]]


@pytest.mark.parametrize("student", ["not_json", "not_a_notebook"])
def test_a_file_that_is_not_a_notebook_gets_rows_that_say_so(graded, student):
    rows = rows_of(graded, student)
    assert len(rows) == len(rows_of(graded, "solutions", LESSON_01))
    assert all(r["passed"] == "0" and "not a valid notebook" in r["message"] for r in rows)


def test_calling_or_patching_the_package_earns_nothing(graded):
    assert "ready-made" in row(graded, "messy", "box_iou")["message"]
    assert row(graded, "messy", "box_iou")["passed"] == "0"
    assert "was replaced" in row(graded, "patches_package", "box_iou")["message"]
    assert row(graded, "patches_package", "box_iou")["passed"] == "0"
    assert row(graded, "patches_package", "encode")["passed"] == "1"  # the other answers still count


def test_an_endless_loop_is_stopped_and_costs_only_its_exercise(graded):
    assert "time limit of 8 s" in row(graded, "loops", "shift_for_iou")["message"]
    assert row(graded, "loops", "giou")["passed"] == "1"


def test_a_syntax_error_costs_only_its_own_exercise(graded):
    assert "SyntaxError" in row(graded, "messy", "box_formats")["message"]
    assert row(graded, "messy", "decode")["passed"] == "1"  # decode uses the formats: the package's version


def test_edited_checks_earn_nothing_and_changes_are_reported(graded):
    giou = row(graded, "messy", "giou")
    assert giou["passed"] == "0" and "giou disagrees" in giou["message"]  # the released check ran, not the print
    assert "deleted" in giou["message"] and "edited" in giou["message"] and "reordered" in giou["message"]


def test_a_deleted_exercise_cell_gets_a_row(graded):
    r = row(graded, "messy", "iou_pair")
    assert r["passed"] == "0" and "exercise cell was deleted" in r["message"]


def test_one_feedback_page_per_student(graded):
    rows, release_id, out, _ = graded
    for student in {r["student"] for r in rows} - {"loops"}:
        page = (out / f"{student}.html").read_text()
        assert release_id in page
        for r in rows_of(graded, student):
            assert r["exercise"] in page
    assert "ready-made" in (out / "messy.html").read_text()


def test_a_missing_release_is_a_clear_error(tmp_path):
    (tmp_path / "subs").mkdir()
    with pytest.raises(ValueError, match="not a student edition"):
        load_tool("grade").grade(tmp_path / "subs", tmp_path / "nothing", tmp_path / "out")


PRELOAD_PROBE = """
import json, sys
for name in json.loads(sys.argv[1]):
    __import__(name)
before = set(sys.modules)
sys.path.insert(0, "tools")
import grade
new = {m.split(".")[0] for m in set(sys.modules) - before} - {"grade", "lesson_cells"} - set(sys.stdlib_module_names)
print(json.dumps(sorted(new)))
"""


def test_the_fork_server_preloads_every_package_a_grading_process_imports():
    """Each grading process imports tools/grade.py again (to find the function it runs): a package that import
    pulls in and the fork server has not loaded is paid for once per exercise (nbformat alone cost 2.3 s of a
    trivial exercise's 2.7 s: bench/README.md, *Grading*)."""
    preload = load_tool("grade").PRELOAD
    found = subprocess.run([sys.executable, "-c", PRELOAD_PROBE, json.dumps(preload)], cwd=ROOT, capture_output=True,
                           text=True, check=True)
    assert json.loads(found.stdout) == [], "add these to grade.PRELOAD"
