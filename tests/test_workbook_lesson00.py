"""Lesson 00's exercise checks name the usual mistakes, pass other correct answers, and refuse the package's."""
import json
from pathlib import Path

import pytest
import torch

from retinanet_lite import workbook
from retinanet_lite.workbook import lesson_exercises
import torchvision

from retinanet_lite import boxes as B
from retinanet_lite.data import CLASS_NAMES, ShapesDataset, write_coco
from workbook_checks import failed_with, notebook_check, passes

LESSON = "00_welcome.ipynb"
NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"



def to_coco_bbox(box):  # the lesson's solution
    x1, y1, x2, y2 = box
    return [x1, y1, x2 - x1, y2 - y1]


def test_exercises_are_registered_in_the_lessons_order():
    assert [e.name for e in lesson_exercises("00")] == ["to_coco_bbox", "coco_annotation", "coco_size_ranges"]


def test_to_coco_bbox():
    passes("to_coco_bbox", to_coco_bbox)
    passes("to_coco_bbox", lambda b: [b[0], b[1], *(torch.tensor(b[2:]) - torch.tensor(b[:2])).tolist()])
    failed_with("to_coco_bbox", lambda b: list(b), "unchanged")
    failed_with("to_coco_bbox", lambda b: [b[0], b[1], b[2] - b[0] + 1, b[3] - b[1] + 1], "no +1")
    failed_with("to_coco_bbox", lambda b: [(b[0] + b[2]) / 2, (b[1] + b[3]) / 2, b[2] - b[0], b[3] - b[1]], "centre")
    failed_with("to_coco_bbox", lambda b: [b[2] - b[0], b[3] - b[1], b[0], b[1]], "size first")
    failed_with("to_coco_bbox", lambda b: [b[1], b[0], b[3] - b[1], b[2] - b[0]], "swaps x and y")
    failed_with("to_coco_bbox", workbook.lesson00.coco_bbox, "ready-made")
    failed_with("to_coco_bbox", lambda b: B.xyxy_to_xywh(torch.tensor([b]))[0].tolist(), "ready-made")
    failed_with("to_coco_bbox", lambda b: torchvision.ops.box_convert(torch.tensor(b), "xyxy", "xywh").tolist(),
                "ready-made")


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    small = ShapesDataset(4, image_size=128, seed=0)
    path = write_coco(small, tmp_path_factory.mktemp("coco"), CLASS_NAMES)
    return {"torch": torch, "small": small, "coco": json.loads(path.read_text())}


def coco_annotation(ann_id, image_id, box, label, *, category=1, corners=False, area=None):
    x1, y1, x2, y2 = box.tolist()
    w, h = x2 - x1, y2 - y1
    return {"id": ann_id, "image_id": image_id, "category_id": label + category,
            "bbox": [x1, y1, x2, y2] if corners else [x1, y1, w, h],
            "area": w * h if area is None else area(x1, y1, x2, y2), "iscrowd": 0}


def test_coco_annotation_check(written):
    check = notebook_check(LESSON, "coco_annotation")
    check({**written, "coco_annotation": coco_annotation})
    with pytest.raises(AssertionError, match="label \\+ 1"):
        check({**written, "coco_annotation": lambda *a: coco_annotation(*a, category=0)})
    with pytest.raises(AssertionError, match="xyxy corners"):
        check({**written, "coco_annotation": lambda *a: coco_annotation(*a, corners=True)})
    with pytest.raises(AssertionError, match="multiply the width and height"):
        check({**written, "coco_annotation": lambda *a: coco_annotation(*a, area=lambda x1, y1, x2, y2: x2 * y2)})
    with pytest.raises(AssertionError, match="missing"):
        check({**written, "coco_annotation": lambda *a: {k: v for k, v in coco_annotation(*a).items() if k != "iscrowd"}})


def size_ranges(area, upper_open=False):
    ranges = {"small": (0, 32 ** 2), "medium": (32 ** 2, 96 ** 2), "large": (96 ** 2, float("inf"))}
    return [n for n, (lo, hi) in ranges.items() if lo <= area and (area < hi if upper_open else area <= hi)]


def test_coco_size_ranges_check(written):
    check = notebook_check(LESSON, "coco_size_ranges")
    check({**written, "coco_size_ranges": size_ranges})
    check({**written, "coco_size_ranges": lambda a: [n for n, ok in (("small", a <= 1024), ("medium", 1024 <= a <= 9216),
                                                                       ("large", a >= 9216)) if ok]})
    with pytest.raises(AssertionError, match="closed"):
        check({**written, "coco_size_ranges": lambda a: size_ranges(a, upper_open=True)})
    with pytest.raises(AssertionError, match="list"):
        check({**written, "coco_size_ranges": lambda a: tuple(size_ranges(a))})
