"""Test-time augmentation (retinanet_lite.tta): the eight views, their inverses, the fusion rule, and
that eight fused views make a detector that turns with the image."""
import pytest
import torch
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as TV

from retinanet_lite.boxes import box_iou
from retinanet_lite.config import RetinaNetConfig
from retinanet_lite.model import RetinaNet
from retinanet_lite.tta import (VIEWS, detect_in_views, fuse_views, merge_views, model_views, scale_image, unview_boxes,
                                view_boxes, view_candidates, view_image)

SIZE = (30, 50)  # (H, W): not square, so a quarter turn changes the size


def random_boxes(n: int = 6, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    corner = torch.rand(n, 2, generator=generator) * torch.tensor([40.0, 20.0])
    size = 1 + torch.rand(n, 2, generator=generator) * 9
    return torch.cat([corner, corner + size], 1)


@pytest.mark.parametrize("turns, flip", VIEWS)
def test_view_boxes_match_torchvision(turns, flip):
    boxes = random_boxes()
    expected = tv_tensors.BoundingBoxes(boxes, format="XYXY", canvas_size=SIZE)
    if flip:
        expected = TV.horizontal_flip(expected)
    expected = TV.rotate(expected, 90 * turns, expand=True)
    torch.testing.assert_close(view_boxes(boxes, SIZE, turns, flip), expected.as_subclass(torch.Tensor),
                               atol=1e-3, rtol=0)


@pytest.mark.parametrize("turns, flip", VIEWS)
def test_view_boxes_follow_the_pixels_of_view_image(turns, flip):
    image = torch.zeros(1, *SIZE)
    image[:, 4:11, 7:20] = 1  # the box (7, 4, 20, 11) painted in
    seen = view_image(image, turns, flip)[0].nonzero()
    painted = torch.tensor([[seen[:, 1].min(), seen[:, 0].min(), seen[:, 1].max() + 1, seen[:, 0].max() + 1]],
                           dtype=torch.float32)
    torch.testing.assert_close(view_boxes(torch.tensor([[7.0, 4.0, 20.0, 11.0]]), SIZE, turns, flip), painted)


@pytest.mark.parametrize("turns, flip", VIEWS)
def test_unview_undoes_view(turns, flip):
    boxes = random_boxes(seed=1)
    torch.testing.assert_close(unview_boxes(view_boxes(boxes, SIZE, turns, flip), SIZE, turns, flip), boxes)


def detections(boxes, scores, labels=None):
    boxes = torch.tensor(boxes, dtype=torch.float32)
    labels = torch.zeros(len(boxes), dtype=torch.long) if labels is None else torch.tensor(labels)
    return {"boxes": boxes.reshape(-1, 4), "scores": torch.tensor(scores, dtype=torch.float32), "labels": labels}


def test_fuse_views_worked_example():
    # View 0 (after its NMS) sees the crown at 0.8 and a lone guess far away; view 1 sees the crown shifted by
    # 2 px at 0.4. The fused crown is their mean weighted by squared scores, 0.64 and 0.16.
    view0 = detections([[0, 0, 10, 10], [50, 50, 60, 60]], [0.8, 0.6])
    view1 = detections([[2, 0, 12, 10]], [0.4])
    fused = fuse_views([view0, view1], nms_iou=0.5, max_detections=10)
    crown = (0.64 * torch.tensor([0, 0, 10, 10.]) + 0.16 * torch.tensor([2, 0, 12, 10.])) / 0.8
    torch.testing.assert_close(fused["boxes"], torch.stack([crown, torch.tensor([50, 50, 60, 60.])]))
    # the crown: best of view 0 (0.8) and of view 1 (0.4), averaged; the lone guess: (0.6 + 0) / 2
    torch.testing.assert_close(fused["scores"], torch.tensor([0.6, 0.3]))
    assert fused["labels"].tolist() == [0, 0]
    assert len(fuse_views([view0, view1], nms_iou=0.5, max_detections=1)["boxes"]) == 1


def test_merge_views_runs_nms_in_each_view_before_fusing():
    # View 0's candidates hold a near-duplicate (0.2, IoU 0.82 with the 0.8 box): its own NMS removes it, so
    # only the two views' best guesses vote, weighted 0.64 and 0.16: x1 = 0.4 (0.43 if the duplicate voted,
    # 0.67 if the weights were plain scores).
    model = tiny_model(nms_iou=0.5)
    view0 = detections([[0, 0, 10, 10], [1, 0, 11, 10]], [0.8, 0.2])
    view1 = detections([[2, 0, 12, 10]], [0.4])
    fused = merge_views(model, [view0, view1])
    torch.testing.assert_close(fused["boxes"], torch.tensor([[0.4, 0, 10.4, 10]]))
    torch.testing.assert_close(fused["scores"], torch.tensor([0.6]))


def test_fuse_views_keeps_classes_and_separate_objects_apart():
    view0 = detections([[0, 0, 10, 10], [0, 0, 10, 10], [6, 0, 16, 10]], [0.9, 0.7, 0.5], [0, 1, 0])
    fused = fuse_views([view0], nms_iou=0.5, max_detections=10)
    # IoU of the two class-0 boxes is 4/16 < 0.5: two objects; the class-1 box never joins a class-0 head
    assert sorted(fused["labels"].tolist()) == [0, 0, 1]
    torch.testing.assert_close(fused["boxes"], view0["boxes"])
    torch.testing.assert_close(fused["scores"], view0["scores"])


def test_a_zero_area_box_is_fused_with_itself_not_into_nan():
    # a candidate clipped to the image border can have no width: its IoU with itself is 0, not 1
    view0 = detections([[0, 0, 10, 10], [30, 5, 30, 15]], [0.9, 0.6])
    view1 = detections([[1, 0, 11, 10]], [0.5])
    fused = fuse_views([view0, view1], nms_iou=0.4, max_detections=10)
    assert torch.isfinite(fused["boxes"]).all(), fused
    torch.testing.assert_close(fused["boxes"][1], torch.tensor([30, 5, 30, 15.]))
    torch.testing.assert_close(fused["scores"], torch.tensor([0.7, 0.3]))


def test_fuse_views_of_nothing_is_empty():
    empty = detections([], [])
    fused = fuse_views([empty, empty], nms_iou=0.5, max_detections=10)
    assert fused["boxes"].shape == (0, 4) and len(fused["scores"]) == len(fused["labels"]) == 0


def tiny_model(**changes) -> RetinaNet:
    torch.manual_seed(0)
    config = RetinaNetConfig(num_classes=2, backbone="tiny", backbone_widths=(8, 8, 16, 16), fpn_channels=16,
                             head_convs=1, anchor_sizes=(8, 16, 32, 64, 128), score_thresh=0.0, max_detections=50,
                             **changes)
    return RetinaNet(config).eval()


def test_eight_views_make_a_detector_that_turns_with_the_image():
    # The eight views of a turned image are the eight views of the image, in another order: the fused
    # detections of the turned image are the turned detections of the image.
    model = tiny_model(tta_views=8)
    image = torch.rand(3, 40, 72, generator=torch.Generator().manual_seed(0))
    [plain] = model([image])
    [turned] = model([view_image(image, 1, False)])
    expected = view_boxes(plain["boxes"], tuple(image.shape[-2:]), 1, False)
    assert len(plain["boxes"]) == len(turned["boxes"]) == 50
    torch.testing.assert_close(turned["scores"], plain["scores"], atol=1e-5, rtol=0)
    assert box_iou(turned["boxes"], expected).diagonal().min() > 0.999


class BrightRectangle:
    """A stand-in detector: its one candidate is the box around the image's pixels brighter than 0.5."""

    def candidates(self, images):
        out = []
        for image in images:
            rows, cols = (image[0] > 0.5).nonzero(as_tuple=True)
            box = torch.stack([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]).float()
            out.append({"boxes": box[None], "scores": torch.ones(1), "labels": torch.zeros(1, dtype=torch.int64)})
        return out


@pytest.mark.parametrize("scale", [1.0, 1.5, 0.5])
@pytest.mark.parametrize("turns, flip", VIEWS)
def test_view_candidates_at_a_scale_map_boxes_back_to_the_image(turns, flip, scale):
    image = torch.zeros(3, 40, 60)
    image[:, 10:24, 6:30] = 1  # even corners: whole pixels at every scale tried
    [found] = view_candidates(BrightRectangle(), [image], turns, flip, scale)
    assert found["boxes"].tolist() == [[6, 10, 30, 24]]


def test_scale_image_sizes_and_the_views_a_config_asks_for():
    image = torch.rand(3, 40, 72)
    assert scale_image(image, 1.0) is image
    assert scale_image(image, 1.25).shape == (3, 50, 90) and scale_image(image, 0.3).shape == (3, 12, 21)
    config = RetinaNetConfig(tta_views=2, tta_scales=(1.0, 1.25))
    assert model_views(config) == [(0, False, 1.0), (0, True, 1.0), (0, False, 1.25), (0, True, 1.25)]
    assert model_views(RetinaNetConfig()) == [(0, False, 1.0)]
    for bad in ((), (1.0, 0.0), (-1.0,)):
        with pytest.raises(ValueError, match="tta_scales must be non-empty, each > 0"):
            RetinaNetConfig(tta_scales=bad)


def test_two_scales_fuse_into_a_detector_that_turns_with_the_image():
    model = tiny_model(tta_views=8, tta_scales=(1.0, 1.25))
    image = torch.rand(3, 40, 72, generator=torch.Generator().manual_seed(0))
    [plain] = model([image])
    [turned] = model([view_image(image, 1, False)])
    expected = view_boxes(plain["boxes"], tuple(image.shape[-2:]), 1, False)
    torch.testing.assert_close(turned["scores"], plain["scores"], atol=1e-5, rtol=0)
    assert box_iou(turned["boxes"], expected).diagonal().min() > 0.999


def test_one_view_is_plain_inference_and_bad_counts_are_refused():
    model = tiny_model()
    image = torch.rand(3, 40, 72, generator=torch.Generator().manual_seed(1))
    [plain] = [model.nms(found) for found in model.candidates([image])]
    [single] = detect_in_views(model, [image])
    for key in ("boxes", "scores", "labels"):
        torch.testing.assert_close(single[key], plain[key])
    with pytest.raises(ValueError, match="tta_views must be one of"):
        RetinaNetConfig(tta_views=6)
