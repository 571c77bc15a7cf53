"""Answers checked by hash (retinanet_lite.workbook.answers): normalisation, and what a predict-first check
says when unanswered, wrong or right, in the student edition and in the strict (instructor, grader) mode."""
from __future__ import annotations

import json
import re

import nbformat
import pytest

from retinanet_lite import workbook
from retinanet_lite.workbook import answers, core
from retinanet_lite.workbook.answers import PREDICTIONS, check_prediction, digest, normalise, prediction
from workbook_checks import NOTEBOOKS, prediction_answer

NAME = "predict_iou_shift"  # a registered predict-first question (lesson 01; answer 0.67, two decimals)


@pytest.fixture
def fresh_status(monkeypatch):
    monkeypatch.setattr(core, "_STATUS", {})


@pytest.fixture
def student_edition(tmp_path, monkeypatch, fresh_status):
    (tmp_path / "edition.json").write_text(json.dumps({"edition": "student", "release": "abc"}))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(core.MODE_VARIABLE, raising=False)


@pytest.fixture
def strict(monkeypatch, fresh_status):
    monkeypatch.setenv(core.MODE_VARIABLE, "strict")


def test_numbers_are_normalised():
    assert normalise(0.5) == normalise("0.50") == normalise(" .5 ") == "0.5"
    assert normalise(3) == normalise(3.0) == normalise("3") == normalise("3.000") == "3"
    assert normalise(0.1 + 0.2) == "0.3"  # rounded to DECIMALS places
    assert normalise(2 / 3, decimals=2) == normalise("0.6666", decimals=2) == normalise(0.665, decimals=2) == "0.67"
    assert normalise(-0.0) == "0" and normalise("1e-4") == "0.0001" and normalise(100) == "100"
    assert normalise(-0.004, decimals=2) == "0"


def test_text_is_normalised():
    assert normalise(" C ") == normalise("c") == "c"
    assert normalise(None) == "" and normalise(True) == "true" and normalise("nan") == "nan"
    with pytest.raises(ValueError, match="decimals"):
        normalise(1, decimals=-1)


def test_digest_is_twelve_hex_digits_of_sha256():
    import hashlib
    assert digest("q", " B") == hashlib.sha256(b"q:b").hexdigest()[:12]
    assert re.fullmatch(r"[0-9a-f]{12}", digest(1, 0.25))
    assert digest("q", 0.5) == digest("q", "0.50") != digest("r", 0.5)
    assert digest("q", 0.67, decimals=2) == digest("q", 0.6666, decimals=2) != digest("q", 0.6666)


def test_lesson_12_quiz_digests_are_unchanged():
    """Lesson 12's quiz stored its digests before the helper existed: the helper reproduces them."""
    cells = nbformat.read(NOTEBOOKS / "12_what_next.ipynb", as_version=4).cells
    check = next(c.source for c in cells if c.metadata.get("exercise") == "quiz" and "exercise-check" in c.metadata["tags"])
    expected = eval(re.search(r"EXPECTED = (\{.*?\n\})", check, re.S).group(1))
    answers_of = prediction_answer_quiz()
    assert {q: digest(q, answers_of[q]) for q in expected} == expected
    assert "workbook.digest" in check and "hashlib" not in check


def prediction_answer_quiz() -> dict:
    cells = nbformat.read(NOTEBOOKS / "12_what_next.ipynb", as_version=4).cells
    source = next(c.source for c in cells if c.metadata.get("exercise") == "quiz" and "exercise" in c.metadata["tags"])
    namespace: dict = {}
    exec(source, namespace)
    return namespace["quiz_answers"]()


def test_unanswered_says_answer_first_and_goes_on_in_the_student_edition(student_edition, capsys):
    def stub():
        raise NotImplementedError()

    for unanswered in (stub, lambda: None, None, "  "):
        check_prediction(NAME, unanswered)
        err = capsys.readouterr().err
        assert f"✗ {NAME} not solved yet" in err and "answer first, then move the slider" in err
        assert core._STATUS[NAME].state == core.UNSOLVED
    assert "not written yet" in core._STATUS[NAME].message  # the grader's word for an untouched exercise


def test_wrong_says_so_with_the_hint_but_not_the_answer(student_edition, capsys):
    check_prediction(NAME, lambda: 0.5)
    captured = capsys.readouterr()
    assert f"✗ {NAME} does not pass" in captured.err and "not right yet" in captured.err
    assert PREDICTIONS[NAME].hint in captured.err
    assert "0.67" not in captured.err + captured.out and PREDICTIONS[NAME].explanation not in captured.out
    assert core._STATUS[NAME].state == core.FAILED


def test_right_prints_the_explanation(student_edition, capsys):
    for right in (0.67, "0.670", lambda: 2 / 3):  # rounded to the question's two decimals
        check_prediction(NAME, right)
        out = capsys.readouterr().out
        assert f"✓ {NAME}" in out and PREDICTIONS[NAME].explanation in out
    assert core._STATUS[NAME].state == core.PASSED
    assert any(line.startswith(f"✓ {NAME}: solved") for line in workbook.summary("01"))


def test_strict_mode_raises_when_unanswered_or_wrong(strict, capsys):
    with pytest.raises(workbook.ExerciseFailed, match="answer first"):
        check_prediction(NAME, None)
    with pytest.raises(workbook.ExerciseFailed, match="not right yet"):
        check_prediction(NAME, 0.6)
    check_prediction(NAME, 0.67)
    assert PREDICTIONS[NAME].explanation in capsys.readouterr().out


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="12 lower-case hex digits"):
        prediction("predict_nothing", "01", "xyz", "because")
    assert "predict_nothing" not in workbook.EXERCISES
    with pytest.raises(ValueError, match="no predict-first question 'count_anchors'"):
        check_prediction("count_anchors", "a")
    with pytest.raises(ValueError, match="state must be"):
        core.record("count_anchors", "maybe")


def test_every_prediction_is_an_exercise_of_its_lesson_with_the_instructors_answer_right():
    """Each registered question is declared in its lesson, sits in the notebook before a widget, and the
    instructor edition's answer matches the stored digest."""
    assert len(PREDICTIONS) >= 5
    for name, question in PREDICTIONS.items():
        lesson = workbook.EXERCISES[name].lesson
        path = next(NOTEBOOKS.glob(f"{lesson}_*.ipynb"))
        assert digest(name, prediction_answer(path.name, name), question.decimals) == question.expected, name
        cells = nbformat.read(path, as_version=4).cells
        check = next(i for i, c in enumerate(cells) if c.metadata.get("exercise") == name
                     and "exercise-check" in c.metadata.get("tags", []))
        assert cells[check].source.strip() == f'workbook.check_prediction("{name}", {name})'
        widget = next(c.source for c in cells[check + 1:] if c.cell_type == "code" and "exercise" not in c.metadata)
        assert "explorer(" in widget, f"{name}: the next cell after the question(s) must be the widget"
    assert answers.UNANSWERED.startswith("not written yet")
