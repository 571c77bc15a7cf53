"""Shared by the benchmarks: torchvision's RetinaNet built with the same parts as one of our configs.

`torchvision_retinanet(config)` gives torchvision's own detector (its transform, anchor generator,
matcher, heads and losses) around the very same backbone class, FPN width, extra P6/P7 levels,
anchors and image size as `RetinaNet(config)`, so that the two differ only in implementation (and,
in the training benchmark, in recipe).
"""
from __future__ import annotations

import contextlib
import io
from functools import partial

import time

import numpy as np
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from torch import Tensor, nn
from torchvision.models.detection import RetinaNet as TorchvisionRetinaNet
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.retinanet import RetinaNetHead
from torchvision.ops.feature_pyramid_network import LastLevelP6P7

from retinanet_lite.backbone import TinyResNet
from retinanet_lite.config import RetinaNetConfig, TrainConfig
from retinanet_lite.metrics import to_coco_ground_truth, to_coco_results
from retinanet_lite.model import resize_image
from retinanet_lite.train import augment, endless_batches


def torchvision_retinanet(config: RetinaNetConfig, image_size: int | None, group_norm: bool = False,
                          box_loss: str = "l1") -> TorchvisionRetinaNet:
    """torchvision's RetinaNet with ``config``'s tiny backbone, FPN width, anchors and inference settings.

    torchvision's head always has 4 convs; ``group_norm`` adds GroupNorm to them (its "v2" head) and
    ``box_loss`` picks its regression loss ("l1", "smooth_l1" or "giou"). ``image_size`` is the size its
    transform resizes every image to; ``None`` resizes each image as our model does with ``min_size=None``
    (tiles and photographs of several sizes at one ground resolution): by ``config.image_scale``, or not at all.
    """
    if config.backbone != "tiny":
        raise ValueError("the benchmarks compare tiny-backbone models")
    widths = config.backbone_widths
    body = TinyResNet(widths, config.backbone_blocks)
    backbone = BackboneWithFPN(body, return_layers={"layer2": "0", "layer3": "1", "layer4": "2"},
                               in_channels_list=list(widths[1:]), out_channels=config.fpn_channels,
                               extra_blocks=LastLevelP6P7(widths[3], config.fpn_channels))
    anchors = AnchorGenerator(sizes=tuple(tuple(s * k for k in config.anchor_scales) for s in config.anchor_sizes),
                              aspect_ratios=(tuple(config.anchor_ratios),) * len(config.anchor_sizes))
    norm = partial(nn.GroupNorm, 16) if group_norm else None
    head = RetinaNetHead(config.fpn_channels, config.num_anchors, config.num_classes, norm_layer=norm)
    head.regression_head._loss_type = box_loss
    model = TorchvisionRetinaNet(
        backbone, config.num_classes, min_size=image_size or 800, max_size=image_size or 1333,
        image_mean=list(config.image_mean), image_std=list(config.image_std), anchor_generator=anchors, head=head,
        score_thresh=config.score_thresh, nms_thresh=config.nms_iou, detections_per_img=config.max_detections,
        topk_candidates=config.topk_candidates,
    )
    if image_size is None:  # its transform has no "resize by one factor" setting: replace its resize step
        model.transform.resize = partial(resize_like_ours, config)
    return model


def resize_like_ours(config: RetinaNetConfig, image: Tensor, target: dict | None = None
                     ) -> tuple[Tensor, dict | None]:
    """torchvision's resize step done by our model's (`retinanet_lite.model.resize_image`): image ``[3, H, W]``
    resized as `RetinaNet(config)` resizes it, the target's ``xyxy`` boxes by the same size ratio (by which
    torchvision's postprocess maps detections back); both as they are when the size does not change."""
    height, width = image.shape[-2:]
    image = resize_image(config, image)
    new_height, new_width = image.shape[-2:]
    if target is not None and (new_height, new_width) != (height, width):
        ratio = torch.tensor([new_width / width, new_height / height] * 2, device=image.device)
        target = {**target, "boxes": target["boxes"] * ratio}
    return image, target


def pycocotools_map(predictions: list[dict], targets: list[dict], num_classes: int, max_detections: int = 100
                    ) -> dict[str, float]:
    """AP@[.5:.95], AP50 and AP75 as computed by pycocotools itself, with up to ``max_detections`` per image.

    (They are read from pycocotools' precision array, at its last ``maxDets`` entry: ``COCOeval.summarize``
    hard-codes 100 detections for its first line. With 100 the numbers are exactly its summary's.)
    """
    precision = pycocotools_precision(predictions, targets, num_classes, max_detections)
    if precision is None:
        return {"map": 0.0, "map_50": 0.0, "map_75": 0.0}
    return {"map": mean_precision(precision), "map_50": mean_precision(precision[0]),
            "map_75": mean_precision(precision[5])}


def pycocotools_precision(predictions: list[dict], targets: list[dict], num_classes: int, max_detections: int = 100,
                          iou_thresholds: list[float] | None = None) -> np.ndarray | None:
    """pycocotools' precision array [IoU thresholds, recall levels, classes] (area "all", up to
    ``max_detections`` per image; -1 where a class has no ground truth), at its ten IoU thresholds
    0.5:0.95 or at ``iou_thresholds``. None when there are no predictions at all."""
    with contextlib.redirect_stdout(io.StringIO()):
        ground_truth = COCO()
        ground_truth.dataset = to_coco_ground_truth(targets, num_classes)
        ground_truth.createIndex()
        results = to_coco_results(predictions)
        if not results:
            return None
        evaluator = COCOeval(ground_truth, ground_truth.loadRes(results), "bbox")
        evaluator.params.maxDets = [1, 10, max_detections]
        if iou_thresholds is not None:
            evaluator.params.iouThrs = np.asarray(iou_thresholds, dtype=float)
        evaluator.evaluate()
        evaluator.accumulate()
    return evaluator.eval["precision"][..., 0, -1]


def mean_precision(values: np.ndarray) -> float:
    """The mean over the cells that have ground truth (pycocotools marks the others -1); -1 if none has."""
    return float(values[values > -1].mean()) if (values > -1).any() else -1.0


def train_torchvision(model: TorchvisionRetinaNet, train_set, recipe: TrainConfig, budget: float, seed: int
                      ) -> tuple[TorchvisionRetinaNet, float, int]:
    """Train torchvision's model by its detection reference recipe (SGD 0.01, momentum 0.9, wd 1e-4, warm-up,
    ×0.1 steps) for ``budget`` seconds, on batches of ``recipe.batch_size`` with the recipe's augmentations.

    The schedule is laid out over the number of steps that fit in the budget (measured on the first ten).
    Returns the model (eval mode), the seconds trained and the steps taken.
    """
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    generator = torch.Generator().manual_seed(seed)
    batches = endless_batches(train_set, recipe.batch_size, seed)
    model.train()
    started, step, total = time.perf_counter(), 0, None
    while time.perf_counter() - started < budget:
        if step == 10:
            total = int(budget / ((time.perf_counter() - started) / 10))
        for group in optimizer.param_groups:
            group["lr"] = 0.01 * warmup_multistep(step, total or 10**9)
        images, targets = augment(*next(batches), recipe, generator)
        loss = sum(model(images, targets).values())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
    return model.eval(), time.perf_counter() - started, step


def warmup_multistep(step: int, total: int, warmup: int = 100) -> float:
    """torchvision's detection reference schedule: linear warm-up from 0.001, ×0.1 at 16/26 and 22/26."""
    if step < warmup:
        return 0.001 + 0.999 * step / warmup
    return 0.1 ** sum(step >= total * m for m in (16 / 26, 22 / 26))
