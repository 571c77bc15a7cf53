"""Lesson 09's exercise checks name the usual mistakes, pass other correct answers, and refuse the package's."""
from pathlib import Path

import pytest
import torch
import torchvision

from retinanet_lite import workbook
from retinanet_lite.boxes import box_iou
from retinanet_lite.matching import sample_anchors
from retinanet_lite.workbook import lesson_exercises
from workbook_checks import failed_with, notebook_check, passes

LESSON = "09_focal_loss_experiments.ipynb"
NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"



def normalised_cdf(losses):  # the lesson's solution
    ordered = losses.sort().values
    cumulative = ordered.cumsum(0) / ordered.sum()
    return torch.linspace(0, 1, len(ordered)), cumulative


def cdf_with(descending=False, normalise=True, sort=True, cumulative=True, x="linspace"):
    def cdf(losses):
        ordered = losses.sort(descending=descending).values if sort else losses
        y = ordered.cumsum(0) if cumulative else ordered
        n = len(losses)
        xs = {"linspace": torch.linspace(0, 1, n), "arange": torch.arange(n) / n,
              "from 1": torch.arange(1, n + 1) / n, "count": torch.arange(n).float()}[x]
        return xs, y / ordered.sum() if normalise else y
    return cdf


def test_exercises_are_registered_in_the_lessons_order():
    assert [e.name for e in lesson_exercises("09")] == ["normalised_cdf", "ohem_select", "hardest_fraction"]


def test_normalised_cdf():
    passes("normalised_cdf", normalised_cdf)
    passes("normalised_cdf", lambda l: (torch.arange(len(l)) / max(len(l) - 1, 1), torch.sort(l)[0].cumsum(0) / l.sum()))
    failed_with("normalised_cdf", cdf_with(descending=True), "descending")
    failed_with("normalised_cdf", cdf_with(normalise=False), "not normalised")
    failed_with("normalised_cdf", cdf_with(sort=False), "not sorted")
    failed_with("normalised_cdf", cdf_with(cumulative=False), "cumulative sum")
    failed_with("normalised_cdf", cdf_with(x="arange"), "stop short of 1")
    failed_with("normalised_cdf", cdf_with(x="from 1"), "start at 1/n")
    failed_with("normalised_cdf", cdf_with(x="count"), "counts the samples")
    failed_with("normalised_cdf", workbook.lesson09.cumulative_loss_share, "ready-made")
    failed_with("normalised_cdf", lambda l: workbook.lesson09.cumulative_loss_share(l), "ready-made")



def ohem_select(loss, boxes, batch_size, nms_iou):  # the lesson's solution
    survivors = torchvision.ops.nms(boxes, loss, nms_iou)
    return survivors[:batch_size]


def ohem_by_loop(loss, boxes, batch_size, nms_iou):  # another correct answer: lesson 08's greedy NMS, by hand
    iou, alive, kept = box_iou(boxes, boxes), torch.ones(len(loss), dtype=torch.bool), []
    for i in loss.argsort(descending=True).tolist():
        if alive[i] and len(kept) < batch_size:
            kept.append(i)
            alive &= iou[i] <= nms_iou
    return torch.tensor(kept, dtype=torch.long)


def suppress_below(loss, boxes, batch_size, nms_iou):  # the threshold the wrong way round
    iou, alive, kept = box_iou(boxes, boxes), torch.ones(len(loss), dtype=torch.bool), []
    for i in loss.argsort(descending=True).tolist():
        if alive[i]:
            kept.append(i)
            alive &= iou[i] >= nms_iou
    return torch.tensor(kept[:batch_size])


def _nms(boxes, loss, nms_iou):
    return torchvision.ops.nms(boxes, loss, nms_iou)


def _positions(loss, boxes, k, t):
    order = loss.argsort(descending=True)
    return _nms(boxes[order], loss[order], t)[:k]


def _before(loss, boxes, k, t):
    top = loss.argsort(descending=True)[:k]
    return top[_nms(boxes[top], loss[top], t)]


def _mask(loss, boxes, k, t):
    mask = torch.zeros(len(loss), dtype=torch.bool)
    mask[_nms(boxes, loss, t)[:k]] = True
    return mask


@pytest.mark.parametrize("wrong, fragment", [
    (lambda l, b, k, t: l.argsort(descending=True)[:k], "no NMS"),
    (_before, "taken before the NMS"),
    (suppress_below, "the wrong way round"),
    (lambda l, b, k, t: _nms(b, -l, t)[:k], "the lowest loss comes first"),
    (lambda l, b, k, t: _nms(b, l, t).flip(0)[:k], "the lowest loss comes first"),
    (lambda l, b, k, t: _nms(b, l, t)[:k].sort().values, "the right anchors, sorted by index"),
    (lambda l, b, k, t: _mask(l, b, k, t).nonzero().flatten(), "the right anchors, sorted by index"),
    (_positions, "positions in the loss-sorted order"),
    (lambda l, b, k, t: _nms(b, l, t).sort().values[:k], "sorted by index before"),
    (lambda l, b, k, t: _nms(b, l, t), "every NMS survivor"),
    (lambda l, b, k, t: _nms(b, l, 0.5)[:k], "hard-coded"),
    (lambda l, b, k, t: _mask(l, b, k, t).long(), "0/1 mask"),
    (_mask, "boolean mask"),
    (lambda l, b, k, t: l[_nms(b, l, t)[:k]], "returns the losses"),
    (lambda l, b, k, t: _nms(b, l, t)[:k].float(), "a long tensor"),
    (lambda l, b, k, t: _nms(b, l, t)[:k].int(), "make it torch.long"),
    (lambda l, b, k, t: _nms(b, l, t)[:k, None], "1-D tensor"),
    (lambda l, b, k, t: _nms(b, l, t)[:k].tolist(), "should return a tensor"),
    (lambda l, b, k, t: _nms(b, l, t)[:k].roll(1), "the right anchors in the wrong order"),
])
def test_ohem_select_names_the_mistake(wrong, fragment):
    failed_with("ohem_select", wrong, fragment)


def test_ohem_select_right_answers_pass_and_the_package_is_refused():
    passes("ohem_select", ohem_select)
    passes("ohem_select", ohem_by_loop)
    failed_with("ohem_select", workbook.lesson09.ohem_minibatch, "ready-made")

    def via_sample_anchors(loss, boxes, batch_size, nms_iou):
        mask = sample_anchors(torch.zeros(1, len(loss), dtype=torch.long), loss[None], boxes, "ohem", batch_size,
                              nms_iou)[0]
        chosen = mask.nonzero().flatten()
        return chosen[loss[chosen].argsort(descending=True)]
    failed_with("ohem_select", via_sample_anchors, "ready-made")


def test_ohem_select_fallback_passes_its_own_check_and_agrees_with_sample_anchors():
    workbook.EXERCISES["ohem_select"].checker(workbook.lesson09.ohem_minibatch)  # raises a Mistake if wrong
    # tests/test_sampling.py's toy: its ignored anchor 6 left out of the candidates
    anchors = workbook.lesson09.OHEM_BOXES
    loss = workbook.lesson09.OHEM_LOSS
    for batch_size, nms_iou, kept in ((3, 0.5, [0, 2, 3]), (4, 0.5, [0, 2, 3, 4]), (3, 0.9, [0, 1, 2])):
        assert workbook.lesson09.ohem_minibatch(loss, anchors, batch_size, nms_iou).tolist() == kept
        mask = sample_anchors(torch.zeros(1, 6, dtype=torch.long), loss[None], anchors, "ohem", batch_size, nms_iou)
        assert mask[0].nonzero().flatten().tolist() == kept
    with pytest.raises(ValueError, match="batch_size"):
        workbook.lesson09.ohem_minibatch(loss, anchors, 0, 0.5)
    with pytest.raises(ValueError, match="boxes"):
        workbook.lesson09.ohem_minibatch(loss, anchors[:5], 3, 0.5)


def hardest_fraction(losses, share):  # the lesson's solution
    ordered = losses.sort(descending=True).values
    cumulative = ordered.cumsum(0) / ordered.sum()
    count = int((cumulative < share).sum()) + 1
    return count / len(losses)


def hardest_by_loop(losses, share):  # another correct answer
    total, running = float(losses.sum()), 0.0
    for count, value in enumerate(sorted(losses.tolist(), reverse=True), start=1):
        running += value
        if running >= share * total - 1e-12:
            return count / len(losses)
    return 1.0


def test_hardest_fraction_check():
    check = notebook_check(LESSON, "hardest_fraction")
    check({"torch": torch, "hardest_fraction": hardest_fraction})
    check({"torch": torch, "hardest_fraction": hardest_by_loop})

    def variant(descending=True, strict=True, plus_one=1):
        def wrong(losses, share):
            ordered = losses.sort(descending=descending).values
            cumulative = ordered.cumsum(0) / ordered.sum()
            below = cumulative < share if strict else cumulative <= share
            return (int(below.sum()) + plus_one) / len(losses)
        return wrong
    with pytest.raises(AssertionError, match="descending order"):
        check({"torch": torch, "hardest_fraction": variant(descending=False)})
    with pytest.raises(AssertionError, match="off by one"):
        check({"torch": torch, "hardest_fraction": variant(plus_one=0)})
    with pytest.raises(AssertionError, match="includes equality"):
        check({"torch": torch, "hardest_fraction": variant(strict=False)})
