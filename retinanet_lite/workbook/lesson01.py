"""Lesson 01's exercises: box formats, the IoU of two boxes, box_iou, encode and decode."""
from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torchvision

from .. import boxes as B
from .answers import prediction
from .core import Mistake, declare, exercise
from .diagnose import as_tensor, close, diagnose, expect_shape


def random_boxes(n: int, seed: int, canvas: float = 128.0) -> torch.Tensor:
    """``n`` random xyxy boxes [n, 4] with 2–64 px sides inside a ``canvas``-pixel square."""
    g = torch.Generator().manual_seed(seed)
    wh = 2 + torch.rand(n, 2, generator=g) * 62
    top_left = torch.rand(n, 2, generator=g) * (canvas - wh)
    return torch.cat([top_left, top_left + wh], dim=1)


FORMATS = (B.xyxy_to_xywh, B.xyxy_to_cxcywh, B.cxcywh_to_xyxy)


@exercise("box_formats", "01", fallback=FORMATS, forbidden=(torchvision.ops.box_convert, B.xywh_to_xyxy))
def check_box_formats(functions: tuple[Callable, Callable, Callable]) -> None:
    """``(xyxy_to_xywh, xyxy_to_cxcywh, cxcywh_to_xyxy)``, each [N, 4] → [N, 4]."""
    to_xywh, to_cxcywh, to_xyxy = functions
    boxes = random_boxes(50, seed=0)
    x1, y1, x2, y2 = boxes.unbind(-1)
    got = as_tensor(to_xywh(boxes), "xyxy_to_xywh")
    expect_shape(got, (50, 4), "xyxy_to_xywh(boxes [50, 4])")
    diagnose(got, B.xyxy_to_xywh(boxes), {
        "xyxy_to_xywh returns (x1, y1, x2, y2) unchanged: w = x2 − x1 and h = y2 − y1": lambda: boxes,
        "xyxy_to_xywh adds 1 to the width and height: coordinates lie on pixel edges, so w = x2 − x1 "
        "(no +1)": lambda: torch.stack([x1, y1, x2 - x1 + 1, y2 - y1 + 1], -1),
        "xyxy_to_xywh returns the centre instead of the top-left corner (that is cxcywh)":
            lambda: B.xyxy_to_cxcywh(boxes),
    }, "xyxy_to_xywh(boxes) disagrees with torchvision.ops.box_convert(boxes, 'xyxy', 'xywh')")
    got = as_tensor(to_cxcywh(boxes), "xyxy_to_cxcywh")
    expect_shape(got, (50, 4), "xyxy_to_cxcywh(boxes [50, 4])")
    diagnose(got, B.xyxy_to_cxcywh(boxes), {
        "xyxy_to_cxcywh returns the top-left corner, not the centre: cx = (x1 + x2) / 2":
            lambda: B.xyxy_to_xywh(boxes),
        "xyxy_to_cxcywh's centre is (x2 − x1) / 2 (half the width), not (x1 + x2) / 2":
            lambda: torch.stack([(x2 - x1) / 2, (y2 - y1) / 2, x2 - x1, y2 - y1], -1),
    }, "xyxy_to_cxcywh(boxes) disagrees with torchvision.ops.box_convert(boxes, 'xyxy', 'cxcywh')")
    centres = B.xyxy_to_cxcywh(boxes)
    cx, cy, w, h = centres.unbind(-1)
    got = as_tensor(to_xyxy(centres), "cxcywh_to_xyxy")
    expect_shape(got, (50, 4), "cxcywh_to_xyxy(boxes [50, 4])")
    diagnose(got, boxes, {
        "cxcywh_to_xyxy moves the corners by the whole width and height: x1 = cx − w / 2, not cx − w":
            lambda: torch.stack([cx - w, cy - h, cx + w, cy + h], -1),
        "cxcywh_to_xyxy returns (cx, cy, cx + w, cy + h): the centre is not the top-left corner":
            lambda: torch.stack([cx, cy, cx + w, cy + h], -1),
    }, "cxcywh_to_xyxy(xyxy_to_cxcywh(boxes)) does not give the boxes back", atol=1e-4)


def reference_iou_pair(a: list[float], b: list[float]) -> float:
    """The package's IoU of two xyxy boxes given as lists of 4 floats."""
    return float(B.box_iou(torch.tensor([a], dtype=torch.float64), torch.tensor([b], dtype=torch.float64)))


#: Pairs whose IoU is worked out by hand in the lesson: (what, a, b, IoU).
HAND_WORKED = [
    ("identical boxes", [0, 0, 10, 10], [0, 0, 10, 10], 1.0),
    ("a square and the same square shifted by half its width", [0, 0, 10, 10], [5, 0, 15, 10], 1 / 3),
    ("a 10 × 10 square inside a 20 × 20 one", [0, 0, 20, 20], [5, 5, 15, 15], 1 / 4),
    ("two boxes whose corners overlap", [0, 0, 10, 10], [5, 5, 15, 15], 25 / 175),
    ("two boxes that only touch along an edge", [0, 0, 10, 10], [10, 0, 20, 10], 0.0),
]
#: Two boxes far apart: without the clamp, both intersection sides are negative and their product positive.
DISJOINT = ([0.0, 0.0, 10.0, 10.0], [20.0, 30.0, 40.0, 50.0])


def _check_iou_values(iou: Callable[[list[float], list[float]], float], name: str) -> None:
    """Shared by iou_pair and box_iou: the hand-worked pairs, the disjoint pair, symmetry."""
    far = iou(*DISJOINT)
    if far > 1e-9:
        raise Mistake(f"{name}: two boxes 10 px apart get IoU {far:.3f}, not 0 — the intersection is not clamped "
                      "at 0 (clamp its width and height with max(0, …) before multiplying)")
    for what, a, b, expected in HAND_WORKED:
        got = iou(a, b)
        if abs(got - expected) < 1e-6:
            continue
        inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        area_a, area_b = (a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1])
        if expected > 0 and abs(got - inter / (area_a + area_b)) < 1e-6:
            raise Mistake(f"{name}: for {what} the union counts the shared area twice — union = |A| + |B| − |A ∩ B|")
        if expected > 0 and abs(got - inter / max(area_a, area_b)) < 1e-6:
            raise Mistake(f"{name}: for {what} you divide by the larger area, not by the union")
        plus_one = [(v[0], v[1], v[2] + 1, v[3] + 1) for v in (a, b)]
        if abs(got - reference_iou_pair(*plus_one)) < 1e-6:
            raise Mistake(f"{name}: for {what} the widths get a +1: coordinates lie on pixel edges, w = x2 − x1")
        raise Mistake(f"{name}: for {what} ({a} and {b}) the IoU is {expected:.4f}, yours gives {got:.4f}")
    for what, a, b, _ in HAND_WORKED:
        if abs(iou(a, b) - iou(b, a)) > 1e-6:
            raise Mistake(f"{name}: IoU must be symmetric, but swapping the boxes of {what} changes it")


@exercise("iou_pair", "01", fallback=reference_iou_pair, forbidden=(B.box_iou, torchvision.ops.box_iou))
def check_iou_pair(iou_pair: Callable[[list[float], list[float]], float]) -> None:
    """``iou_pair(a, b)`` for two xyxy boxes given as lists of 4 floats → a float."""
    _check_iou_values(lambda a, b: float(iou_pair(a, b)), "iou_pair")
    for a, b in zip(random_boxes(30, seed=1).tolist(), random_boxes(30, seed=2).tolist()):
        got, expected = float(iou_pair(a, b)), reference_iou_pair(a, b)
        if abs(got - expected) > 1e-5:
            raise Mistake(f"iou_pair({[round(v, 2) for v in a]}, {[round(v, 2) for v in b]}) = {got:.4f}, "
                          f"expected {expected:.4f}")


@exercise("box_iou", "01", fallback=B.box_iou, forbidden=(torchvision.ops.box_iou, B.intersection_union))
def check_box_iou(box_iou: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
    """``box_iou(a [N, 4], b [M, 4])`` (xyxy) → [N, M]."""
    a, b = random_boxes(7, seed=3), random_boxes(5, seed=4)
    got = as_tensor(box_iou(a, b), "box_iou")
    if tuple(got.shape) == (5, 7):
        raise Mistake("box_iou(a [7, 4], b [5, 4]) returns [5, 7]: row i must be a's box i — the result is [N, M]")
    if got.ndim == 1 or tuple(got.shape) == (5,):
        raise Mistake("box_iou returns one value per pair (a[i] with b[i]); it must compare every box of a with "
                      "every box of b: index a with [:, None] and b with [None, :]")
    expect_shape(got, (7, 5), "box_iou(a [7, 4], b [5, 4])")
    _check_iou_values(lambda x, y: float(as_tensor(box_iou(torch.tensor([x], dtype=torch.float32),
                                                            torch.tensor([y], dtype=torch.float32)), "box_iou")[0, 0]),
                      "box_iou")
    a, b = random_boxes(40, seed=3), random_boxes(30, seed=4)
    got = as_tensor(box_iou(a, b), "box_iou")
    if not close(got, torchvision.ops.box_iou(a, b), atol=1e-5):
        raise Mistake("box_iou(a, b) disagrees with torchvision.ops.box_iou on random boxes")
    if not close(as_tensor(box_iou(a[:0], b), "box_iou").reshape(-1), torch.zeros(0)):
        raise Mistake("box_iou of an empty set of boxes [0, 4] must be an empty [0, M] matrix")


prediction(
    "predict_iou_shift", "01", "189ab0846991", decimals=2,
    explanation="Sliding along x keeps the whole height h = 40 in the overlap: intersection (50 − 10) · 40 = 1600, "
                "union (50 + 10) · 40 = 2400, so IoU = (w − d) / (w + d) = 40 / 60 ≈ 0.67. The height cancels: "
                "section 4's (s − d) / (s + d) holds for any rectangle slid along x, with its width as s.",
    hint="work out the intersection and the union in square pixels (A and B are both 50 × 40 px), then divide; "
         "give the IoU rounded to two decimals, e.g. 0.42")


#: Encode's hand-worked cases: an anchor centred at (60, 50), 40 × 20 wide, and boxes around it.
ANCHOR = [40.0, 40.0, 80.0, 60.0]
ENCODE_CASES = [
    ([40.0, 40.0, 80.0, 60.0], [0, 0, 0, 0], "the anchor itself"),
    ([50.0, 40.0, 90.0, 60.0], [0.25, 0, 0, 0], "a box shifted right by a quarter of the anchor's width"),
    ([20.0, 40.0, 100.0, 60.0], [0, 0, math.log(2), 0], "a box twice as wide as the anchor"),
    ([40.0, 45.0, 80.0, 55.0], [0, 0, 0, -math.log(2), ], "a box half as tall as the anchor"),
]
PAPER_WEIGHTS, FASTER_RCNN_WEIGHTS = (1.0, 1.0, 1.0, 1.0), (10.0, 10.0, 5.0, 5.0)


def _encode_variants(anchors: torch.Tensor, boxes: torch.Tensor, weights: tuple[float, ...]) -> dict:
    """The usual wrong encodings, each as message → function."""
    wx, wy, ww, wh = weights
    xa, ya, wa, ha = B.xyxy_to_cxcywh(anchors).unbind(-1)
    x, y, w, h = B.xyxy_to_cxcywh(boxes).unbind(-1)
    right = B.encode_boxes(anchors, boxes, weights)
    return {
        "the log is missing in the width/height deltas: t_w = log(w / w_a), not w / w_a":
            lambda: torch.stack([right[:, 0], right[:, 1], ww * (w / wa), wh * (h / ha)], -1),
        "the log is missing in the width/height deltas: t_w = log(w / w_a), not w / w_a − 1":
            lambda: torch.stack([right[:, 0], right[:, 1], ww * (w / wa - 1), wh * (h / ha - 1)], -1),
        "the centre shift is not divided by the anchor's size: t_x = (x − x_a) / w_a":
            lambda: torch.stack([wx * (x - xa), wy * (y - ya), right[:, 2], right[:, 3]], -1),
        "t_x is divided by the anchor's height and t_y by its width: t_x uses w_a, t_y uses h_a":
            lambda: torch.stack([wx * (x - xa) / ha, wy * (y - ya) / wa, right[:, 2], right[:, 3]], -1),
        "the deltas are computed from the corners (x1, y1) instead of the centres (cx, cy)":
            lambda: torch.stack([wx * (boxes[:, 0] - anchors[:, 0]) / wa, wy * (boxes[:, 1] - anchors[:, 1]) / ha,
                                 right[:, 2], right[:, 3]], -1),
        "the weights divide the deltas: encode multiplies by the weights (t_x = w_x (x − x_a) / w_a), decode divides":
            lambda: B.encode_boxes(anchors, boxes, tuple(1 / v for v in weights)),
        "the weights are ignored: encode multiplies each delta by its weight":
            lambda: B.encode_boxes(anchors, boxes, PAPER_WEIGHTS),
        "the weights are applied in the wrong order: (w_x, w_y, w_w, w_h) go with (t_x, t_y, t_w, t_h)":
            lambda: B.encode_boxes(anchors, boxes, (ww, wh, wx, wy)),
    }


@exercise("encode", "01", fallback=B.encode_boxes)
def check_encode(encode: Callable[..., torch.Tensor]) -> None:
    """``encode(anchors [N, 4], boxes [N, 4], weights)`` (xyxy, paired) → deltas [N, 4]."""
    anchor = torch.tensor([ANCHOR])
    for box, expected, what in ENCODE_CASES:
        box = torch.tensor([box])
        got = as_tensor(encode(anchor, box), "encode")
        expect_shape(got, (1, 4), "encode(anchor [1, 4], box [1, 4])")
        diagnose(got[0], torch.tensor(expected, dtype=torch.float64), {
            k: (lambda f=f: f()[0]) for k, f in _encode_variants(anchor, box, PAPER_WEIGHTS).items()},
            f"{what}: expected the deltas {[round(v, 4) for v in expected]}, got {[round(v, 4) for v in got[0].tolist()]}")
    anchors, boxes = random_boxes(100, seed=5), random_boxes(100, seed=6)
    for weights in (PAPER_WEIGHTS, FASTER_RCNN_WEIGHTS):
        got = as_tensor(encode(anchors, boxes, weights), "encode")
        expect_shape(got, (100, 4), "encode(anchors [100, 4], boxes [100, 4], weights)")
        diagnose(got, B.encode_boxes(anchors, boxes, weights), _encode_variants(anchors, boxes, weights),
                 f"encode(anchors, boxes, {weights}) disagrees with the deltas worked out in the lesson", atol=1e-4)


@exercise("decode", "01", fallback=B.decode_boxes)
def check_decode(decode: Callable[..., torch.Tensor]) -> None:
    """``decode(anchors [N, 4], deltas [N, 4], weights)`` → boxes [N, 4] xyxy: the inverse of encode."""
    anchors, boxes = random_boxes(100, seed=5), random_boxes(100, seed=6)
    for weights in (PAPER_WEIGHTS, FASTER_RCNN_WEIGHTS):
        deltas = B.encode_boxes(anchors, boxes, weights)
        wx, wy, ww, wh = weights
        tx, ty, tw, th = deltas.unbind(-1)
        xa, ya, wa, ha = B.xyxy_to_cxcywh(anchors).unbind(-1)
        got = as_tensor(decode(anchors, deltas, weights), "decode")
        expect_shape(got, (100, 4), "decode(anchors [100, 4], deltas [100, 4], weights)")

        def from_centres(x, y, w, h):
            return B.cxcywh_to_xyxy(torch.stack([x, y, w, h], -1))

        diagnose(got, boxes, {
            "the exp is missing: w = w_a · exp(t_w / w_w), the inverse of the log in encode":
                lambda: from_centres(xa + tx / wx * wa, ya + ty / wy * ha, wa * tw / ww, ha * th / wh),
            "the weights multiply the deltas: decode divides them out (t_x / w_x), encode multiplies":
                lambda: from_centres(xa + tx * wx * wa, ya + ty * wy * ha, wa * torch.exp(tw * ww), ha * torch.exp(th * wh)),
            "the weights are ignored: decode divides each delta by its weight before using it":
                lambda: from_centres(xa + tx * wa, ya + ty * ha, wa * torch.exp(tw), ha * torch.exp(th)),
            "the shift is not scaled by the anchor's size: x = x_a + t_x · w_a":
                lambda: from_centres(xa + tx / wx, ya + ty / wy, wa * torch.exp(tw / ww), ha * torch.exp(th / wh)),
            "decode returns (cx, cy, w, h): convert the centre and size back to xyxy corners":
                lambda: B.xyxy_to_cxcywh(boxes),
        }, f"decode(anchors, encode(anchors, boxes, {weights}), {weights}) does not give the boxes back", atol=1e-3)


declare("01", "giou", "shift_for_iou")
