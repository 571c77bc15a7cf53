"""RetinaNet: backbone → FPN → two subnets, with torchvision's detection calling convention.

``model.train(); losses = model(images, targets)`` returns ``{"classification", "regression"}``;
``model.eval(); detections = model(images)`` returns one ``{"boxes", "scores", "labels"}`` per image.
``images`` is a list of ``[3, H, W]`` float tensors in [0, 1] (sizes may differ); boxes are xyxy pixels
of the image as given.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .anchors import anchors_per_level, config_anchors
from .backbone import build_backbone
from .boxes import clip_boxes, class_wise_nms, decode_boxes, encode_boxes
from .config import RetinaNetConfig, preset_config
from .data import Target, check_image, check_target
from .fpn import PyramidFeatures
from .heads import classification_head, regression_head
from .losses import focal_loss, giou_loss, smooth_l1_loss
from .matching import IGNORE, match_anchors_batch, sample_anchors
from .tta import detect_in_views

#: Anchors are kept for this many distinct (padded input size, device) pairs, the least recently used
#: dropped first: on images of many sizes the cache stays small instead of growing with every new size.
ANCHOR_CACHE_SIZE = 16


def resize_factor(config: RetinaNetConfig, size: tuple[int, int]) -> float:
    """The factor by which a model with ``config`` resizes an image of ``size = (height, width)``.

    The short side becomes ``min_size`` unless the long side would then pass ``max_size``; with
    ``image_scale`` every image is resized by that one factor; 1.0 (no resizing) when both are None.
    """
    if config.image_scale is not None:
        return config.image_scale
    if config.min_size is None:
        return 1.0
    factor = config.min_size / min(size)
    if config.max_size is not None:
        factor = min(factor, config.max_size / max(size))
    return factor


def resized_size(config: RetinaNetConfig, size: tuple[int, int]) -> tuple[int, int]:
    """``(height, width)`` of an image of ``size`` after resizing by :func:`resize_factor` (rounded down)."""
    factor = resize_factor(config, size)
    return (math.floor(size[0] * factor), math.floor(size[1] * factor))


def resize_image(config: RetinaNetConfig, image: Tensor) -> Tensor:
    """Image ``[C, H, W]`` resized as a model with ``config`` resizes it: to :func:`resized_size` (bilinear);
    the image itself when its factor is 1."""
    size = tuple(image.shape[-2:])
    if resize_factor(config, size) == 1.0:
        return image
    return F.interpolate(image[None], size=resized_size(config, size), mode="bilinear", align_corners=False)[0]


def padded_size(config: RetinaNetConfig, sizes: list[tuple[int, int]]) -> tuple[int, int]:
    """``(H, W)`` of the batch a model with ``config`` makes of images of ``sizes`` (each ``(height, width)``):
    the largest resized height and width, rounded up to a multiple of ``size_divisible``."""
    divisor = config.size_divisible
    heights, widths = zip(*(resized_size(config, size) for size in sizes))
    return (-(-max(heights) // divisor) * divisor, -(-max(widths) // divisor) * divisor)


class RetinaNet(nn.Module):
    """The detector described by a :class:`RetinaNetConfig`."""

    def __init__(self, config: RetinaNetConfig) -> None:
        super().__init__()
        self.config = config
        self.backbone = build_backbone(
            config.backbone, config.backbone_widths, config.backbone_blocks, frozen_bn=config.frozen_bn
        )
        self.fpn = PyramidFeatures(self.backbone.channels, config.fpn_channels)
        self.classification = classification_head(
            config.fpn_channels, config.num_anchors, config.num_classes, config.head_convs,
            config.head_group_norm, config.prior_prob,
        )
        self.regression = regression_head(
            config.fpn_channels, config.num_anchors, config.head_convs, config.head_group_norm
        )
        if config.channels_last:
            self.to(memory_format=torch.channels_last)  # conv weights; prepare_batch lays out the images
        self.register_buffer("image_mean", torch.tensor(config.image_mean).view(3, 1, 1), persistent=False)
        self.register_buffer("image_std", torch.tensor(config.image_std).view(3, 1, 1), persistent=False)
        self._anchor_cache: OrderedDict[tuple[Any, ...], Tensor] = OrderedDict()
        # What the labels 0..K-1 stand for (set from the training data; saved in checkpoints).
        self.class_names: tuple[str, ...] | None = None
        self.category_ids: tuple[int, ...] | None = None  # COCO category id of each label, for own data

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> "RetinaNet":
        """A fresh model from a named preset (``"shapes-cpu"``, ``"paper"``, …) with config overrides."""
        return cls(preset_config(name, **overrides))

    # ----------------------------------------------------------------------------------- forward
    def forward(self, images: list[Tensor], targets: list[Target] | None = None) -> dict[str, Tensor] | list[Target]:
        """Training (with ``targets``): the loss dict. Eval: a list of detections, one per image."""
        if self.training and targets is None:
            raise ValueError("in training mode the model needs targets: model(images, targets)")
        if not self.training:
            # candidates, then NMS (or, with several views, each view's detections fused)
            return detect_in_views(self, self._check_inputs(images, None))
        images = self._check_inputs(images, targets)
        batch, scales = self.prepare_batch(images)
        targets = [_scale_target(t, s) for t, s in zip(targets, scales)]
        cls_logits, box_deltas = self.head_outputs(batch)  # [B, N, K], [B, N, 4]
        return self.loss(cls_logits, box_deltas, self.anchors(batch.shape[-2:], batch.device), targets)

    def head_outputs(self, batch: Tensor) -> tuple[Tensor, Tensor]:
        """Raw network outputs for a normalised, padded ``[B, 3, H, W]`` batch: logits ``[B, N, K]`` and
        deltas ``[B, N, 4]``, row ``i`` belonging to anchor ``i`` of :meth:`anchors`."""
        features = self.fpn(self.backbone(batch))
        cls_logits, box_deltas = self.classification(features), self.regression(features)
        anchors = self.anchors(batch.shape[-2:], batch.device)
        if len(anchors) != cls_logits.shape[1]:
            raise ValueError(
                f"the heads produced {cls_logits.shape[1]} rows but there are {len(anchors)} anchors: "
                f"config.strides {self.config.strides} do not match the backbone/FPN strides (8–128)"
            )
        return cls_logits, box_deltas

    def anchors(self, image_size: tuple[int, int], device: torch.device) -> Tensor:
        """The ``[N, 4]`` xyxy anchors of a padded input of ``(H, W)``; the last ``ANCHOR_CACHE_SIZE``
        (size, device) pairs are cached."""
        key = (tuple(image_size), str(device))
        if key in self._anchor_cache:
            self._anchor_cache.move_to_end(key)
        else:
            self._anchor_cache[key] = config_anchors(self.config, image_size).to(device)
            if len(self._anchor_cache) > ANCHOR_CACHE_SIZE:
                self._anchor_cache.popitem(last=False)
        return self._anchor_cache[key]

    # ------------------------------------------------------------------------------------ inputs
    def _check_inputs(self, images: list[Tensor] | Tensor, targets: list[Target] | None) -> list[Tensor]:
        """Validate images (and targets) with errors that name the problem; returns a list of images."""
        if isinstance(images, Tensor) and images.dim() == 4:
            images = list(images)
        if not isinstance(images, (list, tuple)) or len(images) == 0:
            raise ValueError("images must be a non-empty list of [3, H, W] tensors")
        for i, image in enumerate(images):
            check_image(image, name=f"images[{i}]")
        if targets is not None:
            if len(targets) != len(images):
                raise ValueError(f"got {len(images)} images but {len(targets)} targets")
            for i, target in enumerate(targets):
                check_target(target, self.config.num_classes, name=f"targets[{i}]")
        return list(images)

    def prepare_batch(self, images: list[Tensor]) -> tuple[Tensor, list[float]]:
        """Resize (if the config says so), normalise and zero-pad images into one ``[B, 3, H, W]`` batch
        (in channels-last memory layout if the config says so).

        Returns the batch and each image's resize factor (1.0 when not resized).
        """
        sizes = [tuple(image.shape[-2:]) for image in images]
        scales = [resize_factor(self.config, size) for size in sizes]
        resized = [resize_image(self.config, image) for image in images]
        height, width = padded_size(self.config, sizes)
        layout = torch.channels_last if self.config.channels_last else torch.contiguous_format
        first = resized[0]
        batch = torch.empty(len(resized), 3, height, width, dtype=first.dtype, device=first.device,
                            memory_format=layout).zero_()
        for slot, image in zip(batch, resized):
            slot[:, : image.shape[-2], : image.shape[-1]] = (image - self.image_mean) / self.image_std
        return batch, scales

    # -------------------------------------------------------------------------------------- loss
    def loss(self, cls_logits: Tensor, box_deltas: Tensor, anchors: Tensor, targets: list[Target]) -> dict[str, Tensor]:
        """Focal loss over all non-ignored anchors (or the minibatch ``config.cls_sampling`` picks, see
        :func:`~retinanet_lite.matching.sample_anchors`) and box loss over positives, both divided by the
        number of positive anchors in the batch (at least 1). Computed for the whole batch at once."""
        c = self.config
        gt_boxes, gt_labels, gt_valid = pad_targets(targets, cls_logits.device)  # [B, G, 4], [B, G], [B, G]
        matches = match_anchors_batch(anchors, gt_boxes, gt_valid, c.pos_iou, c.neg_iou, c.allow_low_quality)
        positive = matches >= 0  # [B, N]
        num_positive = positive.sum().clamp(min=1)
        matched = matches.clamp(min=0)

        labels = gt_labels.gather(1, matched)  # [B, N]
        # 1 at (image, anchor, its class) for positive anchors, built directly in the logits' dtype
        cls_targets = torch.zeros_like(cls_logits).scatter_(2, labels[..., None], positive[..., None].to(cls_logits.dtype))
        # validate=False: these targets are 0/1 by construction, and the check would wait for the device
        element_loss = focal_loss(cls_logits, cls_targets, c.focal_alpha, c.focal_gamma, validate=False)  # [B, N, K]
        if c.cls_sampling == "all":
            counted = (matches != IGNORE)[..., None]  # [B, N, 1]: multiplying is cheaper than selecting
            cls_loss = (element_loss * counted).sum()
        else:
            anchor_loss = element_loss.sum(2)  # [B, N]
            chosen = sample_anchors(matches, anchor_loss.detach(), anchors, c.cls_sampling, c.cls_sampling_batch,
                                    c.ohem_nms_iou)
            cls_loss = (anchor_loss * chosen).sum()

        image_index, anchor_index = positive.nonzero(as_tuple=True)  # the P positives
        pos_anchors = anchors[anchor_index]  # [P, 4]
        pos_boxes = gt_boxes[image_index, matched[image_index, anchor_index]]  # [P, 4]
        pos_deltas = box_deltas[image_index, anchor_index]  # [P, 4]
        if c.box_loss == "giou":
            box_loss = giou_loss(decode_boxes(pos_anchors, pos_deltas, c.box_weights), pos_boxes, "sum")
        else:
            beta = c.smooth_l1_beta if c.box_loss == "smooth_l1" else 0.0
            target_deltas = encode_boxes(pos_anchors, pos_boxes, c.box_weights)
            box_loss = smooth_l1_loss(pos_deltas, target_deltas, beta, "sum")
        return {
            "classification": cls_loss / num_positive,
            "regression": c.box_loss_weight * box_loss / num_positive,
        }

    # -------------------------------------------------------------------------------- inference
    @torch.no_grad()
    def candidates(self, images: list[Tensor], score_thresh: float | None = None) -> list[Target]:
        """Inference up to (not including) NMS, one ``{"boxes" [C, 4], "scores" [C], "labels" [C]}`` per image.

        See :meth:`select_candidates`; ``score_thresh`` defaults to ``config.score_thresh``. Boxes are
        xyxy pixels of each image as given.
        """
        images = self._check_inputs(images, None)
        batch, scales = self.prepare_batch(images)
        cls_logits, box_deltas = self.head_outputs(batch)
        anchors = self.anchors(batch.shape[-2:], batch.device)
        per_level = anchors_per_level(tuple(batch.shape[-2:]), self.config.strides, self.config.num_anchors)
        sizes = [tuple(image.shape[-2:]) for image in images]
        return self.select_candidates(cls_logits, box_deltas, anchors, per_level, sizes, scales, score_thresh)

    def select_candidates(
        self, cls_logits: Tensor, box_deltas: Tensor, anchors: Tensor, per_level: list[int],
        sizes: list[tuple[int, int]], scales: list[float], score_thresh: float | None = None,
    ) -> list[Target]:
        """From the head outputs ``[B, N, K]`` / ``[B, N, 4]``: keep the ``topk_candidates`` best (anchor,
        class) pairs of each level, drop those with a score ≤ ``score_thresh``, decode them, and map them
        back to each original image (``sizes`` ``(height, width)``, resize factors ``scales``), clipped.
        ``per_level`` is the number of anchors of each level (they are concatenated). Returns one
        ``{"boxes" [C, 4], "scores" [C], "labels" [C]}`` per image, best score first."""
        threshold = self.config.score_thresh if score_thresh is None else score_thresh
        boxes, scores, labels = self._top_candidates(cls_logits, box_deltas, anchors, per_level)
        results = []
        for i, (size, scale) in enumerate(zip(sizes, scales)):
            keep = scores[i] > threshold
            order = scores[i][keep].argsort(descending=True)
            results.append({"boxes": clip_boxes(boxes[i][keep][order] / scale, size),
                            "scores": scores[i][keep][order], "labels": labels[i][keep][order]})
        return results

    def nms(self, found: Target, nms_iou: float | None = None) -> Target:
        """Class-wise NMS of one image's candidates at ``nms_iou`` (default ``config.nms_iou``), then at
        most ``config.max_detections`` of them, best score first."""
        threshold = self.config.nms_iou if nms_iou is None else nms_iou
        kept = class_wise_nms(found["boxes"], found["scores"], found["labels"], threshold)[: self.config.max_detections]
        return {k: v[kept] for k, v in found.items()}

    def _top_candidates(
        self, cls_logits: Tensor, box_deltas: Tensor, anchors: Tensor, per_level: list[int]
    ) -> tuple[Tensor, Tensor, Tensor]:
        """For every image at once: the ``topk_candidates`` best (anchor, class) pairs of each level,
        decoded. Returns boxes ``[B, C, 4]``, scores ``[B, C]``, labels ``[B, C]``."""
        c = self.config
        batch, _, num_classes = cls_logits.shape
        all_boxes, all_scores, all_labels = [], [], []
        for logits, deltas, level_anchors in zip(
            cls_logits.split(per_level, dim=1), box_deltas.split(per_level, dim=1), anchors.split(per_level)
        ):
            flat = logits.reshape(batch, -1)  # [B, N_l·K]
            k = min(c.topk_candidates, flat.shape[1])
            top_logits, top_index = flat.topk(k, dim=1)
            anchor_index = top_index // num_classes
            chosen_deltas = deltas.gather(1, anchor_index[..., None].expand(-1, -1, 4))
            all_boxes.append(decode_boxes(level_anchors[anchor_index], chosen_deltas, c.box_weights))
            all_scores.append(top_logits.sigmoid())
            all_labels.append(top_index % num_classes)
        return torch.cat(all_boxes, 1), torch.cat(all_scores, 1), torch.cat(all_labels, 1)


def pad_targets(targets: list[Target], device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    """Stack per-image targets into padded tensors: boxes ``[B, G, 4]``, labels ``[B, G]``, valid ``[B, G]``.

    ``G`` is the largest number of boxes in one image, at least 1 (an all-invalid slot when no image
    has objects) so that gathering by matched index always has something to index.
    """
    most = max(1, *(len(t["boxes"]) for t in targets))
    boxes = torch.zeros(len(targets), most, 4, device=device)
    labels = torch.zeros(len(targets), most, dtype=torch.long, device=device)
    valid = torch.zeros(len(targets), most, dtype=torch.bool, device=device)
    for i, target in enumerate(targets):
        n = len(target["boxes"])
        boxes[i, :n] = target["boxes"].to(device)
        labels[i, :n] = target["labels"].to(device)
        valid[i, :n] = True
    return boxes, labels, valid


def _scale_target(target: Target, scale: float) -> Target:
    """The target of an image resized by ``scale`` (boxes scaled, everything else unchanged)."""
    return target if scale == 1.0 else {**target, "boxes": target["boxes"] * scale}
