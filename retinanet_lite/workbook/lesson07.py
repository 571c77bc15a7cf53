"""Lesson 07's exercises: the loss of one training step (targets of one image, its loss sums, the batch
loss normalised by the positive anchors), the debugging drill (its check, by hash, is in the notebook), and
the end-of-lesson ones.

The fallbacks below are the package's computation with the lesson's signatures: what the rest of the
lesson runs on while a student's version does not pass yet.
"""
from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace

import torch
from torch import Tensor

from ..anchors import config_anchors
from ..boxes import decode_boxes
from ..config import RetinaNetConfig, preset_config
from ..data import ShapesDataset
from ..losses import focal_loss, giou_loss
from ..matching import BACKGROUND, IGNORE, match_anchors
from ..model import RetinaNet
from .core import Mistake, declare, exercise
from .diagnose import as_tensor, close, diagnose, expect_shape

Target = dict[str, Tensor]


def classification_targets(matches: Tensor, labels: Tensor, num_classes: int) -> Tensor:
    """The package's classification targets of one image: ``matches`` [N] (object index, −1 background,
    −2 ignored) and ``labels`` [G] → [N, K] floats, 1 at (positive anchor, its object's class)."""
    positive = matches >= 0
    wanted = torch.zeros(len(matches), num_classes, device=matches.device)
    wanted[positive, labels[matches[positive]]] = 1.0
    return wanted


def image_loss(logits: Tensor, deltas: Tensor, anchors: Tensor, boxes: Tensor, labels: Tensor,
               config: RetinaNetConfig) -> tuple[Tensor, Tensor, int]:
    """The package's loss sums of one image: logits [N, K], deltas [N, 4], anchors [N, 4] and boxes [G, 4]
    (xyxy), labels [G] → (focal loss summed over the non-ignored anchors, GIoU loss summed over the
    positives, number of positive anchors)."""
    matches = match_anchors(anchors, boxes, config.pos_iou, config.neg_iou, config.allow_low_quality)
    positive = matches >= 0
    counted = matches != IGNORE
    wanted = classification_targets(matches, labels, logits.shape[-1]).to(logits)
    cls_sum = focal_loss(logits[counted], wanted[counted], config.focal_alpha, config.focal_gamma, "sum")
    predicted = decode_boxes(anchors[positive], deltas[positive], config.box_weights)
    box_sum = giou_loss(predicted, boxes[matches[positive]], "sum")
    return cls_sum, box_sum, int(positive.sum())


def batch_loss(logits: Tensor, deltas: Tensor, anchors: Tensor, targets: list[Target],
               config: RetinaNetConfig) -> dict[str, Tensor]:
    """The package's batch loss (:meth:`RetinaNet.loss`, which needs only the config) with the lesson's
    signature: logits [B, N, K], deltas [B, N, 4], anchors [N, 4] → {"classification", "regression"}."""
    return RetinaNet.loss(SimpleNamespace(config=config), logits, deltas, anchors, targets)


# --- the data the checks use -----------------------------------------------------------------------------------

#: The preset of the lesson, and one whose box weights and box-loss weight are not 1 (they would hide mistakes).
CONFIGS = (preset_config("shapes-cpu"), preset_config("shapes-cpu", box_weights=(10.0, 10.0, 5.0, 5.0),
                                                       box_loss_weight=2.0))


def shapes_targets(count: int, seed: int) -> list[Target]:
    """The targets of ``count`` shapes images (128 × 128); the last one is emptied: an image without objects."""
    data = ShapesDataset(count, 128, seed=seed)
    targets = [data[i][1] for i in range(count)]
    targets[-1] = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}
    return targets


def head_outputs(count: int, num_anchors: int, num_classes: int, seed: int) -> tuple[Tensor, Tensor]:
    """Random logits [count, N, K] (large, so that every term counts) and deltas [count, N, 4]."""
    g = torch.Generator().manual_seed(seed)
    return (3 * torch.randn(count, num_anchors, num_classes, generator=g),
            0.5 * torch.randn(count, num_anchors, 4, generator=g))


# --- classification_targets ---------------------------------------------------------------------------------------

@exercise("classification_targets", "07", fallback=classification_targets)
def check_classification_targets(targets_of: Callable[[Tensor, Tensor, int], Tensor]) -> None:
    """``classification_targets(matches [N], labels [G], num_classes)`` → [N, K]."""
    # 9 anchors: positives of objects 0, 1 and 2, background (−1) and ignored (−2); labels differ from indices
    matches = torch.tensor([0, BACKGROUND, 1, IGNORE, 2, BACKGROUND, 0, IGNORE, 2])
    labels = torch.tensor([2, 0, 1])
    expected = classification_targets(matches, labels, 3)
    got = as_tensor(targets_of(matches, labels, 3), "classification_targets")
    if tuple(got.shape) == (9, 4):
        raise Mistake("classification_targets returns K + 1 columns: there is no background column — K columns, "
                      "one per class, and a negative anchor is all zeros")
    expect_shape(got, (9, 3), "classification_targets(matches [9], labels [3], num_classes=3)")
    every = torch.zeros(9, 3)
    every[torch.arange(9), labels[matches]] = 1.0  # labels[-1], labels[-2] for background and ignored anchors
    by_index = torch.zeros(9, 3)
    by_index[matches >= 0, matches[matches >= 0]] = 1.0
    shifted = torch.zeros(9, 3)
    shifted[matches >= 0, (labels[matches[matches >= 0]] - 1) % 3] = 1.0
    diagnose(got, expected, {
        "background and ignored anchors get a class: labels[matches] with matches = −1 or −2 picks the last "
        "objects' labels — put the 1s in the rows of positive anchors (matches ≥ 0) only": lambda: every,
        "the 1 goes in the column of the object's index: use its class, labels[matches] (class k → column k)":
            lambda: by_index,
        "the classes are shifted by one: labels are 0 … K − 1 and class k goes in column k (no background column)":
            lambda: shifted,
    }, "classification_targets must be 1 at (positive anchor, class of its object) and 0 everywhere else")
    empty = as_tensor(targets_of(torch.full((5,), BACKGROUND), torch.zeros(0, dtype=torch.long), 3),
                      "classification_targets")
    if not close(empty, torch.zeros(5, 3)):
        raise Mistake("an image without objects (G = 0, every anchor background) must give all zeros [N, K]")


# --- image_loss -----------------------------------------------------------------------------------------------

def _image_loss_variants(logits: Tensor, deltas: Tensor, anchors: Tensor, boxes: Tensor, labels: Tensor,
                         config: RetinaNetConfig) -> tuple[dict, dict]:
    """The usual wrong classification and box sums of one image, each as message → function."""
    matches = match_anchors(anchors, boxes, config.pos_iou, config.neg_iou, config.allow_low_quality)
    positive, negative, counted = matches >= 0, matches == BACKGROUND, matches != IGNORE
    wanted = classification_targets(matches, labels, logits.shape[-1])
    alpha, gamma = config.focal_alpha, config.focal_gamma
    every = focal_loss(logits, wanted, alpha, gamma)  # [N, K]
    matched = boxes[matches.clamp(min=0)] if len(boxes) else anchors
    decoded = decode_boxes(anchors, deltas, config.box_weights)
    cls_wrong = {
        "ignored anchors are counted in the classification loss: leave out the anchors with matches == IGNORE "
        "(−2), sum over positives and negatives only": lambda: every.sum(),
        "only the positive anchors are in the classification loss: the negatives (all-zero targets) count too":
            lambda: every[positive].sum(),
        "only the negative anchors are in the classification loss: the positives count too":
            lambda: every[negative].sum(),
        "the classification loss is averaged: return its sum (batch_loss divides by the positives)":
            lambda: every[counted].mean(),
    }
    box_wrong = {
        "the box loss includes negative anchors: only positive anchors have a box to learn — use anchors, deltas "
        "and boxes[matches] of the positives only": lambda: giou_loss(decoded[counted], matched[counted], "sum"),
        "the box loss includes every anchor: only positive anchors have a box to learn":
            lambda: giou_loss(decoded, matched, "sum"),
        "the box loss does not use the predicted deltas: decode anchors[positive] with deltas[positive] "
        "(and config.box_weights) first": lambda: giou_loss(anchors[positive], boxes[matches[positive]], "sum"),
        "the box weights are ignored: decode_boxes(anchors, deltas, config.box_weights)":
            lambda: giou_loss(decode_boxes(anchors[positive], deltas[positive]), boxes[matches[positive]], "sum"),
        "the box loss is averaged: return its sum (batch_loss divides by the positives)":
            lambda: giou_loss(decoded[positive], boxes[matches[positive]], "mean"),
    }
    return cls_wrong, box_wrong


@exercise("image_loss", "07", fallback=image_loss, forbidden=(RetinaNet.loss, batch_loss))
def check_image_loss(loss_of: Callable[..., tuple]) -> None:
    """``image_loss(logits [N, K], deltas [N, 4], anchors [N, 4], boxes [G, 4], labels [G], config)``
    → (classification sum, box sum, number of positive anchors)."""
    for config in CONFIGS:
        anchors = config_anchors(config, (128, 128))
        targets = shapes_targets(4, seed=3)
        logits, deltas = head_outputs(len(targets), len(anchors), config.num_classes, seed=4)
        for i, target in enumerate(targets):
            boxes, labels = target["boxes"], target["labels"]
            result = loss_of(logits[i], deltas[i], anchors, boxes, labels, config)
            if not isinstance(result, (tuple, list)) or len(result) != 3:
                raise Mistake("image_loss must return three things: (classification sum, box sum, number of "
                              "positive anchors)")
            cls_sum, box_sum, positives = result
            cls_right, box_right, positives_right = image_loss(logits[i], deltas[i], anchors, boxes, labels, config)
            what = "an image without objects" if len(boxes) == 0 else f"an image with {len(boxes)} objects"
            got = as_tensor(positives, "image_loss's number of positives")
            if got.numel() != 1 or int(got) != positives_right:
                if len(boxes) > 0 and int(got.reshape(-1)[0]) == len(boxes):
                    raise Mistake(f"for {what} the number of positives is the number of objects: count the positive "
                                  "anchors (matches ≥ 0) — an object is usually matched by several")
                raise Mistake(f"for {what} there are {positives_right} positive anchors (matches ≥ 0), yours "
                              f"says {got.reshape(-1).tolist()}")
            cls_wrong, box_wrong = _image_loss_variants(logits[i], deltas[i], anchors, boxes, labels, config)
            got = as_tensor(cls_sum, "image_loss's classification sum")
            expect_shape(got, (), "the classification sum (one number)")
            diagnose(got, cls_right.detach(), cls_wrong,
                     f"for {what} the classification sum is {float(got):.4f}, expected {float(cls_right):.4f}: the "
                     "focal loss (config.focal_alpha, config.focal_gamma) summed over the non-ignored anchors",
                     atol=1e-3)
            got = as_tensor(box_sum, "image_loss's box sum")
            expect_shape(got, (), "the box sum (one number)")
            diagnose(got, box_right.detach(), box_wrong if len(boxes) else {},
                     f"for {what} the box sum is {float(got):.4f}, expected {float(box_right):.4f}: the GIoU loss "
                     "of the decoded positive anchors with their objects' boxes, summed", atol=1e-3)


# --- batch_loss -----------------------------------------------------------------------------------------------

def _batch_loss_variants(logits: Tensor, deltas: Tensor, anchors: Tensor, targets: list[Target],
                         config: RetinaNetConfig) -> dict[str, Callable]:
    """The usual wrong normalisations of the batch loss, each as message → function of the pair of losses."""
    sums = [image_loss(lg, dl, anchors, t["boxes"], t["labels"], config) for lg, dl, t in zip(logits, deltas, targets)]
    cls_total = sum(s[0] for s in sums)
    box_total = sum(s[1] for s in sums)
    positives = max(sum(s[2] for s in sums), 1)
    objects = max(sum(len(t["boxes"]) for t in targets), 1)
    counted = sum(int((match_anchors(anchors, t["boxes"], config.pos_iou, config.neg_iou,
                                     config.allow_low_quality) != IGNORE).sum()) for t in targets)
    weight = config.box_loss_weight

    def pair(cls: Tensor, box: Tensor) -> Tensor:
        return torch.stack([torch.as_tensor(cls, dtype=torch.float64), torch.as_tensor(box, dtype=torch.float64)])

    per_image = [pair(c / max(p, 1), weight * b / max(p, 1)) for c, b, p in sums]
    return {
        "normalised by all anchors: divide by the number of positive anchors of the batch — with focal loss the "
        "easy negatives add almost nothing, so an average over anchors shrinks the loss of the few that matter":
            lambda: pair(cls_total / (len(targets) * len(anchors)), weight * box_total / (len(targets) * len(anchors))),
        "normalised by the non-ignored anchors: divide by the number of positive anchors of the batch":
            lambda: pair(cls_total / counted, weight * box_total / counted),
        "normalised by the number of objects: divide by the number of positive anchors (an object is usually "
        "matched by several)": lambda: pair(cls_total / objects, weight * box_total / objects),
        "the per-image losses are averaged: add up the sums of the whole batch, then divide once by the batch's "
        "positive anchors (an image without objects must not count as a whole image)":
            lambda: torch.stack(per_image).mean(0),
        "the regression loss is not multiplied by config.box_loss_weight (λ)":
            lambda: pair(cls_total / positives, box_total / positives),
    }


def _loss_pair(result: object, what: str) -> Tensor:
    """``{"classification": …, "regression": …}`` → a float64 tensor [2], or a Mistake saying what is wrong."""
    if not isinstance(result, dict) or set(result) != {"classification", "regression"}:
        raise Mistake(f"{what} must return a dict with the keys 'classification' and 'regression'")
    values = [as_tensor(result[k], f"{what}[{k!r}]") for k in ("classification", "regression")]
    for key, value in zip(("classification", "regression"), values):
        expect_shape(value, (), f"{what}[{key!r}] (one number)")
    return torch.stack(values)


@exercise("batch_loss", "07", fallback=batch_loss, forbidden=(RetinaNet.loss,))
def check_batch_loss(loss_of: Callable[..., dict]) -> None:
    """``batch_loss(logits [B, N, K], deltas [B, N, 4], anchors [N, 4], targets, config)`` → the two losses."""
    for config in CONFIGS:
        anchors = config_anchors(config, (128, 128))
        empty = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}
        logits, deltas = head_outputs(2, len(anchors), config.num_classes, seed=5)
        got = _loss_pair(loss_of(logits, deltas, anchors, [empty, empty], config), "batch_loss")
        if not torch.isfinite(got).all():
            raise Mistake(f"a batch of images without objects gives {got.tolist()}: zero positives divide by 0 — "
                          "divide by max(number of positives, 1)")
        targets = shapes_targets(4, seed=6)
        logits, deltas = head_outputs(len(targets), len(anchors), config.num_classes, seed=7)
        got = _loss_pair(loss_of(logits, deltas, anchors, targets, config), "batch_loss")
        expected = _loss_pair(batch_loss(logits, deltas, anchors, targets, config), "the package's loss")
        diagnose(got, expected, _batch_loss_variants(logits, deltas, anchors, targets, config),
                 f"batch_loss gives {[round(v, 4) for v in got.tolist()]}, the model's own loss "
                 f"{[round(v, 4) for v in expected.tolist()]}", atol=1e-4)


declare("07", "drill", "warmup_cosine", "flip_boxes")
