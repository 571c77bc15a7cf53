"""Run All on the untouched student edition of the lessons that load a trained model (07–12) reaches the last
cell (tests/test_student_edition.py has the others and the rest of the student edition's tests). They get the test
run's shared models, as after the teacher has run lessons 07, 09 and 11: lesson 07's (``lesson_checkpoint``) and
the saved runs of lessons 09 and 11 (``shared_runs``).
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from notebook_runner import NOTEBOOKS, loads_a_model
from student_run_all import assert_reaches_the_last_cell
from retinanet_lite.train import LESSON_CHECKPOINT

LESSONS = [p for p in sorted(NOTEBOOKS.glob("*.ipynb")) if loads_a_model(p)]


@pytest.fixture(scope="module")
def with_models(student_dir: Path, lesson_checkpoint: Path, shared_runs: list[Path]) -> Path:
    """The student edition with the checkpoints that lessons 07, 09 and 11 would otherwise train."""
    (student_dir / LESSON_CHECKPOINT).parent.mkdir(parents=True, exist_ok=True)
    for checkpoint in (lesson_checkpoint, *shared_runs):
        shutil.copy2(checkpoint, student_dir / LESSON_CHECKPOINT.parent / checkpoint.name)
    return student_dir


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: p.stem)
def test_run_all_on_the_untouched_student_edition_reaches_the_last_cell(lesson, with_models, student_run):
    assert_reaches_the_last_cell(lesson, student_run(lesson))
