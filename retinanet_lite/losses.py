"""Losses: focal loss for classification, and the box-regression losses.

Focal loss (Lin et al. 2017): ``FL(p_t) = −α_t (1 − p_t)^γ log(p_t)`` with ``p_t = p`` for a positive
target and ``1 − p`` for a negative one. ``(1 − p_t)^γ`` shrinks the loss of examples the model
already gets right, so the ~100 000 easy background anchors of an image no longer drown out the
handful of objects; ``α_t`` (``α`` for positives, ``1 − α`` for negatives) balances the two kinds.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .boxes import generalized_box_iou

REDUCTIONS = ("none", "mean", "sum")
#: Where smooth-L1 turns from quadratic to linear, in delta units (Detectron's RetinaNet value, ≈ 0.11).
SMOOTH_L1_BETA = 1 / 9


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    """Apply ``"none"``, ``"mean"`` or ``"sum"`` to an element-wise loss."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def focal_loss(
    logits: Tensor, targets: Tensor, alpha: float = 0.25, gamma: float = 2.0, reduction: str = "none",
    validate: bool = True,
) -> Tensor:
    """Sigmoid focal loss, element-wise, from logits (any shape; ``targets`` the same shape, 0 or 1).

    ``alpha < 0`` turns the α-weighting off; ``gamma = 0`` gives (α-balanced) cross-entropy.
    Everything comes from one ``logsigmoid`` of the logits, never from clamped probabilities, so the
    loss stays finite and exact for logits of any size. ``validate=False`` skips the check that the
    targets are 0 or 1 (it reads the values, which makes a GPU wait): for callers whose targets are
    0/1 by construction, such as the model's loss.
    """
    if targets.shape != logits.shape:
        raise ValueError(f"targets must have the logits' shape {list(logits.shape)}, got {list(targets.shape)}")
    targets = targets.to(logits.dtype)
    if validate and not ((targets == 0) | (targets == 1)).all():
        raise ValueError("focal_loss targets must be 0 or 1 (soft or smoothed labels are not supported)")
    # x_t = the logit of the true outcome (+x for a positive target, −x for a negative), p_t = σ(x_t).
    signed_logits = logits * (2 * targets - 1)
    log_p_t = F.logsigmoid(signed_logits)  # −log(p_t) is the cross-entropy
    # (1 − p_t)^γ = σ(−x_t)^γ = exp(γ · log σ(−x_t)), and log σ(−x_t) = log σ(x_t) − x_t. Computing
    # 1 − p_t directly rounds to 0 for a confident logit, and t^γ with γ < 1 has an infinite slope at 0.
    loss = -log_p_t * torch.exp(gamma * (log_p_t - signed_logits))
    if alpha >= 0:
        alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
        loss = alpha_t * loss
    return _reduce(loss, reduction)


def smooth_l1_loss(deltas: Tensor, target_deltas: Tensor, beta: float = SMOOTH_L1_BETA, reduction: str = "none") -> Tensor:
    """Huber-style loss on ``[N, 4]`` deltas: quadratic below ``beta``, linear above (``beta = 0`` is L1)."""
    diff = (deltas - target_deltas).abs()
    if beta > 0:
        loss = torch.where(diff < beta, 0.5 * diff**2 / beta, diff - 0.5 * beta)
    else:
        loss = diff
    return _reduce(loss, reduction)


def giou_loss(boxes: Tensor, target_boxes: Tensor, reduction: str = "none") -> Tensor:
    """``1 − GIoU`` of paired ``[N, 4]`` xyxy boxes → ``[N]``: 0 for a perfect box, up to 2."""
    return _reduce(1 - generalized_box_iou(boxes, target_boxes), reduction)
