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

from typing import Any, Callable

import ipywidgets as widgets
import matplotlib.pyplot as plt


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
# Explorers are added below, one section per lesson, in lesson order.


# ---- lesson 01: boxes and IoU
import torch  # noqa: E402  (imports of this section)
from matplotlib.patches import Rectangle  # noqa: E402

from .boxes import box_iou, cxcywh_to_xyxy, decode_boxes, intersection_union  # noqa: E402

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
import functools  # noqa: E402  (imports of this section)

import torch  # noqa: E402
from torch import Tensor  # noqa: E402

from .anchors import PAPER_RATIOS, PAPER_SCALES, grid_size, level_anchors, make_anchors  # noqa: E402
from .boxes import box_iou  # noqa: E402
from .config import preset_config  # noqa: E402
from .data import ShapesDataset  # noqa: E402
from .viz import draw_boxes, show_image  # noqa: E402

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


def coverage_explorer() -> widgets.interactive:
    """Pick the smallest anchor size (then ×2 per level), the scales and the ratios of
    :func:`draw_anchor_coverage`."""
    return explore(
        draw_anchor_coverage,
        smallest_size=widgets.SelectionSlider(options=[4, 8, 12, 16, 24, 32, 48, 64], value=16,
                                              description="P3 size"),
        scales=widgets.Dropdown(options=list(SCALE_SETS.items()), description="scales"),
        ratios=widgets.Dropdown(options=list(RATIO_SETS.items()), description="ratios (h/w)"),
    )


# ---- lesson 04: the prior-probability bias
import math  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from .heads import prior_bias  # noqa: E402
from .losses import focal_loss  # noqa: E402

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
from matplotlib.lines import Line2D  # noqa: E402

from .anchors import make_anchors  # noqa: E402
from .boxes import box_iou  # noqa: E402
from .config import preset_config  # noqa: E402
from .data import ShapesDataset  # noqa: E402
from .matching import IGNORE, match_anchors  # noqa: E402
from .viz import CLASS_COLOURS, draw_boxes, show_image  # noqa: E402

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
