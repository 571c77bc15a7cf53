"""Matching: thresholds, low-quality matches, batching, and parity with torchvision's Matcher."""
import pytest
import torch
from torchvision.models.detection._utils import Matcher
from torchvision.ops import box_iou

from retinanet_lite.anchors import make_anchors
from retinanet_lite.matching import BACKGROUND, IGNORE, match_anchors, match_anchors_batch


def random_gt(n: int, seed: int, image: int = 256) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * (image - 80)
    wh = torch.rand(n, 2, generator=g) * 70 + 8
    return torch.cat([xy, xy + wh], dim=1)


@pytest.mark.parametrize("seed", range(8))
def test_matches_torchvision_matcher(seed):
    anchors = make_anchors((256, 256), sizes=(24, 48, 96, 192, 384))
    gt = random_gt(1 + seed % 5, seed)
    theirs = Matcher(0.5, 0.4, allow_low_quality_matches=True)(box_iou(gt, anchors))
    ours = match_anchors(anchors, gt)
    # The two only differ when one anchor is the single best anchor of two boxes (documented).
    disagree = (ours != theirs).nonzero().flatten()
    best = box_iou(gt, anchors).max(dim=1).values
    for anchor in disagree.tolist():
        claimants = (box_iou(gt, anchors[anchor:anchor + 1])[:, 0] == best).nonzero().flatten()
        assert len(claimants) >= 1 and ours[anchor] in claimants.tolist()
    assert len(disagree) <= 1


def test_matches_torchvision_without_low_quality():
    anchors = make_anchors((256, 256), sizes=(24, 48, 96, 192, 384))
    gt = random_gt(6, 42)
    theirs = Matcher(0.5, 0.4, allow_low_quality_matches=False)(box_iou(gt, anchors))
    torch.testing.assert_close(match_anchors(anchors, gt, allow_low_quality=False), theirs)


def test_thresholds():
    anchors = torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 8], [0, 0, 10, 4.5], [0, 0, 10, 2], [50, 50, 60, 60]])
    gt = torch.tensor([[0.0, 0, 10, 10]])  # IoUs: 1, .8, .45, .2, 0
    assert match_anchors(anchors, gt, allow_low_quality=False).tolist() == [0, 0, IGNORE, BACKGROUND, BACKGROUND]


def test_every_tiny_and_thin_box_gets_an_anchor():
    anchors = make_anchors((128, 128), sizes=(32, 64, 128, 256, 512))
    gt = torch.tensor([[10.0, 10, 14, 14], [40, 60, 42, 100], [90, 5, 125, 7]])  # tiny, thin, thin
    assert (box_iou(gt, anchors).max(dim=1).values < 0.5).all()  # no anchor reaches 0.5
    assert (match_anchors(anchors, gt, allow_low_quality=False) < 0).all()
    matches = match_anchors(anchors, gt)
    assert set(matches[matches >= 0].tolist()) == {0, 1, 2}


def test_contested_best_anchor_goes_to_the_box_that_claims_it():
    # Box 0's only decent anchor is anchor 0, but box 1 overlaps anchor 0 more while having a perfect
    # anchor of its own. torchvision gives anchor 0 to box 1 (its overall best box) and box 0 gets none.
    anchors = torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 14]])
    gt = torch.tensor([[0.0, 0, 10, 3], [0, 0, 10, 14]])
    theirs = Matcher(0.5, 0.4, allow_low_quality_matches=True)(box_iou(gt, anchors))
    assert 0 not in theirs.tolist()
    assert match_anchors(anchors, gt).tolist() == [0, 1]


def test_no_ground_truth_means_all_background():
    anchors = make_anchors((64, 64))
    assert (match_anchors(anchors, torch.zeros(0, 4)) == BACKGROUND).all()


def test_batch_equals_per_image():
    anchors = make_anchors((128, 128), sizes=(16, 32, 64, 128, 256))
    gts = [random_gt(3, 1, 128), random_gt(0, 2, 128), random_gt(5, 3, 128)]
    padded = torch.zeros(3, 5, 4)
    valid = torch.zeros(3, 5, dtype=torch.bool)
    for i, g in enumerate(gts):
        padded[i, : len(g)] = g
        valid[i, : len(g)] = True
    batched = match_anchors_batch(anchors, padded, valid)
    for i, g in enumerate(gts):
        torch.testing.assert_close(batched[i], match_anchors(anchors, g))


def test_thresholds_are_validated():
    with pytest.raises(ValueError, match="neg_iou"):
        match_anchors(make_anchors((64, 64)), random_gt(1, 0, 64), pos_iou=0.4, neg_iou=0.5)
