"""Lesson 08 (inference and mAP): what the score and NMS thresholds keep, and the precision–recall curve
behind AP.

Boxes are ``xyxy`` in pixels of the image as given; a prediction or target is
``{"boxes" [N, 4], "scores" [N] (predictions only), "labels" [N]}``.
"""
from __future__ import annotations

import functools
from typing import Any

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.patches import Rectangle
from torch import Tensor

from ..boxes import box_iou
from ..data import CLASS_NAMES, VAL_SEED_OFFSET, ShapesDataset, Target
from ..metrics import AREA_RANGES, IOU_THRESHOLDS, RECALL_POINTS, match_image, precision_recall
from ..model import RetinaNet
from ..viz import CLASS_COLOURS, draw_boxes, show_image
from .explore import explore


def detection_candidates(model: RetinaNet, image: Tensor, score_thresh: float = 0.05) -> tuple[Tensor, Tensor, Tensor]:
    """The candidates of ``model`` (a RetinaNet in eval mode) for one image ``[3, H, W]``, *before* NMS.

    Every (anchor, class) pair whose probability is above ``score_thresh``, at most
    ``model.config.topk_candidates`` per pyramid level, decoded and clipped to the image
    (:meth:`RetinaNet.candidates`). Returns boxes ``[C, 4]`` (xyxy pixels of ``image``), scores ``[C]``
    and labels ``[C]``, best score first.
    """
    found = model.candidates([image], score_thresh)[0]
    return found["boxes"], found["scores"], found["labels"]


def greedy_match(boxes: Tensor, scores: Tensor, labels: Tensor, target: Target,
                 iou_threshold: float = 0.5) -> tuple[Tensor, Tensor]:
    """Match detections (``[D, 4]`` xyxy, ``[D]``, ``[D]``) to ``target`` as COCO does at one IoU threshold.

    Best score first, each detection takes the unmatched ground-truth box of its class that it overlaps
    most, if that IoU ≥ ``iou_threshold``. Returns ``(true_positive [D] bool, found [G] bool)``.
    """
    true_positive = torch.zeros(len(boxes), dtype=torch.bool)
    found = torch.zeros(len(target["boxes"]), dtype=torch.bool)
    if len(boxes) == 0 or len(found) == 0:
        return true_positive, found
    ious = box_iou(boxes, target["boxes"])  # [D, G]
    for d in scores.argsort(descending=True, stable=True).tolist():
        candidates = (target["labels"] == labels[d]) & ~found & (ious[d] >= iou_threshold)
        if candidates.any():
            best = torch.where(candidates, ious[d], -1.0).argmax()
            found[best], true_positive[d] = True, True
    return true_positive, found


def draw_thresholds(score_thresh: float = 0.05, nms_iou: float = 0.5, image_index: int = 0, *, model: RetinaNet,
                    dataset: Any, class_names: tuple[str, ...] = CLASS_NAMES) -> dict[str, int]:
    """Image ``image_index`` of ``dataset`` through ``model`` with the given score and NMS thresholds.

    Left: every candidate above ``score_thresh`` (the top-k per level), before NMS. Right: what
    class-wise NMS at ``nms_iou`` keeps (at most ``model.config.max_detections``; dotted below score
    0.5), with the ground truth dashed white. Detections are counted as true or false positives at
    IoU ≥ 0.5 (same class).

    Returns ``{"candidates", "detections", "true_positives", "false_positives", "missed"}``.
    """
    image, target = dataset[image_index]
    found = model.candidates([image], score_thresh)[0]  # before NMS, best score first
    kept = model.nms(found, nms_iou)
    true_positive, matched = greedy_match(kept["boxes"], kept["scores"], kept["labels"], target)
    result = {"candidates": len(found["boxes"]), "detections": len(kept["boxes"]),
              "true_positives": int(true_positive.sum()), "false_positives": int((~true_positive).sum()),
              "missed": int((~matched).sum())}

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 5.2))
    show_image(image, left)
    for box, score, label in zip(found["boxes"].tolist(), found["scores"].tolist(), found["labels"].tolist()):
        (x1, y1, x2, y2), colour = box, CLASS_COLOURS[label]
        left.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=colour,
                                 linewidth=0.5 + 1.5 * score, alpha=0.3 + 0.7 * score))
    left.set_title(f"before NMS: {result['candidates']} candidates with score > {score_thresh:.2f}\n"
                   "(line width and opacity grow with the score)", fontsize=9)
    show_image(image, right)
    draw_boxes(right, target["boxes"], colour="white", linestyle="--", linewidth=1.0)
    shown = {k: v.flip(0) for k, v in kept.items()}  # worst first, so the best boxes and captions end up on top
    for sure, style, width in ((False, ":", 1.0), (True, "-", 2.0)):
        part = (shown["scores"] >= 0.5) == sure
        draw_boxes(right, shown["boxes"][part], shown["labels"][part], shown["scores"][part], class_names,
                   linestyle=style, linewidth=width)
    right.set_title(f"after class-wise NMS at IoU {nms_iou:.2f}: {result['detections']} detections "
                    f"(dotted: score < 0.5)\n{result['true_positives']} correct, {result['false_positives']} false, "
                    f"{result['missed']} of {len(matched)} objects missed (IoU ≥ 0.5)", fontsize=9)
    for ax in (left, right):
        ax.axis("off")
    fig.tight_layout()
    return result


def thresholds_explorer(model: RetinaNet, dataset: Any = None) -> widgets.interactive:
    """Sliders for the score threshold, the NMS IoU threshold and the image of :func:`draw_thresholds`.

    ``dataset`` defaults to 32 validation shapes images (``seed=VAL_SEED_OFFSET``).
    """
    dataset = dataset if dataset is not None else ShapesDataset(32, 128, seed=VAL_SEED_OFFSET)
    return explore(
        functools.partial(draw_thresholds, model=model, dataset=dataset),
        score_thresh=widgets.FloatSlider(value=0.05, min=0.01, max=0.95, step=0.01, description="score >"),
        nms_iou=widgets.FloatSlider(value=0.5, min=0.1, max=1.0, step=0.05, description="NMS IoU >"),
        image_index=widgets.IntSlider(value=0, min=0, max=len(dataset) - 1, description="image"),
    )


def class_matches(predictions: list[Target], targets: list[Target], label: int) -> list:
    """COCO matches (:func:`retinanet_lite.metrics.match_image`) of class ``label`` in every image,
    at the ten IoU thresholds 0.50, 0.55, …, 0.95 and for all object sizes."""
    return [match_image(p["boxes"][p["labels"] == label], p["scores"][p["labels"] == label],
                        t["boxes"][t["labels"] == label], AREA_RANGES["all"])
            for p, t in zip(predictions, targets)]


def draw_pr_curve(iou_threshold: float = 0.5, label: int = 0, *, predictions: list[Target],
                  targets: list[Target], class_names: tuple[str, ...] = CLASS_NAMES) -> dict[str, Any]:
    """The precision–recall curve of class ``label`` at one COCO IoU threshold (0.50, 0.55, …, 0.95).

    Left: precision and recall after each detection (pooled over all images, best score first), the
    monotone envelope, and the envelope sampled at the 101 recalls whose mean is AP. Right: AP at all
    ten thresholds, the chosen one marked. Returns ``{"ap", "ap_per_threshold" [10], "final_recall"}``.
    """
    t = int(np.argmin(np.abs(IOU_THRESHOLDS - iou_threshold)))
    matches = class_matches(predictions, targets, label)
    sampled, final_recall = precision_recall(matches)  # [10, 101], [10]
    scores = np.concatenate([m.scores for m in matches])
    order = np.argsort(-scores, kind="mergesort")
    true_positive = np.concatenate([m.matched[t] for m in matches])[order]
    num_gt = sum(m.num_gt for m in matches)
    recall = np.cumsum(true_positive) / num_gt
    precision = np.cumsum(true_positive) / np.arange(1, len(true_positive) + 1)
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    ap_per_threshold = sampled.mean(axis=1)
    result = {"ap": float(ap_per_threshold[t]), "ap_per_threshold": ap_per_threshold.tolist(),
              "final_recall": float(final_recall[t])}

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4), gridspec_kw={"width_ratios": [1.4, 1]})
    left.fill_between(RECALL_POINTS, sampled[t], step="post", alpha=0.2, color="tab:blue",
                      label=f"area = AP = {result['ap']:.3f}")
    left.plot(recall, precision, color="tab:grey", linewidth=1, label="precision after each detection")
    left.plot(recall, envelope, color="tab:blue", linewidth=2, label="envelope (best precision at ≥ this recall)")
    left.plot(RECALL_POINTS, sampled[t], ".", color="tab:blue", markersize=3, label="101 sampled recalls")
    left.set(xlim=(0, 1.02), ylim=(0, 1.02), xlabel="recall", ylabel="precision",
             title=f"{class_names[label]}: {len(scores)} detections, {num_gt} objects, IoU ≥ {IOU_THRESHOLDS[t]:.2f}")
    left.legend(loc="lower left", fontsize=8)
    right.plot(IOU_THRESHOLDS, ap_per_threshold, "o-", color="tab:blue")
    right.plot([IOU_THRESHOLDS[t]], [result["ap"]], "o", color="black", markersize=9, fillstyle="none")
    right.axhline(ap_per_threshold.mean(), color="tab:orange", linestyle="--",
                  label=f"mean = AP@[.5:.95] = {ap_per_threshold.mean():.3f}")
    right.set(xlim=(0.48, 0.97), ylim=(0, 1.02), xlabel="IoU threshold", ylabel="AP",
              title=f"{class_names[label]}: AP falls as the IoU threshold rises")
    right.legend(loc="lower left", fontsize=8)
    for ax in (left, right):
        ax.title.set_fontsize(10)
    fig.tight_layout()
    return result


def pr_explorer(predictions: list[Target], targets: list[Target],
                class_names: tuple[str, ...] = CLASS_NAMES) -> widgets.interactive:
    """Pick the IoU threshold and the class of :func:`draw_pr_curve`."""
    return explore(
        functools.partial(draw_pr_curve, predictions=predictions, targets=targets, class_names=class_names),
        iou_threshold=widgets.SelectionSlider(options=[round(float(t), 2) for t in IOU_THRESHOLDS], value=0.5,
                                              description="IoU ≥"),
        label=widgets.Dropdown(options=[(name, k) for k, name in enumerate(class_names)], value=0,
                               description="class"),
    )
