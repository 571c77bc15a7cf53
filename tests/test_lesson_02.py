"""Lesson 02 (anchors): its explorers compute the right numbers (its exercises' checks: test_workbook_lesson02.py)."""
import pytest
import torch

from retinanet_lite.anchors import PAPER_RATIOS, PAPER_SCALES, make_anchors
from retinanet_lite.boxes import box_iou
from retinanet_lite.data import ShapesDataset
from retinanet_lite.widgets import (anchors_explorer, coverage_explorer, draw_anchor_coverage,
                                    draw_level_anchors)

def test_draw_level_anchors_counts_and_best_iou():
    p3 = draw_level_anchors(level=3)
    assert (p3["stride"], p3["grid"], p3["anchors_per_location"], p3["num_anchors"]) == (8, (16, 16), 9, 2304)
    p7 = draw_level_anchors(level=7)
    assert (p7["stride"], p7["grid"], p7["num_anchors"]) == (128, (1, 1), 9)
    single = draw_level_anchors(level=4, scales=(1.0,), ratios=(1.0,))
    assert single["anchors_per_location"] == 1 and single["num_anchors"] == 64
    _, target = ShapesDataset(16, 128, seed=0)[4]
    assert len(p3["best_iou"]) == len(target["boxes"])
    # the 128-pixel image's objects fit the small P3 anchors far better than the huge P7 ones
    assert max(p3["best_iou"]) > 0.5 > max(p7["best_iou"])


def test_draw_level_anchors_best_iou_is_the_best_on_that_level():
    result = draw_level_anchors(level=4, image_index=0)
    _, target = ShapesDataset(16, 128, seed=0)[0]
    anchors = make_anchors((128, 128), (16,), (32,), PAPER_RATIOS, PAPER_SCALES)
    expected = box_iou(target["boxes"], anchors).max(dim=1).values
    assert result["best_iou"] == pytest.approx(expected.tolist(), abs=1e-6)


def test_draw_anchor_coverage_matches_a_direct_computation():
    result = draw_anchor_coverage(smallest_size=16, num_images=40)
    dataset = ShapesDataset(40, 128, seed=0)
    gt = torch.cat([dataset[i][1]["boxes"] for i in range(40)])
    anchors = make_anchors((128, 128), (8, 16, 32, 64, 128), (16, 32, 64, 128, 256))
    best = box_iou(gt, anchors).max(dim=1).values
    assert result["num_boxes"] == len(gt)
    assert result["mean_best_iou"] == pytest.approx(float(best.mean()), abs=1e-6)
    assert result["share_positive"] == pytest.approx(float((best >= 0.5).float().mean()))
    assert result["share_negative"] == pytest.approx(float((best < 0.4).float().mean()))


def test_draw_anchor_coverage_depends_on_the_anchor_sizes():
    fitting = draw_anchor_coverage(smallest_size=16, num_images=40)
    too_big = draw_anchor_coverage(smallest_size=64, num_images=40)
    too_small = draw_anchor_coverage(smallest_size=4, num_images=40)
    assert fitting["share_positive"] > too_big["share_positive"]
    assert fitting["share_positive"] > too_small["share_positive"]
    assert too_big["share_negative"] > fitting["share_negative"]


def test_anchors_explorer_updates_when_a_control_changes():
    explorer = anchors_explorer()
    assert explorer.result["num_anchors"] == 2304
    explorer.children[0].value = 5  # P5: 4 × 4 × 9
    assert explorer.result["num_anchors"] == 144
    explorer.children[2].value = (1.0,)  # ratios "1 only": A = 3
    assert explorer.result["anchors_per_location"] == 3 and explorer.result["num_anchors"] == 48


def test_coverage_explorer_updates_when_a_control_changes():
    explorer = coverage_explorer(num_images=40)
    before = explorer.result["share_positive"]
    explorer.children[0].value = 48  # P3 size 48: far too big for 10–60 px shapes
    assert explorer.result["share_positive"] < before
