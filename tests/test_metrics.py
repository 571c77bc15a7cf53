"""COCO mAP: analytic cases, and agreement with pycocotools on many random detection sets."""
import contextlib
import io
import math

import numpy as np
import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from retinanet_lite.metrics import evaluate, to_coco_ground_truth, to_coco_results


def det(boxes, scores, labels):
    return {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            "scores": torch.tensor(scores, dtype=torch.float32), "labels": torch.tensor(labels, dtype=torch.long)}


def gt(boxes, labels):
    return {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            "labels": torch.tensor(labels, dtype=torch.long)}


def test_perfect_detections_score_one():
    targets = [gt([[10, 10, 50, 50], [60, 60, 90, 100]], [0, 1]), gt([], [])]
    predictions = [det([[10, 10, 50, 50], [60, 60, 90, 100]], [0.9, 0.8], [0, 1]), det([], [], [])]
    result = evaluate(predictions, targets, num_classes=2)
    for key in ("map", "map_50", "map_75", "mar_100"):
        assert result[key] == pytest.approx(1.0), key
    assert result["per_class"] == pytest.approx({0: 1.0, 1: 1.0})


def test_a_higher_scoring_false_positive_halves_precision():
    # ranking: FP (0.9) then TP (0.8) → precision 1/2 at recall 1 → AP = 0.5 at every threshold
    targets = [gt([[0, 0, 10, 10]], [0])]
    predictions = [det([[50, 50, 60, 60], [0, 0, 10, 10]], [0.9, 0.8], [0, 0])]
    assert evaluate(predictions, targets)["map"] == pytest.approx(0.5)
    # the same FP ranked after the TP costs nothing
    predictions = [det([[50, 50, 60, 60], [0, 0, 10, 10]], [0.7, 0.8], [0, 0])]
    assert evaluate(predictions, targets)["map"] == pytest.approx(1.0)


def test_iou_thresholds_count_in_tenths():
    # a box of IoU 0.72 with its gt is a hit at t = 0.50 … 0.70 (5 of 10 thresholds)
    targets = [gt([[0, 0, 100, 100]], [0])]
    predictions = [det([[0, 0, 100, 72]], [0.9], [0])]
    result = evaluate(predictions, targets)
    assert (result["map"], result["map_50"], result["map_75"]) == pytest.approx((0.5, 1.0, 0.0))


def test_duplicates_are_false_positives_and_wrong_class_counts_nothing():
    targets = [gt([[0, 0, 10, 10], [20, 20, 30, 30]], [0, 0])]
    predictions = [det([[0, 0, 10, 10], [0, 0, 10, 10], [20, 20, 30, 30]], [0.9, 0.8, 0.7], [0, 0, 1])]
    result = evaluate(predictions, targets, num_classes=2)
    # class 0: TP, FP → recall 0.5 with precision 1; class 1 has no ground truth (NaN, left out of the mean)
    assert result["map"] == pytest.approx(51 / 101) and math.isnan(result["per_class"][1])


def test_bad_input():
    with pytest.raises(ValueError, match="2 predictions but 1 targets"):
        evaluate([det([], [], [])] * 2, [gt([], [])])
    with pytest.raises(ValueError, match="at least one image"):
        evaluate([], [])


def random_case(rng: np.random.Generator, num_images: int, num_classes: int):
    """Ground truth of many sizes (small/medium/large) and detections that are jittered copies,
    duplicates, wrong classes and pure false positives, with tied scores."""
    targets, predictions = [], []
    for _ in range(num_images):
        n = rng.integers(0, 6)
        xy = rng.uniform(0, 200, (n, 2))
        wh = rng.uniform(4, 150, (n, 2))
        boxes = np.concatenate([xy, xy + wh], 1)
        labels = rng.integers(0, num_classes, n)
        targets.append(gt(boxes.tolist(), labels.tolist()))
        jitter = boxes + rng.normal(0, 0.08, (n, 4)) * np.repeat(wh, 2, 1)
        dup = boxes[rng.random(n) < 0.3]
        fp_xy = rng.uniform(0, 200, (rng.integers(0, 4), 2))
        fp = np.concatenate([fp_xy, fp_xy + rng.uniform(4, 100, fp_xy.shape)], 1)
        d = np.concatenate([jitter, dup, fp]).reshape(-1, 4)
        d = np.concatenate([np.minimum(d[:, :2], d[:, 2:]), np.maximum(d[:, :2], d[:, 2:])], 1)
        dl = np.concatenate([np.where(rng.random(n) < 0.1, rng.integers(0, num_classes, n), labels),
                             labels[: len(dup)] if len(dup) else [], rng.integers(0, num_classes, len(fp))])
        scores = np.round(rng.uniform(0, 1, len(d)), 1)  # rounding makes many ties
        predictions.append(det(d.tolist(), scores.tolist(), dl.astype(int).tolist()))
    return predictions, targets


def pycocotools_metrics(predictions, targets, num_classes):
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = to_coco_ground_truth(targets, num_classes)
        coco.createIndex()
        results = to_coco_results(predictions)
        detections = coco.loadRes(results) if results else COCO()
        evaluator = COCOeval(coco, detections, "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    precision = evaluator.eval["precision"][:, :, :, 0, -1]  # [T, R, K] area=all, maxDets=100
    per_class = [precision[:, :, k][precision[:, :, k] > -1].mean() if (precision[:, :, k] > -1).any() else math.nan
                 for k in range(num_classes)]
    s = evaluator.stats
    return {"map": s[0], "map_50": s[1], "map_75": s[2], "map_small": s[3], "map_medium": s[4], "map_large": s[5],
            "mar_100": s[8]}, per_class


@pytest.mark.parametrize("seed", range(6))
def test_agrees_with_pycocotools(seed):
    rng = np.random.default_rng(seed)
    num_classes = int(rng.integers(1, 4))
    predictions, targets = random_case(rng, num_images=int(rng.integers(5, 40)), num_classes=num_classes)
    ours = evaluate(predictions, targets, num_classes=num_classes)
    theirs, per_class = pycocotools_metrics(predictions, targets, num_classes)
    for key, value in theirs.items():
        if value == -1:  # pycocotools' "no ground truth in this area range"
            assert math.isnan(ours[key]), key
        else:
            assert ours[key] == pytest.approx(value, abs=1e-3), key
    for k in range(num_classes):
        assert ours["per_class"][k] == pytest.approx(per_class[k], abs=1e-3, nan_ok=True)
    assert 0.05 < ours["map"] < 0.95  # a non-trivial case


def test_agrees_with_pycocotools_beyond_100_detections_per_image():
    # only each image's 100 best detections per class count; padding with low-scoring true
    # positives beyond the 100th must change nothing, exactly as in pycocotools
    rng = np.random.default_rng(7)
    xy = rng.uniform(0, 300, (130, 2))
    boxes = np.concatenate([xy, xy + 20], 1).tolist()
    targets = [gt(boxes, [0] * 130)]
    fp = np.concatenate([xy + 400, xy + 420], 1).tolist()
    predictions = [det(fp[:100] + boxes, [0.9] * 100 + [0.5] * 130, [0] * 230)]
    ours = evaluate(predictions, targets)
    theirs, _ = pycocotools_metrics(predictions, targets, 1)
    assert ours["map"] == pytest.approx(theirs["map"], abs=1e-3) and ours["map"] == pytest.approx(0.0)
    assert ours["num_images"] == 1
