"""Lesson 12 (what next): do a preset's anchors fit the objects of your own data?

Every image is resized and padded exactly as the preset's model would (:func:`~retinanet_lite.model.
resize_factor`, :func:`~retinanet_lite.model.padded_size`); boxes are ``xyxy`` pixels, an object's size
is √(w·h) in pixels after resizing. Images without objects are valid data and simply add none.
"""
from __future__ import annotations

import functools
from typing import Any

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from torch import Tensor

from ..anchors import config_anchors
from ..boxes import box_area, box_iou
from ..config import PRESETS, RetinaNetConfig, preset_config
from ..model import padded_size, resize_factor
from .explore import explore


def object_fit(config: RetinaNetConfig, dataset: Any, num_images: int
               ) -> tuple[list[float], list[Tensor], list[Tensor]]:
    """Resize each of the first ``num_images`` images of ``dataset`` as a model with ``config`` would, and
    give every object its best IoU with the anchors of the padded input.

    Returns three lists with one entry per image: its resize factor, its objects' sizes √(w·h) after
    resizing ``[G]`` and their best IoUs ``[G]`` (``G`` may be 0).
    """
    anchors_for: dict[tuple[int, int], Tensor] = {}
    scales, sizes, best = [], [], []
    for index in range(num_images):
        image, target = dataset[index]
        size = tuple(image.shape[-2:])
        padded = padded_size(config, [size])
        if padded not in anchors_for:
            anchors_for[padded] = config_anchors(config, padded)  # [N, 4]
        scales.append(resize_factor(config, size))
        boxes = target["boxes"].reshape(-1, 4) * scales[-1]  # [G, 4]
        sizes.append(box_area(boxes).sqrt())
        best.append(box_iou(boxes, anchors_for[padded]).amax(dim=1))
    return scales, sizes, best


def draw_anchor_fit(preset: str = "shapes-cpu", *, dataset: Any, max_images: int = 64) -> dict[str, Any]:
    """Do the anchors of ``preset`` fit the objects of ``dataset`` (any ``(image, target)`` dataset)?

    Each image of the first ``max_images`` is resized as the preset's model would resize it; then every
    ground-truth box (xyxy pixels, scaled) gets its best IoU with the anchors of the padded input
    (:func:`object_fit`). Left: object sizes √(w·h) after resizing, with the range of anchor sizes of
    each level P3–P7. Right: best IoU against size; below 0.5 (dashed) an object still gets its best
    anchor as a positive (``allow_low_quality``) but only one, and a poorly fitting one.

    Returns ``{"scale" (of the first image), "share_matched" (best IoU ≥ 0.5), "num_objects",
    "smallest", "largest", "summary"}`` (sizes in pixels after resizing; ``summary`` is one sentence).
    With no objects among the images, ``num_objects`` is 0, ``share_matched``, ``smallest`` and
    ``largest`` are None, and the summary and the figure say so.
    """
    num_images = min(max_images, len(dataset))
    if num_images < 1:
        raise ValueError(f"draw_anchor_fit needs at least one image, but the dataset has {len(dataset)} "
                         f"and max_images is {max_images}")
    config = preset_config(preset)
    scales, per_image_sizes, per_image_best = object_fit(config, dataset, num_images)
    sizes, best = torch.cat(per_image_sizes), torch.cat(per_image_best)  # [M], [M]
    images = "the first image" if num_images == 1 else f"the first {num_images} images"
    if len(sizes) == 0:
        result = {"scale": scales[0], "share_matched": None, "num_objects": 0, "smallest": None, "largest": None,
                  "summary": f"no objects among {images}"}
    else:
        with_objects = sum(len(s) > 0 for s in per_image_sizes)
        share = float((best >= 0.5).float().mean())
        result = {"scale": scales[0], "share_matched": share, "num_objects": len(sizes),
                  "smallest": float(sizes.min()), "largest": float(sizes.max()),
                  "summary": f"{len(sizes)} objects in {with_objects} of {images}; "
                             f"{share:.0%} have an anchor with IoU ≥ 0.5"}
    _plot_anchor_fit(config, preset, scales, sizes, best, result)
    return result


def _plot_anchor_fit(config: RetinaNetConfig, preset: str, scales: list[float], sizes: Tensor, best: Tensor,
                     result: dict[str, Any]) -> None:
    """The two panels of :func:`draw_anchor_fit` for objects of ``sizes`` ``[M]`` with best IoUs ``[M]``
    (``M`` may be 0: then the summary stands in the middle of both panels)."""
    spans = [(size * min(config.anchor_scales), size * max(config.anchor_scales)) for size in config.anchor_sizes]
    edges = [*(side for span in spans for side in span), *sizes.tolist()]
    low, high = min(edges) / 1.5, max(edges) * 1.5
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
    counts, _, _ = left.hist(sizes.numpy(), bins=np.geomspace(low, high, 40), color="tab:blue", zorder=2)
    top = max(counts.max(), 1)
    for level, ((smallest, largest), colour) in enumerate(zip(spans, plt.get_cmap("tab10").colors[1:]), start=3):
        for ax in (left, right):
            ax.axvspan(smallest, largest, color=colour, alpha=0.3, zorder=1)
        left.text((smallest * largest) ** 0.5, top * 1.02, f"P{level}", ha="center", va="bottom", fontsize=8)
    right.scatter(sizes.numpy(), best.numpy(), s=5, alpha=0.6, zorder=2)
    right.axhline(0.5, color="green", linestyle="--", linewidth=1)
    resized = f"×{min(scales):.2f}" if min(scales) == max(scales) else f"×{min(scales):.2f} to ×{max(scales):.2f}"
    left.set(ylim=(0, top * 1.12), ylabel="objects",
             title=f"{preset}: images resized {resized}; shaded: anchor sizes per level")
    right.set(ylim=(0, 1), ylabel="best IoU with any anchor",
              title=f"{result['share_matched']:.0%} of {len(sizes)} objects have an anchor with IoU ≥ 0.5"
              if len(sizes) else result["summary"])
    for ax in (left, right):
        _size_axis(ax, low, high)
        if len(sizes) == 0:
            ax.text(0.5, 0.5, result["summary"], transform=ax.transAxes, ha="center", va="center", fontsize=11,
                    bbox={"facecolor": "white", "edgecolor": "tab:red"})
    fig.tight_layout()


def _size_axis(ax: Axes, low: float, high: float) -> None:
    """A log-scale x axis of object sizes from ``low`` to ``high`` pixels, ticked at powers of two."""
    ticks = [2 ** k for k in range(2, 12) if low <= 2 ** k <= high]
    ax.set(xscale="log", xlim=(low, high), xlabel="size √(w·h) after resizing (px, log scale)")
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.minorticks_off()
    ax.title.set_fontsize(10)


def anchor_fit_explorer(dataset: Any) -> widgets.interactive:
    """Pick the preset of :func:`draw_anchor_fit` for ``dataset``."""
    return explore(functools.partial(draw_anchor_fit, dataset=dataset),
                   preset=widgets.Dropdown(options=list(PRESETS), value="shapes-cpu", description="preset"))
