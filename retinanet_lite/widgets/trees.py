"""Lesson 11 (tree crowns in aerial photographs): which crowns a detector finds, which it misses, and
what its false positives are made of, as the score threshold moves.

Boxes are ``xyxy`` in pixels of the image as given; a prediction is ``{"boxes" [D, 4], "scores" [D],
"labels" [D]}`` and a target ``{"boxes" [G, 4], "labels" [G]}`` (one class, "tree"). The model runs once
per image beforehand (:func:`retinanet_lite.train.run_inference`), so the explorer redraws instantly.
"""
from __future__ import annotations

import functools
import math
from typing import Any

import ipywidgets as widgets
import matplotlib.pyplot as plt
import torch
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from torch import Tensor

from ..boxes import box_area, check_boxes, intersection_union
from ..data import Target, check_image, check_target
from ..data.trees import TREE_CLASS_NAMES
from ..viz import draw_boxes, show_image
from .explore import explore
from .inference import greedy_match

#: A missed crown is *small* when √(width · height) < this many pixels: 2.4 m at the NEON images'
#: 10 cm pixels, and the anchor size of the ``trees-cpu`` preset's P4 level (smaller crowns are left to
#: P3, the finest level).
SMALL_CROWN = 24
#: A false positive is *in shadow* when its box is darker on average than this quantile of the
#: image's pixels (brightness = mean over R, G, B).
SHADOW_QUANTILE = 0.25
#: A false positive *merges* crowns when it covers at least this share of each of two or more crowns.
MERGE_COVER = 0.5

#: Colours that stay readable on green and brown canopy.
FOUND_COLOUR, FALSE_COLOUR, MISSED_COLOUR = "cyan", "magenta", "yellow"


def crown_errors(prediction: Target, target: Target, image: Tensor, score_threshold: float = 0.3,
                 iou_threshold: float = 0.5) -> dict[str, Any]:
    """Error analysis of one image ``[3, H, W]`` (float in [0, 1]) and its predicted and true crowns.

    The detections with score ≥ ``score_threshold`` are kept (``D`` of them, in their given order) and
    matched to the ``G`` crowns of ``target`` by :func:`~retinanet_lite.widgets.greedy_match` at
    IoU ≥ ``iou_threshold``. Every kept detection that is not a true positive is a false positive, and
    may be

    * **merged**: it covers at least :data:`MERGE_COVER` of each of two or more crowns
      (intersection / crown area) — neighbouring crowns taken for one;
    * **in shadow**: the mean brightness of the pixels inside its box is below the image's
      :data:`SHADOW_QUANTILE` quantile of brightness — a dark shadow taken for a crown.

    Returns ``{"boxes" [D, 4], "scores" [D]`` (the kept detections), ``"true_positive" [D]``,
    ``"merged" [D]``, ``"in_shadow" [D]``, ``"found" [G]``, ``"missed_small" [G]`` (bool tensors; a
    small crown is a missed one with √area < :data:`SMALL_CROWN` px), and the integers ``"num_found"``,
    ``"num_crowns"``, ``"num_false_positives"}``.
    """
    check_image(image)
    check_target(target, len(TREE_CLASS_NAMES))
    if not isinstance(prediction, dict) or not {"boxes", "scores", "labels"} <= prediction.keys():
        raise ValueError("prediction must be a dict with 'boxes', 'scores' and 'labels'")
    check_boxes(prediction["boxes"], name="prediction['boxes']")
    if not len(prediction["boxes"]) == len(prediction["scores"]) == len(prediction["labels"]):
        raise ValueError(f"prediction has {len(prediction['boxes'])} boxes, {len(prediction['scores'])} scores "
                         f"and {len(prediction['labels'])} labels")
    keep = prediction["scores"] >= score_threshold
    boxes, scores, labels = (prediction[k][keep].cpu() for k in ("boxes", "scores", "labels"))
    crowns = target["boxes"].cpu()
    true_positive, found = greedy_match(boxes, scores, labels, {"boxes": crowns, "labels": target["labels"].cpu()},
                                        iou_threshold)
    false_positive = ~true_positive

    inter, _ = intersection_union(boxes, crowns)  # [D, G]
    cover = inter / box_area(crowns).clamp(min=torch.finfo(inter.dtype).tiny)[None, :]
    merged = false_positive & ((cover >= MERGE_COVER).sum(dim=1) >= 2)

    brightness = image.detach().cpu().mean(dim=0)  # [H, W]
    dark = torch.quantile(brightness.flatten(), SHADOW_QUANTILE)
    height, width = brightness.shape
    box_brightness = []
    for x1, y1, x2, y2 in boxes.tolist():  # every pixel the box touches, inside the image
        inside = brightness[max(0, math.floor(y1)):min(height, math.ceil(y2)),
                            max(0, math.floor(x1)):min(width, math.ceil(x2))]
        box_brightness.append(float(inside.mean()) if inside.numel() else float("inf"))
    in_shadow = false_positive & (torch.tensor(box_brightness) < dark)

    missed_small = ~found & (box_area(crowns).sqrt() < SMALL_CROWN)
    return {"boxes": boxes, "scores": scores, "true_positive": true_positive, "merged": merged,
            "in_shadow": in_shadow, "found": found, "missed_small": missed_small, "num_found": int(found.sum()),
            "num_crowns": len(found), "num_false_positives": int(false_positive.sum())}


def draw_crowns(score_threshold: float = 0.3, split: str = "val", index: int = 0, *,
                predictions: dict[str, list[Target]], datasets: dict[str, Any]) -> dict[str, Any]:
    """Image ``index`` of ``datasets[split]`` with its crowns and the detections ``predictions[split][index]``.

    ``datasets`` maps split names to datasets (anything with ``len`` whose items are ``(image, target)``)
    and ``predictions`` the same names to one prediction per image, computed beforehand. Kept detections
    (score ≥ ``score_threshold``) are cyan when correct (IoU ≥ 0.5 with a crown), magenta when false —
    hatched and marked "M" when merged, marked "S" when in shadow (:func:`crown_errors`); missed crowns
    are dashed yellow. Returns the :func:`crown_errors` dict.
    """
    if split not in datasets or split not in predictions:
        raise ValueError(f"unknown split {split!r}; choose one of {[s for s in datasets if s in predictions]}")
    dataset = datasets[split]
    if len(predictions[split]) != len(dataset):
        raise ValueError(f"split {split!r} has {len(dataset)} images but {len(predictions[split])} predictions")
    if not 0 <= index < len(dataset):
        raise ValueError(f"index {index} is out of range for split {split!r} ({len(dataset)} images)")
    image, target = dataset[index]
    errors = crown_errors(predictions[split][index], target, image, score_threshold)
    false_positive = ~errors["true_positive"]
    missed = ~errors["found"]

    fig, ax = plt.subplots(figsize=(7, 6.5), layout="constrained")  # makes room for the legend
    show_image(image, ax)
    draw_boxes(ax, target["boxes"][missed], colour=MISSED_COLOUR, linestyle="--", linewidth=1.5)
    draw_boxes(ax, errors["boxes"][errors["true_positive"]], colour=FOUND_COLOUR, linewidth=1.5)
    draw_boxes(ax, errors["boxes"][false_positive], colour=FALSE_COLOUR, linewidth=2.0)
    for (x1, y1, x2, y2), merged, shadow in zip(errors["boxes"].tolist(), errors["merged"].tolist(),
                                                errors["in_shadow"].tolist()):
        if merged:
            ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, hatch="/", edgecolor=FALSE_COLOUR,
                                   linewidth=0))
        letters = "M" * merged + "S" * shadow
        if letters:
            ax.text(x1 + 1, y1 + 1, letters, fontsize=8, fontweight="bold", color="white", va="top",
                    bbox={"facecolor": FALSE_COLOUR, "pad": 1, "edgecolor": "none"})
    key = [Line2D([], [], color=FOUND_COLOUR, linewidth=2, label="found crown (true positive)"),
           Line2D([], [], color=MISSED_COLOUR, linewidth=2, linestyle="--", label="missed crown"),
           Line2D([], [], color=FALSE_COLOUR, linewidth=2, label="false positive"),
           Patch(facecolor="none", edgecolor=FALSE_COLOUR, hatch="/", label="M: crowns merged into one box"),
           Line2D([], [], color=FALSE_COLOUR, marker="$S$", markersize=8, linestyle="none",
                  label="S: a shadow taken for a crown")]
    fig.legend(handles=key, loc="outside lower center", ncols=3, fontsize=8, facecolor="0.25", labelcolor="white",
               framealpha=1)  # dark, like the photograph, so the box colours read the same
    fig.suptitle(f"{split} image {index}, score ≥ {score_threshold:.2f}: found {errors['num_found']} of "
                 f"{errors['num_crowns']} crowns, {errors['num_false_positives']} false positives "
                 f"({int(errors['merged'].sum())} merged, {int(errors['in_shadow'].sum())} in shadow)\n"
                 f"{int(missed.sum())} missed, {int(errors['missed_small'].sum())} of them small "
                 f"(√area < {SMALL_CROWN} px); a match needs IoU ≥ 0.5", fontsize=9)
    ax.axis("off")
    return errors


def crown_explorer(predictions: dict[str, list[Target]], datasets: dict[str, Any],
                   score_threshold: float = 0.3) -> widgets.interactive:
    """The score threshold, the split and the image of :func:`draw_crowns` (same arguments).

    The image slider's range follows the chosen split's number of images.
    """
    split = widgets.Dropdown(options=list(datasets), description="split")
    index = widgets.IntSlider(value=0, min=0, max=len(datasets[split.value]) - 1, description="image")

    def follow_split(change: dict[str, Any]) -> None:
        index.max = len(datasets[change["new"]]) - 1  # a value above the new max is clamped to it

    split.observe(follow_split, names="value")  # before explore's own observer, so the index fits first
    return explore(
        functools.partial(draw_crowns, predictions=predictions, datasets=datasets),
        score_threshold=widgets.FloatSlider(value=score_threshold, min=0.05, max=0.95, step=0.05,
                                            description="score ≥"),
        split=split,
        index=index,
    )
