"""COCO detection files: the annotation dict, writing a dataset as COCO, and reading any COCO folder.

The COCO detection format is one JSON object::

    {"images":      [{"id", "file_name", "height", "width"}, …],
     "annotations": [{"id", "image_id", "category_id", "bbox": [x, y, w, h], "area", "iscrowd"}, …],
     "categories":  [{"id", "name"}, …]}

with ``bbox`` in pixels from the image's top-left corner (xywh, not our xyxy), ``area`` = w·h here,
and ids starting at 1. :func:`coco_ground_truth` is the one place that builds this dict from targets;
:func:`write_coco` saves it next to PNG files and :class:`CocoDetection` reads any such folder back,
with errors that name the faulty file, annotation and field.
"""
from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from ..boxes import xywh_to_xyxy, xyxy_to_xywh
from .targets import Target


def coco_ground_truth(targets: Sequence[Target], class_names: Sequence[str],
                      images: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Targets (``{"boxes": [N, 4] xyxy, "labels": [N] in 0..K-1}`` each) → the COCO detection dict.

    Image ``i`` gets id ``i + 1`` and the fields of ``images[i]`` (e.g. ``file_name``, ``height``,
    ``width``); annotations are numbered ``1..`` in order, with category id ``label + 1``, the box
    as xywh (computed in float64), ``area`` = w·h and ``iscrowd`` 0; class ``k`` becomes category
    ``{"id": k + 1, "name": class_names[k]}``.
    """
    if len(images) != len(targets):
        raise ValueError(f"got {len(targets)} targets but {len(images)} image entries: one each per image")
    annotations = []
    for image_id, target in enumerate(targets, start=1):
        for box, label in zip(xyxy_to_xywh(target["boxes"].double()).tolist(), target["labels"].tolist()):
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": label + 1,
                                "bbox": box, "area": box[2] * box[3], "iscrowd": 0})
    return {"images": [{"id": image_id, **entry} for image_id, entry in enumerate(images, start=1)],
            "annotations": annotations,
            "categories": [{"id": k + 1, "name": name} for k, name in enumerate(class_names)]}


def write_coco(dataset: Dataset, out: str | Path, class_names: Sequence[str]) -> Path:
    """Write ``dataset`` as ``out/images/NNNNNN.png`` + ``out/annotations.json`` (COCO detection format).

    Category ids in the file are ``1..K`` (COCO convention); labels ``0..K-1`` map to ``label + 1``
    (see :func:`coco_ground_truth`). Returns the path of the JSON file.
    """
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    targets, images = [], []
    for index in range(len(dataset)):
        image, target = dataset[index]
        file_name = f"{index:06d}.png"
        pixels = (image.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
        Image.fromarray(pixels).save(out / "images" / file_name)
        targets.append(target)
        images.append({"file_name": file_name, "height": image.shape[1], "width": image.shape[2]})
    path = out / "annotations.json"
    path.write_text(json.dumps(coco_ground_truth(targets, class_names, images)))
    return path


class CocoDetection(Dataset):
    """Any COCO-format detection folder: ``ds[i]`` → ``(image [3, H, W] in [0, 1], target)``.

    Category ids are remapped to labels ``0..K-1`` in sorted id order (``category_ids[label]`` maps
    back); crowd annotations (``iscrowd: 1``) are skipped. Every image file and annotation is
    checked when the dataset is built, and a malformed one raises a ``ValueError`` naming the file,
    the annotation id and the field. Boxes with zero width or height raise too, unless
    ``drop_degenerate=True`` (then they are dropped with a warning).
    """

    def __init__(self, annotation_file: str | Path, image_dir: str | Path | None = None,
                 drop_degenerate: bool = False) -> None:
        self.annotation_file = Path(annotation_file)
        self.image_dir = Path(image_dir) if image_dir is not None else self.annotation_file.parent / "images"
        try:
            coco = json.loads(self.annotation_file.read_text())
        except FileNotFoundError:
            raise ValueError(f"annotation file {self.annotation_file} does not exist") from None
        except json.JSONDecodeError as error:
            raise ValueError(f"{self.annotation_file} is not valid JSON: {error}") from None
        where = str(self.annotation_file)
        if not isinstance(coco, dict):
            raise ValueError(f"{where}: expected a JSON object with 'images', 'annotations', 'categories'")
        for key in ("images", "annotations", "categories"):
            if not isinstance(coco.get(key), list):
                raise ValueError(f"{where}: missing or non-list field '{key}'")
        self.category_ids = sorted(_field(c, "id", int, where, "category") for c in coco["categories"])
        names = {c["id"]: str(c.get("name", c["id"])) for c in coco["categories"]}
        self.class_names = tuple(names[i] for i in self.category_ids)
        self.num_classes = len(self.category_ids)
        self.images = [self._read_image_entry(entry, where) for entry in coco["images"]]
        self._boxes: dict[int, list[list[float]]] = {entry["id"]: [] for entry in self.images}
        self._labels: dict[int, list[int]] = {entry["id"]: [] for entry in self.images}
        label_of = {cid: label for label, cid in enumerate(self.category_ids)}
        for ann in coco["annotations"]:
            self._read_annotation(ann, label_of, where, drop_degenerate)

    def _read_image_entry(self, entry: Any, where: str) -> dict[str, Any]:
        """Validate one ``images`` entry and check that its file exists."""
        image_id = _field(entry, "id", int, where, "image")
        file_name = _field(entry, "file_name", str, where, f"image {image_id}")
        if not (self.image_dir / file_name).is_file():
            raise ValueError(f"{where}: image {image_id}: file {self.image_dir / file_name} does not exist")
        return {"id": image_id, "file_name": file_name}

    def _read_annotation(self, ann: Any, label_of: dict[int, int], where: str, drop_degenerate: bool) -> None:
        """Validate one ``annotations`` entry and file its box and label under its image."""
        ann_id = _field(ann, "id", int, where, "annotation")
        what = f"annotation {ann_id}"
        if ann.get("iscrowd", 0):
            return
        image_id = _field(ann, "image_id", int, where, what)
        if image_id not in self._boxes:
            raise ValueError(f"{where}: {what}: field 'image_id' = {image_id} is not in 'images'")
        category = _field(ann, "category_id", int, where, what)
        if category not in label_of:
            raise ValueError(f"{where}: {what}: field 'category_id' = {category} is not in 'categories'")
        bbox = ann.get("bbox")
        if (not isinstance(bbox, list) or len(bbox) != 4
                or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in bbox)):
            raise ValueError(f"{where}: {what}: field 'bbox' must be 4 finite numbers [x, y, w, h], got {bbox!r}")
        if bbox[2] < 0 or bbox[3] < 0:
            raise ValueError(f"{where}: {what}: field 'bbox' = {bbox} has a negative width or height")
        if bbox[2] == 0 or bbox[3] == 0:
            if not drop_degenerate:
                raise ValueError(f"{where}: {what}: field 'bbox' = {bbox} has zero width or height "
                                 "(pass drop_degenerate=True to drop such boxes)")
            warnings.warn(f"{where}: dropping {what}: degenerate bbox {bbox}", stacklevel=3)
            return
        self._boxes[image_id].append([float(v) for v in bbox])
        self._labels[image_id].append(label_of[category])

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[Tensor, Target]:
        entry = self.images[index]
        with Image.open(self.image_dir / entry["file_name"]) as file:
            pixels = np.asarray(file.convert("RGB"), dtype=np.float32) / 255
        image = torch.from_numpy(pixels).permute(2, 0, 1).contiguous()
        boxes = torch.tensor(self._boxes[entry["id"]], dtype=torch.float32).reshape(-1, 4)
        target = {"boxes": xywh_to_xyxy(boxes), "labels": torch.tensor(self._labels[entry["id"]], dtype=torch.int64)}
        return image, target


def _field(entry: Any, key: str, kind: type, where: str, what: str) -> Any:
    """``entry[key]`` if it exists and is a ``kind``, else a ``ValueError`` naming ``what`` and ``key``."""
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: each {what} must be a JSON object, got {entry!r}")
    value = entry.get(key)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ValueError(f"{where}: {what}: field '{key}' must be {kind.__name__}, got {value!r}")
    return value
