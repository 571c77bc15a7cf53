"""Lesson 09's exercises: the normalised cumulative loss of the paper's Fig. 4, OHEM's selection of one
image's minibatch, and the hardest fraction."""
from __future__ import annotations

from collections.abc import Callable

import torch
import torchvision

from ..boxes import box_iou
from ..matching import _first_of, _loss_nms, sample_anchors
from .core import Mistake, declare, exercise
from .diagnose import as_tensor, diagnose, expect_shape


def cumulative_loss_share(losses: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Fig. 4's curve of ``losses`` [N]: (fraction of samples 0 … 1, cumulative share of the total loss), both [N],
    the losses sorted ascending. The lesson uses it while the student's ``normalised_cdf`` does not pass."""
    ordered = losses.sort().values
    return torch.linspace(0, 1, len(ordered)), ordered.cumsum(0) / ordered.sum()


CDF_CASES = [torch.tensor([0.5, 3.0, 0.1, 0.1, 2.0, 7.0, 0.3]), torch.tensor([2.0, 1.0, 1.0]),
             torch.rand(50, generator=torch.Generator().manual_seed(0)) ** 3]


@exercise("normalised_cdf", "09", fallback=cumulative_loss_share)
def check_normalised_cdf(normalised_cdf: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]) -> None:
    """``normalised_cdf(losses [N])`` → ``(x [N], y [N])``: x runs 0 → 1, y the cumulative share of the sorted losses."""
    for losses in CDF_CASES:
        answer = normalised_cdf(losses.clone())
        if not isinstance(answer, (tuple, list)) or len(answer) != 2:
            raise Mistake("normalised_cdf should return two tensors: (fraction of samples, cumulative share of the loss)")
        n = len(losses)
        x, y = as_tensor(answer[0], "normalised_cdf's first result"), as_tensor(answer[1], "normalised_cdf's second result")
        expect_shape(x, (n,), f"the fractions of samples for {n} losses")
        expect_shape(y, (n,), f"the cumulative shares for {n} losses")
        expected_x, expected_y = (t.double() for t in cumulative_loss_share(losses))
        diagnose(x, expected_x, {
            "the fractions of samples stop short of 1 (torch.arange(n) / n): they should run from 0 to 1, "
            "torch.linspace(0, 1, n)": lambda: torch.arange(n, dtype=torch.float64) / n,
            "the fractions of samples start at 1/n (torch.arange(1, n + 1) / n): they should run from 0 to 1, "
            "torch.linspace(0, 1, n)": lambda: torch.arange(1, n + 1, dtype=torch.float64) / n,
            "the first result counts the samples (0, 1, 2, …): divide to get fractions from 0 to 1":
                lambda: torch.arange(n, dtype=torch.float64),
        }, "the fractions of samples should run evenly from 0 to 1: torch.linspace(0, 1, n)")
        ordered = losses.double().sort().values
        diagnose(y, expected_y, {
            "the losses are sorted in descending order: sort them ascending, so the curve ends with the "
            "hardest samples (as in the paper's Fig. 4)": lambda: ordered.flip(0).cumsum(0) / ordered.sum(),
            "the cumulative loss is not normalised: divide by the total loss, so the curve ends at 1":
                lambda: ordered.cumsum(0),
            "the losses are not sorted: sort them (ascending) before the cumulative sum":
                lambda: losses.double().cumsum(0) / losses.sum(),
            "the shares are the sorted losses themselves: take the cumulative sum (cumsum) before dividing by the total":
                lambda: ordered / ordered.sum(),
        }, "the cumulative shares should be the cumulative sum of the ascending-sorted losses divided by their total")


def ohem_minibatch(loss: torch.Tensor, boxes: torch.Tensor, batch_size: int, nms_iou: float) -> torch.Tensor:
    """OHEM's minibatch of one image, the lesson's ``ohem_select``: indices [≤ batch_size] (long) into the C
    candidates (``loss`` [C], ``boxes`` [C, 4] xyxy), highest loss first — NMS over the boxes with the loss as
    the score (IoU threshold ``nms_iou``), then the first ``batch_size`` survivors. What
    ``matching.sample_anchors(..., "ohem")`` keeps of one image, in its order."""
    if loss.ndim != 1 or tuple(boxes.shape) != (len(loss), 4):
        raise ValueError(f"loss must be [C] and boxes [C, 4], got {list(loss.shape)} and {list(boxes.shape)}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be ≥ 1, got {batch_size}")
    candidates = torch.arange(len(loss), device=loss.device)
    no_positives = torch.zeros(len(loss), dtype=torch.bool, device=loss.device)
    return _loss_nms(candidates, loss, boxes, no_positives, nms_iou, batch_size, balanced=False)[:batch_size]


#: The lesson's toy (tests/test_sampling.py without its ignored anchor): six 10 px squares in a row, xyxy;
#: anchor 1 is anchor 0 shifted by 1 px (IoU 0.82), the others do not overlap.
OHEM_BOXES = torch.tensor([[0, 0, 10, 10], [1, 0, 11, 10], [20, 0, 30, 10], [40, 0, 50, 10], [60, 0, 70, 10],
                           [80, 0, 90, 10]], dtype=torch.float)
OHEM_LOSS = torch.tensor([5.0, 4.0, 3.0, 2.0, 1.0, 0.5])
#: The same anchors listed in another order, so that the highest-loss-first order is not the index order.
OHEM_SHUFFLE = torch.tensor([2, 5, 0, 4, 1, 3])


def _ohem_cases() -> list[tuple[str, torch.Tensor, torch.Tensor, int, float]]:
    """(what, loss [C], boxes [C, 4], batch_size, nms_iou): the toy, shuffled, then random overlapping boxes."""
    loss, boxes = OHEM_LOSS[OHEM_SHUFFLE], OHEM_BOXES[OHEM_SHUFFLE]
    cases = [(f"the toy's six anchors in another order (losses {loss.tolist()}), batch {batch}, NMS at {iou}",
              loss, boxes, batch, iou) for batch, iou in ((3, 0.5), (4, 0.5), (3, 0.9))]
    g = torch.Generator().manual_seed(9)
    corners = torch.rand(60, 2, generator=g) * 60
    random_boxes = torch.cat([corners, corners + 8 + torch.rand(60, 2, generator=g) * 24], dim=1)
    random_loss = torch.rand(60, generator=g) * 3
    cases += [(f"60 random boxes, batch {batch}, NMS at {iou}", random_loss, random_boxes, batch, iou)
              for batch, iou in ((8, 0.5), (20, 0.3), (60, 0.7))]
    return cases


def _greedy_nms(loss: torch.Tensor, boxes: torch.Tensor,
                suppress: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """Greedy NMS by loss where a kept anchor drops the anchors for which ``suppress(iou [C])`` holds."""
    iou, alive, kept = box_iou(boxes, boxes), torch.ones(len(loss), dtype=torch.bool), []
    for i in loss.argsort(descending=True).tolist():
        if alive[i]:
            kept.append(i)
            alive &= ~suppress(iou[i])
    return torch.tensor(kept, dtype=torch.long)


def _ohem_variants(loss: torch.Tensor, boxes: torch.Tensor, batch_size: int,
                   nms_iou: float) -> list[tuple[str, Callable[[], torch.Tensor]]]:
    """The usual wrong selections, each as (message, function computing it)."""
    survivors = torchvision.ops.nms(boxes, loss, nms_iou)
    ranked = loss.argsort(descending=True)
    top = ranked[:batch_size]
    lowest_first = ("the lowest loss comes first: OHEM wants the hardest anchors — NMS with the loss as the score "
                    "keeps the highest-loss anchor of each cluster, and the minibatch is the first batch_size "
                    "survivors, highest loss first (not the last ones, and not -loss as the score)")
    return [
        ("no NMS: these are simply the batch_size highest losses — first suppress the anchors that overlap a "
         "higher-loss one by more than nms_iou (NMS with the loss as the score), then take the first batch_size "
         "survivors", lambda: top),
        ("the minibatch is taken before the NMS: the batch_size highest losses, then NMS among them, leaves fewer "
         "than batch_size anchors — run the NMS over every candidate first, then take the first batch_size "
         "survivors", lambda: top[torchvision.ops.nms(boxes[top], loss[top], nms_iou)]),
        ("the threshold works the wrong way round: a kept anchor must suppress the anchors whose IoU with it is "
         "*above* nms_iou (its near-duplicates), not those below it",
         lambda: _greedy_nms(loss, boxes, lambda iou: iou < nms_iou)[:batch_size]),
        (lowest_first, lambda: torchvision.ops.nms(boxes, -loss, nms_iou)[:batch_size]),
        (lowest_first, lambda: survivors.flip(0)[:batch_size]),
        ("the right anchors, sorted by index: return them highest loss first, in the order NMS with the loss "
         "as the score returns its survivors (a mask's .nonzero() loses that order)",
         lambda: survivors[:batch_size].sort().values),
        ("these are positions in the loss-sorted order, not the anchors' indices: after NMS over the sorted "
         "anchors, map the positions back (order[kept])",
         lambda: torchvision.ops.nms(boxes[ranked], loss[ranked], nms_iou)[:batch_size]),
        ("the survivors are sorted by index before the first batch_size are taken: NMS returns them highest loss "
         "first — keep that order and take the first batch_size", lambda: survivors.sort().values[:batch_size]),
        ("every NMS survivor is returned: the minibatch is only the first batch_size of them", lambda: survivors),
        ("nms_iou seems hard-coded at 0.5: use the argument nms_iou",
         lambda: torchvision.ops.nms(boxes, loss, 0.5)[:batch_size]),
        ("this is a 0/1 mask over the C candidates: return the indices of the chosen ones, highest loss first",
         lambda: torch.zeros(len(loss), dtype=torch.long).index_fill(0, survivors[:batch_size], 1)),
    ]


def _ohem_indices(value: object, what: str, loss: torch.Tensor, expected: torch.Tensor) -> torch.Tensor:
    """An answer checked to be a 1-D LongTensor, or a Mistake naming what it is instead."""
    if not isinstance(value, torch.Tensor):
        raise Mistake(f"{what} should return a tensor of indices (torch.long), got {type(value).__name__}")
    if value.dtype == torch.bool:
        raise Mistake(f"{what} returns a boolean mask: return the indices of the chosen anchors (a long tensor), "
                      "highest loss first — a mask loses the order")
    if value.is_floating_point():
        if value.shape == expected.shape and torch.equal(value.detach().cpu(), loss[expected].to(value.dtype)):
            raise Mistake(f"{what} returns the losses of the chosen anchors: return their indices (loss[indices] "
                          "gives these)")
        raise Mistake(f"{what} returns a {value.dtype} tensor: return indices, a long tensor (torch.long)")
    if value.dtype != torch.long:
        raise Mistake(f"{what} returns a {value.dtype} tensor: make it torch.long (.long()), the dtype of indices")
    if value.ndim != 1:
        raise Mistake(f"{what} should return a 1-D tensor of indices [≤ batch_size], got shape {list(value.shape)} "
                      "(.flatten() it)")
    return value.detach().cpu()


@exercise("ohem_select", "09", fallback=ohem_minibatch, forbidden=(sample_anchors, _loss_nms, _first_of))
def check_ohem_select(ohem_select: Callable[[torch.Tensor, torch.Tensor, int, float], torch.Tensor]) -> None:
    """``ohem_select(loss [C], boxes [C, 4], batch_size, nms_iou)`` → indices [≤ batch_size] (long), highest loss
    first: the first ``batch_size`` survivors of NMS over the boxes with the loss as the score."""
    for what, loss, boxes, batch_size, nms_iou in _ohem_cases():
        expected = torchvision.ops.nms(boxes, loss, nms_iou)[:batch_size]
        got = _ohem_indices(ohem_select(loss.clone(), boxes.clone(), batch_size, nms_iou), f"ohem_select on {what}",
                            loss, expected)
        if torch.equal(got, expected):
            continue
        for message, wrong in _ohem_variants(loss, boxes, batch_size, nms_iou):
            if torch.equal(got, wrong()):
                raise Mistake(f"on {what}: {message}")
        if sorted(got.tolist()) == sorted(expected.tolist()):
            raise Mistake(f"on {what}: the right anchors in the wrong order — return them highest loss first, as NMS "
                          "with the loss as the score returns its survivors")
        raise Mistake(f"on {what}: yours keeps {got.tolist()[:10]} ({len(got)} anchors), the first {batch_size} NMS "
                      f"survivors are {expected.tolist()[:10]} ({len(expected)})")


declare("09", "hardest_fraction")
