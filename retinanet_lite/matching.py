"""Matching: which ground-truth box (if any) each anchor must learn to predict.

An anchor whose best IoU with a ground-truth box is ≥ ``pos_iou`` is positive (it learns that box's
class and offsets), one whose best IoU is < ``neg_iou`` is negative (background), and the ones in
between are ignored (they contribute no loss). Low-quality matching then gives every ground-truth
box its best anchor(s) even when that IoU is below ``pos_iou`` — otherwise tiny or thin boxes that no
anchor overlaps enough would never be learnt.

:func:`sample_anchors` then says which of the matched anchors the classification loss counts: all of
them (RetinaNet), or a per-image minibatch as the detectors before focal loss chose it (random 1:3
sampling, online hard example mining).
"""
from __future__ import annotations

import torch
import torchvision
from torch import Tensor

from .boxes import box_iou

BACKGROUND = -1
IGNORE = -2
#: The choices of ``RetinaNetConfig.cls_sampling`` (see :func:`sample_anchors`).
SAMPLINGS = ("all", "random", "ohem", "ohem_1:3")


def match_anchors(
    anchors: Tensor, gt_boxes: Tensor, pos_iou: float = 0.5, neg_iou: float = 0.4, allow_low_quality: bool = True
) -> Tensor:
    """Assign every anchor ``[N, 4]`` to a ground-truth box ``[G, 4]`` (both xyxy).

    Returns a LongTensor ``[N]``: the index of the matched box, ``-1`` (background) or ``-2`` (ignored).
    With no ground truth every anchor is background.
    """
    valid = torch.ones(1, len(gt_boxes), dtype=torch.bool, device=gt_boxes.device)
    return match_anchors_batch(anchors, gt_boxes[None], valid, pos_iou, neg_iou, allow_low_quality)[0]


def match_anchors_batch(
    anchors: Tensor, gt_boxes: Tensor, gt_valid: Tensor, pos_iou: float = 0.5, neg_iou: float = 0.4,
    allow_low_quality: bool = True,
) -> Tensor:
    """:func:`match_anchors` for a whole batch at once, without a Python loop over images.

    ``anchors`` ``[N, 4]`` are shared; ``gt_boxes`` ``[B, G, 4]`` is padded to the largest number of boxes
    per image and ``gt_valid`` ``[B, G]`` says which rows are real. Returns ``[B, N]``.
    """
    if neg_iou > pos_iou:
        raise ValueError(f"neg_iou ({neg_iou}) must not exceed pos_iou ({pos_iou})")
    batch, num_gt = gt_valid.shape
    if num_gt == 0:
        return torch.full((batch, len(anchors)), BACKGROUND, dtype=torch.long, device=anchors.device)
    iou = _batched_iou(gt_boxes, anchors)  # [B, G, N]
    iou = iou.masked_fill(~gt_valid[:, :, None], -1.0)  # padding rows never win
    best_iou, matches = iou.max(dim=1)  # [B, N]: each anchor's best box
    matches = torch.where(best_iou < pos_iou, IGNORE, matches)
    matches = torch.where(best_iou < neg_iou, BACKGROUND, matches)
    if allow_low_quality:
        matches = _add_low_quality_matches(matches, iou, gt_valid)
    return matches


def _batched_iou(gt_boxes: Tensor, anchors: Tensor) -> Tensor:
    """IoU of ``gt_boxes`` ``[B, G, 4]`` with ``anchors`` ``[N, 4]`` → ``[B, G, N]`` (all images' boxes at once)."""
    batch, num_gt, _ = gt_boxes.shape
    return box_iou(gt_boxes.reshape(-1, 4), anchors).reshape(batch, num_gt, -1)


def _add_low_quality_matches(matches: Tensor, iou: Tensor, gt_valid: Tensor) -> Tensor:
    """``matches`` ``[B, N]`` with every real box given the anchor(s) with its highest IoU (ties included).

    When one anchor is the best anchor of several boxes, the box it overlaps most keeps it. Unlike
    torchvision's ``Matcher`` (which hands such an anchor to its best box overall, possibly one that
    did not claim it), a box's best anchor is therefore never given to a box that has better ones.
    """
    best_per_gt = iou.max(dim=2, keepdim=True).values  # [B, G, 1]
    claims = (iou == best_per_gt) & gt_valid[:, :, None] & (best_per_gt > 0)  # [B, G, N]
    claimed_iou = iou.masked_fill(~claims, -1.0)
    best_claim_iou, claimant = claimed_iou.max(dim=1)  # [B, N]
    return torch.where(best_claim_iou >= 0, claimant, matches)



def sample_anchors(
    matches: Tensor, anchor_loss: Tensor, anchors: Tensor, sampling: str, batch_size: int = 128,
    nms_iou: float = 0.5, generator: torch.Generator | None = None,
) -> Tensor:
    """Which anchors the classification loss counts: a ``[B, N]`` bool mask, never an ignored anchor.

    ``matches`` ``[B, N]`` (box index, ``BACKGROUND`` or ``IGNORE``), ``anchor_loss`` ``[B, N]`` (each
    anchor's classification loss, summed over the classes; used only to rank, so pass it detached),
    ``anchors`` ``[N, 4]`` xyxy. Per image, a minibatch of at most ``batch_size`` anchors:

    - ``"all"``: every non-ignored anchor (RetinaNet; no minibatch, ``anchor_loss`` unused);
    - ``"random"``: 1:3 random sampling (lesson 05's exercise, with a cap): at most ``batch_size // 4``
      positives drawn at random and three times as many random negatives (an image without objects adds
      nothing; lesson 05's version keeps at least 16 negatives);
    - ``"ohem"``: online hard example mining as the paper's Sec. 5.1 describes it — NMS over the
      anchors with their loss as the score (IoU threshold ``nms_iou``), then the ``batch_size``
      highest-loss survivors, positive or negative;
    - ``"ohem_1:3"``: the same NMS, then the variant from SSD that the paper also tries: the highest-loss
      positives (at most ``batch_size // 4``) and three times as many highest-loss negatives — the ratio
      is enforced, so an image without objects adds nothing to the classification loss.

    The NMS runs over the **anchor boxes**, not the predicted boxes: OHEM (Shrivastava et al. 2016)
    suppresses over the boxes the loss is computed for — there the RoIs, here the anchors — so that one
    object's many overlapping anchors cannot fill the minibatch; and the anchors are fixed, whereas the
    boxes an untrained regression head predicts are noise at the start of training.
    ``generator`` draws the random order of ``"random"`` (default: torch's global generator).
    """
    if sampling not in SAMPLINGS:
        raise ValueError(f"sampling must be one of {SAMPLINGS}, got {sampling!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be ≥ 1, got {batch_size}")
    counted = matches != IGNORE
    if sampling == "all":
        return counted
    keep = torch.zeros_like(counted)
    for image, (image_matches, image_counted) in enumerate(zip(matches, counted)):
        candidates = image_counted.nonzero().flatten()
        if sampling == "random":
            order = candidates[torch.randperm(len(candidates), generator=generator).to(candidates.device)]
        else:
            order = _loss_nms(candidates, anchor_loss[image, candidates], anchors, image_matches[candidates] >= 0,
                              nms_iou, batch_size, balanced=sampling == "ohem_1:3")
        keep[image, _first_of(order, image_matches[order] >= 0, batch_size, sampling)] = True
    return keep


def _loss_nms(candidates: Tensor, loss: Tensor, anchors: Tensor, positive: Tensor, nms_iou: float,
              batch_size: int, balanced: bool) -> Tensor:
    """The anchors ``candidates`` [C] that survive NMS over their boxes with ``loss`` [C] as the score,
    highest loss first — as many as the minibatch can need (``positive`` [C] says which are positive).

    Greedy NMS decides about an anchor looking only at anchors of higher loss, so NMS over the M
    highest-loss candidates gives exactly the first survivors of NMS over all of them; M doubles until
    those are enough for the minibatch (about 5× faster than one NMS over all ~3 000 anchors here).
    """
    ranked = loss.argsort(descending=True)
    limit = 4 * batch_size
    if balanced and positive.any():  # rank every positive: a positive survivor is never missed
        limit = max(limit, int(positive[ranked].nonzero().max()) + 1)
    while True:
        top = ranked[:limit]
        survivors = top[torchvision.ops.nms(anchors[candidates[top]].float(), loss[top].float(), nms_iou)]
        kept_positives = int(positive[survivors].sum())
        needed = 3 * min(kept_positives, batch_size // 4) if balanced else batch_size
        if limit >= len(ranked) or len(survivors) - (kept_positives if balanced else 0) >= needed:
            return candidates[survivors]
        limit *= 2


def _first_of(order: Tensor, positive: Tensor, batch_size: int, sampling: str) -> Tensor:
    """The minibatch from ``order`` (anchor indices, first = preferred; ``positive`` [len(order)] says which
    are positive): for ``"ohem"`` its first ``batch_size`` entries; for ``"random"`` and ``"ohem_1:3"`` its
    first ``batch_size // 4`` positives and three times as many of its first negatives (1:3)."""
    if sampling == "ohem":
        return order[:batch_size]
    positives = order[positive][: batch_size // 4]
    return torch.cat([positives, order[~positive][: 3 * len(positives)]])
