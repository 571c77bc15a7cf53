"""Test-time augmentation: detect in several symmetric views of an image and fuse what the views saw.

An aerial photograph has no "up": mirrored or turned by a quarter it shows the same forest, and a
recipe with ``hflip`` and ``rot90`` trains the model on all eight such views. At test time the
trained model, shown the eight views of one image, makes eight slightly different guesses for each
crown. Averaging them cancels part of each guess's error, as an ensemble of models would, for
eight times the inference work and no extra training.

A view is ``(turns, flip)``: mirror left-right if ``flip``, then turn by ``turns`` quarter turns
counter-clockwise (the order of the training augmentations). :data:`VIEWS` lists the eight; a model
with ``config.tta_views = n`` uses the first ``n`` (1, 2, 4 or 8). With ``config.tta_scales`` the
model also sees each view enlarged (or shrunk) by each factor, e.g. ``(1.0, 1.25)``: a crown then
falls on other anchors and other feature-map cells, another slightly different guess to average.

Fusing the views' detections (a simplified *weighted box fusion*, Solovyev et al. 2021):

1. each view's candidates are mapped back to the original image and go through the model's usual
   NMS (so a view casts about one box per object); the views' detections are pooled;
2. class-wise NMS over the pool picks one *head* box per object;
3. every pooled box joins the head of its class it overlaps most, if that IoU reaches the NMS
   threshold — the other views' boxes of the object, which NMS would throw away, vote instead;
4. a fused box is the mean of its members weighted by their squared scores (a confident guess counts
   more than a hesitant one), and its score is the mean over the views of the best member score in
   each view (0 for a view that saw nothing there): an object every view agrees on keeps its score, a
   guess only one view makes drops to 1/n of it.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

from .boxes import box_iou, class_wise_nms, hflip_boxes, rot90_boxes

if TYPE_CHECKING:  # only for the annotations: importing the data package here would be circular
    from .data.targets import Target

#: The eight symmetries of a square image as ``(quarter turns counter-clockwise, mirrored first)``, in
#: the order ``config.tta_views`` takes them: 2 = plain + mirrored, 4 = also a quarter turn of each.
VIEWS: tuple[tuple[int, bool], ...] = ((0, False), (0, True), (1, False), (1, True),
                                       (2, False), (2, True), (3, False), (3, True))
#: The numbers of views a model may use.
VIEW_COUNTS = (1, 2, 4, 8)


class Detector(Protocol):
    """What this module needs of a model (a :class:`~retinanet_lite.model.RetinaNet`)."""

    config: Any

    def candidates(self, images: list[Tensor]) -> list[Target]: ...

    def nms(self, found: Target) -> Target: ...


def view_image(image: Tensor, turns: int, flip: bool) -> Tensor:
    """Image ``[C, H, W]`` mirrored left-right if ``flip``, then turned ``turns`` quarter turns counter-clockwise."""
    image = image.flip(-1) if flip else image
    return image.rot90(turns, dims=(-2, -1))


def view_boxes(boxes: Tensor, size: tuple[int, int], turns: int, flip: bool) -> Tensor:
    """Boxes ``[N, 4]`` (xyxy pixels) of an image of ``size`` ``(H, W)`` moved as :func:`view_image` moves it."""
    height, width = size
    if flip:
        boxes = hflip_boxes(boxes, width)
    for _ in range(turns):
        boxes = rot90_boxes(boxes, width)
        height, width = width, height
    return boxes


def unview_boxes(boxes: Tensor, size: tuple[int, int], turns: int, flip: bool) -> Tensor:
    """Boxes ``[N, 4]`` (xyxy pixels) found in view ``(turns, flip)`` of an image of ``size`` ``(H, W)``,
    mapped back to that image: the remaining ``4 - turns`` quarter turns, then the mirror again."""
    height, width = size
    view_height, view_width = (width, height) if turns % 2 else (height, width)
    for _ in range((4 - turns) % 4):
        boxes = rot90_boxes(boxes, view_width)
        view_height, view_width = view_width, view_height
    return hflip_boxes(boxes, width) if flip else boxes


def fuse_views(found: list[Target], nms_iou: float, max_detections: int) -> Target:
    """Fuse the detections of one image seen in ``len(found)`` views (each view's after NMS, already
    mapped back to the image; ``{"boxes" [D, 4], "scores" [D], "labels" [D]}``) into at most
    ``max_detections`` detections, best first, by steps 2–4 of the module docstring."""
    boxes = torch.cat([f["boxes"] for f in found])
    scores = torch.cat([f["scores"] for f in found])
    labels = torch.cat([f["labels"] for f in found])
    view = torch.cat([torch.full_like(f["labels"], i) for i, f in enumerate(found)])
    if len(boxes) == 0:
        return {"boxes": boxes, "scores": scores, "labels": labels}
    heads = class_wise_nms(boxes, scores, labels, nms_iou)  # [H]
    overlap = box_iou(boxes[heads], boxes) * (labels[heads][:, None] == labels[None])  # [H, P]
    best, owner = overlap.max(0)  # each pooled box's closest head
    rows = torch.arange(len(heads), device=boxes.device)
    member = (owner[None] == rows[:, None]) & (best >= nms_iou)
    member[rows, heads] = True  # a head belongs to itself, even a zero-area one (its IoU with itself is 0)
    votes = scores * member  # [H, P]
    weights = votes * scores  # squared scores: a confident box pulls harder
    fused_boxes = (weights @ boxes) / weights.sum(1, keepdim=True)
    per_view = votes.new_zeros(len(heads), len(found)).scatter_reduce(1, view.expand_as(votes), votes, "amax")
    fused_scores = per_view.mean(1)
    order = fused_scores.argsort(descending=True)[:max_detections]
    return {"boxes": fused_boxes[order], "scores": fused_scores[order], "labels": labels[heads][order]}


def scale_image(image: Tensor, scale: float) -> Tensor:
    """Image ``[C, H, W]`` resized by ``scale`` (bilinear, size rounded down; a point at x, y of the image
    lands at ``scale·x, scale·y``); the image itself when ``scale`` is 1."""
    if scale == 1:
        return image
    return F.interpolate(image[None], scale_factor=scale, mode="bilinear", align_corners=False,
                         recompute_scale_factor=False)[0]


def view_candidates(model: Detector, images: list[Tensor], turns: int, flip: bool,
                    scale: float = 1.0) -> list[Target]:
    """``model.candidates`` of view ``(turns, flip)`` of each image ``[3, H, W]`` resized by ``scale``,
    boxes (xyxy pixels) mapped back to the image."""
    scaled = [scale_image(image, scale) for image in images]
    found = model.candidates([view_image(image, turns, flip) for image in scaled])
    return [{**f, "boxes": unview_boxes(f["boxes"], tuple(image.shape[-2:]), turns, flip) / scale}
            for f, image in zip(found, scaled)]


def model_views(config: Any) -> list[tuple[int, bool, float]]:
    """Every ``(turns, flip, scale)`` a model with ``config`` looks at an image in: the first
    ``config.tta_views`` of :data:`VIEWS` at each of ``config.tta_scales``."""
    return [(turns, flip, scale) for scale in config.tta_scales for turns, flip in VIEWS[:config.tta_views]]


def merge_views(model: Detector, found: list[Target]) -> Target:
    """One image's detections from the candidates of each of its views (mapped back): the model's NMS when
    there is one view, else the model's NMS in each view and :func:`fuse_views` of them at the model's NMS
    threshold."""
    if len(found) == 1:
        return model.nms(found[0])
    return fuse_views([model.nms(f) for f in found], model.config.nms_iou, model.config.max_detections)


@torch.no_grad()
def detect_in_views(model: Detector, images: list[Tensor]) -> list[Target]:
    """Detections for each image ``[3, H, W]`` from the views :func:`model_views` lists (one view: plain
    inference): one ``{"boxes" [D, 4] xyxy pixels, "scores" [D], "labels" [D]}`` per image."""
    per_view = [view_candidates(model, images, *view) for view in model_views(model.config)]
    return [merge_views(model, [views[i] for views in per_view]) for i in range(len(images))]
