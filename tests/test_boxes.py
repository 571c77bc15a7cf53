"""Boxes: conversions, IoU and encoding, checked against torchvision and by properties."""
import math

import pytest
import torch
import torchvision
from hypothesis import given, settings
from hypothesis import strategies as st
from torchvision.models.detection._utils import BoxCoder

from retinanet_lite import boxes as B


def random_boxes(n: int, seed: int, size: float = 100.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * size
    wh = torch.rand(n, 2, generator=g) * size / 2 + 0.5
    return torch.cat([xy, xy + wh], dim=1)


box_strategy = st.tuples(
    st.floats(0, 500), st.floats(0, 500), st.floats(0.5, 300), st.floats(0.5, 300)
).map(lambda t: [t[0], t[1], t[0] + t[2], t[1] + t[3]])


@pytest.mark.parametrize("seed", range(5))
def test_box_iou_matches_torchvision(seed):
    a, b = random_boxes(30, seed), random_boxes(20, seed + 100)
    torch.testing.assert_close(B.box_iou(a, b), torchvision.ops.box_iou(a, b))


def test_box_iou_analytic():
    a = torch.tensor([[0.0, 0, 10, 10]])
    b = torch.tensor([[5.0, 0, 15, 10], [20, 20, 30, 30], [0, 0, 10, 10], [2, 2, 4, 4]])
    torch.testing.assert_close(B.box_iou(a, b), torch.tensor([[50 / 150, 0.0, 1.0, 4 / 100]]))


def test_box_iou_zero_area_is_zero_not_nan():
    point = torch.tensor([[3.0, 3, 3, 3]])
    assert B.box_iou(point, point).item() == 0.0


@settings(max_examples=200, deadline=None)
@given(st.lists(box_strategy, min_size=1, max_size=6), st.lists(box_strategy, min_size=1, max_size=6))
def test_iou_symmetric_and_bounded(a, b):
    a, b = torch.tensor(a), torch.tensor(b)
    iou = B.box_iou(a, b)
    torch.testing.assert_close(iou, B.box_iou(b, a).T)
    assert (iou >= 0).all() and (iou <= 1 + 1e-6).all()
    torch.testing.assert_close(B.box_iou(a, a).diagonal(), torch.ones(len(a)))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(box_strategy, box_strategy), min_size=1, max_size=8),
       st.sampled_from([(1.0, 1.0, 1.0, 1.0), (10.0, 10.0, 5.0, 5.0)]))
def test_decode_inverts_encode(pairs, weights):
    anchors = torch.tensor([p[0] for p in pairs], dtype=torch.float64)
    gt = torch.tensor([p[1] for p in pairs], dtype=torch.float64)
    deltas = B.encode_boxes(anchors, gt, weights)
    if (deltas[:, 2:].abs() / torch.tensor(weights[2:], dtype=torch.float64) < B.BBOX_EXP_CLAMP).all():
        torch.testing.assert_close(B.decode_boxes(anchors, deltas, weights), gt)


@pytest.mark.parametrize("weights", [(1.0, 1.0, 1.0, 1.0), (10.0, 10.0, 5.0, 5.0), (2.0, 3.0, 0.5, 1.5)])
def test_encode_decode_match_torchvision_boxcoder(weights):
    anchors, gt = random_boxes(50, 1), random_boxes(50, 2)
    coder = BoxCoder(weights)
    ours = B.encode_boxes(anchors, gt, weights)
    torch.testing.assert_close(ours, coder.encode_single(gt, anchors), rtol=1e-4, atol=1e-4)
    # torchvision decodes with a (x2 − x1) width and no pixel offset, as we do.
    torch.testing.assert_close(B.decode_boxes(anchors, ours, weights), coder.decode_single(ours, anchors),
                               rtol=1e-4, atol=1e-3)


def test_decode_clamps_huge_deltas():
    anchors = torch.tensor([[0.0, 0, 10, 10]])
    out = B.decode_boxes(anchors, torch.tensor([[0.0, 0, 1e4, 1e4]]))
    assert torch.isfinite(out).all()
    assert out[0, 2] - out[0, 0] == pytest.approx(10 * math.exp(B.BBOX_EXP_CLAMP), rel=1e-4)


def test_conversions_round_trip():
    boxes = random_boxes(10, 3)
    torch.testing.assert_close(B.cxcywh_to_xyxy(B.xyxy_to_cxcywh(boxes)), boxes)
    torch.testing.assert_close(B.xywh_to_xyxy(B.xyxy_to_xywh(boxes)), boxes)
    torch.testing.assert_close(B.xyxy_to_cxcywh(torch.tensor([[0.0, 0, 4, 2]])), torch.tensor([[2.0, 1, 4, 2]]))
    torch.testing.assert_close(
        torchvision.ops.box_convert(boxes, "xyxy", "cxcywh"), B.xyxy_to_cxcywh(boxes))


def test_generalized_iou_matches_torchvision():
    a, b = random_boxes(40, 4), random_boxes(40, 5)
    expected = torchvision.ops.generalized_box_iou(a, b).diagonal()
    torch.testing.assert_close(B.generalized_box_iou(a, b), expected, rtol=1e-4, atol=1e-5)


def test_clip_boxes():
    clipped = B.clip_boxes(torch.tensor([[-5.0, -1, 50, 20]]), (10, 30))
    torch.testing.assert_close(clipped, torch.tensor([[0.0, 0, 30, 10]]))


@pytest.mark.parametrize("seed", range(3))
def test_class_wise_nms_matches_torchvision_batched_nms(seed):
    g = torch.Generator().manual_seed(seed)
    boxes = random_boxes(300, seed, size=60) - 10  # some negative coordinates too
    scores = torch.rand(300, generator=g)
    labels = torch.randint(0, 4, (300,), generator=g)
    for iou in (0.3, 0.5, 0.7):
        ours = B.class_wise_nms(boxes, scores, labels, iou)
        torch.testing.assert_close(ours, torchvision.ops.batched_nms(boxes, scores, labels, iou))


def test_class_wise_nms_keeps_overlapping_boxes_of_different_classes():
    boxes = torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 10], [1, 1, 10, 10]])
    kept = B.class_wise_nms(boxes, torch.tensor([0.9, 0.8, 0.7]), torch.tensor([0, 1, 0]), 0.5)
    assert kept.tolist() == [0, 1]
    assert B.class_wise_nms(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.long), 0.5).numel() == 0


@pytest.mark.parametrize("bad, message", [
    (torch.zeros(3, 5), r"shape \[N, 4\]"),
    (torch.zeros(4), r"shape \[N, 4\]"),
    (torch.tensor([[10.0, 0, 5, 5]]), "x2 < x1"),
    (torch.tensor([[0.0, 10, 5, 5]]), "y2 < y1"),
    (torch.tensor([[0, 0, 5, 5]]), "float"),
    (torch.tensor([[0.0, 0, float("nan"), 5]]), "NaN"),
    ([[0, 0, 1, 1]], "torch.Tensor"),
])
def test_check_boxes_names_the_problem(bad, message):
    with pytest.raises(ValueError, match=message):
        B.check_boxes(bad)
