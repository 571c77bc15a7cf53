"""Lesson 01 (boxes and IoU): the IoU of two boxes, and decoding anchor-relative deltas into a box.

Boxes are ``xyxy`` in pixels of a ``canvas`` × ``canvas`` image.
"""
from __future__ import annotations

import ipywidgets as widgets
import matplotlib.pyplot as plt
import torch
from matplotlib.patches import Rectangle

from ..boxes import box_iou, cxcywh_to_xyxy, decode_boxes, intersection_union
from .explore import explore

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
