"""Data: the procedural shapes dataset, COCO-format files, and batching.

* :class:`ShapesDataset` draws circles, squares and triangles of many colours and sizes on varied,
  noisy backgrounds. Image ``i`` depends only on ``(seed, i)``, so the same arguments always give
  the same images, on any machine, in any order of access.
* :func:`write_coco` / :class:`CocoDetection` write any dataset to PNG files + a COCO-format JSON and
  read any COCO-format detection folder back, with errors that name the faulty field.
* :func:`collate` batches ``(image, target)`` pairs as lists (images may differ in size).

Conventions: an image is a float32 tensor ``[3, H, W]`` in [0, 1]; a target is
``{"boxes": [N, 4] float32 xyxy pixels, "labels": [N] int64 in 0..K-1}``; N may be 0.
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

from .boxes import check_boxes, xywh_to_xyxy, xyxy_to_xywh

Target = dict[str, Tensor]

CLASS_NAMES = ("circle", "square", "triangle")

#: The validation split of seed ``s`` is generated with seed ``s + VAL_SEED_OFFSET``, so the
#: training and validation images never coincide.
VAL_SEED_OFFSET = 1_000_003


# ------------------------------------------------------------------------------------ validation
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


# ------------------------------------------------------------------------------------ shapes
def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A ``[H, W, 3]`` background: a solid colour, a linear gradient, or smooth blotchy noise."""
    kind = rng.integers(3)
    if kind == 0:
        return np.broadcast_to(rng.uniform(0, 1, 3), (size, size, 3)).copy()
    if kind == 1:
        start, end = rng.uniform(0, 1, (2, 3))
        angle = rng.uniform(0, 2 * math.pi)
        t = np.linspace(0, 1, size)
        ramp = (np.cos(angle) * t[None, :] + np.sin(angle) * t[:, None])
        ramp = (ramp - ramp.min()) / max(np.ptp(ramp), 1e-6)
        return start + ramp[..., None] * (end - start)
    coarse = rng.uniform(0, 1, (4, 4, 3))  # upsampled 4x4 noise → soft blotches
    image = torch.nn.functional.interpolate(torch.from_numpy(coarse).permute(2, 0, 1)[None], size=(size, size),
                                            mode="bicubic", align_corners=True)[0].permute(1, 2, 0).numpy()
    return np.clip(image, 0, 1)


def _shape_mask(rng: np.random.Generator, label: int, side: float, centre: np.ndarray,
                grid: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Boolean ``[H, W]`` mask of one shape of width ``side`` px (pixel centres at ``i + 0.5``)."""
    ys, xs = grid
    dx, dy = xs - centre[0], ys - centre[1]
    if label == 0:  # circle
        return dx ** 2 + dy ** 2 <= (side / 2) ** 2
    if label == 1:  # axis-aligned square
        return (np.abs(dx) <= side / 2) & (np.abs(dy) <= side / 2)
    # triangle: a roughly equilateral triangle at a random rotation
    angles = rng.uniform(0, 2 * math.pi) + np.array([0, 2, 4]) * math.pi / 3 + rng.uniform(-0.25, 0.25, 3)
    corners = np.stack([np.cos(angles), np.sin(angles)], 1)
    corners *= side / np.ptp(corners, axis=0).max()  # the longer side of its box is `side` px
    inside = np.ones_like(dx, dtype=bool)
    for k in range(3):  # on the inner side of each edge (corners are counter-clockwise)
        (ax, ay), (bx, by) = corners[k], corners[(k + 1) % 3]
        inside &= (bx - ax) * (dy - ay) - (by - ay) * (dx - ax) >= 0
    return inside


def _contrasting_colour(rng: np.random.Generator, background: np.ndarray) -> np.ndarray:
    """A random RGB colour at least 0.35 away (mean absolute difference) from ``background``."""
    for _ in range(20):
        colour = rng.uniform(0, 1, 3)
        if np.abs(colour - background).mean() >= 0.35:
            return colour
    return 1.0 - np.round(background)  # the colour opposite the background always contrasts


class ShapesDataset(Dataset):
    """Procedural images of circles, squares and triangles with exact ``xyxy`` boxes.

    ``ds[i]`` → ``(image [3, S, S] float32 in [0, 1], {"boxes": [N, 4], "labels": [N]})`` with N in
    ``0..max_objects`` (about ``empty_fraction`` of the images have none). Shapes are ``min_side`` to
    ``max_side`` pixels wide (the longer side of their box), overlap each other only a little (at most
    ``max_overlap`` of the smaller box is covered), and each box is the tight box around the
    shape's visible pixels. Image ``i`` depends only on ``(seed, i)``.
    """

    class_names = CLASS_NAMES
    num_classes = len(CLASS_NAMES)

    def __init__(self, num_images: int, image_size: int = 128, seed: int = 0, max_objects: int = 6,
                 min_side: int = 10, max_side: int = 60, empty_fraction: float = 0.08,
                 max_overlap: float = 0.15, noise: float = 0.04) -> None:
        if num_images < 0:
            raise ValueError(f"num_images must be >= 0, got {num_images}")
        if not 0 < min_side <= max_side < image_size:
            raise ValueError(f"need 0 < min_side <= max_side < image_size, got {min_side}, {max_side}, {image_size}")
        self.num_images, self.image_size, self.seed = num_images, image_size, seed
        self.max_objects, self.min_side, self.max_side = max_objects, min_side, max_side
        self.empty_fraction, self.max_overlap, self.noise = empty_fraction, max_overlap, noise

    def __len__(self) -> int:
        return self.num_images

    def __getitem__(self, index: int) -> tuple[Tensor, Target]:
        if not -self.num_images <= index < self.num_images:
            raise IndexError(f"index {index} out of range for {self.num_images} images")
        rng = np.random.default_rng([self.seed, index % self.num_images])
        size = self.image_size
        image = _background(rng, size)
        grid = np.mgrid[0:size, 0:size] + 0.5
        wanted = 0 if rng.uniform() < self.empty_fraction else int(rng.integers(1, self.max_objects + 1))
        masks, labels = [], []
        for _ in range(wanted * 10):  # rejection sampling: try again when a shape overlaps too much
            if len(masks) == wanted:
                break
            label = int(rng.integers(self.num_classes))
            side = rng.uniform(self.min_side, self.max_side)
            centre = rng.uniform(side / 2 + 1, size - side / 2 - 1, 2)
            mask = _shape_mask(rng, label, side, centre, (grid[0], grid[1]))
            if not mask.any() or any(_covered(mask, m) > self.max_overlap for m in masks):
                continue
            image[mask] = _contrasting_colour(rng, image[int(centre[1]), int(centre[0])])
            masks.append(mask)
            labels.append(label)
        boxes = [_tight_box(mask & ~np.logical_or.reduce(masks[k + 1:], initial=False))  # what stays visible
                 for k, mask in enumerate(masks)]
        image = image + rng.normal(0, rng.uniform(0, self.noise), image.shape)
        image = torch.from_numpy(np.clip(image, 0, 1).astype(np.float32)).permute(2, 0, 1).contiguous()
        target = {"boxes": torch.from_numpy(np.array(boxes, dtype=np.float32).reshape(-1, 4)),
                  "labels": torch.tensor(labels, dtype=torch.int64)}
        return image, target

    def __repr__(self) -> str:
        return f"ShapesDataset(num_images={self.num_images}, image_size={self.image_size}, seed={self.seed})"


def _covered(a: np.ndarray, b: np.ndarray) -> float:
    """Share of the smaller of two shapes' bounding boxes that the other one's box covers."""
    box_a, box_b = _tight_box(a), _tight_box(b)
    overlap = np.clip(np.minimum(box_a[2:], box_b[2:]) - np.maximum(box_a[:2], box_b[:2]), 0, None).prod()
    return float(overlap / min(np.prod(box_a[2:] - box_a[:2]), np.prod(box_b[2:] - box_b[:2])))


def _tight_box(mask: np.ndarray) -> np.ndarray:
    """The xyxy pixel box ``[4]`` float32 that just contains the ``True`` pixels of ``mask [H, W]``."""
    rows, cols = np.nonzero(mask)
    return np.array([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1], dtype=np.float32)


# ------------------------------------------------------------------------------------ COCO files
def write_coco(dataset: Dataset, out: str | Path, class_names: Sequence[str]) -> Path:
    """Write ``dataset`` as ``out/images/NNNNNN.png`` + ``out/annotations.json`` (COCO detection format).

    Category ids in the file are ``1..K`` (COCO convention); labels ``0..K-1`` map to ``label + 1``.
    Returns the path of the JSON file.
    """
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for index in range(len(dataset)):
        image, target = dataset[index]
        file_name = f"{index:06d}.png"
        pixels = (image.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
        Image.fromarray(pixels).save(out / "images" / file_name)
        images.append({"id": index + 1, "file_name": file_name, "height": image.shape[1], "width": image.shape[2]})
        for box, label in zip(xyxy_to_xywh(target["boxes"]).tolist(), target["labels"].tolist()):
            annotations.append({"id": len(annotations) + 1, "image_id": index + 1, "category_id": label + 1,
                                "bbox": box, "area": box[2] * box[3], "iscrowd": 0})
    categories = [{"id": k + 1, "name": name} for k, name in enumerate(class_names)]
    path = out / "annotations.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return path


def write_shapes_splits(out: str | Path, num_train: int = 2000, num_val: int = 500, image_size: int = 128,
                        seed: int = 0) -> tuple[Path, Path]:
    """Write the shapes train split (``seed``) and val split (``seed + VAL_SEED_OFFSET``) under ``out``."""
    out = Path(out)
    train = write_coco(ShapesDataset(num_train, image_size, seed), out / "train", CLASS_NAMES)
    val = write_coco(ShapesDataset(num_val, image_size, seed + VAL_SEED_OFFSET), out / "val", CLASS_NAMES)
    return train, val


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
