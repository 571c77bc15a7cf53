"""Where a tree-crown model goes wrong: finding the crowns, or placing their boxes?

The diagnosis in bench/README.md (*Where the error is*) comes from this script. For the training
images (cut into 256-px tiles, no overlap), the val tiles and the other-site test images it prints:

* **recall at any score**: the share of drawn crowns that some detection overlaps with IoU ≥ 0.5,
  overall and per crown size (√(w·h) in pixels);
* **AP at IoU 0.2 … 0.7** (pycocotools, up to 300 detections per image): how fast AP falls as the boxes
  must fit more tightly;
* **the N best-scored detections**, N = the number of crowns, sorted as COCO matching does (best score
  first, each crown found once): *hit* (IoU ≥ 0.5 with a crown not found yet), *duplicate* (≥ 0.5, but
  only with crowns already found), *misplaced* (best IoU 0.25–0.5) and *background* (below 0.25);
* **the misplaced boxes' errors**: median log ratio of width and height to the crown's (0 = right size,
  no sign = no bias), median |log ratio| and median centre offset in crown sizes.

    .venv/bin/python bench/trees_errors.py [--checkpoint notebooks/checkpoints/trees-cpu.pt] [--views 1] [--sizes 1.0]
                                         [--nms-iou 0.5]

``--views``, ``--sizes`` and ``--nms-iou`` override the model's ``tta_views``, ``tta_scales`` and ``nms_iou``
(``--views 1 --sizes 1.0`` = look once). The checkpoint is the one lesson 11 saves;
any ``trees-cpu`` model of bench/trees.py or ``train("trees-cpu", out=...)`` works as well.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch import Tensor

from common import mean_precision, pycocotools_precision
from retinanet_lite.boxes import box_area, box_iou
from retinanet_lite.data import TreeCrowns
from retinanet_lite.train import load_checkpoint, run_inference
from retinanet_lite.widgets import greedy_match

ROOT = Path(__file__).resolve().parent.parent
IOU_THRESHOLDS = [0.2, 0.3, 0.4, 0.5, 0.6, 0.7]
SIZE_BANDS = [(0, 16), (16, 32), (32, 64), (64, 1000)]
KINDS = ("hit", "duplicate", "misplaced", "background")


def splits() -> dict[str, TreeCrowns]:
    """The three splits scored: training images as 256-px tiles without overlap, val tiles, test images."""
    return {"train": TreeCrowns("train", tile_size=256, overlap=0), "val": TreeCrowns("val"),
            "test": TreeCrowns("test")}


def best_iou_per_crown(predictions: list[dict], targets: list[dict]) -> Tensor:
    """[crowns] the highest IoU any detection (of any score) has with each drawn crown, all images."""
    return torch.cat([box_iou(t["boxes"], p["boxes"]).max(1).values if len(p["boxes"])
                      else torch.zeros(len(t["boxes"])) for p, t in zip(predictions, targets)])


def label_detections(prediction: dict, target: dict) -> list[tuple[float, str]]:
    """``(score, kind)`` for each detection of one image, best score first: ``"hit"`` when COCO's greedy
    matching (:func:`~retinanet_lite.widgets.greedy_match`, IoU ≥ 0.5) makes it a true positive, else by its
    best IoU with any crown ``"duplicate"`` (≥ 0.5: that crown was found already), ``"misplaced"`` (0.25–0.5)
    or ``"background"``."""
    hit, _ = greedy_match(prediction["boxes"], prediction["scores"], prediction["labels"], target, 0.5)
    crowns = target["boxes"]
    best = (box_iou(prediction["boxes"], crowns).max(1).values if len(crowns)
            else torch.zeros(len(prediction["boxes"])))
    labelled = []
    for j in prediction["scores"].argsort(descending=True, stable=True).tolist():
        kind = ("hit" if hit[j] else "duplicate" if best[j] >= 0.5 else "misplaced" if best[j] >= 0.25
                else "background")
        labelled.append((prediction["scores"][j].item(), kind))
    return labelled


def placement_errors(predictions: list[dict], targets: list[dict]) -> dict[str, float]:
    """Medians over the misplaced detections (best IoU 0.25–0.5 with a crown) scoring above 0.25: log ratio of
    width and height to that crown's, |log ratio| of both, and the centre offset in crown sizes."""
    logs, shifts = [], []
    for p, t in zip(predictions, targets):
        keep = p["scores"] > 0.25
        if not len(t["boxes"]) or not keep.any():
            continue
        best, which = box_iou(p["boxes"][keep], t["boxes"]).max(1)
        chosen = (best >= 0.25) & (best < 0.5)
        found, crown = p["boxes"][keep][chosen], t["boxes"][which[chosen]]
        wh_found, wh_crown = found[:, 2:] - found[:, :2], crown[:, 2:] - crown[:, :2]
        logs.append((wh_found / wh_crown).log())
        shifts.append(((found[:, :2] + found[:, 2:]) - (crown[:, :2] + crown[:, 2:])) / 2 / wh_crown)
    if not logs:
        return {}
    log_ratio, shift = torch.cat(logs), torch.cat(shifts)
    return {"n": len(log_ratio), "log_w": log_ratio[:, 0].median().item(), "log_h": log_ratio[:, 1].median().item(),
            "abs_log_size": log_ratio.abs().median().item(), "centre_offset": shift.norm(dim=1).median().item()}


def report(name: str, predictions: list[dict], targets: list[dict]) -> None:
    """Print the four analyses of one split."""
    crown_sizes = torch.cat([box_area(t["boxes"]).sqrt() for t in targets])
    best = best_iou_per_crown(predictions, targets)
    bands = ", ".join(f"{lo}–{hi if hi < 1000 else ''} px: {(best[k] >= 0.5).float().mean():.2f} of {int(k.sum())}"
                      for lo, hi in SIZE_BANDS if (k := (crown_sizes >= lo) & (crown_sizes < hi)).any())
    print(f"\n{name}: {len(best)} crowns; recall at any score {(best >= 0.5).float().mean():.2f} ({bands})")
    precision = pycocotools_precision(predictions, targets, num_classes=1, max_detections=300,
                                      iou_thresholds=IOU_THRESHOLDS)
    if precision is not None:
        print("  AP at IoU " + ", ".join(f"{t:.1f}: {mean_precision(precision[i]):.3f}"
                                         for i, t in enumerate(IOU_THRESHOLDS)))
    labelled = sorted((row for p, t in zip(predictions, targets) for row in label_detections(p, t)),
                      key=lambda row: -row[0])[:len(best)]
    kinds = [kind for _, kind in labelled]
    print(f"  the {len(labelled)} best-scored detections: " + ", ".join(f"{kinds.count(k)} {k}" for k in KINDS))
    errors = placement_errors(predictions, targets)
    if errors:
        print(f"  misplaced boxes scoring > 0.25 ({errors['n']}): median log(w / crown w) {errors['log_w']:+.2f}, "
              f"log(h / crown h) {errors['log_h']:+.2f}, |log size ratio| {errors['abs_log_size']:.2f}, "
              f"centre offset {errors['centre_offset']:.2f} crown sizes")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", default=str(ROOT / "notebooks" / "checkpoints" / "trees-cpu.pt"))
    parser.add_argument("--views", type=int, default=None, help="tta_views to detect with (default: the model's)")
    parser.add_argument("--sizes", type=float, nargs="+", default=None,
                        help="tta_scales to detect at (default: the model's)")
    parser.add_argument("--nms-iou", type=float, default=None, help="nms_iou to detect with (default: the model's)")
    args = parser.parse_args()
    model = load_checkpoint(args.checkpoint)
    changes = {"tta_views": args.views, "tta_scales": args.sizes and tuple(args.sizes), "nms_iou": args.nms_iou}
    model.config = model.config.replace(**{k: v for k, v in changes.items() if v is not None})
    print(f"{args.checkpoint}: {model.config.tta_views} view(s) at sizes {model.config.tta_scales}, "
          f"NMS at IoU {model.config.nms_iou}")
    for name, dataset in splits().items():
        predictions, targets = run_inference(model, dataset, batch_size=8)
        report(name, predictions, targets)


if __name__ == "__main__":
    main()
