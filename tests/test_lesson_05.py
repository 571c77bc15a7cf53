"""Lesson 05 (matching): the matching explorer counts right (its exercises' checks: test_workbook_lesson05.py)."""
import pytest

from retinanet_lite.anchors import config_anchors
from retinanet_lite.config import preset_config
from retinanet_lite.data import ShapesDataset
from retinanet_lite.matching import match_anchors
from retinanet_lite.widgets import MATCHING_IMAGES, draw_matching, matching_explorer, shapes_cpu_anchors


def counts_by_hand(index: int, pos_iou: float, neg_iou: float, low_quality: bool) -> dict[str, int]:
    """The explorer's counts, computed independently from the package's anchors and matcher."""
    c = preset_config("shapes-cpu")
    anchors = config_anchors(c, (128, 128))
    boxes = ShapesDataset(MATCHING_IMAGES, 128, seed=0)[index][1]["boxes"]
    m = match_anchors(anchors, boxes, pos_iou, min(neg_iou, pos_iou), low_quality)
    return {"positive": int((m >= 0).sum()), "ignored": int((m == -2).sum()), "negative": int((m == -1).sum()),
            "boxes_without_positive": sum(int(not (m == j).any()) for j in range(len(boxes)))}


def test_shapes_cpu_anchors():
    assert shapes_cpu_anchors().shape == (3069, 4)


@pytest.mark.parametrize("pos_iou, neg_iou, index, low_quality", [
    (0.5, 0.4, 4, True), (0.5, 0.4, 4, False), (0.7, 0.3, 1, False), (0.6, 0.6, 8, True), (0.4, 0.2, 3, True),
])
def test_draw_matching_counts(pos_iou, neg_iou, index, low_quality):
    result = draw_matching(pos_iou=pos_iou, neg_iou=neg_iou, image_index=index, low_quality=low_quality)
    expected = counts_by_hand(index, pos_iou, neg_iou, low_quality)
    assert {k: result[k] for k in expected} == expected
    assert result["positive"] + result["ignored"] + result["negative"] == 3069


def test_draw_matching_low_quality_rescues_the_small_objects_of_image_4():
    without = draw_matching(image_index=4, low_quality=False)
    with_ = draw_matching(image_index=4, low_quality=True)
    assert without["boxes_without_positive"] == 2 and without["low_quality"] == 0
    assert with_["boxes_without_positive"] == 0 and with_["low_quality"] >= 2
    assert with_["positive"] > without["positive"]


def test_draw_matching_thresholds_move_the_counts():
    strict = draw_matching(pos_iou=0.7, neg_iou=0.4, low_quality=False)
    loose = draw_matching(pos_iou=0.5, neg_iou=0.4, low_quality=False)
    assert strict["positive"] < loose["positive"] and strict["ignored"] > loose["ignored"]
    crossed = draw_matching(pos_iou=0.3, neg_iou=0.6)  # neg_iou is lowered to pos_iou: no ignored band
    assert crossed["ignored"] == 0


def test_matching_explorer_redraws_on_new_thresholds():
    w = matching_explorer()
    controls = {c.description: c for c in w.children if hasattr(c, "description")}
    before = dict(w.result)
    controls["positive ≥"].value = 0.7
    assert w.result["positive"] < before["positive"]
    controls["image"].value = 3  # no objects
    assert w.result["positive"] == 0 and w.result["negative"] == 3069
