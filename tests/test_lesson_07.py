"""Lesson 07 (training): the schedule explorer computes the right numbers, and the test run's shared model
is the one the lesson would train (its exercises' checks: test_workbook_lesson07.py)."""
import ast

import nbformat
import pytest
from IPython.core.inputtransformer2 import TransformerManager

from notebook_runner import LESSON_07_TRAINING, NOTEBOOKS

from retinanet_lite.train import lr_factor, read_checkpoint
from retinanet_lite.widgets import draw_schedule, schedule_explorer

def test_the_test_run_trains_the_lessons_model_by_the_lessons_recipe(lesson_checkpoint):
    """The shared model of the test run (notebook_runner.lesson_checkpoint) is trained with the very
    arguments of lesson 07's training cell, so that the lesson under nbval reuses it. (This test trains it,
    first thing in ``make test``: conftest.TRAINS_FIRST.)"""
    cells = nbformat.read(NOTEBOOKS / "07_training.ipynb", as_version=4).cells
    calls = [node for cell in cells if cell.cell_type == "code" and "train_or_reuse(" in cell.source
             for node in ast.walk(ast.parse(TransformerManager().transform_cell(cell.source)))
             if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "train_or_reuse"]
    assert len(calls) == 1, "lesson 07 trains its model with one train_or_reuse call"
    (call,) = calls
    assert [ast.unparse(a) for a in call.args] == ["LESSON_CHECKPOINT", repr(LESSON_07_TRAINING["preset"])]
    recipe = {k.arg: ast.literal_eval(k.value) for k in call.keywords if k.arg not in ("retrain", "callback")}
    assert {"preset": LESSON_07_TRAINING["preset"], **recipe} == LESSON_07_TRAINING
    saved = read_checkpoint(lesson_checkpoint)["recipe"]
    assert saved["seed"] == LESSON_07_TRAINING["seed"] and saved["train_config"]["eval_every"] == LESSON_07_TRAINING["eval_every"]


def test_draw_schedule_numbers():
    result = draw_schedule(peak_lr=1e-3, warmup_steps=100, steps=1000)
    assert result["lr_at_warmup_end"] == pytest.approx(1e-3)
    assert result["lr_at_half"] == pytest.approx(1e-3 * lr_factor(500, 100, 1000))
    assert 0.4e-3 < result["mean_lr"] < 0.6e-3  # a cosine spends about half the peak on average


def test_schedule_explorer_redraws_when_a_slider_moves():
    explorer = schedule_explorer()
    before = explorer.result["mean_lr"]
    explorer.children[0].value = explorer.children[0].value * 10  # peak lr
    assert explorer.result["mean_lr"] == pytest.approx(10 * before)
