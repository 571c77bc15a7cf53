"""Lesson 12's exercises: the boxes of one image of a COCO file, a COCO file by hand, the course quiz."""
from __future__ import annotations

from collections.abc import Callable

import torch
import torchvision

from .. import boxes as B
from .core import Mistake, declare, exercise
from .diagnose import as_tensor, diagnose


def coco_boxes_of_image(coco: dict, image_id: int) -> torch.Tensor:
    """The package's conversion, with the exercise's signature: the ``[N, 4]`` xyxy boxes (float32) of the
    annotations of image ``image_id`` in a parsed COCO dict, in file order."""
    bboxes = [a["bbox"] for a in coco["annotations"] if a["image_id"] == image_id]
    return B.xywh_to_xyxy(torch.tensor(bboxes, dtype=torch.float32).reshape(-1, 4))


#: A small COCO dict: image ids out of order, annotations of different images interleaved, one empty image.
TOY_COCO = {
    "images": [{"id": 7, "file_name": "a.png", "height": 100, "width": 120},
               {"id": 3, "file_name": "b.png", "height": 100, "width": 120},
               {"id": 12, "file_name": "c.png", "height": 100, "width": 120}],
    "annotations": [
        {"id": 1, "image_id": 7, "category_id": 1, "bbox": [10.0, 20.0, 30.0, 15.0], "area": 450.0, "iscrowd": 0},
        {"id": 2, "image_id": 3, "category_id": 2, "bbox": [5.5, 0.0, 12.0, 40.0], "area": 480.0, "iscrowd": 0},
        {"id": 3, "image_id": 7, "category_id": 3, "bbox": [60.0, 44.0, 25.0, 50.0], "area": 1250.0, "iscrowd": 0},
        {"id": 4, "image_id": 7, "category_id": 1, "bbox": [0.0, 70.0, 8.0, 8.0], "area": 64.0, "iscrowd": 0},
    ],
    "categories": [{"id": 1, "name": "circle"}, {"id": 2, "name": "square"}, {"id": 3, "name": "triangle"}],
}


@exercise("boxes_of_image", "12", fallback=coco_boxes_of_image,
          forbidden=(B.xywh_to_xyxy, torchvision.ops.box_convert))
def check_boxes_of_image(boxes_of_image: Callable[[dict, int], torch.Tensor]) -> None:
    """``boxes_of_image(coco, image_id)`` → ``[N, 4]`` float32 xyxy boxes of that image, in file order."""
    for image_id in (7, 3, 12):
        got = boxes_of_image(TOY_COCO, image_id)
        expected = coco_boxes_of_image(TOY_COCO, image_id)
        n = len(expected)
        if not isinstance(got, torch.Tensor):
            raise Mistake(f"boxes_of_image should return a tensor [N, 4], got {type(got).__name__}")
        if n == 0 and tuple(got.shape) != (0, 4):
            raise Mistake(f"image {image_id} has no annotations: return an empty [0, 4] tensor (.reshape(-1, 4)), "
                          f"got shape {list(got.shape)}")
        if len(got) == len(TOY_COCO["annotations"]) != n:
            raise Mistake(f"image {image_id}: you return the boxes of every annotation in the file; keep only those "
                          "whose image_id is the one asked for")
        if tuple(got.shape) != (n, 4):
            raise Mistake(f"image {image_id} has {n} annotations: expected boxes [{n}, 4], got {list(got.shape)}")
        if got.dtype != torch.float32:
            raise Mistake(f"the boxes should be float32 (like the dataset's), got {got.dtype}")
        if n == 0:
            continue
        xywh = torch.tensor([a["bbox"] for a in TOY_COCO["annotations"] if a["image_id"] == image_id], dtype=torch.float64)
        x, y, w, h = xywh.unbind(-1)
        diagnose(as_tensor(got, "boxes_of_image"), expected.double(), {
            "the COCO bbox is taken as xyxy: it is [x, y, w, h], so x2 = x + w and y2 = y + h": lambda: xywh,
            "x2 = x + w − 1: coordinates lie on pixel edges, so x2 = x + w (no − 1)":
                lambda: torch.stack([x, y, x + w - 1, y + h - 1], -1),
            "width and height are swapped: bbox is [x, y, w, h], so x2 = x + w and y2 = y + h":
                lambda: torch.stack([x, y, x + h, y + w], -1),
            "the boxes are (cx, cy, w, h)-style: COCO's x, y are the top-left corner, not the centre":
                lambda: torch.stack([x - w / 2, y - h / 2, x + w / 2, y + h / 2], -1),
            "the boxes are not in file order: keep the annotations in the order of the file":
                lambda: expected.double().flip(0),
        }, f"image {image_id}: expected the xyxy boxes {expected.tolist()}, got {got.tolist()}")


declare("12", "coco_dict", "quiz")
