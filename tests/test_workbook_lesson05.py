"""Lesson 05's workbook checkers: each named mistake is caught, other correct answers and the lesson's pass."""
import pytest
import torch
from torchvision.models.detection._utils import Matcher

from retinanet_lite import workbook
from retinanet_lite.boxes import box_iou
from retinanet_lite.matching import BACKGROUND, IGNORE, match_anchors
from retinanet_lite.workbook import lesson05
from workbook_checks import failed_with as assert_fails, passes as assert_passes



def test_lesson_05_exercises_are_registered_in_the_lessons_order():
    assert [e.name for e in workbook.lesson_exercises("05")] == [
        "match", "match_low_quality", "positives_per_object", "sample_anchors"]


# --- match -------------------------------------------------------------------------------------------

def lesson_match(anchors, gt_boxes, pos_iou=0.5, neg_iou=0.4):  # the notebook's solution
    if len(gt_boxes) == 0:
        return torch.full((len(anchors),), BACKGROUND, dtype=torch.long)
    best_iou, matches = box_iou(gt_boxes, anchors).max(dim=0)
    matches[best_iou < pos_iou] = IGNORE
    matches[best_iou < neg_iou] = BACKGROUND
    return matches


def other_match(anchors, gt_boxes, pos_iou=0.5, neg_iou=0.4):
    """Another correct answer: the IoU matrix the other way round, torch.where on disjoint masks."""
    if gt_boxes.numel() == 0:
        return torch.full((anchors.shape[0],), -1, dtype=torch.long)
    best_iou, best = box_iou(anchors, gt_boxes).max(dim=1)
    ignored = (best_iou >= neg_iou) & (best_iou < pos_iou)
    return torch.where(best_iou >= pos_iou, best, torch.where(ignored, torch.tensor(-2), torch.tensor(-1)))


def match_by_rule(positive, background, empty_ok=True):
    def my_match(anchors, gt_boxes, pos_iou=0.5, neg_iou=0.4):
        if len(gt_boxes) == 0 and empty_ok:
            return torch.full((len(anchors),), BACKGROUND, dtype=torch.long)
        best_iou, matches = box_iou(gt_boxes, anchors).max(dim=0)
        out = torch.full_like(matches, IGNORE)
        out[positive(best_iou, pos_iou, neg_iou)] = matches[positive(best_iou, pos_iou, neg_iou)]
        out[background(best_iou, pos_iou, neg_iou)] = BACKGROUND
        return out
    return my_match


def swapped_order(anchors, gt_boxes, pos_iou=0.5, neg_iou=0.4):
    if len(gt_boxes) == 0:
        return torch.full((len(anchors),), BACKGROUND, dtype=torch.long)
    best_iou, matches = box_iou(gt_boxes, anchors).max(dim=0)
    matches[best_iou < neg_iou] = BACKGROUND
    matches[best_iou < pos_iou] = IGNORE
    return matches


def hard_coded(anchors, gt_boxes, pos_iou=0.5, neg_iou=0.4):
    return lesson_match(anchors, gt_boxes)


def test_match_right_answers_pass():
    assert_passes("match", lesson_match)
    assert_passes("match", other_match)


@pytest.mark.parametrize("wrong, fragment", [
    (match_by_rule(lambda u, p, n: u >= n, lambda u, p, n: u < n), "the thresholds are swapped"),
    (swapped_order, "no anchor is background: the two rules are swapped"),
    (match_by_rule(lambda u, p, n: u > p, lambda u, p, n: u < n), "> instead of ≥ at 0.5"),
    (match_by_rule(lambda u, p, n: u >= p, lambda u, p, n: u <= n), "≤ instead of < at 0.4"),
    (match_by_rule(lambda u, p, n: u >= p, lambda u, p, n: u < p), "the ignore band is missing"),
    (match_by_rule(lambda u, p, n: u >= p, lambda u, p, n: u < n, empty_ok=False), "an image with no objects"),
    (lambda a, g, p=0.5, n=0.4: lesson_match(a, g, p, n) if len(g) else torch.full((len(a),), IGNORE),
     "with no objects every anchor must be background"),
    (hard_coded, "the thresholds are hard-coded"),
    (lambda a, g, p=0.5, n=0.4: box_iou(g, a).max(dim=0).values if len(g) else torch.zeros(len(a)), "LongTensor"),
    (lambda a, g, p=0.5, n=0.4: lesson_match(a, g, p, n)[:-1], "should have shape"),
])
def test_match_names_the_mistake(wrong, fragment):
    assert_fails("match", wrong, fragment)


def test_match_package_version_is_refused():
    assert_fails("match", lesson05.match, "ready-made version")
    assert_fails("match", lambda a, g, p=0.5, n=0.4: match_anchors(a, g, p, n, allow_low_quality=False),
                 "ready-made version")

    def with_matcher(anchors, gt_boxes, pos_iou=0.5, neg_iou=0.4):
        if len(gt_boxes) == 0:
            return torch.full((len(anchors),), BACKGROUND, dtype=torch.long)
        return Matcher(pos_iou, neg_iou)(box_iou(gt_boxes, anchors))

    assert_fails("match", with_matcher, "ready-made version")


def test_match_fallback_is_the_thresholds_alone():
    anchors, images = lesson05.shapes_case()
    for gt in images[:10]:
        assert torch.equal(lesson05.match(anchors, gt), lesson_match(anchors, gt))


# --- match_low_quality --------------------------------------------------------------------------------

def lesson_low_quality(anchors, gt_boxes, pos_iou=0.5, neg_iou=0.4):  # the notebook's solution
    matches = lesson_match(anchors, gt_boxes, pos_iou, neg_iou)
    if len(gt_boxes) == 0:
        return matches
    iou = box_iou(gt_boxes, anchors)
    best_per_object = iou.max(dim=1, keepdim=True).values
    claims = (iou == best_per_object) & (best_per_object > 0)
    claimed_iou, claimant = torch.where(claims, iou, -1.0).max(dim=0)
    is_claimed = claimed_iou >= 0
    matches[is_claimed] = claimant[is_claimed]
    return matches


def other_low_quality(anchors, gt_boxes, pos_iou=0.5, neg_iou=0.4):
    """Another correct answer: objects sorted by their best IoU, the strongest written last (loop)."""
    matches = other_match(anchors, gt_boxes, pos_iou, neg_iou)
    if len(gt_boxes) == 0:
        return matches
    iou = box_iou(gt_boxes, anchors)
    best = iou.amax(dim=1)
    for j in best.argsort().tolist():
        if best[j] > 0:
            matches[iou[j] == best[j]] = j
    return matches


def low_quality_variant(**options):
    def wrong(anchors, gt_boxes, pos_iou=0.5, neg_iou=0.4):
        return lesson05._low_quality_rule(anchors, gt_boxes, pos_iou, neg_iou, **options)
    return wrong


def argmax_only(anchors, gt_boxes, pos_iou=0.5, neg_iou=0.4):
    matches = lesson_match(anchors, gt_boxes, pos_iou, neg_iou)
    if len(gt_boxes) == 0:
        return matches
    matches[box_iou(gt_boxes, anchors).argmax(dim=1)] = torch.arange(len(gt_boxes))
    return matches


def torchvision_style(anchors, gt_boxes, pos_iou=0.5, neg_iou=0.4):
    matches = lesson_match(anchors, gt_boxes, pos_iou, neg_iou)
    if len(gt_boxes) == 0:
        return matches
    iou = box_iou(gt_boxes, anchors)
    claimed = (iou == iou.max(dim=1, keepdim=True).values).any(dim=0)
    matches[claimed] = iou.argmax(dim=0)[claimed]
    return matches


def test_low_quality_right_answers_pass():
    assert_passes("match_low_quality", lesson_low_quality)
    assert_passes("match_low_quality", other_low_quality)


@pytest.mark.parametrize("wrong, fragment", [
    (lesson_match, "low-quality matches are missing"),
    (argmax_only, "only the first of tied anchors is kept"),
    (torchvision_style, "the low-quality match is given to the wrong object"),
    (low_quality_variant(resolve="last"), "the last one written"),
    (low_quality_variant(resolve="first"), "the first one (argmax over the claims)"),
    (low_quality_variant(positive_only=False), "claims every anchor"),
    (lambda a, g, p=0.5, n=0.4: lesson_low_quality(a, g), "the thresholds are not passed on"),
    (lambda a, g, p=0.5, n=0.4: lesson_low_quality(a, g, p, n) if len(g) else torch.zeros(len(a), dtype=torch.long),
     "with no objects every anchor must be background"),
])
def test_low_quality_names_the_mistake(wrong, fragment):
    assert_fails("match_low_quality", wrong, fragment)


def test_low_quality_package_version_is_refused():
    assert_fails("match_low_quality", lesson05.match_low_quality, "ready-made version")
    assert_fails("match_low_quality", match_anchors, "ready-made version")
    assert_fails("match_low_quality", lambda a, g, p=0.5, n=0.4: match_anchors(a, g, p, n), "ready-made version")

    def with_matcher(anchors, gt_boxes, pos_iou=0.5, neg_iou=0.4):
        if len(gt_boxes) == 0:
            return torch.full((len(anchors),), BACKGROUND, dtype=torch.long)
        return Matcher(pos_iou, neg_iou, allow_low_quality_matches=True)(box_iou(gt_boxes, anchors))

    assert_fails("match_low_quality", with_matcher, "ready-made version")


def test_low_quality_may_build_on_the_fallback_match():
    """A student whose my_match fails goes on with lesson05.match: their low-quality step must still pass."""
    def built_on_fallback(anchors, gt_boxes, pos_iou=0.5, neg_iou=0.4):
        matches = lesson05.match(anchors, gt_boxes, pos_iou, neg_iou)
        if len(gt_boxes) == 0:
            return matches
        iou = box_iou(gt_boxes, anchors)
        best = iou.max(dim=1, keepdim=True).values
        claimed_iou, claimant = torch.where((iou == best) & (best > 0), iou, -1.0).max(dim=0)
        return torch.where(claimed_iou >= 0, claimant, matches)

    assert_passes("match_low_quality", built_on_fallback)


def test_low_quality_toys_have_the_stated_answers():
    answers = [[0, 0, 0, 0, -1, -1], [0, 1], [0, -1], [1, -1], [0, -1, -1]]
    for (what, anchors, objects), answer in zip(lesson05.LOW_QUALITY_TOYS, answers):
        assert lesson_low_quality(anchors, objects).tolist() == answer, what
