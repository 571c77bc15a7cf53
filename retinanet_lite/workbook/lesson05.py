"""Lesson 05's exercises: matching anchors to objects with two IoU thresholds, and low-quality matches."""
from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import torch
from torchvision.models.detection._utils import Matcher

from ..anchors import config_anchors
from ..boxes import box_iou
from ..config import preset_config
from ..data import ShapesDataset
from ..matching import BACKGROUND, IGNORE, _add_low_quality_matches, match_anchors, match_anchors_batch
from .core import Mistake, declare, exercise
from .diagnose import expect_shape


def match(anchors: torch.Tensor, gt_boxes: torch.Tensor, pos_iou: float = 0.5, neg_iou: float = 0.4) -> torch.Tensor:
    """The lesson's ``my_match``: the two thresholds alone, ``match_anchors(..., allow_low_quality=False)``.

    Anchors ``[N, 4]`` and object boxes ``[G, 4]`` (xyxy, pixels) → ``[N]`` long: object index, -1 background,
    -2 ignored.
    """
    return match_anchors(anchors, gt_boxes, pos_iou, neg_iou, allow_low_quality=False)


def match_low_quality(anchors: torch.Tensor, gt_boxes: torch.Tensor, pos_iou: float = 0.5,
                      neg_iou: float = 0.4) -> torch.Tensor:
    """The lesson's ``my_match_low_quality``: ``match_anchors`` with its low-quality matches (its default)."""
    return match_anchors(anchors, gt_boxes, pos_iou, neg_iou, allow_low_quality=True)


@lru_cache(maxsize=1)
def shapes_case() -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """The lesson's anchors (``shapes-cpu``, 128×128: [3069, 4]) and the boxes of its first 40 images
    (``ShapesDataset(…, 128, seed=0)``; image 3 has no objects)."""
    dataset = ShapesDataset(40, 128, seed=0)
    return config_anchors(preset_config("shapes-cpu"), (128, 128)), tuple(dataset[i][1]["boxes"] for i in range(40))


def _by_rule(anchors: torch.Tensor, gt_boxes: torch.Tensor, positive: Callable, background: Callable) -> torch.Tensor:
    """Each anchor's best object where ``positive(best_iou)``, -1 where ``background(best_iou)``, else -2."""
    best_iou, best = box_iou(gt_boxes, anchors).max(dim=0)
    out = torch.full_like(best, IGNORE)
    out[positive(best_iou)] = best[positive(best_iou)]
    out[background(best_iou)] = BACKGROUND
    return out


def _match_variants(anchors: torch.Tensor, gt: torch.Tensor, pos: float, neg: float) -> dict[str, Callable]:
    """The usual wrong threshold rules, each as message → the matches it gives."""
    return {
        "the thresholds are swapped: anchors with 0.4 ≤ IoU < 0.5 come out positive — positive means IoU ≥ "
        "pos_iou (0.5), background IoU < neg_iou (0.4), ignored in between":
            lambda: _by_rule(anchors, gt, lambda u: u >= neg, lambda u: u < neg),
        "no anchor is background: the two rules are swapped, so 'IoU < pos_iou → ignored' overwrites 'IoU < "
        "neg_iou → background' — mark the ignored ones (< pos_iou) first, then the background (< neg_iou)":
            lambda: _by_rule(anchors, gt, lambda u: u >= pos, lambda u: torch.zeros_like(u, dtype=torch.bool)),
        "an anchor with IoU exactly 0.5 is not positive: > instead of ≥ at 0.5 — positive is IoU ≥ pos_iou, so "
        "mark as ignored only IoU < pos_iou":
            lambda: _by_rule(anchors, gt, lambda u: u > pos, lambda u: u < neg),
        "an anchor with IoU exactly 0.4 is background: ≤ instead of < at 0.4 — background is IoU < neg_iou, "
        "IoU = 0.4 is ignored":
            lambda: _by_rule(anchors, gt, lambda u: u >= pos, lambda u: u <= neg),
        "the ignore band is missing: anchors with 0.4 ≤ IoU < 0.5 must be ignored (−2), not background (−1) — "
        "use both thresholds": lambda: _by_rule(anchors, gt, lambda u: u >= pos, lambda u: u < pos),
    }


#: One 10×10 object at the origin and anchors 10 px wide and h tall on it (IoU = 10 / h), and a second object.
TOY_OBJECTS = torch.tensor([[0.0, 0, 10, 10], [50, 50, 70, 70]])
TOY_ANCHORS = torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 20], [0, 0, 10, 22], [0, 0, 10, 25], [0, 0, 10, 50],
                            [100, 100, 110, 110], [50, 50, 70, 70], [50, 50, 70, 85]])
TOY_MEANING = "IoU 1, 0.5 exactly, 0.45, 0.4 exactly, 0.2 and 0 with object 0, then IoU 1 and 0.57 with object 1"


def _as_matches(value, what: str, n: int) -> torch.Tensor:
    """``value`` checked to be a LongTensor [n]."""
    if not isinstance(value, torch.Tensor):
        raise Mistake(f"{what} should return a tensor, got {type(value).__name__}")
    if value.is_floating_point() or value.dtype == torch.bool:
        raise Mistake(f"{what} returns a {value.dtype} tensor: return a LongTensor (torch.long) of object indices, "
                      "−1 and −2 — not IoU values or a mask")
    expect_shape(value, (n,), f"{what} (one entry per anchor)")
    return value.long()


def _first_difference(got: torch.Tensor, expected: torch.Tensor, what: str) -> None:
    wrong = (got != expected).nonzero().flatten()
    if len(wrong):
        i = int(wrong[0])
        raise Mistake(f"{what}: anchor {i} should be {int(expected[i])}, yours says {int(got[i])} "
                      f"({len(wrong)} anchors differ)")


def _check_no_objects(function: Callable, name: str, anchors: torch.Tensor) -> None:
    """With no objects, every anchor is background."""
    try:
        got = function(anchors, torch.zeros(0, 4))
    except NotImplementedError:
        raise
    except Exception as error:
        raise Mistake(f"an image with no objects (gt_boxes [0, 4]) crashes {name} ({type(error).__name__}: {error}): "
                      "with no objects every anchor is background — return torch.full((N,), BACKGROUND) "
                      "before taking the max") from None
    got = _as_matches(got, f"{name}(anchors, no objects)", len(anchors))
    if not (got == BACKGROUND).all():
        raise Mistake(f"with no objects every anchor must be background (−1); {name} gives "
                      f"{sorted(set(got.tolist()))[:5]}")


@exercise("match", "05", fallback=match, forbidden=(match_anchors, match_anchors_batch, Matcher))
def check_match(my_match: Callable[..., torch.Tensor]) -> None:
    """``my_match(anchors [N, 4], gt_boxes [G, 4], pos_iou=0.5, neg_iou=0.4)`` → [N] long."""
    got = _as_matches(my_match(TOY_ANCHORS, TOY_OBJECTS), "my_match(anchors [8, 4], objects [2, 4])", 8)
    expected = match(TOY_ANCHORS, TOY_OBJECTS)
    for message, wrong in _match_variants(TOY_ANCHORS, TOY_OBJECTS, 0.5, 0.4).items():
        if not torch.equal(got, expected) and torch.equal(got, wrong()):
            raise Mistake(message)
    _first_difference(got, expected, f"anchors with {TOY_MEANING}")
    strict = _as_matches(my_match(TOY_ANCHORS, TOY_OBJECTS, 0.6, 0.3), "my_match(…, 0.6, 0.3)", 8)
    if not torch.equal(strict, match(TOY_ANCHORS, TOY_OBJECTS, 0.6, 0.3)):
        if torch.equal(strict, expected):
            raise Mistake("the thresholds are hard-coded: my_match(…, pos_iou=0.6, neg_iou=0.3) gives the same as "
                          "with 0.5 / 0.4 — use the arguments pos_iou and neg_iou")
        _first_difference(strict, match(TOY_ANCHORS, TOY_OBJECTS, 0.6, 0.3), "with thresholds 0.6 / 0.3")
    anchors, images = shapes_case()
    _check_no_objects(my_match, "my_match", anchors)
    for index, gt in enumerate(images[:20]):
        for pos, neg in [(0.5, 0.4), (0.6, 0.3), (0.5, 0.5)]:
            got = _as_matches(my_match(anchors, gt, pos, neg), "my_match(anchors, objects)", len(anchors))
            _first_difference(got, match(anchors, gt, pos, neg), f"shapes image {index}, thresholds ({pos}, {neg})")


def _low_quality_rule(anchors: torch.Tensor, gt: torch.Tensor, pos: float, neg: float, ties: bool = True,
                      positive_only: bool = True, resolve: str = "most") -> torch.Tensor:
    """Thresholds, then every object claims its best anchor(s): the right rule and its usual wrong forms.

    ``ties=False``: only the first best anchor (argmax); ``positive_only=False``: objects whose best IoU is 0
    claim too; ``resolve``: who gets a contested anchor — "most" (the claimant it overlaps most), "last"
    (the last object written, as a loop over the objects does), "first" (the first claimant), "anchor"
    (the anchor's best object overall, as torchvision's Matcher does).
    """
    matches = match(anchors, gt, pos, neg)
    if len(gt) == 0:
        return matches
    iou = box_iou(gt, anchors)  # [G, N]
    best = iou.max(dim=1, keepdim=True).values
    if ties:
        claims = iou == best
    else:
        claims = torch.zeros_like(iou, dtype=torch.bool)
        claims[torch.arange(len(gt)), iou.argmax(dim=1)] = True
    if positive_only:
        claims &= best > 0
    if resolve == "anchor":
        claimed = claims.any(dim=0)
        matches[claimed] = iou.argmax(dim=0)[claimed]
    elif resolve == "last":
        for j in range(len(gt)):
            matches[claims[j]] = j
    elif resolve == "first":
        claimed = claims.any(dim=0)
        matches[claimed] = claims.int().argmax(dim=0)[claimed]
    else:
        claimed_iou, claimant = torch.where(claims, iou, -1.0).max(dim=0)
        matches[claimed_iou >= 0] = claimant[claimed_iou >= 0]
    return matches


def _low_quality_variants(anchors: torch.Tensor, gt: torch.Tensor, pos: float, neg: float) -> dict[str, Callable]:
    """The usual wrong low-quality rules, each as message → the matches it gives (the specific ones first)."""
    wrong_object = ("the low-quality match is given to the wrong object: when two objects claim the same anchor, "
                    "{} wins — give it to the claimant it overlaps most (the largest IoU among the claims)")
    return {
        "only the first of tied anchors is kept: argmax picks one, but when several anchors share an object's "
        "highest IoU (a tiny object inside several same-size anchors) all of them become positive — compare "
        "iou == best_per_object": lambda: _low_quality_rule(anchors, gt, pos, neg, ties=False),
        "an object that overlaps no anchor at all claims every anchor (they all tie at IoU 0): only claim "
        "when the best IoU is > 0": lambda: _low_quality_rule(anchors, gt, pos, neg, positive_only=False),
        "the low-quality match is given to the wrong object: the claimed anchor goes to its own best object "
        "overall (as torchvision's Matcher does), which may not have claimed it and may have better anchors "
        "of its own — give it to the object that claims it": lambda: _low_quality_rule(
            anchors, gt, pos, neg, resolve="anchor"),
        wrong_object.format("the last one written (a loop over the objects)"): lambda: _low_quality_rule(
            anchors, gt, pos, neg, resolve="last"),
        wrong_object.format("the first one (argmax over the claims)"): lambda: _low_quality_rule(
            anchors, gt, pos, neg, resolve="first"),
        "low-quality matches are missing: an object whose best anchor has IoU < 0.5 gets no positive anchor — "
        "every object also claims the anchor(s) with its highest IoU, even below pos_iou":
            lambda: match(anchors, gt, pos, neg),
    }


#: (what, anchors, objects): the cases low-quality matching is about, each with a known answer.
LOW_QUALITY_TOYS = [
    ("a 6×7 object inside four 16×16 anchors (a four-way tie at IoU 42/256)",
     torch.tensor([[0.0, 0, 16, 16], [8, 0, 24, 16], [0, 8, 16, 24], [8, 8, 24, 24], [0, 0, 64, 64],
                   [100, 100, 116, 116]]), torch.tensor([[9.0, 9, 15, 16]])),
    ("anchor 0 is object 0's only decent anchor, and object 1 overlaps it more but has a perfect anchor (1)",
     torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 14]]), torch.tensor([[0.0, 0, 10, 3], [0, 0, 10, 14]])),
    ("two objects claim anchor 0, object 0 with IoU 0.25, object 1 with 0.14",
     torch.tensor([[0.0, 0, 16, 16], [100, 100, 116, 116]]), torch.tensor([[0.0, 0, 8, 8], [0, 0, 6, 6]])),
    ("two objects claim anchor 0, object 0 with IoU 0.14, object 1 with 0.25",
     torch.tensor([[0.0, 0, 16, 16], [100, 100, 116, 116]]), torch.tensor([[0.0, 0, 6, 6], [0, 0, 8, 8]])),
    ("object 1 lies far from every anchor (its best IoU is 0)",
     torch.tensor([[0.0, 0, 16, 16], [16, 0, 32, 16], [0, 16, 16, 32]]),
     torch.tensor([[2.0, 2, 8, 8], [200, 200, 210, 210]])),
]


@exercise("match_low_quality", "05", fallback=match_low_quality,
          forbidden=(_add_low_quality_matches, Matcher.set_low_quality_matches_))
def check_match_low_quality(my_match_low_quality: Callable[..., torch.Tensor]) -> None:
    """``my_match_low_quality(anchors [N, 4], gt_boxes [G, 4], pos_iou=0.5, neg_iou=0.4)`` → [N] long."""
    for what, anchors, objects in LOW_QUALITY_TOYS:
        got = _as_matches(my_match_low_quality(anchors, objects), "my_match_low_quality", len(anchors))
        expected = match_low_quality(anchors, objects)
        if torch.equal(got, expected):
            continue
        for message, wrong in _low_quality_variants(anchors, objects, 0.5, 0.4).items():
            if torch.equal(got, wrong()):
                raise Mistake(f"{message} (case: {what}; expected {expected.tolist()}, got {got.tolist()})")
        raise Mistake(f"{what}: expected {expected.tolist()}, got {got.tolist()}")
    anchors, images = shapes_case()
    _check_no_objects(my_match_low_quality, "my_match_low_quality", anchors)
    for index, gt in enumerate(images[:20]):
        for pos, neg in [(0.5, 0.4), (0.7, 0.3)]:
            got = _as_matches(my_match_low_quality(anchors, gt, pos, neg), "my_match_low_quality", len(anchors))
            expected = match_low_quality(anchors, gt, pos, neg)
            if torch.equal(got, expected):
                continue
            if pos != 0.5 and torch.equal(got, match_low_quality(anchors, gt)):
                raise Mistake("the thresholds are not passed on: my_match_low_quality(…, 0.7, 0.3) gives the same as "
                              "with 0.5 / 0.4 — call my_match(anchors, gt_boxes, pos_iou, neg_iou)")
            for message, wrong in _low_quality_variants(anchors, gt, pos, neg).items():
                if torch.equal(got, wrong()):
                    raise Mistake(f"{message} (shapes image {index})")
            _first_difference(got, expected, f"shapes image {index}, thresholds ({pos}, {neg})")


declare("05", "positives_per_object", "sample_anchors")
