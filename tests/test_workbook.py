"""The workbook's machinery (retinanet_lite.workbook.core): modes, fallbacks, summaries, the package watch."""
from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
import torch

from retinanet_lite import boxes as B
from retinanet_lite import workbook
from retinanet_lite.workbook import core

ROOT = Path(__file__).resolve().parent.parent
LESSONS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def stub(*args, **kwargs):
    raise NotImplementedError()


@pytest.fixture
def fresh_status(monkeypatch):
    monkeypatch.setattr(core, "_STATUS", {})


@pytest.fixture
def student_edition(tmp_path, monkeypatch):
    """Work in a folder that holds a student edition's edition.json (and no mode variable)."""
    (tmp_path / "edition.json").write_text(json.dumps({"edition": "student", "release": "abc"}))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(core.MODE_VARIABLE, raising=False)


def test_modes(tmp_path, monkeypatch):
    monkeypatch.delenv(core.MODE_VARIABLE, raising=False)
    monkeypatch.chdir(tmp_path)
    assert workbook.is_strict("box_iou"), "the instructor edition (no edition.json) must be strict"
    (tmp_path / "edition.json").write_text('{"edition": "student"}')
    assert not workbook.is_strict("box_iou"), "the student edition goes on after a failing check"
    monkeypatch.setenv(core.MODE_VARIABLE, "strict")
    assert workbook.is_strict("box_iou")
    monkeypatch.setenv(core.MODE_VARIABLE, "grade:box_iou")
    assert workbook.is_strict("box_iou") and not workbook.is_strict("encode")
    monkeypatch.setenv(core.MODE_VARIABLE, "lenient")
    assert not workbook.is_strict("box_iou")
    monkeypatch.setenv(core.MODE_VARIABLE, "sloppy")
    with pytest.raises(ValueError, match="expected 'strict'"):
        workbook.is_strict("box_iou")


def test_a_broken_edition_file_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv(core.MODE_VARIABLE, raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "edition.json").write_text("{nope")
    with pytest.raises(ValueError, match="edition.json is not valid JSON"):
        workbook.is_strict("box_iou")


def test_student_edition_falls_back_and_says_so(student_edition, fresh_status, capsys):
    used = workbook.check("box_iou", stub)
    assert used is B.box_iou
    err = capsys.readouterr().err
    assert "✗ box_iou not solved yet" in err
    assert "box_iou: yours does not pass yet, so the rest of this lesson uses retinanet_lite.boxes.box_iou" in err


def test_a_passing_answer_is_used(student_edition, fresh_status, capsys):
    def mine(a, b):
        inter = (torch.min(a[:, None, 2:], b[:, 2:]) - torch.max(a[:, None, :2], b[:, :2])).clamp(min=0).prod(-1)
        return inter / (B.box_area(a)[:, None] + B.box_area(b) - inter)
    assert workbook.check("box_iou", mine) is mine
    assert "✓ box_iou" in capsys.readouterr().out


def test_strict_mode_raises_with_the_named_mistake(monkeypatch, fresh_status):
    monkeypatch.setenv(core.MODE_VARIABLE, "strict")

    def no_log(anchors, boxes, weights=(1.0, 1.0, 1.0, 1.0)):
        a, b = B.xyxy_to_cxcywh(anchors), B.xyxy_to_cxcywh(boxes)
        return torch.cat([(b[:, :2] - a[:, :2]) / a[:, 2:], b[:, 2:] / a[:, 2:]], dim=1) * torch.tensor(weights)
    with pytest.raises(workbook.ExerciseFailed, match="encode: the log is missing"):
        workbook.check("encode", no_log)


def test_checking_suppresses_in_the_student_edition_and_raises_in_strict(student_edition, fresh_status, capsys,
                                                                           monkeypatch):
    with workbook.checking("giou"):
        assert False, "giou disagrees with torchvision"
    assert "✗ giou does not pass: giou disagrees with torchvision" in capsys.readouterr().err
    monkeypatch.setenv(core.MODE_VARIABLE, "strict")
    with pytest.raises(workbook.ExerciseFailed, match="giou disagrees"):
        with workbook.checking("giou"):
            assert False, "giou disagrees with torchvision"
    with pytest.raises(ValueError, match="not registered"):
        with workbook.checking("no_such_exercise"):
            pass


def test_summary_has_one_line_per_exercise(student_edition, fresh_status, capsys):
    workbook.check("box_iou", stub)
    with workbook.checking("giou"):
        pass
    lines = workbook.summary("01")
    names = [e.name for e in workbook.lesson_exercises("01")]
    assert len(lines) == len(names)
    assert any(line.startswith("✗ box_iou") and "ran on retinanet_lite.boxes.box_iou" in line for line in lines)
    assert any(line.startswith("✓ giou: solved") for line in lines)
    assert any(line.startswith("· encode") for line in lines)  # its check has not run
    assert f"1 of {len(names)} exercises solved" in capsys.readouterr().out


def test_an_unknown_exercise_is_a_clear_error():
    with pytest.raises(ValueError, match="no checker is registered for exercise 'nope'"):
        workbook.check("nope", stub)


def test_the_watch_sees_calls_through_any_name():
    from retinanet_lite.boxes import box_iou as renamed
    status = workbook.run_checker("box_iou", lambda a, b: renamed(a, b) + 0)
    assert status.state == "failed" and "ready-made" in status.message


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: p.stem)
def test_each_lesson_lists_its_exercises_in_the_workbook_order(lesson):
    """The notebook's metadata, its exercise cells and the workbook's registry name the same exercises
    in the same order; every check cell belongs to an exercise; the last cell prints the summary."""
    notebook = nbformat.read(lesson, as_version=4)
    meta = notebook.metadata.get("workbook")
    assert meta, "the lesson has no workbook metadata"
    number = meta["lesson"]
    assert lesson.stem.startswith(number)
    listed = [e["name"] for e in meta["exercises"]]
    cells = [c.metadata.get("exercise") for c in notebook.cells if "exercise" in c.metadata.get("tags", [])]
    checks = [c.metadata.get("exercise") for c in notebook.cells if "exercise-check" in c.metadata.get("tags", [])]
    assert listed == cells == checks, "exercise cells, check cells and metadata disagree"
    assert listed == [e.name for e in workbook.lesson_exercises(number)], "retinanet_lite.workbook lists them otherwise"
    assert all(float(e.get("points", 1)) > 0 for e in meta["exercises"])
    assert notebook.cells[-1].source.strip() == f'workbook.summary("{number}")'


def test_the_course_has_enough_exercises():
    """Issue 13: at least 30 exercises and 350 solution lines across the course."""
    exercises, lines = 0, 0
    for lesson in LESSONS:
        notebook = nbformat.read(lesson, as_version=4)
        exercises += len(notebook.metadata["workbook"]["exercises"])
        for cell in notebook.cells:
            inside = False
            for line in cell.source.split("\n"):
                if "### BEGIN SOLUTION" in line:
                    inside = True
                elif "### END SOLUTION" in line:
                    inside = False
                elif inside and line.strip() and not line.strip().startswith("#"):
                    lines += 1
    assert exercises >= 30 and lines >= 350, (exercises, lines)
