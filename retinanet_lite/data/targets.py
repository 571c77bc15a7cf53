"""What an image and a target look like, the checks that enforce it, and batching.

An image is a float32 tensor ``[3, H, W]`` in [0, 1]; a target is
``{"boxes": [N, 4] float32 xyxy pixels, "labels": [N] int64 in 0..K-1}``; N may be 0.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import Tensor

from ..boxes import check_boxes

#: One image's annotations (or predictions): ``{"boxes": [N, 4] xyxy, "labels": [N]}`` (+ ``"scores"``).
Target = dict[str, Tensor]


def check_image(image: Any, name: str = "image") -> Tensor:
    """Raise a ``ValueError`` naming the problem unless ``image`` is a float ``[3, H, W]`` tensor in [0, 1]."""
    if not isinstance(image, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor [3, H, W], got {type(image).__name__}")
    if image.dim() != 3 or image.shape[0] != 3:
        raise ValueError(f"{name} must have shape [3, H, W] (RGB, channels first), got {list(image.shape)}")
    if image.shape[1] == 0 or image.shape[2] == 0:
        raise ValueError(f"{name} is empty: shape {list(image.shape)}")
    if not image.is_floating_point():
        raise ValueError(f"{name} must be a float tensor in [0, 1], got dtype {image.dtype} (divide uint8 by 255)")
    low, high = image.aminmax()
    if not (bool(torch.isfinite(low)) and bool(torch.isfinite(high))) or low < -1e-3 or high > 1 + 1e-3:
        raise ValueError(f"{name} values must lie in [0, 1], got [{float(low):.3g}, {float(high):.3g}]")
    return image


def check_target(target: Any, num_classes: int, name: str = "target") -> Target:
    """Raise a ``ValueError`` unless ``target`` is ``{"boxes": [N, 4] xyxy, "labels": [N] int64 in 0..K-1}``.

    Labels may be any integer dtype (an empty ``torch.tensor([])`` is accepted for an image without objects).
    """
    if not isinstance(target, dict) or "boxes" not in target or "labels" not in target:
        raise ValueError(f"{name} must be a dict with 'boxes' and 'labels'")
    boxes, labels = target["boxes"], target["labels"]
    check_boxes(boxes, name=f"{name}['boxes']")
    if not isinstance(labels, Tensor) or labels.dim() != 1:
        raise ValueError(f"{name}['labels'] must be a 1-D tensor of class indices (int64)")
    if labels.numel() and (labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool):
        raise ValueError(f"{name}['labels'] must hold integer class indices, got dtype {labels.dtype}")
    if len(labels) != len(boxes):
        raise ValueError(f"{name} has {len(boxes)} boxes but {len(labels)} labels")
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        bad = labels[(labels < 0) | (labels >= num_classes)][0]
        raise ValueError(f"{name}['labels'] contains {int(bad)}, outside 0..{num_classes - 1} ({num_classes} classes)")
    return target


def collate(batch: Sequence[tuple[Tensor, Target]]) -> tuple[list[Tensor], list[Target]]:
    """``[(image, target), …]`` → ``([image, …], [target, …])``: lists, because sizes may differ."""
    images, targets = zip(*batch)
    return list(images), list(targets)
