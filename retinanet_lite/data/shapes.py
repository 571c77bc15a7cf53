"""The procedural shapes dataset: circles, squares and triangles on varied, noisy backgrounds.

Image ``i`` of :class:`ShapesDataset` depends only on ``(seed, i)``, so the same arguments always give
the same images, on any machine, in any order of access. :func:`write_shapes_splits` writes a train
and a val split as COCO-format folders (see :mod:`.coco`).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from .coco import write_coco
from .targets import Target

CLASS_NAMES = ("circle", "square", "triangle")

#: The validation split of seed ``s`` is generated with seed ``s + VAL_SEED_OFFSET``, so the
#: training and validation images never coincide.
VAL_SEED_OFFSET = 1_000_003


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
        masks, labels, mask_boxes = [], [], []
        for _ in range(wanted * 10):  # rejection sampling: try again when a shape overlaps too much
            if len(masks) == wanted:
                break
            label = int(rng.integers(self.num_classes))
            side = rng.uniform(self.min_side, self.max_side)
            centre = rng.uniform(side / 2 + 1, size - side / 2 - 1, 2)
            mask = _shape_mask(rng, label, side, centre, (grid[0], grid[1]))
            if not mask.any():
                continue
            box = _tight_box(mask)
            if any(_covered(box, other) > self.max_overlap for other in mask_boxes):
                continue
            image[mask] = _contrasting_colour(rng, image[int(centre[1]), int(centre[0])])
            masks.append(mask)
            labels.append(label)
            mask_boxes.append(box)
        boxes = [_tight_box(mask & ~np.logical_or.reduce(masks[k + 1:], initial=False))  # what stays visible
                 for k, mask in enumerate(masks)]
        image = image + rng.normal(0, rng.uniform(0, self.noise), image.shape)
        image = torch.from_numpy(np.clip(image, 0, 1).astype(np.float32)).permute(2, 0, 1).contiguous()
        target = {"boxes": torch.from_numpy(np.array(boxes, dtype=np.float32).reshape(-1, 4)),
                  "labels": torch.tensor(labels, dtype=torch.int64)}
        return image, target

    def __repr__(self) -> str:
        return f"ShapesDataset(num_images={self.num_images}, image_size={self.image_size}, seed={self.seed})"


def _covered(box_a: np.ndarray, box_b: np.ndarray) -> float:
    """Share of the smaller of two ``[4]`` xyxy boxes that the other one covers."""
    overlap = np.clip(np.minimum(box_a[2:], box_b[2:]) - np.maximum(box_a[:2], box_b[:2]), 0, None).prod()
    return float(overlap / min(np.prod(box_a[2:] - box_a[:2]), np.prod(box_b[2:] - box_b[:2])))


def _tight_box(mask: np.ndarray) -> np.ndarray:
    """The xyxy pixel box ``[4]`` float32 that just contains the ``True`` pixels of ``mask [H, W]``."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return np.array([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1], dtype=np.float32)


def write_shapes_splits(out: str | Path, num_train: int = 2000, num_val: int = 500, image_size: int = 128,
                        seed: int = 0) -> tuple[Path, Path]:
    """Write the shapes train split (``seed``) and val split (``seed + VAL_SEED_OFFSET``) under ``out``."""
    out = Path(out)
    train = write_coco(ShapesDataset(num_train, image_size, seed), out / "train", CLASS_NAMES)
    val = write_coco(ShapesDataset(num_val, image_size, seed + VAL_SEED_OFFSET), out / "val", CLASS_NAMES)
    return train, val
