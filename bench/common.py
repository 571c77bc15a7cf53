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

from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from torch import nn
from torchvision.models.detection import RetinaNet as TorchvisionRetinaNet
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.retinanet import RetinaNetHead
from torchvision.ops.feature_pyramid_network import LastLevelP6P7

from retinanet_lite.backbone import TinyResNet
from retinanet_lite.config import RetinaNetConfig
from retinanet_lite.metrics import to_coco_ground_truth, to_coco_results


def torchvision_retinanet(config: RetinaNetConfig, image_size: int, group_norm: bool = False,
                          box_loss: str = "l1") -> TorchvisionRetinaNet:
    """torchvision's RetinaNet with ``config``'s tiny backbone, FPN width, anchors and inference settings.

    torchvision's head always has 4 convs; ``group_norm`` adds GroupNorm to them (its "v2" head) and
    ``box_loss`` picks its regression loss ("l1", "smooth_l1" or "giou").
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
    return TorchvisionRetinaNet(
        backbone, config.num_classes, min_size=image_size, max_size=image_size, image_mean=list(config.image_mean),
        image_std=list(config.image_std), anchor_generator=anchors, head=head, score_thresh=config.score_thresh,
        nms_thresh=config.nms_iou, detections_per_img=config.max_detections, topk_candidates=config.topk_candidates,
    )


def pycocotools_map(predictions: list[dict], targets: list[dict], num_classes: int) -> dict[str, float]:
    """AP@[.5:.95], AP50 and AP75 as computed by pycocotools itself."""
    with contextlib.redirect_stdout(io.StringIO()):
        ground_truth = COCO()
        ground_truth.dataset = to_coco_ground_truth(targets, num_classes)
        ground_truth.createIndex()
        results = to_coco_results(predictions)
        if not results:
            return {"map": 0.0, "map_50": 0.0, "map_75": 0.0}
        evaluator = COCOeval(ground_truth, ground_truth.loadRes(results), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return {"map": float(evaluator.stats[0]), "map_50": float(evaluator.stats[1]), "map_75": float(evaluator.stats[2])}
