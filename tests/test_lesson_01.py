"""Lesson 01 (boxes and IoU): its explorers compute the right numbers (its exercises' checks: test_workbook_lesson01.py)."""
import math

import pytest

from retinanet_lite.widgets import (IOU_REFERENCE, deltas_explorer, draw_box_deltas, draw_iou,
                                    iou_explorer)

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
