"""Lesson 07 (training): its loss self-check has teeth, and the schedule explorer computes the right numbers."""
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
from nbclient.exceptions import CellExecutionError  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from notebook_runner import run_lesson  # noqa: E402

from retinanet_lite.train import lr_factor  # noqa: E402
from retinanet_lite.widgets import draw_schedule, schedule_explorer  # noqa: E402

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
def test_loss_check_catches_a_wrong_loss(wrong):
    with pytest.raises(CellExecutionError, match="AssertionError"):
        run_lesson("07_training.ipynb", replace={"impl-loss": wrong}, stop_after="check-loss")


def test_the_correct_loss_passes_its_check():
    run_lesson("07_training.ipynb", stop_after="check-loss")


def test_draw_schedule_numbers():
    result = draw_schedule(peak_lr=1e-3, warmup_steps=100, steps=1000)
    assert result["lr_at_warmup_end"] == pytest.approx(1e-3)
    assert result["lr_at_half"] == pytest.approx(1e-3 * lr_factor(500, 100, 1000))
    assert 0.4e-3 < result["mean_lr"] < 0.6e-3  # a cosine spends about half the peak on average
    plt.close("all")


def test_schedule_explorer_redraws_when_a_slider_moves():
    explorer = schedule_explorer()
    before = explorer.result["mean_lr"]
    explorer.children[0].value = explorer.children[0].value * 10  # peak lr
    assert explorer.result["mean_lr"] == pytest.approx(10 * before)
    plt.close("all")
