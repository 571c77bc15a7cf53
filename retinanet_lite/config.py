"""The model's configuration: one dataclass, and the named presets built from it.

Every choice that changes what the detector computes lives here, with a comment saying what it
does, so that the lessons can discuss (and change) each knob. ``RetinaNetConfig.from_dict`` and
``config.replace`` reject unknown keys with a clear error.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from .anchors import PAPER_RATIOS, PAPER_SCALES, PAPER_SIZES, PAPER_STRIDES


@dataclass(frozen=True)
class RetinaNetConfig:
    """Architecture, anchors, loss and inference settings of a :class:`~retinanet_lite.model.RetinaNet`."""

    num_classes: int = 80
    # Backbone: "tiny" (TinyResNet with these widths/blocks) or a torchvision ResNet name.
    backbone: str = "resnet50"
    backbone_widths: tuple[int, int, int, int] = (32, 64, 128, 256)
    backbone_blocks: tuple[int, int, int, int] = (1, 1, 1, 1)
    frozen_bn: bool = False  # FrozenBatchNorm2d in the backbone (for tiny per-GPU batches)
    # FPN and heads.
    fpn_channels: int = 256
    head_convs: int = 4  # 3×3 convs in each subnet before the prediction conv
    head_group_norm: bool = False  # GroupNorm after each head conv (FCOS/torchvision v2 trick)
    prior_prob: float = 0.01  # π: every class sigmoid starts at this probability
    # Anchors: one stride and base size per level (P3–P7); ratios = height / width.
    strides: tuple[int, ...] = PAPER_STRIDES
    anchor_sizes: tuple[float, ...] = PAPER_SIZES
    anchor_ratios: tuple[float, ...] = PAPER_RATIOS
    anchor_scales: tuple[float, ...] = PAPER_SCALES
    anchor_offset: float = 0.5  # centre position inside a cell, in strides (0 = torchvision)
    # Matching and losses.
    pos_iou: float = 0.5
    neg_iou: float = 0.4
    allow_low_quality: bool = True
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    box_loss: str = "smooth_l1"  # "smooth_l1", "l1" or "giou"
    smooth_l1_beta: float = 0.1
    box_weights: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)
    box_loss_weight: float = 1.0
    # Inference.
    score_thresh: float = 0.05
    topk_candidates: int = 1000  # per level, before NMS
    nms_iou: float = 0.5
    max_detections: int = 100
    # Input: resize so the short side is min_size (long side ≤ max_size); None keeps the size.
    min_size: int | None = None
    max_size: int | None = None
    size_divisible: int = 1  # pad the batch so H and W are multiples of this
    image_mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    image_std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    # Memory layout of images, features and conv weights: channels-last ([B, H, W, C] in memory) is
    # faster for CPU (oneDNN) and GPU tensor-core convolutions; the results differ only by rounding.
    channels_last: bool = True

    def __post_init__(self) -> None:
        checks = {
            "num_classes must be ≥ 1": self.num_classes >= 1,
            "strides and anchor_sizes need one entry per pyramid level (5: P3–P7)":
                len(self.strides) == len(self.anchor_sizes) == 5,
            "box_loss must be 'smooth_l1', 'l1' or 'giou'": self.box_loss in ("smooth_l1", "l1", "giou"),
            "neg_iou must not exceed pos_iou": self.neg_iou <= self.pos_iou,
            "anchor_ratios and anchor_scales must be non-empty": bool(self.anchor_ratios and self.anchor_scales),
        }
        for message, ok in checks.items():
            if not ok:
                raise ValueError(f"invalid RetinaNetConfig: {message}")

    @property
    def num_anchors(self) -> int:
        """A, the anchors per location: ``len(anchor_ratios) × len(anchor_scales)``."""
        return len(self.anchor_ratios) * len(self.anchor_scales)

    def replace(self, **changes: Any) -> "RetinaNetConfig":
        """A copy with ``changes`` applied; an unknown key raises a ``ValueError`` naming it."""
        return RetinaNetConfig.from_dict({**self.to_dict(), **changes})

    def to_dict(self) -> dict[str, Any]:
        """Plain Python values (lists for tuples), safe for ``torch.save`` / ``weights_only`` loading."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "RetinaNetConfig":
        """Build a config from a dict (e.g. a checkpoint's); unknown keys raise a ``ValueError``."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown config key(s) {unknown}; known keys: {sorted(known)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


PRESETS: dict[str, RetinaNetConfig] = {
    # The paper's RetinaNet: ResNet-50, 256-channel FPN, 4-conv heads, 800-pixel images, COCO classes.
    "paper": RetinaNetConfig(min_size=800, max_size=1333, size_divisible=32),
    # A ResNet-18 FPN at ~512 px: a mid-size GPU model.
    "resnet18-512": RetinaNetConfig(
        backbone="resnet18", fpn_channels=128, head_group_norm=True, min_size=512, max_size=853, size_divisible=32
    ),
    # Sized for the shapes dataset (128×128 images, objects 10–60 px) on a laptop CPU.
    "shapes-cpu": RetinaNetConfig(
        num_classes=3, backbone="tiny", backbone_widths=(16, 32, 64, 96), fpn_channels=64, head_convs=2,
        head_group_norm=True, anchor_sizes=(16, 32, 64, 128, 256), box_loss="giou",
    ),
}


def preset_config(name: str, **overrides: Any) -> RetinaNetConfig:
    """The config of a named preset, with ``overrides`` applied; unknown names/keys raise ``ValueError``."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[name].replace(**overrides) if overrides else PRESETS[name]
