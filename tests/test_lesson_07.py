"""Lesson 07 (training): its loss self-check has teeth, the schedule explorer computes the right numbers,
and the test run's shared model is the one the lesson would train."""
import ast

import nbformat
import pytest
from IPython.core.inputtransformer2 import TransformerManager

from notebook_runner import LESSON_07_TRAINING, NOTEBOOKS

from retinanet_lite.train import lr_factor
from retinanet_lite.widgets import draw_schedule, schedule_explorer

# Averages over anchors instead of normalising by the number of positives.
MEAN_OVER_ANCHORS = '''
def batch_loss(logits, deltas, anchors, targets, config):
    cls_total, box_total, num_positive = 0.0, 0.0, 0
    for image_logits, image_deltas, target in zip(logits, deltas, targets):
        boxes, labels = target["boxes"].to(anchors.device), target["labels"].to(anchors.device)
        matches = match_anchors(anchors, boxes, config.pos_iou, config.neg_iou, config.allow_low_quality)
        positive = matches >= 0
        wanted = torch.zeros_like(image_logits)
        wanted[positive, labels[matches[positive]]] = 1.0
        counted = matches != IGNORE
        cls_total = cls_total + focal_loss(image_logits[counted], wanted[counted], config.focal_alpha,
                                           config.focal_gamma, "mean")
        predicted = decode_boxes(anchors[positive], image_deltas[positive], config.box_weights)
        box_total = box_total + giou_loss(predicted, boxes[matches[positive]], "mean")
    return {"classification": cls_total / len(targets), "regression": box_total / len(targets)}
'''

# Forgets to leave the ignored anchors out of the classification loss.
COUNTS_IGNORED = '''
def batch_loss(logits, deltas, anchors, targets, config):
    cls_total, box_total, num_positive = 0.0, 0.0, 0
    for image_logits, image_deltas, target in zip(logits, deltas, targets):
        boxes, labels = target["boxes"].to(anchors.device), target["labels"].to(anchors.device)
        matches = match_anchors(anchors, boxes, config.pos_iou, config.neg_iou, config.allow_low_quality)
        positive = matches >= 0
        wanted = torch.zeros_like(image_logits)
        wanted[positive, labels[matches[positive]]] = 1.0
        cls_total = cls_total + focal_loss(image_logits, wanted, config.focal_alpha, config.focal_gamma, "sum")
        predicted = decode_boxes(anchors[positive], image_deltas[positive], config.box_weights)
        box_total = box_total + giou_loss(predicted, boxes[matches[positive]], "sum")
        num_positive += int(positive.sum())
    num_positive = max(num_positive, 1)
    return {"classification": cls_total / num_positive, "regression": box_total / num_positive}
'''


@pytest.mark.parametrize("wrong", [MEAN_OVER_ANCHORS, COUNTS_IGNORED], ids=["mean-over-anchors", "counts-ignored"])
def test_loss_check_catches_a_wrong_loss(wrong, check_rejects):
    check_rejects("07_training.ipynb", "impl-loss", wrong, "check-loss")


def test_the_test_run_trains_the_lessons_model_by_the_lessons_recipe():
    """The shared model of the test run (notebook_runner.lesson_checkpoint) is trained with the very
    arguments of lesson 07's training cell, so that the lesson under nbval reuses it."""
    cells = nbformat.read(NOTEBOOKS / "07_training.ipynb", as_version=4).cells
    calls = [node for cell in cells if cell.cell_type == "code" and "train_or_reuse(" in cell.source
             for node in ast.walk(ast.parse(TransformerManager().transform_cell(cell.source)))
             if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "train_or_reuse"]
    assert len(calls) == 1, "lesson 07 trains its model with one train_or_reuse call"
    (call,) = calls
    assert [ast.unparse(a) for a in call.args] == ["LESSON_CHECKPOINT", repr(LESSON_07_TRAINING["preset"])]
    recipe = {k.arg: ast.literal_eval(k.value) for k in call.keywords if k.arg not in ("retrain", "callback")}
    assert {"preset": LESSON_07_TRAINING["preset"], **recipe} == LESSON_07_TRAINING


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
