"""Lesson 08 (inference and mAP): its explorers compute the right numbers."""
import pytest
import torch

from retinanet_lite.boxes import class_wise_nms
from retinanet_lite.data import VAL_SEED_OFFSET, ShapesDataset
from retinanet_lite.metrics import evaluate
from retinanet_lite.widgets import (
    detection_candidates, draw_pr_curve, draw_thresholds, greedy_match, pr_explorer, thresholds_explorer,
)

# The self-checks of the inference and AP exercises (wrong decode, NMS across classes, AP without the
# envelope, …) are the workbook's checkers now: tests/test_workbook_lesson08.py proves each named mistake.


@pytest.fixture(scope="module")
def model(lesson_model):
    return lesson_model


@pytest.fixture(scope="module")
def val_set():
    return ShapesDataset(16, 128, seed=VAL_SEED_OFFSET)


@pytest.fixture(scope="module")
def predictions(model, val_set):
    with torch.no_grad():
        return model([val_set[i][0] for i in range(len(val_set))]), [val_set[i][1] for i in range(len(val_set))]


def test_candidates_and_nms_reproduce_the_model(model, val_set):
    """The explorer's own pipeline, at the config's thresholds, gives exactly the model's detections."""
    for i in range(4):
        image = val_set[i][0]
        boxes, scores, labels = detection_candidates(model, image, model.config.score_thresh)
        kept = class_wise_nms(boxes, scores, labels, model.config.nms_iou)[: model.config.max_detections]
        with torch.no_grad():
            expected = model([image])[0]
        assert torch.equal(labels[kept], expected["labels"])
        assert torch.allclose(scores[kept], expected["scores"])
        assert torch.allclose(boxes[kept], expected["boxes"], atol=1e-4)


def test_greedy_match_counts_duplicates_wrong_classes_and_misses():
    target = {"boxes": torch.tensor([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0], [50.0, 50.0, 60.0, 60.0]]),
              "labels": torch.tensor([0, 1, 0])}
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0],  # exact hit
                          [0.0, 0.0, 10.0, 9.0],  # duplicate of the same object, lower score
                          [20.0, 20.0, 30.0, 30.0],  # right place, wrong class
                          [50.0, 50.0, 70.0, 70.0]])  # right class, IoU 0.25
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6])
    labels = torch.tensor([0, 0, 0, 0])
    true_positive, found = greedy_match(boxes, scores, labels, target)
    assert true_positive.tolist() == [True, False, False, False]
    assert found.tolist() == [True, False, False]
    true_positive, found = greedy_match(boxes, scores, labels, target, iou_threshold=0.2)
    assert true_positive.tolist() == [True, False, False, True] and found.tolist() == [True, False, True]
    empty = greedy_match(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.long), target)
    assert empty[0].numel() == 0 and not empty[1].any()


def test_draw_thresholds_counts_and_monotone_knobs(model, val_set):
    for image_index in (0, 2):
        num_objects = len(val_set[image_index][1]["boxes"])
        previous = None
        for score in (0.05, 0.3, 0.6, 0.9):
            result = draw_thresholds(score, 0.5, image_index, model=model, dataset=val_set)
            assert result["true_positives"] + result["false_positives"] == result["detections"] <= result["candidates"]
            assert result["true_positives"] + result["missed"] == num_objects
            if previous is not None:  # a higher score threshold never adds candidates or detections
                assert result["candidates"] <= previous["candidates"]
                assert result["detections"] <= previous["detections"]
            previous = result
        no_nms = draw_thresholds(0.05, 1.0, image_index, model=model, dataset=val_set)
        strict = draw_thresholds(0.05, 0.3, image_index, model=model, dataset=val_set)
        assert no_nms["detections"] == min(no_nms["candidates"], model.config.max_detections)
        assert strict["detections"] <= no_nms["detections"]
    default = draw_thresholds(0.05, 0.5, 0, model=model, dataset=val_set)
    assert default["detections"] < default["candidates"], "NMS removes the duplicates of image 0"


def test_draw_pr_curve_agrees_with_evaluate(predictions):
    outputs, targets = predictions
    metrics = evaluate(outputs, targets, num_classes=3)
    results = [draw_pr_curve(0.5, label, predictions=outputs, targets=targets) for label in range(3)]
    assert abs(sum(r["ap"] for r in results) / 3 - metrics["map_50"]) < 1e-9
    assert abs(sum(sum(r["ap_per_threshold"]) / 10 for r in results) / 3 - metrics["map"]) < 1e-9
    strict = draw_pr_curve(0.9, 0, predictions=outputs, targets=targets)
    assert strict["ap"] == pytest.approx(results[0]["ap_per_threshold"][8])
    assert strict["ap"] <= results[0]["ap"] and 0 <= strict["final_recall"] <= results[0]["final_recall"] <= 1


def test_explorers_redraw_when_a_control_changes(model, val_set, predictions):
    explorer = thresholds_explorer(model, val_set)
    before = explorer.result
    explorer.children[0].value = 0.9  # score threshold
    assert explorer.result["candidates"] < before["candidates"]
    explorer.children[2].value = 3  # another image
    assert explorer.result != before

    outputs, targets = predictions
    explorer = pr_explorer(outputs, targets)
    at_half = explorer.result["ap"]
    explorer.children[0].value = 0.9  # IoU threshold
    assert explorer.result["ap"] < at_half
