"""Every knob in one place: the model's configuration, the training recipe, and the named presets.

``RetinaNetConfig`` says what the detector computes, ``TrainConfig`` how it is trained; each field has
a comment saying what it does, so that the lessons can discuss (and change) each knob. Both reject
unknown keys, values of the wrong type and values out of range with a ``ValueError`` that names the
field. ``PRESETS`` is the one registry of named recipes: each holds a model config and the training
recipe that goes with it (``preset_config(name)``, ``preset_recipe(name)``).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from .anchors import PAPER_RATIOS, PAPER_SCALES, PAPER_SIZES, PAPER_STRIDES
from .losses import SMOOTH_L1_BETA
from .matching import SAMPLINGS
from .tta import VIEW_COUNTS

#: The Python types a field annotated with each of these names accepts (``bool`` is not a number here).
_ACCEPTED = {"int": (int,), "float": (int, float), "bool": (bool,), "str": (str,)}


class Settings:
    """What both configs share: dict round trips, ``replace``, and validation with clear errors.

    A subclass is a frozen dataclass and lists its range checks in :meth:`checks`.
    """

    def __post_init__(self) -> None:
        name = type(self).__name__
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if not _has_type(value, field.type):
                raise ValueError(f"invalid {name}: {field.name} must be {field.type}, got {value!r}")
        for message, ok in self.checks().items():
            if not ok:
                raise ValueError(f"invalid {name}: {message}")

    def checks(self) -> dict[str, bool]:
        """``{message: condition}``: every condition must hold."""
        return {}

    def replace(self, **changes: Any) -> Any:
        """A copy with ``changes`` applied; an unknown key raises a ``ValueError`` naming it."""
        return type(self).from_dict({**self.to_dict(), **changes})

    def to_dict(self) -> dict[str, Any]:
        """Plain Python values (lists for tuples), safe for ``torch.save`` / ``weights_only`` loading."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Any:
        """Build from a dict (e.g. a checkpoint's); unknown keys raise a ``ValueError``."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown {cls.__name__} key(s) {unknown}; known keys: {sorted(known)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def _has_type(value: Any, annotation: str) -> bool:
    """Whether ``value`` fits a field annotation such as ``"int"``, ``"float | None"`` or ``"tuple[int, ...]"``."""
    kinds = [kind.strip() for kind in annotation.split("|")]
    if value is None:
        return "None" in kinds
    kind = kinds[0]
    if kind.startswith("tuple"):
        return isinstance(value, tuple) and all(_has_type(v, "float") for v in value)
    return isinstance(value, _ACCEPTED[kind]) and (kind == "bool" or not isinstance(value, bool))


@dataclass(frozen=True)
class RetinaNetConfig(Settings):
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
    smooth_l1_beta: float = SMOOTH_L1_BETA  # smooth-L1: quadratic below β, linear above
    box_weights: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)
    box_loss_weight: float = 1.0
    # Which anchors the classification loss counts, per image (matching.sample_anchors): "all" non-ignored
    # anchors (RetinaNet), or a minibatch of at most cls_sampling_batch of them, as before focal loss:
    # "random" (≤ 1/4 positives and three negatives per positive, at random), "ohem" (the highest-loss
    # anchors after NMS at ohem_nms_iou over the anchor boxes) or "ohem_1:3" (the same NMS, then ≤ 1/4
    # positives and three negatives per positive). Every choice divides the loss by the number of positive
    # anchors in the batch, as "all" does.
    cls_sampling: str = "all"
    cls_sampling_batch: int = 128  # anchors per image in the minibatch of "random", "ohem", "ohem_1:3"
    ohem_nms_iou: float = 0.5  # the IoU above which OHEM's NMS drops the lower-loss of two anchors
    # Inference.
    score_thresh: float = 0.05
    topk_candidates: int = 1000  # per level, before NMS
    nms_iou: float = 0.5
    max_detections: int = 100
    # Test-time augmentation (tta.py): detect in this many of an image's eight mirrored / quarter-turned
    # views (1, 2, 4 or 8; 1 = the image only), each at every one of tta_scales (resize factors; (1.0,) =
    # the size the model is given), and fuse the views' detections (each view's NMS, then fusion at nms_iou).
    tta_views: int = 1
    tta_scales: tuple[float, ...] = (1.0,)
    # Input: resize so the short side is min_size (long side ≤ max_size); None keeps the size.
    min_size: int | None = None
    max_size: int | None = None
    # Or resize every image by one fixed factor (aerial tiles of any size at one ground resolution).
    image_scale: float | None = None
    size_divisible: int = 1  # pad the batch so H and W are multiples of this
    image_mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    image_std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    # Memory layout of images, features and conv weights: channels-last ([B, H, W, C] in memory) is
    # faster for CPU (oneDNN) and GPU tensor-core convolutions; the results differ only by rounding.
    channels_last: bool = True

    def checks(self) -> dict[str, bool]:
        return {
            "num_classes must be ≥ 1": self.num_classes >= 1,
            "strides and anchor_sizes need one entry per pyramid level (5: P3–P7)":
                len(self.strides) == len(self.anchor_sizes) == 5,
            "box_loss must be 'smooth_l1', 'l1' or 'giou'": self.box_loss in ("smooth_l1", "l1", "giou"),
            f"cls_sampling must be one of {SAMPLINGS}": self.cls_sampling in SAMPLINGS,
            "cls_sampling_batch must be ≥ 1": self.cls_sampling_batch >= 1,
            "ohem_nms_iou must be in (0, 1]": 0 < self.ohem_nms_iou <= 1,
            f"tta_views must be one of {VIEW_COUNTS}": self.tta_views in VIEW_COUNTS,
            "tta_scales must be non-empty, each > 0": bool(self.tta_scales) and all(s > 0 for s in self.tta_scales),
            "neg_iou must not exceed pos_iou": self.neg_iou <= self.pos_iou,
            "anchor_ratios and anchor_scales must be non-empty": bool(self.anchor_ratios and self.anchor_scales),
            "size_divisible must be ≥ 1": self.size_divisible >= 1,
            "min_size and max_size must be positive": all(s is None or s > 0 for s in (self.min_size, self.max_size)),
            "image_scale must be > 0 (or None)": self.image_scale is None or self.image_scale > 0,
            "image_scale and min_size exclude each other": self.image_scale is None or self.min_size is None,
        }

    @property
    def num_anchors(self) -> int:
        """A, the anchors per location: ``len(anchor_ratios) × len(anchor_scales)``."""
        return len(self.anchor_ratios) * len(self.anchor_scales)


@dataclass(frozen=True)
class TrainConfig(Settings):
    """The recipe: data, schedule and evaluation. Each field is a knob the lessons discuss."""

    num_train_images: int = 2000  # shapes images generated (and cached in memory) for training
    num_val_images: int = 500  # held-out images, generated with seed + VAL_SEED_OFFSET
    image_size: int = 128
    batch_size: int = 16  # the total batch, split evenly across processes when run with torchrun
    steps: int = 2000
    lr: float = 2e-3  # AdamW peak learning rate
    weight_decay: float = 1e-4
    warmup_steps: int = 100  # linear warm-up from lr/100, then cosine decay to 0
    grad_clip: float = 1.0  # max global gradient norm
    hflip: float = 0.5  # probability of a horizontal flip per image
    rot90: float = 0.0  # probability of a rotation by 90°, 180° or 270° (one of the three at random) per image
    color_jitter: float = 0.0  # s: brightness, contrast and saturation each scaled by a factor in [1 - s, 1 + s]
    zoom: float = 0.0  # z: each image (and its boxes) resized by a factor between 1 / (1 + z) and 1 + z
    eval_every: int = 0  # evaluate every N steps as well as at the end (0: only at the end)
    eval_batch_size: int = 32
    checkpoint_every: int = 0  # with an output folder, also save out/model.pt every N steps (0: only at the end)
    amp: bool = False  # mixed precision (float16 autocast + gradient scaling) when training on CUDA
    num_workers: int = 0  # DataLoader worker processes (0: load in the main process; fine for in-memory data)
    max_seconds: float | None = None  # stop early after this much training time (benchmarks)

    def checks(self) -> dict[str, bool]:
        return {
            "steps must be ≥ 1": self.steps >= 1,
            "batch_size must be ≥ 1": self.batch_size >= 1,
            "eval_batch_size must be ≥ 1": self.eval_batch_size >= 1,
            "lr must be > 0": self.lr > 0,
            "weight_decay must be ≥ 0": self.weight_decay >= 0,
            "warmup_steps must be ≥ 0": self.warmup_steps >= 0,
            "grad_clip must be > 0": self.grad_clip > 0,
            "hflip is a probability: 0 ≤ hflip ≤ 1": 0 <= self.hflip <= 1,
            "rot90 is a probability: 0 ≤ rot90 ≤ 1": 0 <= self.rot90 <= 1,
            "color_jitter must be in [0, 1)": 0 <= self.color_jitter < 1,
            "zoom must be ≥ 0": self.zoom >= 0,
            "num_train_images must be ≥ 1 and num_val_images ≥ 0":
                self.num_train_images >= 1 and self.num_val_images >= 0,
            "image_size must be ≥ 16 pixels": self.image_size >= 16,
            "eval_every, checkpoint_every and num_workers must be ≥ 0":
                min(self.eval_every, self.checkpoint_every, self.num_workers) >= 0,
            "max_seconds must be > 0 (or None)": self.max_seconds is None or self.max_seconds > 0,
        }


@dataclass(frozen=True)
class Preset:
    """A named recipe: a model config, the training recipe and the data that belong together.

    ``data`` is what ``train(preset)`` trains on when it is given no dataset: ``"shapes"`` (the
    procedural shapes, sized by the recipe's ``num_train_images`` / ``image_size``) or ``"trees"``
    (:class:`~retinanet_lite.data.TreeCrowns`' train and val splits; those two fields do not apply).
    """

    model: RetinaNetConfig
    train: TrainConfig
    description: str
    data: str = "shapes"

    def __post_init__(self) -> None:
        if self.data not in PRESET_DATA:
            raise ValueError(f"invalid Preset: data must be one of {list(PRESET_DATA)}, got {self.data!r}")


#: The datasets a preset can train on (see :attr:`Preset.data`).
PRESET_DATA = ("shapes", "trees")


PRESETS: dict[str, Preset] = {
    "shapes-cpu": Preset(
        RetinaNetConfig(
            num_classes=3, backbone="tiny", backbone_widths=(16, 32, 64, 96), fpn_channels=64, head_convs=2,
            head_group_norm=True, anchor_sizes=(16, 32, 64, 128, 256), box_loss="giou",
        ),
        TrainConfig(),
        "the lessons' model: the shapes dataset (128×128 images, objects 10–60 px) on a laptop CPU",
    ),
    "trees-cpu": Preset(
        RetinaNetConfig(
            num_classes=1, backbone="tiny", backbone_widths=(16, 32, 64, 96), fpn_channels=64, head_convs=2,
            head_group_norm=True, image_scale=1.25, anchor_sizes=(25, 50, 100, 200, 400), anchor_ratios=(1.0,),
            box_loss="giou", nms_iou=0.4, max_detections=300, tta_views=8, tta_scales=(1.0, 1.25),
        ),
        TrainConfig(batch_size=8, steps=1500, hflip=0.5, rot90=0.75, color_jitter=0.4, eval_batch_size=8),
        "tree crowns in NEON aerial photographs (192-px crops, crowns 8–108 px): the shapes-cpu model on "
        "photographs enlarged 1.25× (a finer grid over every crown), with larger, square anchors "
        "(crowns are round), flips, quarter turns and colour jitter, on a laptop CPU; it detects in eight views "
        "of each image, each also enlarged a further 1.25×, and fuses them, with NMS at IoU 0.4",
        data="trees",
    ),
    "resnet18-512": Preset(
        RetinaNetConfig(backbone="resnet18", fpn_channels=128, head_group_norm=True, min_size=512, max_size=853,
                        size_divisible=32),
        TrainConfig(batch_size=16, steps=30_000, lr=2e-4, warmup_steps=500, amp=True, num_workers=4,
                    checkpoint_every=2000),
        "a ResNet-18 FPN at ~512 px: a mid-size GPU model",
    ),
    "paper": Preset(
        RetinaNetConfig(min_size=800, max_size=1333, size_divisible=32),
        TrainConfig(batch_size=16, steps=90_000, lr=1e-4, warmup_steps=500, amp=True, num_workers=4,
                    checkpoint_every=5000),
        "the paper's RetinaNet: ResNet-50, 256-channel FPN, 4-conv heads, 800-pixel images, COCO classes",
    ),
}


def get_preset(name: str) -> Preset:
    """The preset called ``name``; an unknown name raises a ``ValueError`` listing the known ones."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[name]


def preset_config(name: str, **overrides: Any) -> RetinaNetConfig:
    """The model config of a named preset, with ``overrides`` applied; unknown names/keys raise ``ValueError``."""
    config = get_preset(name).model
    return config.replace(**overrides) if overrides else config


def preset_recipe(name: str, **overrides: Any) -> TrainConfig:
    """The training recipe of a named preset, with ``overrides`` applied; unknown names/keys raise ``ValueError``."""
    recipe = get_preset(name).train
    return recipe.replace(**overrides) if overrides else recipe
