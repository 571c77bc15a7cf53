"""Bounding boxes: validation, format conversion, IoU, and anchor-relative encoding.

Every box in this package is ``xyxy`` in pixels: ``(x1, y1, x2, y2)`` with ``x1 <= x2`` and
``y1 <= y2``, float32. ``cxcywh`` (centre, width, height) and ``xywh`` (top-left, width, height;
the COCO file format) exist only at the edges, through the conversions below.
"""
from __future__ import annotations

import math

import torch
import torchvision
from torch import Tensor

#: Width/height deltas are clamped to this before ``exp`` so a wild prediction cannot overflow:
#: a box can grow at most 1000/16 = 62.5x its anchor in one decode step.
BBOX_EXP_CLAMP = math.log(1000.0 / 16)

#: Weights that multiply (dx, dy, dw, dh) when encoding (and divide them when decoding). RetinaNet
#: (paper, Detectron) uses 1 for all four, i.e. no scaling; Faster R-CNN's second stage uses (10, 10, 5, 5).
DEFAULT_WEIGHTS = (1.0, 1.0, 1.0, 1.0)


def check_boxes(boxes: Tensor, name: str = "boxes") -> Tensor:
    """Raise a ``ValueError`` naming the problem unless ``boxes`` is a valid ``[N, 4]`` xyxy tensor.

    Returns ``boxes`` unchanged so the call can be used inline.
    """
    if not isinstance(boxes, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of shape [N, 4], got {type(boxes).__name__}")
    if boxes.dim() != 2 or boxes.shape[-1] != 4:
        raise ValueError(f"{name} must have shape [N, 4] (xyxy), got {list(boxes.shape)}")
    if not boxes.is_floating_point():
        raise ValueError(f"{name} must be a float tensor (xyxy pixels), got dtype {boxes.dtype}")
    if not torch.isfinite(boxes).all():
        raise ValueError(f"{name} contains NaN or infinite coordinates")
    bad_x = boxes[:, 2] < boxes[:, 0]
    bad_y = boxes[:, 3] < boxes[:, 1]
    if bad_x.any():
        i = int(bad_x.nonzero()[0])
        raise ValueError(f"{name}[{i}] = {boxes[i].tolist()} has x2 < x1; boxes must be xyxy")
    if bad_y.any():
        i = int(bad_y.nonzero()[0])
        raise ValueError(f"{name}[{i}] = {boxes[i].tolist()} has y2 < y1; boxes must be xyxy")
    return boxes


def xywh_to_xyxy(boxes: Tensor) -> Tensor:
    """``[N, 4]`` (x, y, w, h) with (x, y) the top-left corner → ``[N, 4]`` xyxy."""
    x, y, w, h = boxes.unbind(-1)
    return torch.stack([x, y, x + w, y + h], dim=-1)


def xyxy_to_xywh(boxes: Tensor) -> Tensor:
    """``[N, 4]`` xyxy → ``[N, 4]`` (x, y, w, h) with (x, y) the top-left corner (COCO files)."""
    x1, y1, x2, y2 = boxes.unbind(-1)
    return torch.stack([x1, y1, x2 - x1, y2 - y1], dim=-1)


def cxcywh_to_xyxy(boxes: Tensor) -> Tensor:
    """``[N, 4]`` (cx, cy, w, h) → ``[N, 4]`` xyxy."""
    cx, cy, w, h = boxes.unbind(-1)
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=-1)


def xyxy_to_cxcywh(boxes: Tensor) -> Tensor:
    """``[N, 4]`` xyxy → ``[N, 4]`` (cx, cy, w, h)."""
    x1, y1, x2, y2 = boxes.unbind(-1)
    return torch.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], dim=-1)


def box_area(boxes: Tensor) -> Tensor:
    """``[N, 4]`` xyxy → ``[N]`` areas in square pixels."""
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def intersection_union(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """Pairwise intersection and union areas of ``a`` ``[N, 4]`` and ``b`` ``[M, 4]``, each ``[N, M]``."""
    # Overlap of every (a, b) pair along x and along y, one coordinate at a time: [N, M] each.
    width = (torch.minimum(a[:, None, 2], b[None, :, 2]) - torch.maximum(a[:, None, 0], b[None, :, 0])).clamp(min=0)
    height = (torch.minimum(a[:, None, 3], b[None, :, 3]) - torch.maximum(a[:, None, 1], b[None, :, 1])).clamp(min=0)
    inter = width * height
    union = box_area(a)[:, None] + box_area(b)[None, :] - inter
    return inter, union


def box_iou(a: Tensor, b: Tensor) -> Tensor:
    """Intersection over union of every box in ``a`` ``[N, 4]`` with every box in ``b`` ``[M, 4]``.

    Both xyxy. Returns ``[N, M]`` in [0, 1]; two empty (zero-area) boxes have IoU 0, not NaN.
    """
    inter, union = intersection_union(a, b)
    return inter / union.clamp(min=torch.finfo(union.dtype).tiny)


def generalized_box_iou(a: Tensor, b: Tensor) -> Tensor:
    """Generalised IoU (Rezatofighi et al. 2019) of paired boxes ``a`` and ``b``, both ``[N, 4]`` xyxy.

    GIoU = IoU − (|C| − |A ∪ B|) / |C| with C the smallest box enclosing both; in [−1, 1].
    Returns ``[N]`` (element-wise, not pairwise: this is what the regression loss needs).
    """
    top_left = torch.maximum(a[:, :2], b[:, :2])
    bottom_right = torch.minimum(a[:, 2:], b[:, 2:])
    wh = (bottom_right - top_left).clamp(min=0)
    inter = wh[:, 0] * wh[:, 1]
    union = box_area(a) + box_area(b) - inter
    enclosing_wh = torch.maximum(a[:, 2:], b[:, 2:]) - torch.minimum(a[:, :2], b[:, :2])
    enclosing = enclosing_wh[:, 0] * enclosing_wh[:, 1]
    eps = 1e-7
    return inter / (union + eps) - (enclosing - union) / (enclosing + eps)


def clip_boxes(boxes: Tensor, image_size: tuple[int, int]) -> Tensor:
    """Clip ``[N, 4]`` xyxy boxes to an image of ``(height, width)`` pixels."""
    height, width = image_size
    x = boxes[:, 0::2].clamp(0, width)
    y = boxes[:, 1::2].clamp(0, height)
    return torch.stack([x[:, 0], y[:, 0], x[:, 1], y[:, 1]], dim=-1)


def hflip_boxes(boxes: Tensor, width: int) -> Tensor:
    """``[N, 4]`` xyxy boxes of an image ``width`` px wide, mirrored left-right with it (``image.flip(-1)``)."""
    x1, y1, x2, y2 = boxes.unbind(-1)
    return torch.stack([width - x2, y1, width - x1, y2], dim=-1)


def rot90_boxes(boxes: Tensor, width: int) -> Tensor:
    """``[N, 4]`` xyxy boxes of an image ``width`` px wide, turned with it by a quarter turn counter-clockwise
    (``image.rot90(1, dims=(-2, -1))``): pixel ``(y, x)`` moves to ``(width - 1 - x, y)``."""
    x1, y1, x2, y2 = boxes.unbind(-1)
    return torch.stack([y1, width - x2, y2, width - x1], dim=-1)


def encode_boxes(anchors: Tensor, boxes: Tensor, weights: tuple[float, ...] = DEFAULT_WEIGHTS) -> Tensor:
    """Express each box relative to its anchor as deltas ``(dx, dy, dw, dh)``.

    ``anchors`` and ``boxes`` are paired ``[N, 4]`` xyxy. With anchor centre/size (xa, ya, wa, ha) and
    box (x, y, w, h): ``dx = wx·(x − xa)/wa``, ``dy = wy·(y − ya)/ha``, ``dw = ww·log(w/wa)``,
    ``dh = wh·log(h/ha)``. Returns ``[N, 4]``; :func:`decode_boxes` is its exact inverse.
    """
    wx, wy, ww, wh = weights
    xa, ya, wa, ha = xyxy_to_cxcywh(anchors).unbind(-1)
    x, y, w, h = xyxy_to_cxcywh(boxes).unbind(-1)
    return torch.stack(
        [wx * (x - xa) / wa, wy * (y - ya) / ha, ww * torch.log(w / wa), wh * torch.log(h / ha)], dim=-1
    )


def decode_boxes(anchors: Tensor, deltas: Tensor, weights: tuple[float, ...] = DEFAULT_WEIGHTS) -> Tensor:
    """Turn deltas ``[N, 4]`` relative to ``anchors`` ``[N, 4]`` xyxy back into ``[N, 4]`` xyxy boxes.

    The inverse of :func:`encode_boxes`. ``dw`` and ``dh`` are clamped to ``BBOX_EXP_CLAMP`` before
    ``exp`` so that an untrained network cannot produce infinite boxes.
    """
    wx, wy, ww, wh = weights
    xa, ya, wa, ha = xyxy_to_cxcywh(anchors).unbind(-1)
    dx, dy, dw, dh = deltas.unbind(-1)
    x = dx / wx * wa + xa
    y = dy / wy * ha + ya
    w = torch.exp((dw / ww).clamp(max=BBOX_EXP_CLAMP)) * wa
    h = torch.exp((dh / wh).clamp(max=BBOX_EXP_CLAMP)) * ha
    return cxcywh_to_xyxy(torch.stack([x, y, w, h], dim=-1))


def class_wise_nms(boxes: Tensor, scores: Tensor, labels: Tensor, iou_threshold: float) -> Tensor:
    """Non-maximum suppression done separately for each class; returns kept indices, best score first.

    ``boxes`` ``[N, 4]`` xyxy, ``scores`` ``[N]``, ``labels`` ``[N]``. The trick: shift each class's
    boxes by ``label × (coordinate span + 1)`` so boxes of different classes can never overlap, then
    run one ordinary NMS (torchvision's compiled ``nms``) over all of them.
    """
    if boxes.numel() == 0:
        return torch.empty(0, dtype=torch.long, device=boxes.device)
    shift = labels.to(boxes.dtype) * (boxes.max() - boxes.min() + 1)
    return torchvision.ops.nms(boxes + shift[:, None], scores, iou_threshold)
