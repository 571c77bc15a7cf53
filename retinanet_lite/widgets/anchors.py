"""Lesson 02 (anchors): one level's anchors over an image, and how well a pyramid's anchors cover
the shapes dataset's boxes.

Anchors and boxes are ``xyxy`` in pixels; a ratio is height / width.
"""
from __future__ import annotations

import functools

import ipywidgets as widgets
import matplotlib.pyplot as plt
import torch
from torch import Tensor

from ..anchors import PAPER_RATIOS, PAPER_SCALES, config_anchors, grid_size, level_anchors
from ..boxes import box_area, box_iou
from ..config import preset_config
from ..data import ShapesDataset
from ..viz import draw_boxes, show_image
from .explore import explore

#: Scale sets offered by the anchor explorers (multiples of a level's base size).
SCALE_SETS = {"2^0, 2^(1/3), 2^(2/3) (paper)": PAPER_SCALES, "1 only": (1.0,), "1, 2": (1.0, 2.0)}
#: Ratio sets (height / width) offered by the anchor explorers.
RATIO_SETS = {"0.5, 1, 2 (paper)": PAPER_RATIOS, "1 only": (1.0,), "1/3, 1/2, 1, 2, 3": (1 / 3, 0.5, 1.0, 2.0, 3.0)}


def draw_level_anchors(level: int = 3, scales: tuple[float, ...] = PAPER_SCALES,
                       ratios: tuple[float, ...] = PAPER_RATIOS, image_index: int = 4,
                       preset: str = "shapes-cpu") -> dict[str, object]:
    """One pyramid level's anchors over shapes image ``image_index`` (128 × 128, seed 0).

    Uses the ``preset``'s stride and base size for level P``level`` (3–7) with the given ``scales``
    and ``ratios`` (height / width). Draws every anchor centre (dots), the ``A`` anchors of the
    location nearest the image centre (cyan), the ground truth (dashed white) and, for each
    ground-truth box, its best anchor on this level (yellow, with the IoU).

    Returns ``{"stride", "grid": (rows, cols), "anchors_per_location", "num_anchors",
    "best_iou": [G] list}``; all boxes are xyxy pixels.
    """
    config = preset_config(preset)
    stride, size = config.strides[level - 3], config.anchor_sizes[level - 3]
    image, target = ShapesDataset(16, 128, seed=0)[image_index]
    image_size = tuple(image.shape[1:])
    anchors = level_anchors(image_size, stride, size, ratios, scales, config.anchor_offset)  # [R·C·A, 4]
    rows, cols = grid_size(image_size, stride)
    per_location = len(ratios) * len(scales)
    middle = (rows // 2) * cols + cols // 2
    centre_anchors = anchors[middle * per_location:(middle + 1) * per_location]
    best_iou, best = box_iou(target["boxes"], anchors).max(dim=1) if len(target["boxes"]) else (torch.zeros(0), None)

    fig, ax = plt.subplots(figsize=(5.5, 5.5))
    show_image(image, ax)
    centres = (anchors[::per_location, :2] + anchors[::per_location, 2:]) / 2
    ax.plot(centres[:, 0], centres[:, 1], ".", color="white", markersize=2)
    draw_boxes(ax, centre_anchors, colour="cyan", linewidth=1.0)
    draw_boxes(ax, target["boxes"], colour="white", linestyle="--", linewidth=1.0)
    shown = [centre_anchors]
    if best is not None:
        draw_boxes(ax, anchors[best], colour="yellow", linewidth=1.5)
        shown.append(anchors[best])
        for (x1, y1, _, _), iou in zip(anchors[best].tolist(), best_iou.tolist()):
            ax.text(x1, y1, f"{iou:.2f}", color="black", fontsize=8, va="bottom",
                    bbox={"facecolor": "yellow", "alpha": 0.8, "pad": 1, "edgecolor": "none"})
    extent = torch.cat(shown)
    low = min(0.0, float(extent[:, :2].min())) - 4
    high = max(128.0, float(extent[:, 2:].max())) + 4
    ax.set(xlim=(low, high), ylim=(high, low), title=(
        f"P{level}: stride {stride}, {rows}×{cols} locations × A = {per_location} → {len(anchors)} anchors\n"
        f"cyan: the {per_location} anchors of one location; yellow: each object's best anchor (IoU)"))
    ax.title.set_fontsize(9)
    fig.tight_layout()
    return {"stride": stride, "grid": (rows, cols), "anchors_per_location": per_location,
            "num_anchors": len(anchors), "best_iou": best_iou.tolist()}


def anchors_explorer() -> widgets.interactive:
    """Pick the level, scale set, ratio set and image of :func:`draw_level_anchors`."""
    return explore(
        draw_level_anchors,
        level=widgets.Dropdown(options=[(f"P{l}", l) for l in range(3, 8)], value=3, description="level"),
        scales=widgets.Dropdown(options=list(SCALE_SETS.items()), description="scales"),
        ratios=widgets.Dropdown(options=list(RATIO_SETS.items()), description="ratios (h/w)"),
        image_index=widgets.IntSlider(value=4, min=0, max=15, description="image"),
    )


@functools.lru_cache(maxsize=4)
def shapes_gt_boxes(num_images: int = 300, image_size: int = 128, seed: int = 0) -> Tensor:
    """Every ground-truth box of the first ``num_images`` shapes images: ``[G, 4]`` xyxy (cached)."""
    dataset = ShapesDataset(num_images, image_size, seed=seed)
    return torch.cat([dataset[i][1]["boxes"] for i in range(num_images)])


def draw_anchor_coverage(smallest_size: float = 16.0, scales: tuple[float, ...] = PAPER_SCALES,
                         ratios: tuple[float, ...] = PAPER_RATIOS, num_images: int = 300) -> dict[str, float]:
    """How well anchors cover the shapes dataset's boxes: for every ground-truth box, its best IoU
    with any anchor of a 128 × 128 input (the ``shapes-cpu`` preset's anchors with base sizes
    ``smallest_size · 2^l`` for P3–P7, the given ``scales`` and ``ratios``).

    Draws the histogram of best IoUs and the best IoU against the box size (√area, px). Returns
    ``{"mean_best_iou", "share_positive" (best IoU ≥ 0.5), "share_negative" (< 0.4), "num_boxes"}``.
    """
    sizes = tuple(smallest_size * 2 ** level for level in range(5))
    config = preset_config("shapes-cpu", anchor_sizes=sizes, anchor_ratios=ratios, anchor_scales=scales)
    anchors = config_anchors(config, (128, 128))  # [N, 4]
    gt = shapes_gt_boxes(num_images)  # [G, 4]
    best = box_iou(gt, anchors).max(dim=1).values  # [G]
    side = box_area(gt).sqrt()
    result = {"mean_best_iou": float(best.mean()), "share_positive": float((best >= 0.5).float().mean()),
              "share_negative": float((best < 0.4).float().mean()), "num_boxes": len(gt)}

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    left.hist(best.numpy(), bins=40, range=(0, 1), color="tab:blue")
    left.axvline(0.5, color="green", linestyle="--", linewidth=1)
    right.axhline(0.5, color="green", linestyle="--", linewidth=1)
    left.set(xlabel="best IoU of a ground-truth box with any anchor", ylabel="boxes",
             title=f"{result['share_positive']:.0%} of {len(gt)} boxes reach IoU ≥ 0.5 (dashed)")
    right.scatter(side.numpy(), best.numpy(), s=4, alpha=0.5)
    right.set(xlabel="box size √(w·h) (px)", ylabel="best IoU", ylim=(0, 1),
              title=f"anchor base sizes {', '.join(f'{s:g}' for s in sizes)}")
    for ax in (left, right):
        ax.title.set_fontsize(10)
    fig.tight_layout()
    return result


def coverage_explorer(num_images: int = 300) -> widgets.interactive:
    """Pick the smallest anchor size (then ×2 per level), the scales and the ratios of
    :func:`draw_anchor_coverage`, over the boxes of the first ``num_images`` shapes images."""
    return explore(
        draw_anchor_coverage,
        smallest_size=widgets.SelectionSlider(options=[4, 8, 12, 16, 24, 32, 48, 64], value=16,
                                              description="P3 size"),
        scales=widgets.Dropdown(options=list(SCALE_SETS.items()), description="scales"),
        ratios=widgets.Dropdown(options=list(RATIO_SETS.items()), description="ratios (h/w)"),
        num_images=widgets.fixed(num_images),
    )
