"""Interactive explorers for the lessons (ipywidgets).

Every explorer has two halves:

* a plain **draw function** that takes the knob values as keyword arguments, draws a matplotlib
  figure and returns what it computed (so tests can call it directly, with no browser), and
* an ``*_explorer()`` function that puts sliders and dropdowns on those keyword arguments with
  :func:`explore`.

They also work headless (nbval, a plain script): the draw function runs once when the explorer is
built and again whenever a control's value changes.
"""
from __future__ import annotations

import functools
import math
from typing import Any, Callable

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle
from torch import Tensor

from . import classical
from .anchors import PAPER_RATIOS, PAPER_SCALES, anchors_per_level, grid_size, level_anchors, make_anchors
from .boxes import box_iou, class_wise_nms, clip_boxes, cxcywh_to_xyxy, decode_boxes, intersection_union
from .config import PRESETS, RetinaNetConfig, preset_config
from .data import CLASS_NAMES, VAL_SEED_OFFSET, ShapesDataset
from .heads import prior_bias
from .losses import focal_loss
from .matching import IGNORE, match_anchors
from .metrics import AREA_RANGES, IOU_THRESHOLDS, RECALL_POINTS, match_image, precision_recall
from .train import TRAIN_PRESETS, lr_factor
from .viz import CLASS_COLOURS, draw_boxes, show_image


def explore(draw: Callable[..., Any], **controls: Any) -> widgets.interactive:
    """Wire ``controls`` (ipywidgets or ``interact``-style abbreviations) to ``draw``'s keyword arguments.

    Returns the ``interactive`` widget (display it, or read ``.result`` for the last return value);
    each redraw shows the new figure and closes it so figures do not pile up.
    """
    def redraw(**values: Any) -> Any:
        result = draw(**values)
        plt.show()
        return result

    redraw.__name__ = getattr(draw, "__name__", "redraw")
    return widgets.interactive(redraw, {"manual": False}, **controls)


# ------------------------------------------------------------------------------------ lessons
# One section per lesson, in lesson order.


# ---- lesson 01: boxes and IoU
#: The fixed box of the IoU explorer, xyxy pixels.
IOU_REFERENCE = (40.0, 40.0, 90.0, 80.0)


def draw_iou(cx: float = 75.0, cy: float = 65.0, width: float = 40.0, height: float = 30.0,
             reference: tuple[float, float, float, float] = IOU_REFERENCE, canvas: int = 128) -> dict[str, float]:
    """Draw a fixed box A (``reference``, xyxy pixels) and a box B centred at (``cx``, ``cy``) of
    ``width`` × ``height`` pixels, with their intersection shaded; next to it, the IoU as B slides
    horizontally (everything else fixed), the current position marked.

    Returns ``{"iou", "intersection", "union"}`` (areas in square pixels).
    """
    a = torch.tensor([reference])  # [1, 4]
    b = cxcywh_to_xyxy(torch.tensor([[cx, cy, width, height]]))  # [1, 4]
    inter, union = (float(t) for t in intersection_union(a, b))
    iou = float(box_iou(a, b))
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 4), gridspec_kw={"width_ratios": [1, 1.3]})
    for box, colour, name in ((a[0], "tab:blue", "A (fixed)"), (b[0], "tab:orange", "B (moving)")):
        x1, y1, x2, y2 = box.tolist()
        left.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, facecolor=colour, alpha=0.25, edgecolor=colour,
                                 linewidth=2, label=name))
    top_left = torch.maximum(a[0, :2], b[0, :2])
    bottom_right = torch.minimum(a[0, 2:], b[0, 2:])
    if inter > 0:
        (x1, y1), (x2, y2) = top_left.tolist(), bottom_right.tolist()
        left.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, facecolor="none", edgecolor="black", hatch="///",
                                 linewidth=1, label="A ∩ B"))
    left.set(xlim=(0, canvas), ylim=(canvas, 0), aspect="equal", xlabel="x (px)", ylabel="y (px)",
             title=f"IoU = {inter:.0f} / {union:.0f} = {iou:.3f}")
    left.legend(loc="lower left", fontsize=8)

    xs = torch.linspace(0, canvas, 257)
    slid = cxcywh_to_xyxy(torch.stack([xs, torch.full_like(xs, cy), torch.full_like(xs, width),
                                       torch.full_like(xs, height)], dim=1))
    right.plot(xs, box_iou(a, slid)[0], color="tab:orange")
    right.plot([cx], [iou], "o", color="black", label=f"B now: IoU {iou:.2f}")
    right.axhline(0.5, color="green", linestyle="--", linewidth=1, label="0.5 (RetinaNet: positive)")
    right.axhline(0.4, color="red", linestyle=":", linewidth=1, label="0.4 (below: negative)")
    right.set(xlim=(0, canvas), ylim=(0, 1.02), xlabel="centre x of B (px)", ylabel="IoU(A, B)",
              title="IoU as B slides left/right")
    right.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    return {"iou": iou, "intersection": inter, "union": union}


def iou_explorer(canvas: int = 128) -> widgets.interactive:
    """Sliders for the centre and size of box B in :func:`draw_iou`; the IoU updates live."""
    def slider(value: float, low: float, high: float, description: str) -> widgets.FloatSlider:
        return widgets.FloatSlider(value=value, min=low, max=high, step=1, description=description)

    return explore(draw_iou, cx=slider(75, 0, canvas, "centre x"), cy=slider(65, 0, canvas, "centre y"),
                   width=slider(40, 1, canvas, "width"), height=slider(30, 1, canvas, "height"))


#: Box-delta weights to compare in the deltas explorer: none, and Faster R-CNN's (10, 10, 5, 5).
DELTA_WEIGHTS = {"(1, 1, 1, 1): RetinaNet default": (1.0, 1.0, 1.0, 1.0),
                 "(10, 10, 5, 5): Faster R-CNN": (10.0, 10.0, 5.0, 5.0)}


def draw_box_deltas(dx: float = 0.2, dy: float = -0.1, dw: float = 0.4, dh: float = 0.0,
                    weights: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0),
                    anchor: tuple[float, float, float, float] = (44.0, 48.0, 84.0, 80.0),
                    canvas: int = 128) -> dict[str, object]:
    """Decode the deltas ``(dx, dy, dw, dh)`` (with ``weights``) relative to ``anchor`` (xyxy pixels)
    and draw the anchor (dashed), the decoded box (solid) and the shift of the centre (arrow).

    Returns ``{"box": [x1, y1, x2, y2] of the decoded box, "iou": its IoU with the anchor}``.
    """
    a = torch.tensor([anchor])  # [1, 4]
    box = decode_boxes(a, torch.tensor([[dx, dy, dw, dh]]), weights)  # [1, 4]
    iou = float(box_iou(a, box))
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    for b, colour, style, name in ((a[0], "tab:blue", "--", "anchor"), (box[0], "tab:orange", "-", "decoded box")):
        x1, y1, x2, y2 = b.tolist()
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=colour, linestyle=style,
                               linewidth=2, label=name))
    (ax_, ay_), (bx_, by_) = ((a[0, :2] + a[0, 2:]) / 2).tolist(), ((box[0, :2] + box[0, 2:]) / 2).tolist()
    ax.annotate("", xy=(bx_, by_), xytext=(ax_, ay_), arrowprops={"arrowstyle": "->", "color": "black"})
    ax.set(xlim=(0, canvas), ylim=(canvas, 0), aspect="equal", xlabel="x (px)", ylabel="y (px)",
           title=f"deltas ({dx:+.2f}, {dy:+.2f}, {dw:+.2f}, {dh:+.2f}), weights {tuple(int(w) for w in weights)}\n"
                 f"IoU with the anchor = {iou:.2f}")
    ax.title.set_fontsize(9)
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    return {"box": box[0].tolist(), "iou": iou}


def deltas_explorer() -> widgets.interactive:
    """Sliders for the four deltas of :func:`draw_box_deltas` and a choice of weights."""
    def slider(value: float, description: str) -> widgets.FloatSlider:
        return widgets.FloatSlider(value=value, min=-1.5, max=1.5, step=0.05, description=description)

    return explore(draw_box_deltas, dx=slider(0.2, "dx"), dy=slider(-0.1, "dy"), dw=slider(0.4, "dw"),
                   dh=slider(0.0, "dh"),
                   weights=widgets.Dropdown(options=list(DELTA_WEIGHTS.items()), description="weights"))


# ---- lesson 02: anchors
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
    with any anchor of a 128 × 128 input (strides 8–128, base sizes ``smallest_size · 2^l`` for
    P3–P7, the given ``scales`` and ``ratios``).

    Draws the histogram of best IoUs and the best IoU against the box size (√area, px). Returns
    ``{"mean_best_iou", "share_positive" (best IoU ≥ 0.5), "share_negative" (< 0.4), "num_boxes"}``.
    """
    sizes = tuple(smallest_size * 2 ** level for level in range(5))
    anchors = make_anchors((128, 128), preset_config("shapes-cpu").strides, sizes, ratios, scales)  # [N, 4]
    gt = shapes_gt_boxes(num_images)  # [G, 4]
    best = box_iou(gt, anchors).max(dim=1).values  # [G]
    side = ((gt[:, 2] - gt[:, 0]) * (gt[:, 3] - gt[:, 1])).sqrt()
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


# ---- lesson 04: the prior-probability bias
#: The prior explorer's default setting: the anchors of an 800×800 image with the paper's anchors
#: (P3–P7, A = 9: 120 087 anchors) and COCO's 80 classes.
PAPER_ANCHORS_800 = 120_087
COCO_CLASSES = 80


def loss_at_initialisation(prior: float | np.ndarray, num_positives: int = 100, num_anchors: int = PAPER_ANCHORS_800,
                           num_classes: int = COCO_CLASSES, alpha: float = -1.0, gamma: float = 0.0
                           ) -> tuple[np.ndarray, np.ndarray]:
    """The classification loss of a freshly initialised head, split into ``(from positives, from background)``.

    At initialisation every logit equals the prior bias ``b = log(π / (1 − π))``. Of the ``num_anchors ×
    num_classes`` (anchor, class) outputs, ``num_positives`` are positive; the summed loss is divided by
    ``num_positives``, as RetinaNet normalises it. ``prior`` may be one π or an array of them (the results
    then have its shape). ``alpha < 0, gamma = 0`` is plain cross-entropy; the paper's focal loss is
    ``alpha = 0.25, gamma = 2``.
    """
    priors = torch.as_tensor(np.asarray(prior, dtype=np.float64))
    logits = (priors.log() - (-priors).log1p())[..., None].expand(*priors.shape, 2)  # [..., 2]: a positive, a negative
    targets = torch.tensor([1.0, 0.0], dtype=torch.float64).expand_as(logits)
    per_output = focal_loss(logits, targets, alpha, gamma)
    negatives = num_anchors * num_classes - num_positives
    return per_output[..., 0].numpy(), per_output[..., 1].numpy() * negatives / num_positives


def draw_prior_loss(prior: float = 0.01, gamma: float = 2.0, num_positives: int = 100,
                    num_anchors: int = PAPER_ANCHORS_800, num_classes: int = COCO_CLASSES) -> dict[str, float]:
    """Left: the loss at initialisation against the prior π (log–log), for cross-entropy and for focal loss
    (α = 0.25, ``gamma``), the chosen ``prior`` and the base rate ``P / (N·K)`` marked. Right: for the
    chosen prior, how much of each loss comes from the positives and how much from the background.

    Returns ``{"bias", "ce", "focal", "ce_background_share", "focal_background_share"}`` (losses divided
    by ``num_positives``).
    """
    losses = {"cross-entropy": (-1.0, 0.0), f"focal (α=0.25, γ={gamma:g})": (0.25, gamma)}
    priors = np.logspace(-6, math.log10(0.5), 120)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [1.4, 1]})
    parts = {}
    for (name, (alpha, g)), colour, dy in zip(losses.items(), ("tab:blue", "tab:red"), (4, -12)):
        left.plot(priors, sum(loss_at_initialisation(priors, num_positives, num_anchors, num_classes, alpha, g)),
                  color=colour, label=name)
        parts[name] = tuple(float(x) for x in loss_at_initialisation(prior, num_positives, num_anchors, num_classes, alpha, g))
        total = sum(parts[name])
        left.plot([prior], [total], "o", color=colour)
        left.annotate(f"{total:.3g}", (prior, total), textcoords="offset points", xytext=(-6 if prior > 0.03 else 6, dy),
                      ha="right" if prior > 0.03 else "left", color=colour, fontsize=9)
    base_rate = num_positives / (num_anchors * num_classes)
    left.axvline(prior, color="black", linestyle="--", linewidth=1, label=f"π = {prior:.2g}")
    left.axvline(base_rate, color="grey", linestyle=":", linewidth=1, label=f"base rate P/(NK) = {base_rate:.1e}")
    left.set(xscale="log", yscale="log", xlabel="prior π (every sigmoid starts here)",
             ylabel="loss at initialisation / P", title=f"b = −log((1−π)/π) = {prior_bias(prior) + 0.0:.2f}")
    left.legend(fontsize=8)

    names = list(parts)
    positive = np.array([parts[n][0] for n in names])
    background = np.array([parts[n][1] for n in names])
    shares = background / (positive + background)
    right.barh(names, 1 - shares, color="tab:green", label="from positives")
    right.barh(names, shares, left=1 - shares, color="tab:grey", label="from background")
    for row, (share, total) in enumerate(zip(shares, positive + background)):
        right.text(0.02, row, f"total {total:.3g}, background {100 * share:.{4 if share > 0.999 else 1}f}%", va="center", fontsize=9,
                   color="white", fontweight="bold")
    right.set(xlim=(0, 1), xlabel="share of the initial loss", title=f"P = {num_positives} positives, "
              f"N·K = {num_anchors:,}·{num_classes} outputs")
    right.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2, fontsize=8)
    fig.tight_layout()
    ce, focal = (float(positive[i] + background[i]) for i in (0, 1))
    return {"bias": prior_bias(prior) + 0.0, "ce": ce, "focal": focal,
            "ce_background_share": float(shares[0]), "focal_background_share": float(shares[1])}


def prior_explorer() -> widgets.interactive:
    """Sliders for the prior π, the focal γ and the number of positives, driving :func:`draw_prior_loss`."""
    return explore(
        draw_prior_loss,
        prior=widgets.FloatLogSlider(value=0.01, base=10, min=-6, max=math.log10(0.5), step=0.05,
                                     description="prior π", readout_format=".1e"),
        gamma=widgets.FloatSlider(value=2.0, min=0.0, max=5.0, step=0.5, description="focal γ"),
        num_positives=widgets.IntSlider(value=100, min=10, max=1000, step=10, description="positives P"),
    )


# ---- lesson 05: matching anchors to ground truth
#: The matching explorer shows images 0 … MATCHING_IMAGES − 1 of ``ShapesDataset(…, 128, seed=0)``.
MATCHING_IMAGES = 64


def shapes_cpu_anchors(image_size: tuple[int, int] = (128, 128)) -> torch.Tensor:
    """The ``[N, 4]`` xyxy anchors of the ``shapes-cpu`` preset for an input of ``(H, W)`` (3069 at 128×128)."""
    c = preset_config("shapes-cpu")
    return make_anchors(image_size, c.strides, c.anchor_sizes, c.anchor_ratios, c.anchor_scales, c.anchor_offset)


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
              "negative": int((matches == -1).sum()), "low_quality": int((positive & (best_iou < pos_iou)).sum()),
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


# ---- lesson 06: focal loss
#: A negative anchor counts as "easy" once the model gives it p_t above this.
EASY_P_T = 0.9


def anchor_population(num_anchors: int = 100_000, positive_fraction: float = 0.001
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and 0/1 targets ``([N], [N])`` float64 of an image's anchors for one class, mid-training.

    A made-up but typical picture: the background logits follow a normal distribution around −6
    (p ≈ 0.0025; sd 1.5, so a few hundred background anchors get p > 0.1), the object logits one around
    +0.5 (p ≈ 0.6; sd 1.5). They are the distribution's evenly spaced quantiles, not random draws,
    so the population is the same every time. The first ``round(N · positive_fraction)`` are positive.
    """
    num_positive = max(1, round(num_anchors * positive_fraction))

    def normal_quantiles(n: int, mean: float, std: float) -> torch.Tensor:
        return mean + std * torch.special.ndtri((torch.arange(n, dtype=torch.float64) + 0.5) / n)

    logits = torch.cat([normal_quantiles(num_positive, 0.5, 1.5),
                        normal_quantiles(num_anchors - num_positive, -6.0, 1.5)])
    targets = torch.zeros(num_anchors, dtype=torch.float64)
    targets[:num_positive] = 1
    return logits, targets


def loss_shares(logits: torch.Tensor, targets: torch.Tensor, alpha: float, gamma: float) -> dict[str, float]:
    """How the summed focal loss of ``[N]`` logits splits: ``{"positives", "hard_negatives", "easy_negatives"}``.

    Shares sum to 1; a negative is easy when its ``p_t > EASY_P_T``. ``alpha < 0, gamma = 0`` is plain
    cross-entropy.
    """
    loss = focal_loss(logits, targets, alpha, gamma)
    p_t = torch.where(targets > 0, torch.sigmoid(logits), torch.sigmoid(-logits))
    groups = {"positives": targets > 0, "hard_negatives": (targets == 0) & (p_t <= EASY_P_T),
              "easy_negatives": (targets == 0) & (p_t > EASY_P_T)}
    return {name: float(loss[mask].sum() / loss.sum()) for name, mask in groups.items()}


def draw_focal_loss(gamma: float = 2.0, alpha: float = 0.25, num_anchors: int = 100_000,
                    positive_fraction: float = 0.001) -> dict[str, object]:
    """Four panels for focal loss with ``gamma`` and ``alpha``, against cross-entropy (CE).

    Top left: the loss against ``p_t`` (CE, focal loss, and focal loss times ``α_t`` for a positive and
    a negative). Top right: the weight focal loss gives an example relative to CE, ``α_t (1 − p_t)^γ``
    (log scale). Bottom left: the ``p_t`` of :func:`anchor_population`. Bottom right: the share of the
    total loss carried by the positives, the hard and the easy negatives, for CE and for focal loss.

    Returns ``{"ce": shares, "focal": shares, "weight_easy_negative", "weight_positive"}``: the shares of
    :func:`loss_shares`, and the relative weight of a negative at ``p_t = 0.99`` and a positive at 0.5.
    """
    p_t = torch.linspace(0.001, 0.999, 500, dtype=torch.float64)
    ce = -p_t.log()
    modulating = (1 - p_t) ** gamma
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5))
    (loss_ax, weight_ax), (population_ax, share_ax) = axes

    loss_ax.plot(p_t, ce, color="black", label="CE = −log p_t")
    loss_ax.plot(p_t, modulating * ce, color="tab:blue", label=f"FL, γ = {gamma:g}")
    loss_ax.plot(p_t, alpha * modulating * ce, "--", color="tab:green", label=f"α·FL (positive, α = {alpha:g})")
    loss_ax.plot(p_t, (1 - alpha) * modulating * ce, ":", color="tab:red", linewidth=2,
                 label=f"(1−α)·FL (negative, 1−α = {1 - alpha:g})")
    loss_ax.axvspan(EASY_P_T, 1, color="grey", alpha=0.15, label=f"easy: p_t > {EASY_P_T}")
    loss_ax.set(xlim=(0, 1), ylim=(0, 5), xlabel="probability of the true class p_t", ylabel="loss",
                title="loss of one example")
    loss_ax.legend(fontsize=8)

    for weight, colour, label in ((alpha, "tab:green", "positive: α(1−p_t)^γ"),
                                  (1 - alpha, "tab:red", "negative: (1−α)(1−p_t)^γ")):
        weight_ax.plot(p_t, weight * modulating, color=colour, label=label)
    weight_ax.axhline(1, color="black", linewidth=0.8, label="CE (weight 1)")
    for p, weight, colour in ((0.5, alpha * 0.5**gamma, "tab:green"), (0.99, (1 - alpha) * 0.01**gamma, "tab:red")):
        weight_ax.plot([p], [weight], "o", color=colour)
        weight_ax.annotate(f"×{weight:.2g} at p_t = {p:g}", (p, weight), textcoords="offset points", xytext=(-8, -4),
                           ha="right", va="top", color=colour, fontsize=8)
    weight_ax.axvspan(EASY_P_T, 1, color="grey", alpha=0.15)
    weight_ax.set(xlim=(0, 1), ylim=(1e-7, 2), yscale="log", xlabel="p_t", ylabel="FL / CE",
                  title="weight of an example relative to cross-entropy")
    weight_ax.legend(fontsize=8, loc="lower left")

    logits, targets = anchor_population(num_anchors, positive_fraction)
    true_p = torch.where(targets > 0, torch.sigmoid(logits), torch.sigmoid(-logits))
    bins = np.linspace(0, 1, 41)
    population_ax.hist(true_p[targets == 0].numpy(), bins=bins, color="tab:red", alpha=0.6,
                       label=f"{int((targets == 0).sum()):,} negatives")
    population_ax.hist(true_p[targets > 0].numpy(), bins=bins, color="tab:green", alpha=0.8,
                       label=f"{int(targets.sum()):,} positives")
    population_ax.axvspan(EASY_P_T, 1, color="grey", alpha=0.15)
    population_ax.set(yscale="log", xlim=(0, 1), xlabel="p_t", ylabel="anchors",
                      title=f"an image's {num_anchors:,} anchors, mid-training")
    population_ax.legend(fontsize=8, loc="upper left")

    shares = {"ce": loss_shares(logits, targets, -1.0, 0.0), "focal": loss_shares(logits, targets, alpha, gamma)}
    rows = {"cross-entropy": shares["ce"], f"focal\nγ={gamma:g}, α={alpha:g}": shares["focal"]}
    colours = {"positives": "tab:green", "hard_negatives": "tab:orange", "easy_negatives": "tab:grey"}
    for row, (name, parts) in enumerate(rows.items()):
        left = 0.0
        for part, share in parts.items():
            share_ax.barh(row, share, left=left, color=colours[part],
                          label=part.replace("_", " ") if row == 0 else None)
            if share > 0.07:
                share_ax.text(left + share / 2, row, f"{100 * share:.0f}%", ha="center", va="center",
                              color="white", fontweight="bold", fontsize=9)
            left += share
    share_ax.set_yticks(range(len(rows)), list(rows), fontsize=9)
    share_ax.invert_yaxis()
    share_ax.set(xlim=(0, 1), xlabel="share of the image's total loss", title="where the loss comes from")
    share_ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=3)
    fig.tight_layout()
    return {**shares, "weight_positive": alpha * 0.5**gamma, "weight_easy_negative": (1 - alpha) * 0.01**gamma}


def focal_loss_explorer() -> widgets.interactive:
    """Sliders for the focal loss's γ and α, driving :func:`draw_focal_loss`."""
    return explore(
        draw_focal_loss,
        gamma=widgets.FloatSlider(value=2.0, min=0.0, max=5.0, step=0.5, description="γ (focus)"),
        alpha=widgets.FloatSlider(value=0.25, min=0.05, max=0.95, step=0.05, description="α (balance)"),
    )


# ---- lesson 07: training
def draw_schedule(peak_lr: float = TRAIN_PRESETS["shapes-cpu"].lr,
                  warmup_steps: int = TRAIN_PRESETS["shapes-cpu"].warmup_steps,
                  steps: int = TRAIN_PRESETS["shapes-cpu"].steps) -> dict[str, float]:
    """Plot the learning rate of every step: linear warm-up to ``peak_lr``, then cosine decay to 0.

    Returns ``{"lr_at_warmup_end", "lr_at_half", "mean_lr"}`` — the last is what the whole run
    "spends": lowering it trains less far, raising it risks the instability warm-up is there to avoid.
    """
    lrs = [peak_lr * lr_factor(step, warmup_steps, steps) for step in range(steps)]
    fig, ax = plt.subplots(figsize=(7, 3))
    ax.plot(range(steps), lrs, color="tab:blue")
    ax.axvspan(0, min(warmup_steps, steps), color="tab:orange", alpha=0.15, label="warm-up")
    ax.set(xlabel="step", ylabel="learning rate", title=f"peak {peak_lr:.1e}, warm-up {warmup_steps}, {steps} steps")
    ax.legend(loc="upper right")
    fig.tight_layout()
    return {"lr_at_warmup_end": lrs[min(warmup_steps, steps - 1)], "lr_at_half": lrs[steps // 2],
            "mean_lr": sum(lrs) / steps}


def schedule_explorer() -> widgets.interactive:
    """Sliders for the peak learning rate, the warm-up length and the number of steps."""
    recipe = TRAIN_PRESETS["shapes-cpu"]
    return explore(
        draw_schedule,
        peak_lr=widgets.FloatLogSlider(value=recipe.lr, base=10, min=-5, max=-1, step=0.1, description="peak lr",
                                       readout_format=".1e"),
        warmup_steps=widgets.IntSlider(value=recipe.warmup_steps, min=0, max=1000, step=10, description="warm-up"),
        steps=widgets.IntSlider(value=recipe.steps, min=100, max=5000, step=100, description="steps"),
    )


# ---- lesson 08: inference and mAP
@torch.no_grad()
def detection_candidates(model: Any, image: Tensor, score_thresh: float = 0.05) -> tuple[Tensor, Tensor, Tensor]:
    """The candidates of ``model`` (a RetinaNet in eval mode) for one image ``[3, H, W]``, *before* NMS.

    Every (anchor, class) pair whose probability is above ``score_thresh``, at most
    ``model.config.topk_candidates`` per pyramid level, decoded and clipped to the image. Returns
    boxes ``[C, 4]`` (xyxy pixels of ``image``), scores ``[C]`` and labels ``[C]``, best score first.
    """
    config = model.config
    batch, scales = model.prepare_batch([image])
    logits, deltas = model.predict(batch)  # [1, N, K], [1, N, 4]
    anchors = model.anchors(batch.shape[-2:], batch.device)  # [N, 4]
    per_level = anchors_per_level(tuple(batch.shape[-2:]), config.strides, config.num_anchors)
    boxes, scores, labels = [], [], []
    for level_logits, level_deltas, level_anchors in zip(logits[0].split(per_level), deltas[0].split(per_level),
                                                         anchors.split(per_level)):
        probabilities = level_logits.sigmoid().flatten()  # [N_l · K]: anchor-major, then class
        top, index = probabilities.topk(min(config.topk_candidates, len(probabilities)))
        keep = top > score_thresh
        anchor_index = index[keep] // config.num_classes
        boxes.append(decode_boxes(level_anchors[anchor_index], level_deltas[anchor_index], config.box_weights))
        scores.append(top[keep])
        labels.append(index[keep] % config.num_classes)
    boxes = clip_boxes(torch.cat(boxes) / scales[0], tuple(image.shape[-2:]))
    scores, labels = torch.cat(scores), torch.cat(labels)
    order = scores.argsort(descending=True)
    return boxes[order], scores[order], labels[order]


def greedy_match(boxes: Tensor, scores: Tensor, labels: Tensor, target: dict[str, Tensor],
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


def draw_thresholds(score_thresh: float = 0.05, nms_iou: float = 0.5, image_index: int = 0, *, model: Any,
                    dataset: Any, class_names: tuple[str, ...] = CLASS_NAMES) -> dict[str, int]:
    """Image ``image_index`` of ``dataset`` through ``model`` with the given score and NMS thresholds.

    Left: every candidate above ``score_thresh`` (the top-k per level), before NMS. Right: what
    class-wise NMS at ``nms_iou`` keeps (at most ``model.config.max_detections``; dotted below score
    0.5), with the ground truth dashed white. Detections are counted as true or false positives at
    IoU ≥ 0.5 (same class).

    Returns ``{"candidates", "detections", "true_positives", "false_positives", "missed"}``.
    """
    image, target = dataset[image_index]
    boxes, scores, labels = detection_candidates(model, image, score_thresh)
    kept = class_wise_nms(boxes, scores, labels, nms_iou)[: model.config.max_detections]
    true_positive, found = greedy_match(boxes[kept], scores[kept], labels[kept], target)
    result = {"candidates": len(boxes), "detections": len(kept), "true_positives": int(true_positive.sum()),
              "false_positives": int((~true_positive).sum()), "missed": int((~found).sum())}

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 5.2))
    show_image(image, left)
    for box, score, label in zip(boxes.tolist(), scores.tolist(), labels.tolist()):
        (x1, y1, x2, y2), colour = box, CLASS_COLOURS[label]
        left.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=colour,
                                 linewidth=0.5 + 1.5 * score, alpha=0.3 + 0.7 * score))
    left.set_title(f"before NMS: {len(boxes)} candidates with score > {score_thresh:.2f}\n"
                   "(line width and opacity grow with the score)", fontsize=9)
    show_image(image, right)
    draw_boxes(right, target["boxes"], colour="white", linestyle="--", linewidth=1.0)
    shown = kept.flip(0)  # worst first, so that the best boxes and their captions end up on top
    unsure = scores[shown] < 0.5
    draw_boxes(right, boxes[shown][unsure], labels[shown][unsure], scores[shown][unsure], class_names,
               linestyle=":", linewidth=1.0)
    draw_boxes(right, boxes[shown][~unsure], labels[shown][~unsure], scores[shown][~unsure], class_names,
               linewidth=2.0)
    right.set_title(f"after class-wise NMS at IoU {nms_iou:.2f}: {len(kept)} detections (dotted: score < 0.5)\n"
                    f"{result['true_positives']} correct, {result['false_positives']} false, "
                    f"{result['missed']} of {len(found)} objects missed (IoU ≥ 0.5)", fontsize=9)
    for ax in (left, right):
        ax.axis("off")
    fig.tight_layout()
    return result


def thresholds_explorer(model: Any, dataset: Any = None) -> widgets.interactive:
    """Sliders for the score threshold, the NMS IoU threshold and the image of :func:`draw_thresholds`.

    ``dataset`` defaults to 32 validation shapes images (``seed=VAL_SEED_OFFSET``).
    """
    dataset = dataset if dataset is not None else ShapesDataset(32, 128, seed=VAL_SEED_OFFSET)
    draw = functools.partial(draw_thresholds, model=model, dataset=dataset)
    draw.__name__ = "draw_thresholds"
    return explore(
        draw,
        score_thresh=widgets.FloatSlider(value=0.05, min=0.01, max=0.95, step=0.01, description="score >"),
        nms_iou=widgets.FloatSlider(value=0.5, min=0.1, max=1.0, step=0.05, description="NMS IoU >"),
        image_index=widgets.IntSlider(value=0, min=0, max=len(dataset) - 1, description="image"),
    )


def class_matches(predictions: list[dict[str, Tensor]], targets: list[dict[str, Tensor]], label: int) -> list:
    """COCO matches (:func:`retinanet_lite.metrics.match_image`) of class ``label`` in every image,
    at the ten IoU thresholds 0.50, 0.55, …, 0.95 and for all object sizes."""
    return [match_image(p["boxes"][p["labels"] == label], p["scores"][p["labels"] == label],
                        t["boxes"][t["labels"] == label], AREA_RANGES["all"])
            for p, t in zip(predictions, targets)]


def draw_pr_curve(iou_threshold: float = 0.5, label: int = 0, *, predictions: list[dict[str, Tensor]],
                  targets: list[dict[str, Tensor]], class_names: tuple[str, ...] = CLASS_NAMES) -> dict[str, Any]:
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


def pr_explorer(predictions: list[dict[str, Tensor]], targets: list[dict[str, Tensor]],
                class_names: tuple[str, ...] = CLASS_NAMES) -> widgets.interactive:
    """Pick the IoU threshold and the class of :func:`draw_pr_curve`."""
    draw = functools.partial(draw_pr_curve, predictions=predictions, targets=targets, class_names=class_names)
    draw.__name__ = "draw_pr_curve"
    return explore(
        draw,
        iou_threshold=widgets.SelectionSlider(options=[round(float(t), 2) for t in IOU_THRESHOLDS], value=0.5,
                                              description="IoU ≥"),
        label=widgets.Dropdown(options=[(name, k) for k, name in enumerate(class_names)], value=0,
                               description="class"),
    )


# ---- lesson 10: the classical baseline
#: The classical explorer shows images 0 … CLASSICAL_IMAGES − 1 of the shapes validation split.
CLASSICAL_IMAGES = 64


def degrade(image: torch.Tensor, contrast: float = 1.0, noise: float = 0.0, seed: int = 0) -> torch.Tensor:
    """A harder copy of a ``[3, H, W]`` image: colours pulled towards the image's mean colour
    (``contrast`` 1 keeps them, 0 makes the image flat), then Gaussian noise of std ``noise`` (seeded)."""
    mean = image.mean(dim=(1, 2), keepdim=True)
    noisy = image - (1 - contrast) * (image - mean)
    if noise > 0:
        noisy = noisy + noise * torch.randn(image.shape, generator=torch.Generator().manual_seed(seed))
    return noisy.clamp(0, 1)


def signed_log_image(log: torch.Tensor) -> torch.Tensor:
    """``[C, H, W]`` LoG → ``[H, W]``: at every pixel, the value of the channel where it is largest in size."""
    strongest = log.abs().argmax(dim=0, keepdim=True)
    return log.gather(0, strongest)[0]


def colour_components(labels: torch.Tensor) -> np.ndarray:
    """``[H, W]`` component labels (0 = background) → ``[H, W, 3]`` RGB: black background, a colour per blob."""
    palette = np.asarray(plt.get_cmap("tab20").colors)
    image = np.zeros((*labels.shape, 3))
    on = labels.numpy() > 0
    image[on] = palette[(labels.numpy()[on] - 1) % len(palette)]
    return image


def draw_classical_stages(image_index: int = 0, sigma: float = 1.0, threshold: float = 0.1, kernel_size: int = 3,
                          contrast: float = 1.0, noise: float = 0.0) -> dict[str, float]:
    """Every stage of :mod:`retinanet_lite.classical` on one shapes validation image, in six panels.

    The image (optionally :func:`degrade`-d), its blur, the signed LoG (red: positive, the dark side
    of an edge; blue: negative), the zero-crossing edges with the pixels the closing adds (orange),
    the connected components, and the boxes of :func:`classical.detect` (solid) with the ground
    truth (dashed white).

    Returns ``{"edge_pixels", "closing_added", "components", "boxes", "objects", "found", "mean_best_iou"}``:
    ``found`` counts objects with a box at IoU ≥ 0.5; ``mean_best_iou`` averages each object's best IoU.
    """
    image, target = ShapesDataset(CLASSICAL_IMAGES, 128, seed=VAL_SEED_OFFSET)[image_index]
    image = degrade(image, contrast, noise)
    log = classical.laplacian_of_gaussian(image, sigma)
    edges = classical.zero_crossings(log, threshold)
    closed = classical.closing(edges, kernel_size)
    labels = classical.connected_components(closed)
    detections = classical.detect(image, sigma, threshold, kernel_size)
    best_iou = (box_iou(target["boxes"], detections["boxes"]).max(dim=1).values
                if len(detections["boxes"]) else torch.zeros(len(target["boxes"])))
    numbers = {"edge_pixels": int(edges.sum()), "closing_added": int((closed & ~edges).sum()),
               "components": int(labels.max()), "boxes": len(detections["boxes"]), "objects": len(target["boxes"]),
               "found": int((best_iou >= 0.5).sum()), "mean_best_iou": float(best_iou.mean()) if len(best_iou) else 0.0}

    fig, axes = plt.subplots(2, 3, figsize=(12, 8.4))
    show_image(image, axes[0, 0], f"1. image {image_index} (contrast {contrast:g}, noise {noise:g})")
    draw_boxes(axes[0, 0], target["boxes"], colour="white", linestyle="--", linewidth=1.0)
    show_image(classical.gaussian_blur(image, sigma), axes[0, 1], f"2. Gaussian blur, σ = {sigma:g}")
    shown = axes[0, 2].imshow(signed_log_image(log).numpy(), cmap="RdBu_r", vmin=-0.15, vmax=0.15)
    fig.colorbar(shown, ax=axes[0, 2], fraction=0.046, pad=0.03)
    axes[0, 2].set_title("3. σ²·Laplacian of the blur (strongest channel)", fontsize=9)
    overlay = np.zeros((*edges.shape, 3))
    overlay[closed.numpy()] = (1.0, 0.55, 0.0)
    overlay[edges.numpy()] = (1.0, 1.0, 1.0)
    axes[1, 0].imshow(overlay)
    axes[1, 0].set_title(f"4. zero crossings > {threshold:g} (white);\nclosing, k = {kernel_size}, adds "
                         f"{numbers['closing_added']} px (orange)", fontsize=9)
    axes[1, 1].imshow(colour_components(labels))
    axes[1, 1].set_title(f"5. connected components: {numbers['components']}", fontsize=9)
    show_image(image, axes[1, 2], f"6. boxes: {numbers['found']} of {numbers['objects']} objects found (IoU ≥ 0.5)")
    draw_boxes(axes[1, 2], target["boxes"], colour="white", linestyle="--", linewidth=1.0)
    draw_boxes(axes[1, 2], detections["boxes"], colour="yellow", linewidth=1.5)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return numbers


def classical_explorer() -> widgets.interactive:
    """Sliders for σ, threshold, closing kernel, image, contrast and noise, driving :func:`draw_classical_stages`."""
    return explore(
        draw_classical_stages,
        image_index=widgets.IntSlider(value=0, min=0, max=CLASSICAL_IMAGES - 1, description="image"),
        sigma=widgets.FloatSlider(value=1.0, min=0.5, max=4.0, step=0.25, description="blur σ"),
        threshold=widgets.FloatSlider(value=0.1, min=0.0, max=0.3, step=0.01, description="threshold"),
        kernel_size=widgets.IntSlider(value=3, min=1, max=9, step=2, description="closing k"),
        contrast=widgets.FloatSlider(value=1.0, min=0.05, max=1.0, step=0.05, description="contrast"),
        noise=widgets.FloatSlider(value=0.0, min=0.0, max=0.3, step=0.02, description="noise σ"),
    )


# ---- lesson 11: what next (fitting a preset to your own data)
def input_scale(config: RetinaNetConfig, height: int, width: int) -> float:
    """The factor by which a model with ``config`` resizes an image of ``height`` × ``width``.

    The short side becomes ``min_size`` unless the long side would then pass ``max_size``; no resizing
    (1.0) when ``min_size`` is None.
    """
    if config.min_size is None:
        return 1.0
    factor = config.min_size / min(height, width)
    return factor if config.max_size is None else min(factor, config.max_size / max(height, width))


def draw_anchor_fit(preset: str = "shapes-cpu", *, dataset: Any, max_images: int = 64) -> dict[str, float]:
    """Do the anchors of ``preset`` fit the objects of ``dataset`` (any ``(image, target)`` dataset)?

    Each image of the first ``max_images`` is resized as the preset's model would resize it; then every
    ground-truth box (xyxy pixels, scaled) gets its best IoU with the anchors of the padded input. Left:
    object sizes √(w·h) after resizing, with the range of anchor sizes of each level P3–P7. Right: best
    IoU against size; below 0.5 (dashed) an object still gets its best anchor as a positive
    (``allow_low_quality``) but only one, and a poorly fitting one.

    Returns ``{"scale" (of the first image), "share_matched" (best IoU ≥ 0.5), "num_objects",
    "smallest", "largest"}`` (sizes in pixels after resizing).
    """
    config = preset_config(preset)
    divisor = config.size_divisible
    anchors_for: dict[tuple[int, int], Tensor] = {}
    sizes, best = [], []
    for index in range(min(max_images, len(dataset))):
        image, target = dataset[index]
        height, width = image.shape[-2:]
        scale = input_scale(config, height, width)
        if index == 0:
            first_scale = scale
        padded = tuple(math.ceil(math.floor(side * scale) / divisor) * divisor for side in (height, width))
        if padded not in anchors_for:
            anchors_for[padded] = make_anchors(padded, config.strides, config.anchor_sizes, config.anchor_ratios,
                                               config.anchor_scales, config.anchor_offset)
        boxes = target["boxes"] * scale
        if len(boxes):
            sizes.append(((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).sqrt())
            best.append(box_iou(boxes, anchors_for[padded]).amax(dim=1))
    sizes_t, best_t = torch.cat(sizes), torch.cat(best)
    result = {"scale": first_scale, "share_matched": float((best_t >= 0.5).float().mean()),
              "num_objects": len(sizes_t), "smallest": float(sizes_t.min()), "largest": float(sizes_t.max())}

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
    low = min(float(sizes_t.min()), min(config.anchor_sizes)) / 1.5
    high = max(float(sizes_t.max()), max(config.anchor_sizes) * max(config.anchor_scales)) * 1.5
    bins = torch.logspace(math.log10(low), math.log10(high), 40).numpy()
    counts, _, _ = left.hist(sizes_t.numpy(), bins=bins, color="tab:blue", zorder=2)
    for level, (size, colour) in enumerate(zip(config.anchor_sizes, plt.get_cmap("tab10").colors[1:]), start=3):
        smallest, largest = size * min(config.anchor_scales), size * max(config.anchor_scales)
        for ax in (left, right):
            ax.axvspan(smallest, largest, color=colour, alpha=0.3, zorder=1)
        left.text((smallest * largest) ** 0.5, counts.max() * 1.02, f"P{level}", ha="center", va="bottom", fontsize=8)
    ticks = [t for t in (4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048) if low <= t <= high]
    for ax in (left, right):
        ax.set(xscale="log", xlim=(low, high), xlabel="size √(w·h) after resizing (px, log scale)")
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.minorticks_off()
    left.set(ylim=(0, counts.max() * 1.12), ylabel="objects",
             title=f"{preset}: images resized ×{first_scale:.2f}; shaded: anchor sizes per level")
    right.scatter(sizes_t.numpy(), best_t.numpy(), s=5, alpha=0.6, zorder=2)
    right.axhline(0.5, color="green", linestyle="--", linewidth=1)
    right.set(ylim=(0, 1), ylabel="best IoU with any anchor",
              title=f"{result['share_matched']:.0%} of {len(sizes_t)} objects have an anchor with IoU ≥ 0.5")
    for ax in (left, right):
        ax.title.set_fontsize(10)
    fig.tight_layout()
    return result


def anchor_fit_explorer(dataset: Any) -> widgets.interactive:
    """Pick the preset of :func:`draw_anchor_fit` for ``dataset``."""
    draw = functools.partial(draw_anchor_fit, dataset=dataset)
    draw.__name__ = "draw_anchor_fit"
    return explore(draw, preset=widgets.Dropdown(options=list(PRESETS), value="shapes-cpu", description="preset"))
