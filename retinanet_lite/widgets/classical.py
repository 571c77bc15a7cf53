"""Lesson 10 (the classical baseline): every stage of :mod:`retinanet_lite.classical` on one shapes
validation image — blur, Laplacian, edges, closing, components, boxes (``xyxy`` pixels)."""
from __future__ import annotations

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import Tensor

from .. import classical
from ..boxes import box_iou
from ..data import VAL_SEED_OFFSET, ShapesDataset
from ..viz import draw_boxes, show_image
from .explore import explore

#: The classical explorer shows images 0 … CLASSICAL_IMAGES − 1 of the shapes validation split.
CLASSICAL_IMAGES = 64


def degrade(image: Tensor, contrast: float = 1.0, noise: float = 0.0, seed: int = 0) -> Tensor:
    """A harder copy of a ``[3, H, W]`` image: colours pulled towards the image's mean colour
    (``contrast`` 1 keeps them, 0 makes the image flat), then Gaussian noise of std ``noise`` (seeded)."""
    mean = image.mean(dim=(1, 2), keepdim=True)
    noisy = image - (1 - contrast) * (image - mean)
    if noise > 0:
        noisy = noisy + noise * torch.randn(image.shape, generator=torch.Generator().manual_seed(seed))
    return noisy.clamp(0, 1)


def signed_log_image(log: Tensor) -> Tensor:
    """``[C, H, W]`` LoG → ``[H, W]``: at every pixel, the value of the channel where it is largest in size."""
    strongest = log.abs().argmax(dim=0, keepdim=True)
    return log.gather(0, strongest)[0]


def colour_components(labels: Tensor) -> np.ndarray:
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
