"""Lesson 01's exercise checks name the usual mistakes, pass other correct answers, and refuse the package's."""
import math

import torch
import torchvision

from retinanet_lite import boxes as B
from workbook_checks import failed_with, passes



# --- box_formats ------------------------------------------------------------------------------------------

def to_xywh(b):
    return torch.cat([b[:, :2], b[:, 2:] - b[:, :2]], dim=1)


def to_cxcywh(b):
    return torch.cat([(b[:, :2] + b[:, 2:]) / 2, b[:, 2:] - b[:, :2]], dim=1)


def to_xyxy(b):
    return torch.cat([b[:, :2] - b[:, 2:] / 2, b[:, :2] + b[:, 2:] / 2], dim=1)


def test_box_formats():
    passes("box_formats", (to_xywh, to_cxcywh, to_xyxy))
    failed_with("box_formats", (lambda b: torch.cat([b[:, :2], b[:, 2:] - b[:, :2] + 1], 1), to_cxcywh, to_xyxy), "+1")
    failed_with("box_formats", (to_xywh, lambda b: torch.cat([(b[:, 2:] - b[:, :2]) / 2, b[:, 2:] - b[:, :2]], 1),
                                to_xyxy), "half the width")
    failed_with("box_formats", (to_xywh, to_cxcywh, lambda b: torch.cat([b[:, :2] - b[:, 2:], b[:, :2] + b[:, 2:]], 1)),
                "whole width")
    failed_with("box_formats", (B.xyxy_to_xywh, B.xyxy_to_cxcywh, B.cxcywh_to_xyxy), "ready-made")
    failed_with("box_formats", (lambda b: torchvision.ops.box_convert(b, "xyxy", "xywh"), to_cxcywh, to_xyxy),
                "ready-made")


# --- iou_pair and box_iou -----------------------------------------------------------------------------------

def iou_without(clamp=True, subtract=True):
    def iou(a, b):
        w, h = min(a[2], b[2]) - max(a[0], b[0]), min(a[3], b[3]) - max(a[1], b[1])
        inter = max(0.0, w) * max(0.0, h) if clamp else w * h
        area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1])
        return inter / (area - inter if subtract else area)
    return iou


def test_iou_pair():
    passes("iou_pair", iou_without())
    failed_with("iou_pair", iou_without(clamp=False), "not clamped at 0")
    failed_with("iou_pair", iou_without(subtract=False), "counts the shared area twice")
    failed_with("iou_pair", lambda a, b: float(B.box_iou(torch.tensor([a]), torch.tensor([b]))), "ready-made")


def other_box_iou(a, b):
    """A correct box_iou written differently from the lesson's (via areas and expand)."""
    n, m = len(a), len(b)
    ax1, ay1, ax2, ay2 = (v.unsqueeze(1).expand(n, m) for v in a.unbind(1))
    bx1, by1, bx2, by2 = (v.unsqueeze(0).expand(n, m) for v in b.unbind(1))
    inter = (torch.min(ax2, bx2) - torch.max(ax1, bx1)).clamp(min=0) * (torch.min(ay2, by2) - torch.max(ay1, by1)).clamp(min=0)
    return inter / ((ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter)


def test_box_iou():
    passes("box_iou", other_box_iou)
    failed_with("box_iou", lambda a, b: other_box_iou(b, a), "returns [5, 7]")
    failed_with("box_iou", lambda a, b: other_box_iou(a, b).diagonal() if len(a) == len(b) else other_box_iou(a[:len(b)], b).diagonal(),
                "one value per pair")

    def no_clamp(a, b):
        size = torch.minimum(a[:, None, 2:], b[None, :, 2:]) - torch.maximum(a[:, None, :2], b[None, :, :2])
        inter = size[..., 0] * size[..., 1]
        return inter / (B.box_area(a)[:, None] + B.box_area(b)[None] - inter)
    failed_with("box_iou", no_clamp, "not clamped at 0")
    failed_with("box_iou", B.box_iou, "ready-made")
    failed_with("box_iou", lambda a, b: torchvision.ops.box_iou(a, b), "ready-made")


def test_a_patched_package_earns_nothing(monkeypatch):
    """Replacing the package's function (so that a comparison with it would agree) is caught."""
    monkeypatch.setattr(B, "box_iou", other_box_iou)
    failed_with("box_iou", other_box_iou, "was replaced")


# --- encode and decode --------------------------------------------------------------------------------------

def encode_with(log=True, weights_multiply=True):
    def encode(anchors, boxes, weights=(1.0, 1.0, 1.0, 1.0)):
        w = torch.tensor(weights) if weights_multiply else 1 / torch.tensor(weights)
        sa, sb = anchors[:, 2:] - anchors[:, :2], boxes[:, 2:] - boxes[:, :2]
        shift = ((boxes[:, :2] + boxes[:, 2:]) - (anchors[:, :2] + anchors[:, 2:])) / 2 / sa
        size = torch.log(sb / sa) if log else sb / sa - 1
        return torch.cat([shift, size], dim=1) * w
    return encode


def test_encode():
    passes("encode", encode_with())
    failed_with("encode", encode_with(log=False), "log is missing")
    failed_with("encode", encode_with(weights_multiply=False), "weights divide")
    failed_with("encode", lambda a, b, w=(1.0, 1.0, 1.0, 1.0): encode_with()(a, b), "weights are ignored")
    failed_with("encode", B.encode_boxes, "ready-made")


def test_decode():
    def decode(anchors, deltas, weights=(1.0, 1.0, 1.0, 1.0), exp=True):
        d = deltas / torch.tensor(weights)
        sa = anchors[:, 2:] - anchors[:, :2]
        centre = (anchors[:, :2] + anchors[:, 2:]) / 2 + d[:, :2] * sa
        size = sa * (torch.exp(d[:, 2:]) if exp else d[:, 2:])
        return torch.cat([centre - size / 2, centre + size / 2], dim=1)
    passes("decode", decode)
    failed_with("decode", lambda a, d, w=(1.0, 1.0, 1.0, 1.0): decode(a, d, w, exp=False), "exp is missing")
    failed_with("decode", lambda a, d, w=(1.0, 1.0, 1.0, 1.0): decode(a, d * torch.tensor(w) ** 2, w), "weights multiply")
    failed_with("decode", B.decode_boxes, "ready-made")
    assert math.isfinite(1.0)


# --- predict_iou_shift: the stored answer is what the IoU explorer shows ---------------------------------------

def test_predict_iou_shift_is_what_the_explorer_shows():
    from retinanet_lite.widgets.boxes import IOU_REFERENCE, draw_iou
    from workbook_checks import prediction_is
    assert IOU_REFERENCE == (40.0, 40.0, 90.0, 80.0)  # the 50 × 40 px box A of the question
    assert draw_iou(65, 60, 50, 40)["iou"] == 1.0  # B on A
    shifted = draw_iou(75, 60, 50, 40)  # slid 10 px right
    assert (shifted["intersection"], shifted["union"]) == (1600.0, 2400.0)
    prediction_is("01_boxes_and_iou.ipynb", "predict_iou_shift", round(shifted["iou"], 2))
