"""Tiling: where tiles go, the rule for boxes cut by a tile edge, and tiled detection merging duplicates."""
import pytest
import torch

from retinanet_lite.classical import component_boxes, connected_components
from retinanet_lite.data import crop_image, crop_target, detect_tiled, split_windows, tile_windows, visible_fraction
from retinanet_lite.model import RetinaNet


def covered(windows, height, width):
    """How many windows cover each pixel: ``[H, W]``."""
    count = torch.zeros(height, width, dtype=torch.int64)
    for x1, y1, x2, y2 in windows:
        count[y1:y2, x1:x2] += 1
    return count


@pytest.mark.parametrize("height, width, size, overlap", [(1035, 936, 192, 96), (400, 400, 256, 128),
                                                           (100, 300, 128, 32), (192, 192, 192, 0)])
def test_tile_windows_cover_the_image_with_at_least_the_overlap(height, width, size, overlap):
    windows = tile_windows(height, width, size, overlap)
    assert covered(windows, height, width).min() >= 1
    for x1, y1, x2, y2 in windows:
        assert 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height
        assert (x2 - x1, y2 - y1) == (min(size, width), min(size, height))
    xs = sorted({w[0] for w in windows})
    assert all(b - a <= size - overlap for a, b in zip(xs, xs[1:])), "neighbours overlap by ≥ overlap"
    assert windows == sorted(windows, key=lambda w: (w[1], w[0])), "row-major order"


def test_split_windows_partition_the_image():
    windows = split_windows(1035, 313, 256)
    assert covered(windows, 1035, 313).eq(1).all(), "every pixel in exactly one tile"
    assert len(windows) == 5 * 2 and all(x2 - x1 <= 256 and y2 - y1 <= 256 for x1, y1, x2, y2 in windows)
    assert split_windows(100, 50, 256) == [(0, 0, 50, 100)]


def test_bad_tile_sizes_are_refused():
    with pytest.raises(ValueError, match="overlap < tile_size"):
        tile_windows(100, 100, 64, 64)
    with pytest.raises(ValueError, match="tile_size must be ≥ 1"):
        split_windows(100, 100, 0)


def test_a_cut_box_is_kept_clipped_if_at_least_min_visible_of_it_is_inside():
    target = {"boxes": torch.tensor([[10., 10, 30, 30],     # inside the window
                                     [90, 10, 110, 30],     # half inside (right edge cuts it)
                                     [95, 40, 115, 60],     # a quarter inside
                                     [200, 200, 220, 220]]),  # outside
              "labels": torch.tensor([0, 1, 2, 0])}
    window = (0, 0, 100, 100)
    assert visible_fraction(target["boxes"], window).tolist() == [1.0, 0.5, 0.25, 0.0]
    kept = crop_target(target, window)  # min_visible=0.5: the half box stays, the quarter goes
    assert kept["boxes"].tolist() == [[10, 10, 30, 30], [90, 10, 100, 30]] and kept["labels"].tolist() == [0, 1]
    assert crop_target(target, window, min_visible=0.2)["labels"].tolist() == [0, 1, 2]
    assert crop_target(target, window, min_visible=1.0)["labels"].tolist() == [0]
    shifted = crop_target(target, (50, 5, 150, 105))  # coordinates become the window's own
    assert shifted["boxes"].tolist() == [[40, 5, 60, 25], [45, 35, 65, 55]]
    with pytest.raises(ValueError, match="min_visible"):
        crop_target(target, window, min_visible=0)
    image = torch.arange(2 * 5 * 6.).view(2, 5, 6)
    assert torch.equal(crop_image(image, (1, 2, 4, 5)), image[:, 2:5, 1:4])


class PlantedModel(RetinaNet):
    """A RetinaNet whose ``candidates`` are the white rectangles it sees in each tile (score = visible area).

    Tiled detection must then give back exactly the planted rectangles: found in several tiles,
    cut by tile edges, yet reported once each.
    """

    def candidates(self, images, score_thresh=None):
        self.seen.append([tuple(image.shape) for image in images])
        out = []
        for image in images:
            boxes, areas = component_boxes(connected_components(image[0] > 0.5))
            out.append({"boxes": boxes, "scores": areas / 10_000, "labels": torch.zeros(len(boxes), dtype=torch.int64)})
        return out


def planted_model(**overrides):
    overrides = {"tta_views": 1, "tta_scales": (1.0,), **overrides}  # one view at one size unless a test asks for more
    model = PlantedModel(RetinaNet.from_preset("trees-cpu", **overrides).config)
    model.seen = []
    return model


@pytest.mark.parametrize("views", [1, 8])
def test_tiled_detection_finds_each_planted_object_once(views):
    # With eight views (test-time augmentation) each tile is also seen mirrored and turned; every view
    # finds the same rectangles, so the fused boxes are the planted ones up to rounding.
    image = torch.zeros(3, 300, 500)
    planted = torch.tensor([[10., 10, 40, 50],      # inside the first tile only
                            [110, 100, 150, 140],   # in the overlap of several tiles: found whole 2–4 times
                            [180, 20, 230, 60],     # cut by tile edges
                            [440, 240, 480, 290]])  # at the image's bottom-right corner
    for x1, y1, x2, y2 in planted.int().tolist():
        image[:, y1:y2, x1:x2] = 1
    model = planted_model(tta_views=views)
    found = detect_tiled(model, image, tile_size=128, overlap=64, batch_size=4)
    assert set(found) == {"boxes", "scores", "labels"}
    order = found["boxes"][:, 0].argsort()
    torch.testing.assert_close(found["boxes"][order], planted, atol=1e-4, rtol=0,
                               msg="each object once, whole, in image coordinates")
    torch.testing.assert_close(found["scores"][order], (planted[:, 2:] - planted[:, :2]).prod(1) / 10_000)
    windows = tile_windows(300, 500, 128, 64)
    assert sum(len(batch) for batch in model.seen) == views * len(windows) and max(len(b) for b in model.seen) == 4


def test_tiled_detection_at_two_scales_finds_each_planted_object_once():
    # With tta_scales each tile is also seen enlarged twice (a 128-px tile as 256 px); the rectangles' corners
    # land on whole pixels there, so every view at every scale finds them exactly, in image pixels.
    image = torch.zeros(3, 300, 500)
    planted = torch.tensor([[10., 10, 40, 50], [110, 100, 150, 140], [180, 20, 230, 60], [440, 240, 480, 290]])
    for x1, y1, x2, y2 in planted.int().tolist():
        image[:, y1:y2, x1:x2] = 1
    model = planted_model(tta_views=2, tta_scales=(1.0, 2.0))
    found = detect_tiled(model, image, tile_size=128, overlap=64, batch_size=4)
    order = found["boxes"][:, 0].argsort()
    torch.testing.assert_close(found["boxes"][order], planted, atol=1e-4, rtol=0)
    windows = tile_windows(300, 500, 128, 64)
    shapes = [shape for batch in model.seen for shape in batch]
    assert len(shapes) == 2 * 2 * len(windows) and (3, 256, 256) in shapes and (3, 128, 128) in shapes


def test_without_dropping_cut_boxes_the_slivers_survive_nms():
    # The object at x 100–160 is cut by tile edges: the tile of x 0–128 sees a sliver whose IoU with the
    # whole box (28 / 60 = 0.47) is below the NMS threshold, so NMS alone would report the object twice.
    image = torch.zeros(3, 128, 300)
    image[:, 20:60, 100:160] = 1
    found = detect_tiled(planted_model(nms_iou=0.5), image, tile_size=128, overlap=64, drop_cut=False)
    assert len(found["boxes"]) > 1
    found = detect_tiled(planted_model(nms_iou=0.5), image, tile_size=128, overlap=64)
    assert found["boxes"].tolist() == [[100, 20, 160, 60]]


def test_tiled_detection_keeps_at_most_max_detections_and_restores_the_mode():
    image = torch.zeros(3, 200, 200)
    for i in range(6):
        image[:, 20 + 30 * i: 40 + 30 * i, 20:40] = 1
    model = planted_model(max_detections=4)
    model.train()
    found = detect_tiled(model, image, tile_size=128, overlap=64)
    assert len(found["boxes"]) == 4 and model.training
    small = detect_tiled(planted_model(), torch.zeros(3, 50, 60), tile_size=128, overlap=64)
    assert small["boxes"].shape == (0, 4)
