"""Lesson 01 (boxes and IoU): its self-checks have teeth, and its explorers compute the right numbers."""
import math

import pytest

from retinanet_lite.widgets import (IOU_REFERENCE, deltas_explorer, draw_box_deltas, draw_iou,
                                    iou_explorer)

LESSON = "01_boxes_and_iou.ipynb"

# Forgets to subtract the intersection from the union.
UNION_TOO_BIG = '''
def area(box):
    return (box[2] - box[0]) * (box[3] - box[1])

def iou_pair(a, b):
    left, top = max(a[0], b[0]), max(a[1], b[1])
    right, bottom = min(a[2], b[2]), min(a[3], b[3])
    intersection = max(0.0, right - left) * max(0.0, bottom - top)
    return intersection / (area(a) + area(b))
'''

# No clamp: two boxes apart in both x and y get a positive "intersection".
NO_CLAMP = '''
def box_iou(a, b):
    top_left = torch.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    size = bottom_right - top_left
    intersection = size[..., 0] * size[..., 1]
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return intersection / (area_a[:, None] + area_b[None, :] - intersection)
'''

# Width and height as plain ratios instead of logarithms.
NO_LOG = '''
def encode(anchors, boxes, weights=(1.0, 1.0, 1.0, 1.0)):
    wx, wy, ww, wh = weights
    xa, ya, wa, ha = xyxy_to_cxcywh(anchors).unbind(-1)
    x, y, w, h = xyxy_to_cxcywh(boxes).unbind(-1)
    return torch.stack([wx * (x - xa) / wa, wy * (y - ya) / ha, ww * (w / wa - 1), wh * (h / ha - 1)], dim=-1)

def decode(anchors, deltas, weights=(1.0, 1.0, 1.0, 1.0)):
    wx, wy, ww, wh = weights
    xa, ya, wa, ha = xyxy_to_cxcywh(anchors).unbind(-1)
    tx, ty, tw, th = deltas.unbind(-1)
    return cxcywh_to_xyxy(torch.stack([xa + tx / wx * wa, ya + ty / wy * ha, wa * (1 + tw / ww),
                                       ha * (1 + th / wh)], dim=-1))
'''


def test_iou_check_catches_a_union_without_the_intersection(check_rejects):
    check_rejects(LESSON, "impl-iou", UNION_TOO_BIG, "check-iou")


def test_box_iou_check_catches_a_missing_clamp(check_rejects):
    check_rejects(LESSON, "impl-box-iou", NO_CLAMP, "check-box-iou")


def test_encode_check_catches_targets_without_log(check_rejects):
    check_rejects(LESSON, "impl-encode", NO_LOG, "check-encode")


def test_draw_iou_known_values():
    x1, y1, x2, y2 = IOU_REFERENCE  # 50 × 40, centre (65, 60)
    same = draw_iou(cx=(x1 + x2) / 2, cy=(y1 + y2) / 2, width=x2 - x1, height=y2 - y1)
    assert same == pytest.approx({"iou": 1.0, "intersection": 2000.0, "union": 2000.0})
    shifted = draw_iou(cx=90, cy=60, width=50, height=40)  # 25 px to the right: 1000 / 3000
    assert shifted == pytest.approx({"iou": 1 / 3, "intersection": 1000.0, "union": 3000.0})
    apart = draw_iou(cx=120, cy=110, width=10, height=10)
    assert apart["iou"] == 0 and apart["intersection"] == 0 and apart["union"] == pytest.approx(2100.0)


def test_draw_iou_falls_as_the_box_moves_away():
    ious = [draw_iou(cx=cx, cy=60, width=50, height=40)["iou"] for cx in (65, 75, 85, 95, 105, 115)]
    assert ious == sorted(ious, reverse=True) and ious[0] == pytest.approx(1.0) and ious[-1] == 0


def test_draw_box_deltas_decodes_relative_to_the_anchor():
    anchor = (44.0, 48.0, 84.0, 80.0)  # 40 × 32, centre (64, 64)
    still = draw_box_deltas(dx=0, dy=0, dw=0, dh=0, anchor=anchor)
    assert still["box"] == pytest.approx(list(anchor)) and still["iou"] == pytest.approx(1.0)
    moved = draw_box_deltas(dx=0.25, dy=0, dw=math.log(2), dh=0, anchor=anchor)
    assert moved["box"] == pytest.approx([34.0, 48.0, 114.0, 80.0], abs=1e-4)  # centre +10 px, width 80
    weighted = draw_box_deltas(dx=1.0, dy=0, dw=0, dh=0, weights=(10.0, 10.0, 5.0, 5.0), anchor=anchor)
    assert weighted["box"] == pytest.approx([48.0, 48.0, 88.0, 80.0], abs=1e-4)  # 1/10 of the width: +4 px


def test_iou_explorer_updates_when_a_slider_moves():
    explorer = iou_explorer()
    assert [c.description for c in explorer.children[:4]] == ["centre x", "centre y", "width", "height"]
    before = explorer.result["iou"]
    explorer.children[0].value = 20  # centre x far left: no overlap
    assert explorer.result["iou"] == 0 != before
    explorer.children[0].value = 65
    explorer.children[1].value = 60
    explorer.children[2].value = 50
    explorer.children[3].value = 40
    assert explorer.result["iou"] == pytest.approx(1.0)


def test_deltas_explorer_updates_when_a_control_changes():
    explorer = deltas_explorer()
    first = explorer.result["box"]
    explorer.children[2].value = 0.0  # dw
    assert explorer.result["box"] != first
    unweighted = explorer.result["box"]
    explorer.children[4].value = explorer.children[4].options[1][1]  # weights (10, 10, 5, 5)
    assert explorer.result["box"] != unweighted
