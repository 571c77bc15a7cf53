"""Matching: which ground-truth box (if any) each anchor must learn to predict.

An anchor whose best IoU with a ground-truth box is ≥ ``pos_iou`` is positive (it learns that box's
class and offsets), one whose best IoU is < ``neg_iou`` is negative (background), and the ones in
between are ignored (they contribute no loss). Low-quality matching then gives every ground-truth
box its best anchor(s) even when that IoU is below ``pos_iou`` — otherwise tiny or thin boxes that no
anchor overlaps enough would never be learnt.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .boxes import box_iou

BACKGROUND = -1
IGNORE = -2


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

