"""Lesson 08's exercises: inference (decode, candidates, NMS, detect) and COCO-style evaluation (AP, mAP).

The ``reference_*`` functions are the package's versions with the students' signatures: the lesson runs
on them while an exercise does not pass yet. Crowd and "difficult" annotations are left aside, as in
the lesson (the shapes data has none).
"""
from __future__ import annotations

from collections.abc import Callable
from functools import cache
from types import SimpleNamespace

import numpy as np
import torch
import torchvision

from .. import boxes as B
from .. import metrics as M
from ..anchors import anchors_per_level, config_anchors
from ..config import preset_config
from ..model import RetinaNet
from .answers import prediction
from .core import Mistake, declare, exercise
from .diagnose import as_tensor, close, diagnose, expect_shape
from .lesson01 import random_boxes

Detections = dict[str, torch.Tensor]
#: An area range that ignores no box (retinanet_lite.metrics ignores boxes outside its area range).
EVERY_AREA = (-np.inf, np.inf)


# --- the package's versions, with the students' signatures -------------------------------------------

def reference_top_candidates(logits: torch.Tensor, deltas: torch.Tensor, anchors: torch.Tensor, per_level: list[int],
                             score_thresh: float = 0.05, k: int = 1000
                             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One image: logits [N, K], deltas [N, 4], anchors [N, 4] xyxy → boxes [C, 4], scores [C], labels [C]:
    the ``k`` best (anchor, class) pairs of each level with a score above ``score_thresh``, decoded; level
    after level, best first within a level (``RetinaNet``'s own selection, without the clipping)."""
    holder = SimpleNamespace(config=SimpleNamespace(topk_candidates=k, box_weights=B.DEFAULT_WEIGHTS))
    boxes, scores, labels = RetinaNet._top_candidates(holder, logits[None], deltas[None], anchors, per_level)
    keep = scores[0] > score_thresh
    return boxes[0][keep], scores[0][keep], labels[0][keep]


def reference_nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy NMS of boxes [N, 4] xyxy with scores [N] → kept indices, best first: torchvision's compiled
    kernel, called directly so that a student's ``nms_per_class`` built on it is not mistaken for a call
    of ``class_wise_nms``."""
    return torch.ops.torchvision.nms(boxes, scores, float(iou_threshold))


def reference_detect(model: RetinaNet, images: list[torch.Tensor]) -> list[Detections]:
    """``model(images)`` in eval mode: one {"boxes" [D, 4], "scores" [D], "labels" [D]} per image."""
    if model.training:
        raise ValueError("detect needs the model in eval mode: call model.eval() first")
    with torch.no_grad():
        return model(images)


def reference_precision_recall_curve(scores: np.ndarray, true_positive: np.ndarray, num_objects: int
                                     ) -> tuple[np.ndarray, np.ndarray]:
    """Detections' scores [D] and TP flags [D] → precision [D] and recall [D] after each detection, taken
    in decreasing score order (stable: equal scores keep their order, as in pycocotools)."""
    order = np.argsort(-np.asarray(scores), kind="mergesort")
    tp = np.cumsum(np.asarray(true_positive, dtype=bool)[order])
    return tp / np.arange(1, len(tp) + 1), tp / num_objects


def reference_average_precision(scores: np.ndarray, true_positive: np.ndarray, num_objects: int) -> float:
    """COCO AP (the precision envelope at 101 recall levels) of one class's pooled detections, computed
    by :func:`retinanet_lite.metrics.precision_recall`."""
    scores = np.asarray(scores, dtype=float)
    matched = np.tile(np.asarray(true_positive, dtype=bool), (len(M.IOU_THRESHOLDS), 1))
    matches = M._Matches(scores, matched, np.zeros_like(matched), int(num_objects))
    envelope, _ = M.precision_recall([matches], max_detections=len(scores))
    return float(envelope[0].mean())


def reference_match_detections(boxes: torch.Tensor, scores: torch.Tensor, gt_boxes: torch.Tensor,
                               iou_threshold: float) -> np.ndarray:
    """One image, one class: the TP flag [D] of each detection (boxes [D, 4], scores [D], in their own
    order) against gt_boxes [G, 4], by :func:`retinanet_lite.metrics.match_image`."""
    scores = scores.detach().cpu().float()
    matches = M.match_image(boxes.detach().cpu(), scores, gt_boxes.detach().cpu(), EVERY_AREA,
                            np.array([iou_threshold]), max_detections=len(boxes))
    flags = np.zeros(len(boxes), dtype=bool)
    flags[np.argsort(-scores.numpy(), kind="mergesort")] = matches.matched[0]
    return flags


def reference_mean_ap(predictions: list[Detections], targets: list[Detections], iou_thresholds: list[float],
                      num_classes: int = 3) -> float:
    """AP averaged over the classes that have objects and over ``iou_thresholds``, by
    :mod:`retinanet_lite.metrics` (no cap on the detections per image)."""
    aps = []
    unlimited = 1 + max((len(p["boxes"]) for p in predictions), default=0)
    for label in range(num_classes):
        for threshold in iou_thresholds:
            matches = [M.match_image(p["boxes"][p["labels"] == label].cpu(), p["scores"][p["labels"] == label].cpu(),
                                     t["boxes"][t["labels"] == label].cpu(), EVERY_AREA,
                                     np.full(len(M.IOU_THRESHOLDS), threshold), unlimited)
                       for p, t in zip(predictions, targets)]
            envelope, _ = M.precision_recall(matches, unlimited)
            if envelope[0, 0] > -1:  # the class has objects
                aps.append(envelope[0].mean())
    if not aps:
        raise ValueError("mean_ap needs at least one object in the targets")
    return float(np.mean(aps))


# --- decode --------------------------------------------------------------------------------------------

def _decode_variant(anchors: torch.Tensor, deltas: torch.Tensor, *, clamp: str = "max", height_of_dy: bool = True,
                    exp: bool = True, centres: bool = True, xyxy: bool = True) -> torch.Tensor:
    """Decoding with one of the usual mistakes switched on (the defaults decode correctly)."""
    widths, heights = anchors[:, 2] - anchors[:, 0], anchors[:, 3] - anchors[:, 1]
    cx = anchors[:, 0] + (widths / 2 if centres else 0)
    cy = anchors[:, 1] + (heights / 2 if centres else 0)
    dx, dy, dw, dh = deltas.unbind(-1)
    if clamp == "max":
        dw, dh = dw.clamp(max=B.BBOX_EXP_CLAMP), dh.clamp(max=B.BBOX_EXP_CLAMP)
    elif clamp == "both":
        dw, dh = dw.clamp(-B.BBOX_EXP_CLAMP, B.BBOX_EXP_CLAMP), dh.clamp(-B.BBOX_EXP_CLAMP, B.BBOX_EXP_CLAMP)
    grow = torch.exp if exp else (lambda d: d)
    if clamp == "after_exp":
        w, h = widths * grow(dw).clamp(max=B.BBOX_EXP_CLAMP), heights * grow(dh).clamp(max=B.BBOX_EXP_CLAMP)
    else:
        w, h = widths * grow(dw), heights * grow(dh)
    x, y = cx + dx * widths, cy + dy * (heights if height_of_dy else widths)
    if not xyxy:
        return torch.stack([x, y, w, h], -1)
    return torch.stack([x - w / 2, y - h / 2, x + w / 2, y + h / 2], -1)


def _decode_cases() -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """(what, anchors [N, 4], deltas [N, 4]): ordinary deltas, then wild ones."""
    g = torch.Generator().manual_seed(8)
    anchors = random_boxes(60, seed=80)
    ordinary = torch.randn(60, 4, generator=g) * 0.4
    wild_anchors = torch.tensor([[10.0, 10.0, 26.0, 26.0], [40.0, 40.0, 72.0, 56.0], [0.0, 0.0, 32.0, 64.0]])
    wild = torch.tensor([[0.0, 0.0, 20.0, 20.0], [3.0, -2.0, -1.0, 0.5], [0.5, 0.5, -20.0, -20.0]])
    return [("ordinary deltas", anchors, ordinary), ("wild deltas (dw, dh = ±20)", wild_anchors, wild)]


@exercise("decode_clamped", "08", fallback=B.decode_boxes)
def check_decode_clamped(decode: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
    """``decode(anchors [N, 4], deltas [N, 4])`` → boxes [N, 4] xyxy, weights (1, 1, 1, 1), dw/dh clamped."""
    for what, anchors, deltas in _decode_cases():
        got = as_tensor(decode(anchors, deltas), "decode")
        expect_shape(got, tuple(anchors.shape), f"decode(anchors {list(anchors.shape)}, deltas {list(deltas.shape)})")
        diagnose(got, B.decode_boxes(anchors, deltas), {
            "dw and dh are not clamped: clamp them at BBOX_EXP_CLAMP (log(1000/16)) before the exp, or one wild "
            "prediction gives a box hundreds of millions of pixels wide":
                lambda: _decode_variant(anchors, deltas, clamp="none"),
            "dw and dh are clamped from below too: only the upper side needs the clamp (a very negative dw just "
            "gives a tiny box) — use .clamp(max=BBOX_EXP_CLAMP)":
                lambda: _decode_variant(anchors, deltas, clamp="both"),
            "the clamp comes after the exp: clamp dw and dh themselves, then take exp(dw)":
                lambda: _decode_variant(anchors, deltas, clamp="after_exp"),
            "dy is scaled by the anchor's width: y = y_a + dy · h_a (dx goes with the width, dy with the height)":
                lambda: _decode_variant(anchors, deltas, height_of_dy=False),
            "the exp is missing: w = w_a · exp(dw) (encode took a log)":
                lambda: _decode_variant(anchors, deltas, exp=False),
            "the shift starts from the anchor's corner (x1, y1), not from its centre: x_a = (x1 + x2) / 2":
                lambda: _decode_variant(anchors, deltas, centres=False),
            "decode returns (cx, cy, w, h): convert the centre and size back to xyxy corners":
                lambda: _decode_variant(anchors, deltas, xyxy=False),
        }, f"{what}: your boxes differ from retinanet_lite.boxes.decode_boxes(anchors, deltas)", atol=1e-3)


# --- top_candidates ------------------------------------------------------------------------------------

@cache
def _candidate_inputs(seed: int = 8) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[int]]:
    """Head outputs of one 64 × 64 image, made up: logits [N, 3] (about 1 pair in 4 above 0.05), deltas [N, 4],
    the shapes-cpu anchors [N, 4] and the anchors per level."""
    config = preset_config("shapes-cpu")
    anchors = config_anchors(config, (64, 64))
    per_level = anchors_per_level((64, 64), config.strides, config.num_anchors)
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(len(anchors), config.num_classes, generator=g) * 1.5 - 4.0
    deltas = torch.randn(len(anchors), 4, generator=g) * 0.3
    return logits, deltas, anchors, per_level


def _as_candidates(result: object, what: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    if not isinstance(result, (tuple, list)) or len(result) != 3:
        raise Mistake(f"{what} should return three tensors: (boxes [C, 4], scores [C], labels [C])")
    boxes, scores, labels = (as_tensor(part, what) for part in result)
    if boxes.ndim != 2 or boxes.shape[1:] != (4,) or scores.shape != (len(boxes),) or labels.shape != (len(boxes),):
        raise Mistake(f"{what} should return boxes [C, 4], scores [C], labels [C]; got shapes "
                      f"{list(boxes.shape)}, {list(scores.shape)}, {list(labels.shape)}")
    return boxes, scores, labels


def _chosen_anchors(probabilities: torch.Tensor, per_level: list[int], score_thresh: float, k: int) -> torch.Tensor:
    """The index (into all anchors) of each candidate's anchor, in the order of reference_top_candidates."""
    chosen, start = [], 0
    for level, count in zip(probabilities.split(per_level), per_level):
        values, index = level.flatten().topk(min(k, level.numel()))
        chosen.append(start + index[values > score_thresh] // level.shape[1])
        start += count
    return torch.cat(chosen)


@exercise("top_candidates", "08", fallback=reference_top_candidates,
          forbidden=(RetinaNet._top_candidates, RetinaNet.select_candidates, RetinaNet.candidates))
def check_top_candidates(top_candidates: Callable[..., tuple[torch.Tensor, torch.Tensor, torch.Tensor]]) -> None:
    """``top_candidates(logits [N, K], deltas [N, 4], anchors [N, 4], per_level, score_thresh, k)`` →
    boxes [C, 4], scores [C], labels [C], level after level, best first within a level."""
    logits, deltas, anchors, per_level = _candidate_inputs()
    num_classes = logits.shape[1]
    probabilities = logits.sigmoid()
    above = [int((p > 0.05).sum()) for p in probabilities.split(per_level)]
    boxes, scores, labels = _as_candidates(top_candidates(logits, deltas, anchors, per_level, 0.05, 1000),
                                           "top_candidates")
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise Mistake(f"labels go up to {int(labels.max())} with {num_classes} classes: anchor and class are swapped "
                      f"in the flat index — entry j of a flattened [N_l, K] table is anchor j // K, class j % K")
    if len(scores) and (scores.min() < 0 or scores.max() > 1):
        raise Mistake("the scores are not probabilities: apply the sigmoid to the logits before the threshold")
    expected = reference_top_candidates(logits, deltas, anchors, per_level, 0.05, 1000)
    if len(scores) == sum(min(1000, n * num_classes) for n in per_level):
        raise Mistake(f"all {len(scores)} pairs are kept: apply the score threshold (keep p > score_thresh)")
    if len(scores) != len(expected[1]):
        raise Mistake(f"{len(scores)} candidates, but {len(expected[1])} (anchor, class) pairs have p > 0.05")

    def by_score(s: torch.Tensor, l: torch.Tensor) -> list[tuple[float, int]]:
        return sorted(zip(s.tolist(), l.long().tolist()))

    if not close(torch.tensor(by_score(scores, labels)), torch.tensor(by_score(expected[1].double(), expected[2])),
                 atol=1e-6):
        raise Mistake("the scores or labels are not those of the (anchor, class) pairs with p > 0.05: the label of "
                      "flat entry j is j % K, its score sigmoid(logit)")
    for k in (1, 5):
        boxes_k, _, _ = _as_candidates(top_candidates(logits, deltas, anchors, per_level, 0.05, k), "top_candidates")
        if len(boxes_k) == min(k, sum(above)) and len(boxes_k) != sum(min(k, a) for a in above):
            raise Mistake(f"with k={k} you keep {len(boxes_k)} candidates in all: the cap is per level — keep the "
                          f"top k of each level")
        if len(boxes_k) != sum(min(k, a) for a in above):
            raise Mistake(f"with k={k} each level should give min(k, pairs above the threshold) candidates, "
                          f"{sum(min(k, a) for a in above)} in all; yours gives {len(boxes_k)}")
    if not close(scores, expected[1], atol=1e-6) or not torch.equal(labels.long(), expected[2]):
        raise Mistake("the right candidates in the wrong order: return them level after level (P3 first) and best "
                      "first within a level — the order topk gives; the figure below colours them by level")
    diagnose(boxes, expected[0], {
        "the boxes are the anchors themselves: decode the chosen anchors' deltas with your decode":
            lambda: anchors[_chosen_anchors(probabilities, per_level, 0.05, 1000)],
    }, "the boxes are not the decoded deltas of the chosen anchors: decode(level_anchors[a], level_deltas[a]) "
       "with a = j // K", atol=1e-3)
    boxes_t, scores_t, _ = _as_candidates(top_candidates(logits, deltas, anchors, per_level, 0.3, 1000),
                                          "top_candidates")
    if len(scores_t) != int((probabilities > 0.3).sum()) or (len(scores_t) and scores_t.min() <= 0.3):
        raise Mistake("with score_thresh=0.3 the candidates should be the pairs with p > 0.3: use the "
                      "score_thresh argument, not a fixed 0.05")


# --- NMS -----------------------------------------------------------------------------------------------

def _greedy_nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float, *, ascending: bool = False,
                at_threshold: bool = False, suppressed_suppress: bool = False) -> torch.Tensor:
    """Greedy NMS with one of the usual mistakes switched on (the defaults are right): kept indices."""
    order = scores.argsort(descending=not ascending, stable=True)
    ious = B.box_iou(boxes.double(), boxes.double())
    overlaps = ious >= iou_threshold if at_threshold else ious > iou_threshold
    if suppressed_suppress:  # a box goes if any better box overlaps it, kept or not
        rank = torch.empty_like(order)
        rank[order] = torch.arange(len(order))
        better = rank[None, :] < rank[:, None]  # [i, j]: j ranks before i
        return order[~(overlaps & better).any(dim=1)[order]]
    keep, alive = [], torch.ones(len(boxes), dtype=torch.bool)
    for i in order.tolist():
        if alive[i]:
            keep.append(i)
            alive &= ~overlaps[i]
    return torch.tensor(keep, dtype=torch.long)


def _nms_boxes(n: int = 300, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``n`` random overlapping boxes [n, 4] xyxy, scores [n] and labels [n] in {0, 1, 2} (as in the lesson)."""
    g = torch.Generator().manual_seed(seed)
    corners = torch.rand(n, 2, generator=g) * 100
    boxes = torch.cat([corners, corners + 5 + torch.rand(n, 2, generator=g) * 40], dim=1)
    return boxes, torch.rand(n, generator=g), torch.randint(0, 3, (n,), generator=g)


#: Hand-made NMS cases: (what, boxes, scores, threshold).
NMS_CASES = [
    ("two boxes with IoU exactly 0.5 at threshold 0.5", [[0, 0, 10, 10], [0, 0, 10, 5]], [0.9, 0.8], 0.5),
    ("a good box and a worse copy of it", [[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60]], [0.6, 0.9, 0.3], 0.5),
    ("a chain A–B–C where only neighbours overlap", [[0, 0, 10, 10], [3, 0, 13, 10], [6, 0, 16, 10]],
     [0.9, 0.8, 0.7], 0.5),
]


def _indices(value: object, what: str) -> list[int]:
    """An answer's kept indices as a list of ints, or a Mistake for a mask / wrong shape."""
    if isinstance(value, torch.Tensor) and value.dtype == torch.bool:
        raise Mistake(f"{what} returns a boolean mask: return the kept indices (a long tensor), best score first")
    got = as_tensor(value, what)
    if got.ndim != 1:
        raise Mistake(f"{what} should return a 1-D tensor of indices, got shape {list(got.shape)}")
    return [int(v) for v in got.tolist()]


def _diagnose_nms(got: list[int], boxes: torch.Tensor, scores: torch.Tensor, threshold: float, what: str) -> None:
    expected = torchvision.ops.nms(boxes, scores, threshold).tolist()
    if got == expected:
        return
    variants = {
        "the candidates are sorted by ascending score: the best box must come first (descending=True)":
            dict(ascending=True),
        "boxes with IoU equal to the threshold are suppressed: NMS deletes only IoU above the threshold "
        "(> iou_threshold, not ≥)": dict(at_threshold=True),
        "a box that was already suppressed still suppresses others: only kept boxes delete their neighbours "
        "(remove the suppressed ones before picking the next best)": dict(suppressed_suppress=True),
    }
    for message, switches in variants.items():
        if got == _greedy_nms(boxes, scores, threshold, **switches).tolist():
            raise Mistake(f"{what}: {message}")
    if len(scores) and int(scores.argmax()) not in got:
        raise Mistake(f"{what}: the highest-scoring box is not kept — it always survives: keep it, then delete the "
                      f"boxes that overlap it")
    if sorted(got) == sorted(expected):
        raise Mistake(f"{what}: the right boxes in the wrong order — return the kept indices best score first")
    raise Mistake(f"{what}: kept {got[:8]}{'…' if len(got) > 8 else ''} ({len(got)} boxes), torchvision.ops.nms "
                  f"keeps {expected[:8]}{'…' if len(expected) > 8 else ''} ({len(expected)})")


@exercise("nms", "08", fallback=reference_nms,
          forbidden=(torchvision.ops.nms, torchvision.ops.batched_nms, B.class_wise_nms))
def check_nms(nms: Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]) -> None:
    """``nms(boxes [N, 4] xyxy, scores [N], iou_threshold)`` → kept indices [M] (long), best score first."""
    for what, boxes, scores, threshold in NMS_CASES:
        boxes, scores = torch.tensor(boxes, dtype=torch.float32), torch.tensor(scores)
        _diagnose_nms(_indices(nms(boxes, scores, threshold), "nms"), boxes, scores, threshold, f"for {what}")
    boxes, scores, _ = _nms_boxes()
    for threshold in (0.1, 0.3, 0.5, 0.7):
        _diagnose_nms(_indices(nms(boxes, scores, threshold), "nms"), boxes, scores, threshold,
                      f"on 300 random boxes at IoU threshold {threshold}")
    if _indices(nms(torch.zeros(0, 4), torch.zeros(0), 0.5), "nms") != []:
        raise Mistake("nms of no boxes [0, 4] must return an empty tensor of indices")


def _per_class_variant(nms: Callable, boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor,
                       threshold: float, *, local: bool = False, unsorted: bool = False) -> list[int]:
    """Class-wise NMS with one of the usual mistakes: indices into the class's subset, or not re-sorted."""
    kept = []
    for label in labels.unique():
        mine = (labels == label).nonzero().flatten()
        chosen = torch.as_tensor(nms(boxes[mine], scores[mine], threshold), dtype=torch.long)
        kept.append(chosen if local else mine[chosen])
    kept = torch.cat(kept) if kept else torch.zeros(0, dtype=torch.long)
    return (kept if unsorted else kept[scores[kept].argsort(descending=True)]).tolist()


@exercise("nms_per_class", "08", fallback=B.class_wise_nms, forbidden=(torchvision.ops.batched_nms,))
def check_nms_per_class(nms_per_class: Callable[..., torch.Tensor]) -> None:
    """``nms_per_class(boxes [N, 4], scores [N], labels [N], iou_threshold)`` → kept indices, best first."""
    # a square and a circle in the same place: two objects, both stay
    boxes = torch.tensor([[10.0, 10.0, 40.0, 40.0], [11.0, 10.0, 41.0, 40.0], [12.0, 11.0, 41.0, 40.0]])
    scores, labels = torch.tensor([0.9, 0.8, 0.7]), torch.tensor([0, 1, 0])
    got = _indices(nms_per_class(boxes, scores, labels, 0.5), "nms_per_class")
    if sorted(got) == [0]:
        raise Mistake("NMS across classes: the class-0 box suppressed the class-1 box on top of it — only boxes with "
                      "the same label may suppress each other (run NMS separately for each label)")
    cases = [("three overlapping boxes of two classes", boxes, scores, labels, 0.5)]
    cases += [(f"300 random boxes of 3 classes at IoU {t}", *_nms_boxes(seed=1), t) for t in (0.3, 0.5, 0.7)]
    absent = _nms_boxes(seed=2)
    cases.append(("boxes of classes 0 and 2 only", absent[0], absent[1], absent[2].clamp(max=1) * 2, 0.5))
    for what, boxes, scores, labels, threshold in cases:
        got = _indices(nms_per_class(boxes, scores, labels, threshold), "nms_per_class")
        expected = torchvision.ops.batched_nms(boxes, scores, labels, threshold).tolist()
        if got == expected:
            continue
        if got == torchvision.ops.nms(boxes, scores, threshold).tolist():
            raise Mistake(f"for {what}: NMS across classes — boxes of different labels suppress each other; only "
                          "boxes with the same label may (run NMS separately for each label)")
        if got == _per_class_variant(reference_nms, boxes, scores, labels, threshold, local=True):
            raise Mistake(f"for {what}: the indices point into one class's boxes, not into all boxes — map them back "
                          f"(mine[kept], where mine lists that class's indices)")
        if sorted(got) == sorted(expected):
            raise Mistake(f"for {what}: the right boxes in the wrong order — sort the kept boxes of all classes "
                          f"together, best score first")
        raise Mistake(f"for {what}: kept {len(got)} boxes, torchvision.ops.batched_nms keeps {len(expected)}")
    if _indices(nms_per_class(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.long), 0.5),
                "nms_per_class") != []:
        raise Mistake("nms_per_class of no boxes must return an empty tensor of indices")


# --- detect --------------------------------------------------------------------------------------------

@cache
def _detect_model() -> RetinaNet:
    """An untrained shapes-cpu model with its heads' last layers scrambled, so that its detections exercise
    every step: inputs resized (min_size 96), many candidates above score_thresh 0.1, the top-k cap (40 per
    level), boxes crossing the image border, NMS at 0.4 and the cap of 15 detections. The numbers differ
    from the lesson's config on purpose: detect must read them from model.config."""
    torch.manual_seed(8)
    model = RetinaNet.from_preset("shapes-cpu", min_size=96, max_size=160, score_thresh=0.1, topk_candidates=40,
                                  nms_iou=0.4, max_detections=15).eval()
    with torch.no_grad():
        model.classification.predict.weight.normal_(0.0, 0.1)
        model.classification.predict.bias.fill_(-2.0)
        model.regression.predict.weight.normal_(0.0, 0.05)
    return model


@cache
def _detect_images() -> tuple[torch.Tensor, ...]:
    """Three made-up images: 128 × 128, 100 × 120 (padded in the batch) and 90 × 128."""
    g = torch.Generator().manual_seed(9)
    return tuple(torch.rand(3, h, w, generator=g) for h, w in ((128, 128), (100, 120), (90, 128)))


def _pipeline(model: RetinaNet, images: list[torch.Tensor], *, rescale: bool = True, clip: str = "image",
              cap: str = "after", fixed_numbers: bool = False) -> list[Detections]:
    """The inference pipeline with one of the usual mistakes switched on (the defaults = model(images))."""
    c = model.config
    thresh, k, iou, most = (0.05, 1000, 0.5, 100) if fixed_numbers else (c.score_thresh, c.topk_candidates,
                                                                          c.nms_iou, c.max_detections)
    with torch.no_grad():
        batch, scales = model.prepare_batch(images)
        logits, deltas = model.head_outputs(batch)
    anchors = model.anchors(tuple(batch.shape[-2:]), batch.device)
    per_level = anchors_per_level(tuple(batch.shape[-2:]), c.strides, c.num_anchors)
    results = []
    for i, image in enumerate(images):
        boxes, scores, labels = reference_top_candidates(logits[i], deltas[i], anchors, per_level, thresh, k)
        if rescale:
            boxes = boxes / scales[i]
        if clip != "none":
            boxes = B.clip_boxes(boxes, tuple(image.shape[-2:]) if clip == "image" else tuple(batch.shape[-2:]))
        if cap == "before":
            first = scores.argsort(descending=True)[:most]
            boxes, scores, labels = boxes[first], scores[first], labels[first]
        keep = B.class_wise_nms(boxes, scores, labels, iou)
        keep = keep[:most] if cap == "after" else keep
        results.append({"boxes": boxes[keep], "scores": scores[keep], "labels": labels[keep]})
    return results


def _same_detections(got: list[dict], expected: list[Detections]) -> bool:
    return len(got) == len(expected) and all(
        close(g["labels"], e["labels"]) and close(g["scores"], e["scores"], atol=1e-6)
        and close(g["boxes"], e["boxes"], atol=1e-3) for g, e in zip(got, expected))


@exercise("detect", "08", fallback=reference_detect,
          forbidden=(RetinaNet.forward, RetinaNet.candidates, RetinaNet.select_candidates, RetinaNet.nms))
def check_detect(detect: Callable[[RetinaNet, list[torch.Tensor]], list[dict]]) -> None:
    """``detect(model, images)`` → one {"boxes" [D, 4] xyxy, "scores" [D], "labels" [D]} per image = model(images)."""
    model, images = _detect_model(), list(_detect_images())
    result = detect(model, images)
    if not isinstance(result, (list, tuple)) or len(result) != len(images):
        raise Mistake(f"detect(model, {len(images)} images) should return a list with one dict per image")
    got = []
    for i, found in enumerate(result):
        if not isinstance(found, dict) or not {"boxes", "scores", "labels"} <= set(found):
            raise Mistake(f"image {i}: each result should be a dict with keys 'boxes', 'scores' and 'labels'")
        boxes = as_tensor(found["boxes"], "detect's boxes")
        if boxes.ndim != 2 or boxes.shape[1:] != (4,):
            raise Mistake(f"image {i}: boxes should have shape [D, 4], got {list(boxes.shape)}")
        got.append({key: as_tensor(found[key], f"detect's {key}") for key in ("boxes", "scores", "labels")})
    expected = _pipeline(model, images)
    if _same_detections(got, expected):
        return
    variants = {
        "the numbers are fixed (0.05, 1000, 0.5, 100): read score_thresh, topk_candidates, nms_iou and "
        "max_detections from model.config": dict(fixed_numbers=True),
        "the boxes are not divided by the resize factor: the model sees a resized image, so divide each image's "
        "boxes by scales[i] to get back to its own pixels": dict(rescale=False),
        "the boxes are not clipped: clip each image's boxes to its own size, clip_boxes(boxes, image.shape[-2:])":
            dict(clip="none"),
        "the boxes are clipped to the padded batch, not to each image: use clip_boxes(boxes, image.shape[-2:])":
            dict(clip="batch"),
        "the cap comes before NMS: run class-wise NMS on all candidates, then keep the best max_detections":
            dict(cap="before"),
    }
    for message, switches in variants.items():
        if _same_detections(got, _pipeline(model, images, **switches)):
            raise Mistake(message)
    if any(len(g["boxes"]) > model.config.max_detections for g in got):
        raise Mistake(f"an image has more than max_detections = {model.config.max_detections} detections: keep at "
                      f"most model.config.max_detections boxes after NMS, best first")
    for i, (g, e) in enumerate(zip(got, expected)):
        if len(g["boxes"]) != len(e["boxes"]):
            raise Mistake(f"image {i} ({tuple(images[i].shape[-2:])}): {len(g['boxes'])} detections, model(images) "
                          f"gives {len(e['boxes'])}")
    raise Mistake("detect(model, images) differs from model(images): candidates (your top_candidates), divide by "
                  "the resize factor, clip to the image, class-wise NMS, then the cap — in that order")


# --- precision–recall curve and AP ---------------------------------------------------------------------

#: The lesson's toy example: 4 objects, 7 detections sorted by score, T F T T F F T.
TOY_SCORES = np.array([0.95, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
TOY_TP = np.array([True, False, True, True, False, False, True])
TOY_NUM_OBJECTS = 4


def _pr_cases() -> list[tuple[str, np.ndarray, np.ndarray, int]]:
    """(what, scores [D], true_positive [D], num_objects): the toy, the toy shuffled, random detections."""
    rng = np.random.default_rng(8)
    shuffle = rng.permutation(len(TOY_SCORES))
    scores = rng.permutation(np.linspace(0.05, 0.99, 40))  # distinct scores, in no order
    true_positive = rng.random(40) < np.sort(scores)[::-1][np.argsort(np.argsort(-scores))] * 0.9
    return [("the toy example", TOY_SCORES, TOY_TP, TOY_NUM_OBJECTS),
            ("the toy example in shuffled order", TOY_SCORES[shuffle], TOY_TP[shuffle], TOY_NUM_OBJECTS),
            ("40 random detections of 30 objects", scores, true_positive, 30)]


def _pr_variant(scores: np.ndarray, true_positive: np.ndarray, num_objects: int, *, order: str = "descending",
                recall_by: str = "objects", precision_by: str = "n", running: bool = True
                ) -> tuple[np.ndarray, np.ndarray]:
    """The precision–recall curve with one of the usual mistakes switched on (the defaults are right)."""
    index = {"descending": np.argsort(-scores, kind="mergesort"), "ascending": np.argsort(scores, kind="mergesort"),
             "none": np.arange(len(scores))}[order]
    flags = true_positive[index].astype(float)
    tp = np.cumsum(flags) if running else flags
    n = np.arange(1, len(tp) + 1)
    precision = tp / (n if precision_by == "n" else num_objects)
    return precision, tp / (num_objects if recall_by == "objects" else len(tp))


def _as_curve(result: object, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        raise Mistake("precision_recall_curve should return two arrays: (precision [D], recall [D])")
    precision, recall = (as_tensor(part, "precision_recall_curve") for part in result)
    expect_shape(precision, (size,), f"precision for {size} detections")
    expect_shape(recall, (size,), f"recall for {size} detections")
    return precision, recall


prediction(
    "predict_nms_off", "08", "339ada6b1c98",
    explanation="(a). NMS deletes a candidate only when its IoU with a kept box is *above* the threshold, and no "
                "IoU is above 1: at 1.0 nothing is deleted, and every candidate is reported (up to max_detections "
                "= 100). Each object can be matched once, so its duplicates count as false positives: precision "
                "collapses, recall stays where it was.",
    hint="NMS deletes a box whose IoU with a kept box is above the threshold: which IoU is above 1.0? And an "
         "object found twice is counted once as correct")


@exercise("precision_recall_curve", "08", fallback=reference_precision_recall_curve)
def check_precision_recall_curve(curve: Callable[[np.ndarray, np.ndarray, int], tuple]) -> None:
    """``precision_recall_curve(scores [D], true_positive [D] bool, num_objects)`` → precision [D], recall [D],
    after each detection in decreasing score order."""
    for what, scores, true_positive, num_objects in _pr_cases():
        got = torch.cat(_as_curve(curve(scores, true_positive, num_objects), len(scores)))
        wrong = {
            "the detections are not sorted by score: sort them best first (np.argsort(-scores)) before counting":
                dict(order="none"),
            "the detections are sorted by ascending score: the curve starts from the best detection "
            "(np.argsort(-scores))": dict(order="ascending"),
            "recall is divided by the number of detections: recall = TP_n / number of objects":
                dict(recall_by="detections"),
            "precision is divided by the number of objects: precision = TP_n / n, the detections so far":
                dict(precision_by="objects"),
            "the counts are not running totals: TP_n counts the true positives among the first n detections "
            "(np.cumsum)": dict(running=False),
        }
        diagnose(got, torch.cat([torch.as_tensor(a) for a in reference_precision_recall_curve(
            scores, true_positive, num_objects)]), {
            message: (lambda s=switches: torch.cat([torch.as_tensor(a) for a in _pr_variant(
                scores, true_positive, num_objects, **s)])) for message, switches in wrong.items()},
            f"for {what}: precision and recall differ from TP_n / n and TP_n / number of objects")
    _as_curve(curve(np.zeros(0), np.zeros(0, dtype=bool), 3), 0)


def _ap_variant(scores: np.ndarray, true_positive: np.ndarray, num_objects: int, *, envelope: str = "right",
                levels: np.ndarray | None = None, divide: str = "levels", recall_by: str = "objects",
                sort: bool = True) -> float:
    """AP with one of the usual mistakes switched on (the defaults give COCO's AP)."""
    precision, recall = _pr_variant(scores, true_positive, num_objects, order="descending" if sort else "none",
                                    recall_by=recall_by)
    if envelope == "right":
        precision = np.maximum.accumulate(precision[::-1])[::-1]
    elif envelope == "left":
        precision = np.maximum.accumulate(precision)
    levels = np.linspace(0, 1, 101) if levels is None else levels
    values = []
    for r in levels:
        reached = np.nonzero(recall >= r)[0]
        if len(reached):
            values.append(precision[reached].max() if envelope == "right" else precision[reached[0]])
        elif divide == "levels":
            values.append(0.0)
    return float(np.sum(values) / len(values)) if values else 0.0


@exercise("average_precision", "08", fallback=reference_average_precision,
          forbidden=(M.precision_recall, M.evaluate))
def check_average_precision(average_precision: Callable[[np.ndarray, np.ndarray, int], float]) -> None:
    """``average_precision(scores [D], true_positive [D] bool, num_objects)`` → COCO AP (101 levels) as a float."""
    def value(*args: object) -> float:
        got = as_tensor(average_precision(*args), "average_precision")
        if got.numel() != 1:
            raise Mistake(f"average_precision should return one number, got shape {list(got.shape)}")
        return float(got)

    for what, scores, true_positive, num_objects in _pr_cases():
        got = value(scores, true_positive, num_objects)
        expected = reference_average_precision(scores, true_positive, num_objects)

        def variant(**switches: object) -> Callable[[], float]:
            return lambda: _ap_variant(scores, true_positive, num_objects, **switches)

        diagnose(got, expected, {
            "AP without the precision envelope: replace each precision by the best precision at that recall or "
            "more (a running max from the right) before sampling": variant(envelope="none"),
            "the envelope runs the wrong way: it is the best precision at the same or a *higher* recall — a running "
            "max from the right (np.maximum.accumulate on the reversed precision, reversed back)":
                variant(envelope="left"),
            "100 recall levels instead of 101: COCO samples r = 0, 0.01, …, 1 (np.linspace(0, 1, 101))":
                variant(levels=np.linspace(0, 1, 100)),
            "the recall levels stop at 0.99: COCO samples r = 0, 0.01, …, 1 — 101 levels, 1 included":
                variant(levels=np.arange(100) / 100),
            "11 recall levels (PASCAL VOC's rule): COCO samples 101 levels, r = 0, 0.01, …, 1":
                variant(levels=np.linspace(0, 1, 11)),
            "the sum is divided by the levels that are reached: a recall level never reached counts as precision 0, "
            "so divide by all 101 levels": variant(divide="reached"),
            "recall is divided by the number of detections: recall = TP_n / number of objects":
                variant(recall_by="detections"),
            "the detections are not sorted by score: sort them best first before the running counts":
                variant(sort=False),
        }, f"for {what}: AP should be {expected:.4f}, got {got:.4f}")
    if value(np.zeros(0), np.zeros(0, dtype=bool), 3) != 0.0:
        raise Mistake("with no detections the AP is 0 (no recall level is reached)")
    if abs(value(np.array([0.9, 0.8]), np.array([True, True]), 2) - 1.0) > 1e-9:
        raise Mistake("two detections that find both objects, no false positive: AP must be 1")


# --- matching and mAP ----------------------------------------------------------------------------------

def _ordered(boxes: torch.Tensor) -> torch.Tensor:
    """Jittered boxes [N, 4] made valid xyxy again (x1 ≤ x2, y1 ≤ y2)."""
    return torch.cat([torch.minimum(boxes[:, :2], boxes[:, 2:]), torch.maximum(boxes[:, :2], boxes[:, 2:])], dim=1)


def _match_variant(boxes: torch.Tensor, scores: torch.Tensor, gt_boxes: torch.Tensor, iou_threshold: float, *,
                   in_score_order: bool = True, claim: bool = True, best_even_if_claimed: bool = False,
                   first_above: bool = False, strict: bool = False) -> np.ndarray:
    """Greedy matching with one of the usual mistakes switched on (the defaults are COCO's rule)."""
    flags = np.zeros(len(boxes), dtype=bool)
    if len(gt_boxes) == 0:
        return flags
    ious = B.box_iou(boxes.double(), gt_boxes.double())
    claimed = torch.zeros(len(gt_boxes), dtype=torch.bool)
    order = scores.argsort(descending=True, stable=True).tolist() if in_score_order else range(len(boxes))
    for d in order:
        ok = ious[d] > iou_threshold if strict else ious[d] >= iou_threshold
        if best_even_if_claimed:
            best = int(ious[d].argmax())
            hit = bool(ok[best]) and not bool(claimed[best])
        else:
            free = ok & ~claimed if claim else ok
            if not free.any():
                continue
            best = int(free.nonzero()[0]) if first_above else int(torch.where(free, ious[d], -1.0).argmax())
            hit = True
        if hit:
            flags[d] = True
            claimed[best] = True
    return flags


#: Hand-made matching cases: (what, boxes, scores, gt_boxes, iou_threshold).
MATCH_CASES = [
    ("an exact detection and a worse duplicate of one object",
     [[0, 0, 10, 10], [1, 0, 11, 10]], [0.9, 0.8], [[0, 0, 10, 10]], 0.5),
    ("two detections given worst first", [[2, 0, 12, 10], [0, 0, 10, 10]], [0.8, 0.9], [[0, 0, 10, 10]], 0.5),
    ("a detection whose best object is already claimed but that overlaps another one enough",
     [[0, 0, 10, 10], [2, 0, 12, 10]], [0.9, 0.8], [[0, 0, 10, 10], [4, 0, 14, 10]], 0.5),
    ("a detection that overlaps two objects, the second one more",
     [[3, 0, 13, 10], [5, 0, 15, 10]], [0.9, 0.8], [[0, 0, 10, 10], [4, 0, 14, 10]], 0.5),
    ("a detection with IoU exactly 0.5 at threshold 0.5", [[0, 0, 10, 5]], [0.9], [[0, 0, 10, 10]], 0.5),
]


def _match_messages(boxes: torch.Tensor, scores: torch.Tensor, gt: torch.Tensor, t: float) -> dict:
    def variant(**switches: object) -> Callable[[], torch.Tensor]:
        return lambda: torch.as_tensor(_match_variant(boxes, scores, gt, t, **switches), dtype=torch.float64)

    return {
        "the detections are matched in the order given, not by decreasing score: the best detection chooses first":
            variant(in_score_order=False),
        "a detection whose best object is already claimed becomes a false positive: it should take the best "
        "*unclaimed* object with IoU ≥ the threshold": variant(best_even_if_claimed=True),
        "a detection takes the first object above the threshold, not the unclaimed one it overlaps most":
            variant(first_above=True),
        "a ground truth is matched twice: once a detection claims an object, later detections cannot match it "
        "(duplicates are false positives)": variant(claim=False),
        "an IoU exactly at the threshold does not match: a detection matches when IoU ≥ the threshold":
            variant(strict=True),
    }


@exercise("match_detections", "08", fallback=reference_match_detections, forbidden=(M.match_image,))
def check_match_detections(match_detections: Callable[..., np.ndarray]) -> None:
    """``match_detections(boxes [D, 4], scores [D], gt_boxes [G, 4], iou_threshold)`` → TP flags [D] (bool), in
    the detections' own order."""
    g = torch.Generator().manual_seed(8)
    gt = random_boxes(12, seed=81)
    jittered = _ordered(torch.cat([gt, gt[:8]]) + torch.randn(20, 4, generator=g) * 2.5)
    random_case = ("20 detections of 12 objects (with duplicates)", torch.cat([jittered, random_boxes(6, seed=82)]),
                   torch.rand(26, generator=g), gt, 0.6)
    cases = [(what, torch.tensor(b, dtype=torch.float32), torch.tensor(s), torch.tensor(gt_, dtype=torch.float32), t)
             for what, b, s, gt_, t in MATCH_CASES] + [random_case]
    for what, boxes, scores, gt_boxes, t in cases:
        got = as_tensor(match_detections(boxes, scores, gt_boxes, t), "match_detections")
        expect_shape(got, (len(boxes),), f"match_detections of {len(boxes)} detections")
        expected = torch.as_tensor(reference_match_detections(boxes, scores, gt_boxes, t), dtype=torch.float64)
        diagnose(got, expected, _match_messages(boxes, scores, gt_boxes, t),
                 f"for {what}: TP flags {got.bool().tolist()}, expected {expected.bool().tolist()}")
    got = as_tensor(match_detections(gt[:3], torch.rand(3), torch.zeros(0, 4), 0.5), "match_detections")
    if got.shape != (3,) or got.any():
        raise Mistake("with no objects of the class in the image every detection is a false positive: return "
                      "False for each")


def _map_data() -> tuple[list[Detections], list[Detections]]:
    """12 made-up images with objects of classes 0 and 1 (none of class 2) and detections of all three classes:
    good boxes, loose ones, duplicates, wrong classes and false alarms."""
    g = torch.Generator().manual_seed(8)
    predictions, targets = [], []
    for i in range(12):
        gt = random_boxes(1 + i % 4, seed=100 + i)
        labels = torch.randint(0, 2, (len(gt),), generator=g)
        boxes = _ordered(torch.cat([gt + torch.randn(len(gt), 4, generator=g) * (1 + i % 3) * 1.5,
                                    gt[:1] + torch.randn(1, 4, generator=g) * 2, random_boxes(2, seed=200 + i)]))
        found = torch.cat([labels, labels[:1], torch.randint(0, 3, (2,), generator=g)])
        found[-1] = 2  # a detection of the class without objects
        if i % 5 == 0:
            found[0] = 1 - found[0]  # a wrong class
        targets.append({"boxes": gt, "labels": labels})
        predictions.append({"boxes": boxes, "scores": torch.rand(len(boxes), generator=g), "labels": found})
    return predictions, targets


def _map_variant(predictions: list[Detections], targets: list[Detections], iou_thresholds: list[float], *,
                 skip_empty: bool = True, pool: bool = True, objects_of: str = "class",
                 gt_of: str = "class") -> float:
    """mean AP with one of the usual mistakes switched on (the defaults are right)."""
    aps = []
    for label in range(3):
        count = [int((t["labels"] == label).sum()) if objects_of == "class" else len(t["labels"]) for t in targets]
        if sum(count) == 0 and skip_empty:
            continue
        for threshold in iou_thresholds:
            scores, flags, per_image = [], [], []
            for p, t, n in zip(predictions, targets, count):
                mine = p["labels"] == label
                gt = t["boxes"][t["labels"] == label] if gt_of == "class" else t["boxes"]
                flags.append(_match_variant(p["boxes"][mine], p["scores"][mine], gt, threshold))
                scores.append(p["scores"][mine].numpy())
                if n:
                    per_image.append(reference_average_precision(scores[-1], flags[-1], n))
            if pool:
                aps.append(reference_average_precision(np.concatenate(scores), np.concatenate(flags), sum(count))
                           if sum(count) else 0.0)
            else:
                aps.append(float(np.mean(per_image)) if per_image else 0.0)
    return float(np.mean(aps))


@exercise("mean_ap", "08", fallback=reference_mean_ap, forbidden=(M.evaluate,))
def check_mean_ap(mean_ap: Callable[..., float]) -> None:
    """``mean_ap(predictions, targets, iou_thresholds, num_classes=3)`` → AP averaged over the classes that
    have objects and over the thresholds."""
    predictions, targets = _map_data()
    for thresholds in ([0.5], [0.75], [0.5 + 0.05 * i for i in range(10)]):
        what = f"iou_thresholds={thresholds}" if len(thresholds) == 1 else "the ten COCO thresholds"
        got = as_tensor(mean_ap(predictions, targets, thresholds, 3), "mean_ap")
        if got.numel() != 1:
            raise Mistake(f"mean_ap should return one number, got shape {list(got.shape)}")
        expected = reference_mean_ap(predictions, targets, thresholds, 3)

        def variant(**switches: object) -> Callable[[], float]:
            return lambda: _map_variant(predictions, targets, thresholds, **switches)

        diagnose(float(got), expected, {
            "a class without objects counts as AP 0: average only over the classes that have objects":
                variant(skip_empty=False),
            "AP is computed per image and averaged: pool a class's detections over all images first, then compute "
            "one AP": variant(pool=False),
            "num_objects counts the objects of every class: count only this class's objects":
                variant(objects_of="all"),
            "detections are matched against objects of every class: match them only with this class's objects":
                variant(gt_of="all"),
        }, f"with {what}: mAP should be {expected:.4f}, got {float(got):.4f}")


declare("08", "average_precision_11", "best_f1_threshold")
