"""Anchors: the fixed reference boxes that RetinaNet classifies and refines.

Every location of every pyramid level gets ``A = len(ratios) * len(scales)`` anchors (9 in the
paper: ratios 1:2, 1:1, 2:1 × scales 2^0, 2^(1/3), 2^(2/3)). A ratio is height / width, so ratio 2
is a tall box. Anchors are ``xyxy`` in pixels of the (padded) input image.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Sequence

import torch
from torch import Tensor

if TYPE_CHECKING:  # only for the type hint: config imports this module's paper constants
    from .config import RetinaNetConfig

PAPER_STRIDES = (8, 16, 32, 64, 128)  # P3–P7
PAPER_SIZES = (32, 64, 128, 256, 512)  # base anchor side per level, in pixels
PAPER_RATIOS = (0.5, 1.0, 2.0)  # height / width
PAPER_SCALES = (1.0, 2 ** (1 / 3), 2 ** (2 / 3))


def cell_anchors(size: float, ratios: Sequence[float], scales: Sequence[float]) -> Tensor:
    """The ``A`` anchors of one location, centred on (0, 0): ``[A, 4]`` xyxy.

    Ordered ratio-major, then scale (as torchvision orders them). An anchor of side ``s = size·scale``
    and ratio ``r = h / w`` keeps the area ``s²``: ``w = s / √r``, ``h = s·√r``.
    """
    ratios_t = torch.as_tensor(ratios, dtype=torch.float64)
    sides = size * torch.as_tensor(scales, dtype=torch.float64)
    heights = (ratios_t.sqrt()[:, None] * sides[None, :]).reshape(-1)
    widths = ((1 / ratios_t.sqrt())[:, None] * sides[None, :]).reshape(-1)
    return (torch.stack([-widths, -heights, widths, heights], dim=1) / 2).float()


def grid_size(image_size: tuple[int, int], stride: int) -> tuple[int, int]:
    """``(rows, cols)`` of the feature map at ``stride`` for an input of ``(height, width)``.

    Every stride-2 convolution in the backbone and FPN (kernel 3, padding 1, or ResNet's stem) rounds
    up, so a level of stride ``s`` has ``ceil(H / s) × ceil(W / s)`` cells.
    """
    height, width = image_size
    return math.ceil(height / stride), math.ceil(width / stride)


def level_anchors(
    image_size: tuple[int, int], stride: int, size: float, ratios: Sequence[float],
    scales: Sequence[float], offset: float = 0.5,
) -> Tensor:
    """All anchors of one pyramid level: ``[rows·cols·A, 4]`` xyxy, location-major (row, then column).

    The centre of cell (row, col) is at ``((col + offset)·stride, (row + offset)·stride)``.
    """
    rows, cols = grid_size(image_size, stride)
    ys = (torch.arange(rows, dtype=torch.float32) + offset) * stride
    xs = (torch.arange(cols, dtype=torch.float32) + offset) * stride
    cy, cx = torch.meshgrid(ys, xs, indexing="ij")
    centres = torch.stack([cx, cy, cx, cy], dim=-1).reshape(-1, 1, 4)  # [rows·cols, 1, 4]
    return (centres + cell_anchors(size, ratios, scales)[None]).reshape(-1, 4)


def make_anchors(
    image_size: tuple[int, int],
    strides: Sequence[int] = PAPER_STRIDES,
    sizes: Sequence[float] = PAPER_SIZES,
    ratios: Sequence[float] = PAPER_RATIOS,
    scales: Sequence[float] = PAPER_SCALES,
    offset: float = 0.5,
) -> Tensor:
    """Anchors for a whole pyramid: ``[Σ rows_l·cols_l·A, 4]`` xyxy pixels, level after level.

    ``image_size`` is ``(height, width)``; ``strides[l]`` and ``sizes[l]`` belong to level ``l``.
    ``offset`` is where a centre sits inside its cell, in strides: 0.5 is the cell centre,
    0 the top-left corner (torchvision's ``AnchorGenerator``).
    """
    if len(strides) != len(sizes):
        raise ValueError(f"need one anchor size per stride, got {len(sizes)} sizes for {len(strides)} strides")
    if min(ratios) <= 0 or min(scales) <= 0:
        raise ValueError(f"anchor ratios and scales must be positive, got ratios={ratios}, scales={scales}")
    return torch.cat([
        level_anchors(image_size, stride, size, ratios, scales, offset) for stride, size in zip(strides, sizes)
    ])


def anchors_per_level(image_size: tuple[int, int], strides: Sequence[int], num_per_location: int) -> list[int]:
    """How many anchors each level contributes for an input of ``(height, width)``."""
    return [math.prod(grid_size(image_size, s)) * num_per_location for s in strides]


def config_anchors(config: "RetinaNetConfig", image_size: tuple[int, int]) -> Tensor:
    """The anchors a model with ``config`` uses for a padded input of ``(height, width)``: ``[N, 4]`` xyxy.

    :func:`make_anchors` with the config's strides, sizes, ratios, scales and centre offset.
    """
    return make_anchors(tuple(image_size), config.strides, config.anchor_sizes, config.anchor_ratios,
                        config.anchor_scales, config.anchor_offset)
