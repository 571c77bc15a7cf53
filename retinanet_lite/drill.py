"""Lesson 07's debugging drill: realistic bugs, each one a named change to an otherwise correct training run.

A run is described by a :class:`Setup` (the training data, the model class and option overrides). A bug
is a function ``Setup → Setup`` that changes exactly one thing, the way the mistake happens in real
code; :func:`train_with` trains the result. Nothing here changes the package's own code path: the bugs
wrap the dataset, override an option, or subclass :class:`~retinanet_lite.model.RetinaNet`.

Every bug in :data:`BUGS` gets past the package's input checks (the boxes are still valid xyxy, the
labels still in 0..K−1, every option in range): only the training curves, the AP and the detections
show that something is wrong. :func:`boxes_as_xywh` is the counter-example: the checks stop it at
the first step with a ``ValueError`` naming the box.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import Tensor
from torch.utils.data import Dataset

from .boxes import xyxy_to_xywh
from .config import preset_config, preset_recipe
from .data import Target
from .matching import match_anchors_batch
from .model import RetinaNet, pad_targets
from .train import fit, seed_everything, split_overrides


@dataclass(frozen=True)
class Setup:
    """What a training run is made of: the preset, its training data, the model class and option overrides."""

    train_set: Dataset
    preset: str = "shapes-cpu"
    model_class: type[RetinaNet] = RetinaNet
    overrides: dict[str, Any] = field(default_factory=dict)

    def override(self, **changes: Any) -> "Setup":
        """A copy with more option overrides (TrainConfig or RetinaNetConfig fields)."""
        return dataclasses.replace(self, overrides={**self.overrides, **changes})


class MappedTargets(Dataset):
    """``dataset`` with ``change(target)`` applied to every target (the images are unchanged)."""

    def __init__(self, dataset: Dataset, change: Callable[[Target], Target]) -> None:
        self.dataset, self.change = dataset, change
        self.class_names = getattr(dataset, "class_names", None)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[Tensor, Target]:
        image, target = self.dataset[index]
        return image, self.change(target)


# --- the bugs: one function each, Setup → Setup --------------------------------------------------------------

def no_bug(setup: Setup) -> Setup:
    """The correct run, for comparison."""
    return setup


def boxes_for_double_size(setup: Setup) -> Setup:
    """The boxes were written for the images at twice their size (256 px) but the images are 128 px:
    every target box is twice as large and twice as far from the top-left corner as its object."""
    return dataclasses.replace(setup, train_set=MappedTargets(setup.train_set,
                                                              lambda t: {**t, "boxes": t["boxes"] * 2}))


def no_prior_bias(setup: Setup) -> Setup:
    """The classification head's last bias starts at 0 (π = 0.5) instead of −log((1 − π)/π) with π = 0.01:
    every anchor starts out as 50 % likely to be every class."""
    return setup.override(prior_prob=0.5)


class ClassificationOverAllAnchors(RetinaNet):
    """Bug: the classification loss is divided by the number of anchors in the batch, not by the positives."""

    def loss(self, cls_logits: Tensor, box_deltas: Tensor, anchors: Tensor, targets: list[Target]) -> dict[str, Tensor]:
        losses = super().loss(cls_logits, box_deltas, anchors, targets)
        c = self.config
        gt_boxes, _, gt_valid = pad_targets(targets, cls_logits.device)
        matches = match_anchors_batch(anchors, gt_boxes, gt_valid, c.pos_iou, c.neg_iou, c.allow_low_quality)
        positives = (matches >= 0).sum().clamp(min=1)
        all_anchors = cls_logits.shape[0] * cls_logits.shape[1]  # B · N
        return {**losses, "classification": losses["classification"] * positives / all_anchors}


def classification_over_all_anchors(setup: Setup) -> Setup:
    """The classification loss is averaged over all anchors of the batch (B · N, about 50 000) instead of
    being divided by the number of positive anchors (a few hundred)."""
    return dataclasses.replace(setup, model_class=ClassificationOverAllAnchors)


#: label → label in the bugged targets: circles and squares swapped (class 0 ↔ 1), triangles kept.
SWAP = torch.tensor([1, 0, 2])


def classes_swapped(setup: Setup) -> Setup:
    """Two class ids are swapped in the annotations (a class list in another order than the file's):
    every circle is labelled square and every square circle; triangles are right."""
    return dataclasses.replace(setup, train_set=MappedTargets(setup.train_set,
                                                              lambda t: {**t, "labels": SWAP[t["labels"]]}))


def learning_rate_100x(setup: Setup) -> Setup:
    """The peak learning rate has the wrong exponent: 100 times the recipe's (2e-1 instead of 2e-3 for
    ``shapes-cpu``)."""
    return setup.override(lr=100 * preset_recipe(setup.preset).lr)


def boxes_as_xywh(setup: Setup) -> Setup:
    """The boxes are passed as (x, y, w, h) where xyxy is expected (COCO's file format read as is).
    The package's checks stop this one: wherever w < x, "x2" < x1."""
    return dataclasses.replace(setup, train_set=MappedTargets(setup.train_set,
                                                              lambda t: {**t, "boxes": xyxy_to_xywh(t["boxes"])}))


#: The drill's bugs that get past the input checks, by name (and the correct run, "none").
BUGS: dict[str, Callable[[Setup], Setup]] = {
    "none": no_bug,
    "boxes_for_double_size": boxes_for_double_size,
    "no_prior_bias": no_prior_bias,
    "classification_over_all_anchors": classification_over_all_anchors,
    "classes_swapped": classes_swapped,
    "learning_rate_100x": learning_rate_100x,
}


def train_with(bug: Callable[[Setup], Setup], train_set: Dataset, val_set: Dataset | None = None, seed: int = 0,
               preset: str = "shapes-cpu", progress: bool = False, **overrides: Any
               ) -> tuple[RetinaNet, dict[str, list]]:
    """Train ``preset`` on ``train_set`` with ``bug`` applied (and ``overrides``, e.g. ``steps=250``), as
    :func:`~retinanet_lite.train.train` would: same seeding, same loop (:func:`~retinanet_lite.train.fit`).

    Returns ``(model, history)``. A run whose loss becomes NaN or infinite stops there: its history is
    returned as far as it got, with ``history["stopped"]`` holding the error message (and no evaluation).
    """
    setup = bug(Setup(train_set, preset, overrides=dict(overrides)))
    train_overrides, model_overrides = split_overrides(setup.overrides)
    recipe = preset_recipe(setup.preset, **train_overrides)
    seed_everything(seed)
    model = setup.model_class(preset_config(setup.preset, **model_overrides))
    model.class_names = getattr(train_set, "class_names", None)
    seen: dict[str, list] = {"step": [], "loss": [], "classification": [], "regression": [], "lr": [], "eval": []}
    try:
        history = fit(model, setup.train_set, val_set, recipe, seed, progress, callback=seen.update)
    except FloatingPointError as error:
        history = {**seen, "stopped": str(error)}
    return model.eval(), history
