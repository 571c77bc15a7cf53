"""bench/common.py's torchvision RetinaNet sees the images at the size ours does (the benchmarks' fairness)."""
from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from common import torchvision_retinanet  # noqa: E402

from retinanet_lite.config import preset_config  # noqa: E402
from retinanet_lite.model import RetinaNet, resized_size  # noqa: E402


def test_torchvision_resizes_each_image_as_our_model_does_and_maps_the_boxes_back():
    config = preset_config("trees-cpu")  # image_scale 1.25, images of several sizes
    theirs = torchvision_retinanet(config, image_size=None, group_norm=True, box_loss="giou")
    images = [torch.rand(3, 192, 160), torch.rand(3, 97, 130)]
    targets = [{"boxes": torch.tensor([[10.0, 20, 50, 60]]), "labels": torch.tensor([1])},
               {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}]
    batch, resized = theirs.transform(images, targets)
    assert batch.image_sizes == [resized_size(config, (192, 160)), resized_size(config, (97, 130))] == [
        (240, 200), (121, 162)]
    ours, _ = RetinaNet(config).prepare_batch(images)  # the same pixels (torchvision pads to a multiple of 32)
    for index, (height, width) in enumerate(batch.image_sizes):
        torch.testing.assert_close(batch.tensors[index, :, :height, :width], ours[index, :, :height, :width])
    torch.testing.assert_close(resized[0]["boxes"], torch.tensor([[12.5, 25.0, 62.5, 75.0]]))
    assert resized[1]["boxes"].shape == (0, 4)
    theirs.eval()  # its postprocess maps detections back to each image's own size at inference
    back = theirs.transform.postprocess([{"boxes": resized[0]["boxes"]}], batch.image_sizes[:1], [(192, 160)])
    torch.testing.assert_close(back[0]["boxes"], targets[0]["boxes"])


def test_without_an_image_scale_torchvision_keeps_each_image_as_it_is():
    config = preset_config("trees-cpu", image_scale=None)
    theirs = torchvision_retinanet(config, image_size=None)
    image = torch.rand(3, 97, 130)
    batch, _ = theirs.transform([image])
    assert batch.image_sizes == [(97, 130)]
    torch.testing.assert_close(batch.tensors[0, :, :97, :130],
                               (image - torch.tensor(config.image_mean)[:, None, None])
                               / torch.tensor(config.image_std)[:, None, None])
