"""Lesson 00's exercises: a box in COCO's format, one COCO annotation, COCO's size ranges."""
from __future__ import annotations

from collections.abc import Callable

import torch
import torchvision

from .. import boxes as B
from .core import declare, exercise
from .diagnose import as_tensor, diagnose, expect_shape

#: Hand-picked xyxy boxes, with float corners, and the COCO [x, y, w, h] of each.
COCO_CASES = [([10.0, 20.0, 50.0, 80.0], [10.0, 20.0, 40.0, 60.0]),
              ([0.0, 0.0, 128.0, 64.0], [0.0, 0.0, 128.0, 64.0]),
              ([31.5, 7.25, 40.0, 100.5], [31.5, 7.25, 8.5, 93.25])]


def coco_bbox(box: list[float]) -> list[float]:
    """The package's conversion, with the exercise's signature: one xyxy box → COCO's [x, y, w, h]."""
    return B.xyxy_to_xywh(torch.tensor([box], dtype=torch.float64))[0].tolist()


@exercise("to_coco_bbox", "00", fallback=coco_bbox, forbidden=(torchvision.ops.box_convert, B.xyxy_to_xywh, B.xyxy_to_cxcywh))
def check_to_coco_bbox(to_coco_bbox: Callable[[list[float]], list[float]]) -> None:
    """``to_coco_bbox([x1, y1, x2, y2])`` → ``[x, y, w, h]`` (one box, lists of 4 floats)."""
    for box, expected in COCO_CASES:
        got = as_tensor(to_coco_bbox(list(box)), "to_coco_bbox")
        expect_shape(got, (4,), f"to_coco_bbox({box})")
        x1, y1, x2, y2 = box
        diagnose(got, torch.tensor(expected, dtype=torch.float64), {
            "to_coco_bbox returns the xyxy box unchanged: COCO's bbox is [x, y, w, h], with w = x2 − x1 and "
            "h = y2 − y1": lambda: box,
            "to_coco_bbox adds 1 to the width and height: coordinates lie on pixel edges, so w = x2 − x1 (no +1)":
                lambda: [x1, y1, x2 - x1 + 1, y2 - y1 + 1],
            "to_coco_bbox returns the centre of the box: COCO's x, y are its top-left corner":
                lambda: [(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1],
            "to_coco_bbox puts the size first: the order is [x, y, w, h]": lambda: [x2 - x1, y2 - y1, x1, y1],
            "to_coco_bbox swaps x and y: the order is [x, y, w, h], x along the columns":
                lambda: [y1, x1, y2 - y1, x2 - x1],
        }, f"to_coco_bbox({box}) should be {expected}, got {got.tolist()}")


declare("00", "coco_annotation", "coco_size_ranges")
