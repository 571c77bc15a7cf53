"""Lesson 05 (matching): which anchors of the ``shapes-cpu`` preset become positive, ignored or
negative for one image's boxes, as the two IoU thresholds move.

Anchors and boxes are ``xyxy`` in pixels.
"""
from __future__ import annotations

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.lines import Line2D
from torch import Tensor

from ..anchors import config_anchors
from ..boxes import box_iou
from ..config import preset_config
from ..data import ShapesDataset
from ..matching import BACKGROUND, IGNORE, match_anchors
from ..viz import CLASS_COLOURS, draw_boxes, show_image
from .explore import explore

#: The matching explorer shows images 0 … MATCHING_IMAGES − 1 of ``ShapesDataset(…, 128, seed=0)``.
MATCHING_IMAGES = 64


def shapes_cpu_anchors(image_size: tuple[int, int] = (128, 128)) -> Tensor:
    """The ``[N, 4]`` xyxy anchors of the ``shapes-cpu`` preset for an input of ``(H, W)`` (3069 at 128×128)."""
    return config_anchors(preset_config("shapes-cpu"), image_size)


def draw_matching(pos_iou: float = 0.5, neg_iou: float = 0.4, image_index: int = 4,
                  low_quality: bool = True) -> dict[str, int]:
    """Match the ``shapes-cpu`` anchors to one shapes image's boxes and draw the result.

    Left: the image, each ground-truth box (thick dashed) with its positive anchors in the same colour,
    and the ignored anchors (grey, dotted). Right: the histogram of every anchor's best IoU with the
    thresholds. ``neg_iou`` above ``pos_iou`` is lowered to ``pos_iou`` (no ignored band).

    Returns ``{"positive", "ignored", "negative", "low_quality", "boxes_without_positive"}``, where
    ``low_quality`` counts positives whose IoU is below ``pos_iou``.
    """
    image, target = ShapesDataset(MATCHING_IMAGES, 128, seed=0)[image_index]
    boxes, anchors = target["boxes"], shapes_cpu_anchors()
    neg_iou = min(neg_iou, pos_iou)
    matches = match_anchors(anchors, boxes, pos_iou, neg_iou, low_quality)
    best_iou = box_iou(anchors, boxes).max(dim=1).values if len(boxes) else torch.zeros(len(anchors))
    positive = matches >= 0
    counts = {"positive": int(positive.sum()), "ignored": int((matches == IGNORE).sum()),
              "negative": int((matches == BACKGROUND).sum()), "low_quality": int((positive & (best_iou < pos_iou)).sum()),
              "boxes_without_positive": sum(int(not (matches == j).any()) for j in range(len(boxes)))}

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 5), gridspec_kw={"width_ratios": [1.1, 1]})
    show_image(image, left)
    draw_boxes(left, anchors[matches == IGNORE], colour="lightgrey", linestyle=":", linewidth=0.8)
    for j, box in enumerate(boxes):
        colour = CLASS_COLOURS[j % len(CLASS_COLOURS)]
        draw_boxes(left, anchors[matches == j], colour=colour, linewidth=1.2)
        draw_boxes(left, box[None], colour=colour, linestyle="--", linewidth=2.5)
    left.legend(handles=[Line2D([], [], color="black", linestyle="--", linewidth=2.5, label="object box"),
                         Line2D([], [], color="black", linewidth=1.2, label="its positive anchors"),
                         Line2D([], [], color="grey", linestyle=":", label="ignored anchors")],
                loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=3, fontsize=8)
    left.set_title(f"image {image_index}: {len(boxes)} objects, {counts['positive']} positive, "
                   f"{counts['ignored']} ignored", fontsize=9)

    bins = np.linspace(0, 1, 51)
    zones = [(0, neg_iou, "tab:blue", f"negative: {counts['negative']}"),
             (neg_iou, pos_iou, "tab:grey", f"ignored: {counts['ignored']}"),
             (pos_iou, 1, "tab:green", f"positive: {counts['positive']} ({counts['low_quality']} low-quality)")]
    for low, high, colour, label in zones:
        right.axvspan(low, high, color=colour, alpha=0.15, label=label)
    right.hist(best_iou.numpy(), bins=bins, color="black", alpha=0.7)
    right.set(yscale="log", xlim=(0, 1), xlabel="best IoU of an anchor with any object",
              ylabel="anchors", title=f"{len(anchors)} anchors; positive ≥ {pos_iou:.2f}, negative < {neg_iou:.2f}")
    right.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    return counts


def matching_explorer() -> widgets.interactive:
    """Sliders for the two IoU thresholds and the image, and a low-quality switch, driving :func:`draw_matching`."""
    return explore(
        draw_matching,
        pos_iou=widgets.FloatSlider(value=0.5, min=0.1, max=0.9, step=0.05, description="positive ≥"),
        neg_iou=widgets.FloatSlider(value=0.4, min=0.0, max=0.9, step=0.05, description="negative <"),
        image_index=widgets.IntSlider(value=4, min=0, max=MATCHING_IMAGES - 1, description="image"),
        low_quality=widgets.Checkbox(value=True, description="low-quality matches"),
    )
