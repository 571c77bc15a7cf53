"""Anchors: sizes, order and counts, and parity with torchvision's AnchorGenerator."""
import math

import pytest
import torch
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList

from retinanet_lite.anchors import (PAPER_RATIOS, PAPER_SCALES, PAPER_SIZES, PAPER_STRIDES, anchors_per_level,
                                    cell_anchors, config_anchors, grid_size, make_anchors)
from retinanet_lite.config import preset_config


def test_cell_anchors_keep_area_and_ratio():
    anchors = cell_anchors(32, PAPER_RATIOS, PAPER_SCALES)
    assert anchors.shape == (9, 4)
    w = anchors[:, 2] - anchors[:, 0]
    h = anchors[:, 3] - anchors[:, 1]
    expected_sides = torch.tensor([32 * s for _ in PAPER_RATIOS for s in PAPER_SCALES])
    torch.testing.assert_close((w * h).sqrt(), expected_sides)
    torch.testing.assert_close(h / w, torch.tensor([r for r in PAPER_RATIOS for _ in PAPER_SCALES]))
    torch.testing.assert_close(anchors[:, :2] + anchors[:, 2:], torch.zeros(9, 2))  # centred on 0


@pytest.mark.parametrize("image_size", [(256, 384), (512, 512), (128, 640)])
def test_make_anchors_offset0_matches_torchvision(image_size):
    sizes = tuple(tuple(float(s * k) for k in PAPER_SCALES) for s in PAPER_SIZES)
    generator = AnchorGenerator(sizes, (PAPER_RATIOS,) * len(sizes))
    features = [torch.zeros(1, 1, *grid_size(image_size, s)) for s in PAPER_STRIDES]
    theirs = generator(ImageList(torch.zeros(1, 3, *image_size), [image_size]), features)[0]
    ours = make_anchors(image_size, offset=0.0)
    assert ours.shape == theirs.shape
    # torchvision rounds each cell anchor to whole pixels; ours keep the exact sizes.
    torch.testing.assert_close(ours, theirs, atol=0.5, rtol=0)
    square = (ours[:, 2] - ours[:, 0]) == (ours[:, 3] - ours[:, 1])
    assert (ours[square] - theirs[square]).abs().max() <= 0.5


def test_location_major_order_and_offset():
    anchors = make_anchors((64, 64), strides=(8, 16, 32, 64, 128), sizes=(8, 16, 32, 64, 128), offset=0.5)
    first = anchors[:9]
    centres = (first[:, :2] + first[:, 2:]) / 2
    torch.testing.assert_close(centres, torch.full((9, 2), 4.0))  # cell (0, 0) centre at 0.5 stride
    second = (anchors[9, :2] + anchors[9, 2:]) / 2
    torch.testing.assert_close(second, torch.tensor([12.0, 4.0]))  # next column, same row


def test_counts_per_level_for_any_image_size():
    size = (100, 150)
    counts = anchors_per_level(size, PAPER_STRIDES, 9)
    assert counts == [math.ceil(100 / s) * math.ceil(150 / s) * 9 for s in PAPER_STRIDES]
    assert len(make_anchors(size)) == sum(counts)


def test_anchor_settings_are_validated():
    with pytest.raises(ValueError, match="one anchor size per stride"):
        make_anchors((64, 64), strides=(8, 16), sizes=(32,))
    with pytest.raises(ValueError, match="positive"):
        make_anchors((64, 64), ratios=(0.0, 1.0))


def test_config_anchors_are_make_anchors_with_the_configs_settings():
    config = preset_config("shapes-cpu").replace(anchor_offset=0.0, anchor_scales=(1.0, 1.5))
    expected = make_anchors((96, 64), config.strides, config.anchor_sizes, config.anchor_ratios,
                            config.anchor_scales, config.anchor_offset)
    torch.testing.assert_close(config_anchors(config, (96, 64)), expected)
