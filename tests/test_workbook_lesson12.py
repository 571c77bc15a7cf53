"""Lesson 12's exercise checks name the usual mistakes, pass other correct answers, and refuse the package's."""
import hashlib
import json
from pathlib import Path

import nbformat
import pytest
import torch

from retinanet_lite import workbook
from retinanet_lite.workbook import lesson_exercises
from PIL import Image

from retinanet_lite import boxes as B
from retinanet_lite.config import preset_config
from retinanet_lite.data import CLASS_NAMES, CocoDetection, ShapesDataset, coco_ground_truth
from workbook_checks import failed_with, notebook_check, passes

LESSON = "12_what_next.ipynb"
NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"



def boxes_of_image(coco, image_id):  # the lesson's solution
    boxes = [a["bbox"] for a in coco["annotations"] if a["image_id"] == image_id]
    return torch.tensor([[x, y, x + w, y + h] for x, y, w, h in boxes], dtype=torch.float32).reshape(-1, 4)


def boxes_with(convert=lambda x, y, w, h: [x, y, x + w, y + h], filtered=True, empty_shape=True, dtype=torch.float32):
    def boxes(coco, image_id):
        rows = [convert(*a["bbox"]) for a in coco["annotations"] if not filtered or a["image_id"] == image_id]
        result = torch.tensor(rows, dtype=dtype)
        return result.reshape(-1, 4) if empty_shape else result
    return boxes


def test_exercises_are_registered_in_the_lessons_order():
    assert [e.name for e in lesson_exercises("12")] == ["boxes_of_image", "coco_dict", "quiz"]


def test_boxes_of_image():
    passes("boxes_of_image", boxes_of_image)

    def by_tensors(coco, image_id):
        xywh = torch.zeros(0, 4)
        for a in coco["annotations"]:
            if a["image_id"] == image_id:
                xywh = torch.cat([xywh, torch.tensor([a["bbox"]])])
        return torch.cat([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], dim=1)
    passes("boxes_of_image", by_tensors)
    failed_with("boxes_of_image", boxes_with(convert=lambda *b: list(b)), "taken as xyxy")
    failed_with("boxes_of_image", boxes_with(convert=lambda x, y, w, h: [x, y, x + w - 1, y + h - 1]), "no − 1")
    failed_with("boxes_of_image", boxes_with(convert=lambda x, y, w, h: [x, y, x + h, y + w]), "swapped")
    failed_with("boxes_of_image", boxes_with(convert=lambda x, y, w, h: [x - w / 2, y - h / 2, x + w / 2, y + h / 2]),
                "top-left corner")
    failed_with("boxes_of_image", boxes_with(filtered=False), "every annotation")
    failed_with("boxes_of_image", boxes_with(empty_shape=False), "[0, 4]")
    failed_with("boxes_of_image", boxes_with(dtype=torch.float64), "float32")
    failed_with("boxes_of_image", lambda c, i: boxes_of_image(c, i).flip(0), "file order")
    failed_with("boxes_of_image", workbook.lesson12.coco_boxes_of_image, "ready-made")
    failed_with("boxes_of_image", lambda c, i: B.xywh_to_xyxy(
        torch.tensor([a["bbox"] for a in c["annotations"] if a["image_id"] == i]).reshape(-1, 4)), "ready-made")


def coco_dict(targets, file_names, sizes, class_names, *, first_id=1, category=1, corners=False):  # the lesson's
    images, annotations = [], []
    for image_id, (target, file_name, (height, width)) in enumerate(zip(targets, file_names, sizes), start=first_id):
        images.append({"id": image_id, "file_name": file_name, "height": height, "width": width})
        for (x1, y1, x2, y2), label in zip(target["boxes"].tolist(), target["labels"].tolist()):
            bbox = [x1, y1, x2, y2] if corners else [x1, y1, x2 - x1, y2 - y1]
            annotations.append({"id": len(annotations) + first_id, "image_id": image_id, "category_id": label + category,
                                "bbox": bbox, "area": bbox[2] * bbox[3], "iscrowd": 0})
    categories = [{"id": k + category, "name": name} for k, name in enumerate(class_names)]
    return {"images": images, "annotations": annotations, "categories": categories}


def test_coco_dict_check(tmp_path):
    check = notebook_check(LESSON, "coco_dict")
    namespace = {"torch": torch, "json": json, "Image": Image, "ShapesDataset": ShapesDataset, "CLASS_NAMES": CLASS_NAMES,
                 "CocoDetection": CocoDetection, "workdir": tmp_path}
    check({**namespace, "coco_dict": coco_dict})
    check({**namespace, "coco_dict": lambda t, f, s, c: coco_ground_truth(
        t, c, [{"file_name": n, "height": h, "width": w} for n, (h, w) in zip(f, s)])})
    with pytest.raises(AssertionError, match="ids should be 1"):
        check({**namespace, "coco_dict": lambda *a: coco_dict(*a, first_id=0)})
    with pytest.raises(AssertionError, match="category ids should be 1, 2, 3"):
        check({**namespace, "coco_dict": lambda *a: coco_dict(*a, category=0)})
    with pytest.raises(AssertionError, match="bbox is \\[x, y, w, h\\]"):
        check({**namespace, "coco_dict": lambda *a: coco_dict(*a, corners=True)})


def test_quiz_check_runs_inside_the_workbook():
    cells = nbformat.read(NOTEBOOKS / LESSON, as_version=4).cells
    answer = next(c.source for c in cells if c.metadata.get("exercise") == "quiz" and "exercise" in c.metadata["tags"])
    check = notebook_check(LESSON, "quiz")
    namespace = {"hashlib": hashlib, "preset_config": preset_config}
    exec(answer, namespace)
    check(namespace)
    with pytest.raises(AssertionError, match="question \\[2\\]"):
        check({**namespace, "quiz_answers": lambda: {**namespace["quiz_answers"](), 2: "a"}})
