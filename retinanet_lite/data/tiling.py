"""Large images in tiles: where the tiles go, what happens to a box cut by a tile edge, and detection
on a whole large image by running the model tile by tile.

A *window* is a tile's place in the image, ``(x1, y1, x2, y2)`` in pixels (xyxy, like a box).

**The rule for boxes cut by a tile edge** (:func:`crop_target`): a box is kept, clipped to the tile,
if at least ``min_visible`` (default 0.5) of its area lies inside the tile, and dropped otherwise.
Keeping every sliver would teach the model to call a strip of leaves at the border a whole crown;
dropping a box that is half visible would do the opposite harm: its pixels are still in the tile,
unlabelled, so the model is told "this is background" there. Neither is free; 0.5 keeps the larger
half. The model has no way to mark a region as "ignore" (its anchors are only positive, negative or
ignored by IoU, see :mod:`retinanet_lite.matching`), so a dropped-but-visible box really is
background for that tile. With overlapping tiles such an object is seen whole, labelled, in a
neighbouring tile, which limits the damage.

**Tiled detection** (:func:`detect_tiled`): the model finds candidates in every overlapping tile;
they are shifted to image coordinates, candidates that touch a tile edge inside the image are
dropped (the object is cut there; with an overlap at least as large as the largest object, the
neighbouring tile sees it whole), and class-wise NMS over the whole image merges the objects found
twice in the overlaps, then the ``max_detections`` best are kept.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor

from ..boxes import clip_boxes
from ..tta import merge_views, model_views, view_candidates
from .targets import Target

Window = tuple[int, int, int, int]


def tile_windows(height: int, width: int, tile_size: int, overlap: int = 0) -> list[Window]:
    """Equal square tiles of ``tile_size`` covering an image, neighbours overlapping by ≥ ``overlap`` px.

    Along each side ``n = ceil((L - overlap) / (tile_size - overlap))`` tiles are spread evenly from
    the first pixel to the last (so the overlap may be a little larger than asked, never smaller). A
    side shorter than ``tile_size`` gets one tile of its own length. Row-major order (top row first).
    """
    if tile_size < 1 or not 0 <= overlap < tile_size:
        raise ValueError(f"need tile_size ≥ 1 and 0 ≤ overlap < tile_size, got tile_size={tile_size}, "
                         f"overlap={overlap}")
    rows, cols = _starts(height, tile_size, overlap), _starts(width, tile_size, overlap)
    return [(x, y, x + min(tile_size, width), y + min(tile_size, height)) for y in rows for x in cols]


def _starts(length: int, tile_size: int, overlap: int) -> list[int]:
    """Start positions of tiles of ``tile_size`` spread evenly over ``length`` with ≥ ``overlap`` between them."""
    if length <= tile_size:
        return [0]
    count = math.ceil((length - overlap) / (tile_size - overlap))
    return [round(i * (length - tile_size) / (count - 1)) for i in range(count)]


def split_windows(height: int, width: int, tile_size: int) -> list[Window]:
    """Tiles that *partition* the image (no pixel in two tiles), each at most ``tile_size`` px a side.

    Along each side ``n = ceil(L / tile_size)`` tiles of near-equal length. For evaluation: every
    object is counted in one tile only (unless a tile edge cuts it). Row-major order.
    """
    if tile_size < 1:
        raise ValueError(f"tile_size must be ≥ 1, got {tile_size}")
    ys, xs = _edges(height, tile_size), _edges(width, tile_size)
    return [(x1, y1, x2, y2) for y1, y2 in zip(ys, ys[1:]) for x1, x2 in zip(xs, xs[1:])]


def _edges(length: int, tile_size: int) -> list[int]:
    """``n + 1`` edges cutting ``length`` into ``n = ceil(length / tile_size)`` near-equal parts."""
    count = max(1, math.ceil(length / tile_size))
    return [round(i * length / count) for i in range(count + 1)]


def visible_fraction(boxes: Tensor, window: Sequence[float]) -> Tensor:
    """``[N]``: the fraction of each box's area (``boxes`` ``[N, 4]`` xyxy) inside ``window``; 0 for empty boxes."""
    x1, y1, x2, y2 = window
    inside = clip_boxes(boxes - boxes.new_tensor([x1, y1, x1, y1]), (y2 - y1, x2 - x1))
    area = (boxes[:, 2:] - boxes[:, :2]).clamp(min=0).prod(1)
    inside_area = (inside[:, 2:] - inside[:, :2]).clamp(min=0).prod(1)
    return torch.where(area > 0, inside_area / area.clamp(min=1e-12), torch.zeros_like(area))


def crop_target(target: Target, window: Sequence[int], min_visible: float = 0.5) -> Target:
    """The part of ``target`` inside ``window``, in the window's coordinates (its top-left corner is 0, 0).

    Boxes with at least ``min_visible`` of their area inside are kept, clipped to the window; the
    others are dropped (see the module docstring for why, and what it costs). Other per-box entries
    (``labels``, ``scores``) follow their boxes.
    """
    if not 0 < min_visible <= 1:
        raise ValueError(f"min_visible must be in (0, 1], got {min_visible}")
    x1, y1, x2, y2 = window
    keep = visible_fraction(target["boxes"], window) >= min_visible
    boxes = clip_boxes(target["boxes"][keep] - target["boxes"].new_tensor([x1, y1, x1, y1]), (y2 - y1, x2 - x1))
    return {**{k: v[keep] for k, v in target.items()}, "boxes": boxes}


def crop_image(image: Tensor, window: Sequence[int]) -> Tensor:
    """The ``[C, y2 - y1, x2 - x1]`` part of an image ``[C, H, W]`` inside ``window`` (a view, not a copy)."""
    x1, y1, x2, y2 = window
    return image[:, y1:y2, x1:x2]


@torch.no_grad()
def detect_tiled(model: torch.nn.Module, image: Tensor, tile_size: int = 256, overlap: int = 128,
                 batch_size: int = 8, drop_cut: bool = True, edge_margin: float = 1.0) -> Target:
    """Detections on a large ``image`` ``[3, H, W]`` by overlapping tiles → one ``{"boxes", "scores", "labels"}``.

    ``model`` is a :class:`~retinanet_lite.model.RetinaNet` (anything with its ``config``,
    ``candidates(images)`` and ``nms(found)``). Each tile's candidates (scored, before NMS) are shifted to
    image coordinates; with ``drop_cut``, a candidate within ``edge_margin`` px of a tile edge that is
    not an image edge is dropped (the tile saw only part of that object; choose ``overlap`` ≥ the
    largest object so the neighbouring tile sees it whole). Then ``model.nms`` runs over all tiles'
    candidates at once: class-wise NMS merges an object found in two overlapping tiles into one
    detection, and at most ``config.max_detections`` are kept, best score first. A model with
    ``config.tta_views > 1`` (or several ``tta_scales``) looks at each tile in several views: each view's
    candidates of all tiles go through ``model.nms``, and the views are then fused
    (:func:`~retinanet_lite.tta.merge_views`). Boxes are xyxy pixels of ``image``.
    """
    was_training = model.training
    model.eval()
    height, width = image.shape[-2:]
    windows = tile_windows(height, width, tile_size, overlap)
    views = model_views(model.config)
    found: list[list[Target]] = [[] for _ in views]  # per view: the candidates of every tile
    for start in range(0, len(windows), batch_size):
        batch = windows[start:start + batch_size]
        tiles = [crop_image(image, window) for window in batch]
        for per_view, view in zip(found, views):
            for window, candidates in zip(batch, view_candidates(model, tiles, *view)):
                if drop_cut:
                    candidates = _drop_cut(candidates, window, (height, width), edge_margin)
                x1, y1 = window[0], window[1]
                shift = candidates["boxes"].new_tensor([x1, y1, x1, y1])
                per_view.append({**candidates, "boxes": candidates["boxes"] + shift})
    model.train(was_training)
    merged = [{key: torch.cat([f[key] for f in per_view]) for key in ("boxes", "scores", "labels")}
              for per_view in found]
    return merge_views(model, merged)


def _drop_cut(found: Target, window: Window, size: tuple[int, int], margin: float) -> Target:
    """``found`` (in tile coordinates) without the boxes that touch an edge of ``window`` lying inside the image."""
    x1, y1, x2, y2 = window
    height, width = size
    boxes = found["boxes"]
    cut = torch.zeros(len(boxes), dtype=torch.bool, device=boxes.device)
    if x1 > 0:
        cut |= boxes[:, 0] <= margin
    if y1 > 0:
        cut |= boxes[:, 1] <= margin
    if x2 < width:
        cut |= boxes[:, 2] >= (x2 - x1) - margin
    if y2 < height:
        cut |= boxes[:, 3] >= (y2 - y1) - margin
    return {k: v[~cut] for k, v in found.items()}
