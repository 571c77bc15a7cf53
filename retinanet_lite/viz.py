"""Drawing helpers for the lessons: images with boxes, anchors, and training curves (matplotlib)."""
from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from torch import Tensor

#: One colour per class (matplotlib's tab10), so a class looks the same in every figure.
CLASS_COLOURS = plt.get_cmap("tab10").colors


def _axes(ax: Axes | None, figsize: tuple[float, float] = (4, 4)) -> Axes:
    """The given axes, or a fresh figure's."""
    return ax if ax is not None else plt.subplots(figsize=figsize)[1]


def show_image(image: Tensor, ax: Axes | None = None, title: str | None = None) -> Axes:
    """Show a ``[3, H, W]`` float image in [0, 1] with pixel coordinates on the axes."""
    ax = _axes(ax)
    ax.imshow(image.detach().cpu().permute(1, 2, 0).clamp(0, 1).numpy(), extent=(0, image.shape[2], image.shape[1], 0))
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def draw_boxes(
    ax: Axes, boxes: Tensor, labels: Tensor | None = None, scores: Tensor | None = None,
    class_names: Sequence[str] | None = None, colour: str | None = None, linestyle: str = "-", linewidth: float = 1.5,
) -> Axes:
    """Draw ``[N, 4]`` xyxy pixel boxes on ``ax``, coloured by label, with "name score" captions."""
    boxes = boxes.detach().cpu()
    for i, (x1, y1, x2, y2) in enumerate(boxes.tolist()):
        label = int(labels[i]) if labels is not None else None
        edge = colour or (CLASS_COLOURS[label % len(CLASS_COLOURS)] if label is not None else "yellow")
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=edge, linestyle=linestyle,
                               linewidth=linewidth))
        caption = _caption(label, None if scores is None else float(scores[i]), class_names)
        if caption:
            ax.text(x1, y1, caption, fontsize=7, color="white", va="bottom",
                    bbox={"facecolor": edge, "alpha": 0.8, "pad": 1, "edgecolor": "none"})
    return ax


def _caption(label: int | None, score: float | None, class_names: Sequence[str] | None) -> str:
    """``"square 0.93"``-style text for a box (empty when there is nothing to say)."""
    parts = []
    if label is not None:
        parts.append(class_names[label] if class_names else str(label))
    if score is not None:
        parts.append(f"{score:.2f}")
    return " ".join(parts)


def show_detections(
    image: Tensor, target: dict[str, Tensor] | None = None, prediction: dict[str, Tensor] | None = None,
    class_names: Sequence[str] | None = None, ax: Axes | None = None, title: str | None = None,
) -> Axes:
    """An image with its ground truth (dashed white) and/or predictions (solid, coloured by class)."""
    ax = show_image(image, ax, title)
    if target is not None:
        draw_boxes(ax, target["boxes"], colour="white", linestyle="--", linewidth=1.0)
    if prediction is not None:
        draw_boxes(ax, prediction["boxes"], prediction["labels"], prediction.get("scores"), class_names)
    return ax


def image_grid(
    images: Sequence[Tensor], targets: Sequence[dict[str, Tensor]] | None = None,
    predictions: Sequence[dict[str, Tensor]] | None = None, class_names: Sequence[str] | None = None,
    columns: int = 4, size: float = 2.5, title: str | None = None,
) -> Figure:
    """A grid of images, each with its boxes (targets dashed, predictions solid), under an optional title."""
    rows = int(np.ceil(len(images) / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(columns * size, rows * size), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < len(images):
            show_detections(images[i], targets[i] if targets else None, predictions[i] if predictions else None,
                            class_names, ax=ax)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def draw_anchors(ax: Axes, anchors: Tensor, colour: str = "cyan", linewidth: float = 0.8, centres: bool = True) -> Axes:
    """Draw ``[N, 4]`` xyxy anchors as thin boxes, and their centres as dots."""
    draw_boxes(ax, anchors, colour=colour, linewidth=linewidth)
    if centres:
        a = anchors.detach().cpu()
        ax.plot((a[:, 0] + a[:, 2]) / 2, (a[:, 1] + a[:, 3]) / 2, ".", color=colour, markersize=3)
    return ax


def plot_history(history: dict[str, list], smooth: int = 20, axes: Sequence[Axes] | None = None) -> Figure:
    """Training curves: the losses (raw and moving average) and, if evaluated, mAP per evaluation."""
    if axes is None:
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    fig = axes[0].figure
    for key in ("loss", "classification", "regression"):
        values = np.asarray(history[key])
        if len(values) == 0:
            continue
        line, = axes[0].plot(history["step"], values, alpha=0.25)
        window = max(1, min(smooth, len(values)))
        average = np.convolve(values, np.ones(window) / window, mode="valid")
        axes[0].plot(history["step"][window - 1:], average, color=line.get_color(), label=key)
    axes[0].set(xlabel="step", ylabel="loss", yscale="log", title="training loss")
    axes[0].legend()
    evals = history.get("eval", [])
    for key in ("map", "map_50", "map_75"):
        axes[1].plot([e["step"] for e in evals], [e[key] for e in evals], "o-", label=key)
    axes[1].set(xlabel="step", ylabel="AP", ylim=(0, 1), title="validation mAP")
    axes[1].legend()
    fig.tight_layout()
    return fig
