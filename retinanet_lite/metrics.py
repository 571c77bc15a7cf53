"""COCO-style mean average precision, computed exactly as pycocotools does (without crowd boxes).

For every class, IoU threshold t ∈ {0.50, 0.55, …, 0.95} and area range:

1. per image, detections are taken in decreasing score order (at most ``max_detections``) and each
   is greedily matched to the unmatched ground-truth box it overlaps most, if that IoU ≥ t;
2. all images' detections are pooled and sorted by score; running true/false positive counts give
   a precision–recall curve; precision is made monotone (the "envelope");
3. AP is the mean of the envelope sampled at the 101 recalls 0, 0.01, …, 1.

``map`` (AP@[.5:.95]) averages over thresholds and over the classes that have ground truth;
``map_50`` and ``map_75`` use one threshold. Ground-truth boxes outside an area range are "ignored"
for that range (a detection matched to them counts neither way), as in pycocotools. Areas are box
areas (w·h) in pixels.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from torch import Tensor

from .boxes import box_iou, xyxy_to_xywh
from .data.coco import coco_ground_truth

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
RECALL_POINTS = np.linspace(0.0, 1.0, 101)
AREA_RANGES = {"all": (0.0, 1e10), "small": (0.0, 32.0 ** 2), "medium": (32.0 ** 2, 96.0 ** 2),
               "large": (96.0 ** 2, 1e10)}


@dataclass
class _Matches:
    """One (image, class) pair's matching result at every IoU threshold."""

    scores: np.ndarray  # [D] detection scores, sorted decreasing
    matched: np.ndarray  # [T, D] bool: detection is a true positive at threshold t
    ignored: np.ndarray  # [T, D] bool: detection counts neither way (matched an ignored gt / out of range)
    num_gt: int  # ground-truth boxes not ignored


def match_image(det_boxes: Tensor, det_scores: Tensor, gt_boxes: Tensor, area_range: tuple[float, float],
                iou_thresholds: np.ndarray = IOU_THRESHOLDS, max_detections: int = 100) -> _Matches:
    """Greedy COCO matching of one image's detections of one class (``[D, 4]``, ``[D]``) to its gt ``[G, 4]``.

    Boxes are xyxy pixels. Higher-scoring detections choose first; each picks, among the gts not yet
    taken at that threshold with IoU ≥ t, the one with the highest IoU — preferring gts inside the
    area range over ignored ones.
    """
    order = np.argsort(-det_scores.numpy(), kind="mergesort")[:max_detections]
    det_boxes, scores = det_boxes[order], det_scores.numpy()[order]
    gt_area = _area(gt_boxes)
    gt_ignored = (gt_area < area_range[0]) | (gt_area > area_range[1])
    ious = box_iou(det_boxes.double(), gt_boxes.double()).numpy() if len(gt_boxes) else np.zeros((len(order), 0))
    thresholds = np.minimum(iou_thresholds, 1 - 1e-10)[:, None]  # [T, 1]
    num_t, num_d = len(iou_thresholds), len(order)
    taken = np.zeros((num_t, len(gt_boxes)), dtype=bool)
    matched_gt = np.full((num_t, num_d), -1)
    for d in range(num_d if len(gt_boxes) else 0):  # with no gt every detection stays unmatched
        free = (ious[d][None, :] >= thresholds) & ~taken  # [T, G]
        for group in (~gt_ignored, gt_ignored):  # gts in range first, ignored ones only as a fallback
            candidates = free & group[None, :] & (matched_gt[:, d:d + 1] < 0)
            best = _last_argmax(np.where(candidates, ious[d][None, :], -1.0))
            hit = candidates.any(axis=1)
            matched_gt[hit, d] = best[hit]
            taken[hit, best[hit]] = True
    det_area = _area(det_boxes)
    out_of_range = (det_area < area_range[0]) | (det_area > area_range[1])
    matched = matched_gt >= 0
    ignored = np.where(matched, gt_ignored[np.maximum(matched_gt, 0)] if len(gt_boxes) else False,
                       out_of_range[None, :])
    return _Matches(scores, matched, ignored, int((~gt_ignored).sum()))


def _area(boxes: Tensor) -> np.ndarray:
    """``[N, 4]`` xyxy → ``[N]`` areas as float64 NumPy."""
    boxes = boxes.double()
    return ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).numpy()


def _last_argmax(values: np.ndarray) -> np.ndarray:
    """Row-wise argmax that returns the *last* of equal maxima (pycocotools' tie rule)."""
    return values.shape[1] - 1 - np.argmax(values[:, ::-1], axis=1)


def precision_recall(matches: Sequence[_Matches], max_detections: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Pool one class's per-image matches → (precision envelope ``[T, 101]``, final recall ``[T]``).

    Both are −1 when the class has no (non-ignored) ground truth.
    """
    num_t = len(IOU_THRESHOLDS)
    num_gt = sum(m.num_gt for m in matches)
    if num_gt == 0:
        return -np.ones((num_t, len(RECALL_POINTS))), -np.ones(num_t)
    scores = np.concatenate([m.scores[:max_detections] for m in matches])
    order = np.argsort(-scores, kind="mergesort")
    matched = np.concatenate([m.matched[:, :max_detections] for m in matches], axis=1)[:, order]
    ignored = np.concatenate([m.ignored[:, :max_detections] for m in matches], axis=1)[:, order]
    tp = np.cumsum(matched & ~ignored, axis=1, dtype=float)
    fp = np.cumsum(~matched & ~ignored, axis=1, dtype=float)
    recall = tp / num_gt
    precision = tp / (tp + fp + np.spacing(1))
    envelope = np.maximum.accumulate(precision[:, ::-1], axis=1)[:, ::-1]  # best precision at ≥ this recall
    sampled = np.zeros((num_t, len(RECALL_POINTS)))
    for t in range(num_t):
        index = np.searchsorted(recall[t], RECALL_POINTS, side="left")
        inside = index < len(recall[t])
        sampled[t, inside] = envelope[t, index[inside]]
    final_recall = recall[:, -1] if recall.shape[1] else np.zeros(num_t)
    return sampled, final_recall


def evaluate(predictions: Sequence[dict[str, Tensor]], targets: Sequence[dict[str, Tensor]],
             num_classes: int | None = None, class_names: Sequence[str] | None = None,
             max_detections: int = 100) -> dict[str, Any]:
    """COCO metrics of ``predictions`` (``[{boxes, scores, labels}]``) against ``targets`` (``[{boxes, labels}]``).

    Returns ``map`` (AP@[.5:.95]), ``map_50``, ``map_75``, ``map_small`` / ``map_medium`` /
    ``map_large``, ``mar_100`` (recall with 100 detections per image), ``per_class`` (AP@[.5:.95]
    per class, keyed by name when ``class_names`` is given, NaN for a class without ground truth)
    and ``num_images``. Metrics are NaN when there is no ground truth at all.
    """
    if len(predictions) != len(targets):
        raise ValueError(f"got {len(predictions)} predictions but {len(targets)} targets: one each per image")
    if len(targets) == 0:
        raise ValueError("evaluate needs at least one image")
    predictions = [{k: v.detach().cpu() for k, v in p.items()} for p in predictions]
    targets = [{k: v.detach().cpu() for k, v in t.items()} for t in targets]
    if num_classes is None:
        num_classes = len(class_names) if class_names is not None else 1 + max(
            [int(d["labels"].max()) for d in [*predictions, *targets] if len(d["labels"])], default=0)
    results: dict[str, Any] = {}
    for area_name, area_range in AREA_RANGES.items():
        curves = [_class_curves(predictions, targets, k, area_range, max_detections) for k in range(num_classes)]
        precision = np.stack([c[0] for c in curves])  # [K, T, 101]
        recall = np.stack([c[1] for c in curves])  # [K, T]
        suffix = "" if area_name == "all" else f"_{area_name}"
        results[f"map{suffix}"] = _mean_valid(precision)
        if area_name == "all":
            results["map_50"] = _mean_valid(precision[:, 0])
            results["map_75"] = _mean_valid(precision[:, 5])
            results["mar_100"] = _mean_valid(recall)
            names = class_names if class_names is not None else range(num_classes)
            results["per_class"] = {name: _mean_valid(precision[k]) for k, name in enumerate(names)}
    results["num_images"] = len(targets)
    return results


def _class_curves(predictions: Sequence[dict[str, Tensor]], targets: Sequence[dict[str, Tensor]], label: int,
                  area_range: tuple[float, float], max_detections: int) -> tuple[np.ndarray, np.ndarray]:
    """Precision envelope ``[T, 101]`` and final recall ``[T]`` of class ``label`` over all images."""
    matches = []
    for prediction, target in zip(predictions, targets):
        mine = prediction["labels"] == label
        matches.append(match_image(prediction["boxes"][mine], prediction["scores"][mine],
                                   target["boxes"][target["labels"] == label], area_range,
                                   max_detections=max_detections))
    return precision_recall(matches, max_detections)


def _mean_valid(values: np.ndarray) -> float:
    """Mean of the entries that are not −1 (pycocotools' "no ground truth" marker); NaN if none."""
    valid = values[values > -1]
    return float(valid.mean()) if valid.size else math.nan


# ------------------------------------------------------------------------------------ COCO JSON
def to_coco_ground_truth(targets: Sequence[dict[str, Tensor]], num_classes: int,
                         image_sizes: Sequence[tuple[int, int]] | None = None) -> dict[str, Any]:
    """Targets → a COCO ground-truth dict (image ids ``1..N``, category ids ``label + 1``, xywh boxes).

    Category ``k + 1`` is named ``str(k)``; images are ``{"id", "height", "width"}``, 0 × 0 when
    ``image_sizes`` (``(height, width)`` per image) is not given. Built by
    :func:`retinanet_lite.data.coco_ground_truth`, the same dict :func:`retinanet_lite.data.write_coco` saves.
    """
    sizes = image_sizes if image_sizes is not None else [(0, 0)] * len(targets)
    return coco_ground_truth(targets, [str(k) for k in range(num_classes)],
                             [{"height": height, "width": width} for height, width in sizes])


def to_coco_results(predictions: Sequence[dict[str, Tensor]], category_ids: Sequence[int] | None = None,
                    image_ids: Sequence[int] | None = None) -> list[dict[str, Any]]:
    """Predictions → COCO result entries ``{image_id, category_id, bbox (xywh), score}``.

    ``image_ids[i]`` is prediction ``i``'s image id (default ``i + 1``); ``category_ids[label]`` the
    file's category id (default ``label + 1``, matching :func:`to_coco_ground_truth` and
    :func:`retinanet_lite.data.write_coco`).
    """
    results = []
    for i, prediction in enumerate(predictions):
        image_id = image_ids[i] if image_ids is not None else i + 1
        boxes = xyxy_to_xywh(prediction["boxes"].detach().cpu().double()).tolist()
        for box, score, label in zip(boxes, prediction["scores"].tolist(), prediction["labels"].tolist()):
            category = category_ids[label] if category_ids is not None else label + 1
            results.append({"image_id": int(image_id), "category_id": int(category), "bbox": box, "score": float(score)})
    return results


__all__ = ["evaluate", "match_image", "precision_recall", "to_coco_ground_truth", "to_coco_results",
           "IOU_THRESHOLDS", "RECALL_POINTS", "AREA_RANGES"]
