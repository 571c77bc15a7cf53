"""Lesson 08's checkers: each named mistake fires for its wrong implementation, right answers pass."""
import numpy as np
import pytest
import torch
import torchvision

from retinanet_lite import boxes as B
from retinanet_lite import workbook
from retinanet_lite.anchors import anchors_per_level
from retinanet_lite.boxes import BBOX_EXP_CLAMP, box_iou, clip_boxes
from retinanet_lite.workbook import lesson08 as L
from workbook_checks import failed_with as assert_fails, passes as assert_passes


def run(name, answer):
    return workbook.run_checker(name, answer)



def test_registered_in_the_lessons_order():
    assert [e.name for e in workbook.lesson_exercises("08")] == [
        "decode_clamped", "top_candidates", "nms", "nms_per_class", "detect", "predict_nms_off", "precision_recall_curve",
        "average_precision", "match_detections", "mean_ap", "average_precision_11", "best_f1_threshold"]


# ------------------------------------------------------------------------------------------- decode
def decode(anchors, deltas):  # the lesson's solution
    widths = anchors[:, 2] - anchors[:, 0]
    heights = anchors[:, 3] - anchors[:, 1]
    centre_x = anchors[:, 0] + widths / 2
    centre_y = anchors[:, 1] + heights / 2
    dx, dy, dw, dh = deltas.unbind(dim=1)
    x = centre_x + dx * widths
    y = centre_y + dy * heights
    w = widths * torch.exp(dw.clamp(max=BBOX_EXP_CLAMP))
    h = heights * torch.exp(dh.clamp(max=BBOX_EXP_CLAMP))
    return torch.stack([x - w / 2, y - h / 2, x + w / 2, y + h / 2], dim=1)


def decode_other(anchors, deltas):  # another right answer: sizes first, then the corners from the centre
    size = anchors[:, 2:] - anchors[:, :2]
    centre = (anchors[:, :2] + anchors[:, 2:]) / 2 + deltas[:, :2] * size
    new_size = size * deltas[:, 2:].clamp(max=BBOX_EXP_CLAMP).exp()
    return torch.cat([centre - new_size / 2, centre + new_size / 2], dim=1)


def decode_with(clamp="max", dy_by_width=False, exp=True, corner=False, cxcywh=False):
    def wrong(anchors, deltas):
        w_a, h_a = anchors[:, 2] - anchors[:, 0], anchors[:, 3] - anchors[:, 1]
        x_a = anchors[:, 0] + (0 if corner else w_a / 2)
        y_a = anchors[:, 1] + (0 if corner else h_a / 2)
        dx, dy, dw, dh = deltas.unbind(1)
        if clamp == "max":
            dw, dh = dw.clamp(max=BBOX_EXP_CLAMP), dh.clamp(max=BBOX_EXP_CLAMP)
        elif clamp == "both":
            dw, dh = dw.clamp(-BBOX_EXP_CLAMP, BBOX_EXP_CLAMP), dh.clamp(-BBOX_EXP_CLAMP, BBOX_EXP_CLAMP)
        if clamp == "after":
            w, h = w_a * torch.exp(dw).clamp(max=BBOX_EXP_CLAMP), h_a * torch.exp(dh).clamp(max=BBOX_EXP_CLAMP)
        else:
            w, h = (w_a * torch.exp(dw), h_a * torch.exp(dh)) if exp else (w_a * dw, h_a * dh)
        x, y = x_a + dx * w_a, y_a + dy * (w_a if dy_by_width else h_a)
        if cxcywh:
            return torch.stack([x, y, w, h], 1)
        return torch.stack([x - w / 2, y - h / 2, x + w / 2, y + h / 2], 1)
    return wrong


@pytest.mark.parametrize("wrong, fragment", [
    (decode_with(clamp="none"), "not clamped"),
    (decode_with(clamp="both"), "clamped from below too"),
    (decode_with(clamp="after"), "the clamp comes after the exp"),
    (decode_with(dy_by_width=True), "dy is scaled by the anchor's width"),
    (decode_with(exp=False), "the exp is missing"),
    (decode_with(corner=True), "from the anchor's corner"),
    (decode_with(cxcywh=True), "returns (cx, cy, w, h)"),
    (lambda anchors, deltas: decode(anchors, deltas)[:, :2], "should have shape"),
    (lambda anchors, deltas: decode(anchors, deltas) + 1, "differ from retinanet_lite.boxes.decode_boxes"),
], ids=["no-clamp", "clamp-both", "clamp-after", "dy-width", "no-exp", "corner", "cxcywh", "shape", "other"])
def test_decode_mistakes(wrong, fragment):
    assert_fails("decode_clamped", wrong, fragment)


def test_decode_right_answers_pass_and_the_package_does_not():
    assert_passes("decode_clamped", decode)
    assert_passes("decode_clamped", decode_other)
    assert_fails("decode_clamped", B.decode_boxes, "ready-made version")
    assert_fails("decode_clamped", lambda a, d: B.decode_boxes(a, d), "ready-made version")


# ---------------------------------------------------------------------------------------- candidates
def top_candidates(logits, deltas, anchors, per_level, score_thresh=0.05, k=1000):  # the lesson's solution
    num_classes = logits.shape[1]
    boxes, scores, labels = [], [], []
    for level_logits, level_deltas, level_anchors in zip(
            logits.split(per_level), deltas.split(per_level), anchors.split(per_level)):
        level_scores = level_logits.sigmoid().flatten()
        top_scores, flat_index = level_scores.topk(min(k, len(level_scores)))
        keep = top_scores > score_thresh
        top_scores, flat_index = top_scores[keep], flat_index[keep]
        anchor_index = flat_index // num_classes
        boxes.append(decode(level_anchors[anchor_index], level_deltas[anchor_index]))
        scores.append(top_scores)
        labels.append(flat_index % num_classes)
    return torch.cat(boxes), torch.cat(scores), torch.cat(labels)


def top_candidates_other(logits, deltas, anchors, per_level, score_thresh=0.05, k=1000):
    """Another right answer: threshold first with nonzero, then sort and cut each level."""
    out, start = [], 0
    for count in per_level:
        probs = logits[start:start + count].sigmoid()
        anchor, label = (probs > score_thresh).nonzero(as_tuple=True)
        score = probs[anchor, label]
        order = score.argsort(descending=True, stable=True)[:k]
        anchor, label, score = anchor[order] + start, label[order], score[order]
        out.append((decode_other(anchors[anchor], deltas[anchor]), score, label))
        start += count
    return tuple(torch.cat(parts) for parts in zip(*out))


def candidates_with(swap=False, total_k=False, no_threshold=False, logits_as_scores=False, anchors_only=False,
                    sorted_overall=False, fixed_threshold=False):
    def wrong(logits, deltas, anchors, per_level, score_thresh=0.05, k=1000):
        threshold = 0.05 if fixed_threshold else score_thresh
        num_classes = logits.shape[1]
        if total_k:
            per_level = [sum(per_level)]
        boxes, scores, labels = [], [], []
        for lg, dl, an in zip(logits.split(per_level), deltas.split(per_level), anchors.split(per_level)):
            flat = lg.flatten() if logits_as_scores else lg.sigmoid().flatten()
            top, index = flat.topk(min(k, len(flat)))
            keep = top > (-1e9 if no_threshold or logits_as_scores else threshold)
            if logits_as_scores:
                keep = lg.sigmoid().flatten()[index] > threshold
            top, index = top[keep], index[keep]
            a, c = (index % num_classes, index // num_classes) if swap else (index // num_classes, index % num_classes)
            boxes.append(an[a] if anchors_only else decode(an[a], dl[a]))
            scores.append(top)
            labels.append(c)
        boxes, scores, labels = torch.cat(boxes), torch.cat(scores), torch.cat(labels)
        if sorted_overall:
            order = scores.argsort(descending=True)
            return boxes[order], scores[order], labels[order]
        return boxes, scores, labels
    return wrong


@pytest.mark.parametrize("wrong, fragment", [
    (candidates_with(swap=True), "anchor and class are swapped"),
    (candidates_with(logits_as_scores=True), "not probabilities"),
    (candidates_with(no_threshold=True), "apply the score threshold"),
    (candidates_with(sorted_overall=True), "in the wrong order"),
    (candidates_with(anchors_only=True), "the anchors themselves"),
    (candidates_with(total_k=True), "the cap is per level"),
    (candidates_with(fixed_threshold=True), "not a fixed 0.05"),
    (lambda *args, **kw: candidates_with()(*args, **kw)[:2], "should return three tensors"),
], ids=["swap", "logits", "no-threshold", "order", "anchors", "total-k", "fixed-threshold", "two-outputs"])
def test_top_candidates_mistakes(wrong, fragment):
    assert_fails("top_candidates", wrong, fragment)


def test_top_candidates_right_answers_pass_and_the_package_does_not():
    assert_passes("top_candidates", top_candidates)
    assert_passes("top_candidates", top_candidates_other)
    assert_fails("top_candidates", L.reference_top_candidates, "ready-made version")
    assert_fails("top_candidates", lambda *a, **k: L.reference_top_candidates(*a, **k), "ready-made version")


# ----------------------------------------------------------------------------------------------- NMS
def nms(boxes, scores, iou_threshold):  # the lesson's solution
    order = scores.argsort(descending=True)
    keep = []
    while len(order) > 0:
        best, rest = order[0], order[1:]
        keep.append(int(best))
        ious = box_iou(boxes[best][None], boxes[rest])[0]
        order = rest[ious <= iou_threshold]
    return torch.tensor(keep, dtype=torch.long)


def nms_other(boxes, scores, iou_threshold):
    """Another right answer: a mask of the boxes still alive over the IoU matrix."""
    order = torch.sort(scores, descending=True).indices
    ious = box_iou(boxes, boxes)
    alive = torch.ones(len(boxes), dtype=torch.bool)
    keep = []
    for i in order.tolist():
        if alive[i]:
            keep.append(i)
            alive &= ious[i] <= iou_threshold
    return torch.as_tensor(keep, dtype=torch.long)


def nms_with(ascending=False, at_threshold=False, drop_best=False, suppressed_suppress=False, unsorted=False,
             mask=False):
    def wrong(boxes, scores, iou_threshold):
        order = scores.argsort(descending=not ascending)
        ious = box_iou(boxes, boxes)
        if suppressed_suppress:
            keep = [int(i) for n, i in enumerate(order)
                    if not (ious[i, order[:n]] > iou_threshold).any()]
            return torch.tensor(keep, dtype=torch.long)
        keep = []
        while len(order):
            best, rest = order[0], order[1:]
            if not drop_best:
                keep.append(int(best))
            over = ious[best, rest] >= iou_threshold if at_threshold else ious[best, rest] > iou_threshold
            if drop_best:
                keep += [int(r) for r in rest[over]]
            order = rest[~over]
        keep = torch.tensor(keep, dtype=torch.long)
        if mask:
            result = torch.zeros(len(boxes), dtype=torch.bool)
            result[keep] = True
            return result
        return keep.sort().values if unsorted else keep
    return wrong


@pytest.mark.parametrize("wrong, fragment", [
    (nms_with(ascending=True), "ascending score"),
    (nms_with(at_threshold=True), "not ≥"),
    (nms_with(suppressed_suppress=True), "already suppressed still suppresses"),
    (nms_with(drop_best=True), "highest-scoring box is not kept"),
    (nms_with(unsorted=True), "best score first"),
    (nms_with(mask=True), "boolean mask"),
], ids=["ascending", "at-threshold", "suppressed-suppress", "drop-best", "unsorted", "mask"])
def test_nms_mistakes(wrong, fragment):
    assert_fails("nms", wrong, fragment)


def test_nms_right_answers_pass_and_ready_made_ones_do_not():
    assert_passes("nms", nms)
    assert_passes("nms", nms_other)
    assert_fails("nms", L.reference_nms, "ready-made version")
    assert_fails("nms", torchvision.ops.nms, "ready-made version")
    assert_fails("nms", lambda b, s, t: torchvision.ops.nms(b, s, t), "ready-made version")
    assert_fails("nms", lambda b, s, t: B.class_wise_nms(b, s, torch.zeros(len(b), dtype=torch.long), t),
                 "ready-made version")


def nms_per_class(boxes, scores, labels, iou_threshold):  # the lesson's solution
    kept = [torch.zeros(0, dtype=torch.long)]
    for label in labels.unique():
        mine = (labels == label).nonzero(as_tuple=True)[0]
        kept.append(mine[nms(boxes[mine], scores[mine], iou_threshold)])
    kept = torch.cat(kept)
    return kept[scores[kept].argsort(descending=True)]


def nms_per_class_other(boxes, scores, labels, iou_threshold):
    """Another right answer: the offset trick, with the student's own nms."""
    if len(boxes) == 0:
        return torch.zeros(0, dtype=torch.long)
    shift = labels[:, None].float() * (boxes.max() - boxes.min() + 1)
    return nms_other(boxes + shift, scores, iou_threshold)


def per_class_with(across=False, local=False, unsorted=False):
    def wrong(boxes, scores, labels, iou_threshold):
        if across:
            return nms(boxes, scores, iou_threshold)
        kept = [torch.zeros(0, dtype=torch.long)]
        for label in labels.unique():
            mine = (labels == label).nonzero(as_tuple=True)[0]
            chosen = nms(boxes[mine], scores[mine], iou_threshold)
            kept.append(chosen if local else mine[chosen])
        kept = torch.cat(kept)
        return kept if unsorted else kept[scores[kept].argsort(descending=True)]
    return wrong


@pytest.mark.parametrize("wrong, fragment", [
    (per_class_with(across=True), "NMS across classes"),
    (per_class_with(local=True), "point into one class's boxes"),
    (per_class_with(unsorted=True), "sort the kept boxes of all classes"),
], ids=["across", "local", "unsorted"])
def test_nms_per_class_mistakes(wrong, fragment):
    assert_fails("nms_per_class", wrong, fragment)


def test_nms_per_class_right_answers_pass_also_on_the_fallback_nms_and_ready_made_ones_do_not():
    assert_passes("nms_per_class", nms_per_class)
    assert_passes("nms_per_class", nms_per_class_other)

    def on_fallback(boxes, scores, labels, iou_threshold):  # a right answer whose nms is the lesson's fallback
        kept = [torch.zeros(0, dtype=torch.long)]
        for label in labels.unique():
            mine = (labels == label).nonzero(as_tuple=True)[0]
            kept.append(mine[L.reference_nms(boxes[mine], scores[mine], iou_threshold)])
        kept = torch.cat(kept)
        return kept[scores[kept].argsort(descending=True)]

    assert_passes("nms_per_class", on_fallback)
    assert_fails("nms_per_class", B.class_wise_nms, "ready-made version")
    assert_fails("nms_per_class", torchvision.ops.batched_nms, "ready-made version")
    assert_fails("nms_per_class", lambda *a: B.class_wise_nms(*a), "ready-made version")


# -------------------------------------------------------------------------------------------- detect
def make_detect(rescale=True, clip="image", cap="after", fixed=False, uncapped=False):
    @torch.no_grad()
    def detect(model, images):
        c = model.config
        thresh, k, iou, most = (0.05, 1000, 0.5, 100) if fixed else (c.score_thresh, c.topk_candidates, c.nms_iou,
                                                                      c.max_detections)
        batch, scales = model.prepare_batch(images)
        logits, deltas = model.head_outputs(batch)
        anchors = model.anchors(tuple(batch.shape[-2:]), batch.device)
        per_level = anchors_per_level(tuple(batch.shape[-2:]), c.strides, c.num_anchors)
        results = []
        for i, image in enumerate(images):
            boxes, scores, labels = top_candidates(logits[i], deltas[i], anchors, per_level, thresh, k)
            if rescale:
                boxes = boxes / scales[i]
            if clip != "none":
                boxes = clip_boxes(boxes, tuple(image.shape[-2:]) if clip == "image" else tuple(batch.shape[-2:]))
            if cap == "before":
                first = scores.argsort(descending=True)[:most]
                boxes, scores, labels = boxes[first], scores[first], labels[first]
            keep = nms_per_class(boxes, scores, labels, iou)
            if cap == "after" and not uncapped:
                keep = keep[:most]
            results.append({"boxes": boxes[keep], "scores": scores[keep], "labels": labels[keep]})
        return results
    return detect


@pytest.mark.parametrize("wrong, fragment", [
    (make_detect(fixed=True), "the numbers are fixed"),
    (make_detect(rescale=False), "not divided by the resize factor"),
    (make_detect(clip="none"), "the boxes are not clipped"),
    (make_detect(clip="batch"), "clipped to the padded batch"),
    (make_detect(cap="before"), "the cap comes before NMS"),
    (make_detect(uncapped=True), "more than max_detections"),
    (lambda model, images: make_detect()(model, images)[:1], "one dict per image"),
], ids=["fixed", "no-rescale", "no-clip", "batch-clip", "cap-before", "no-cap", "one-result"])
def test_detect_mistakes(wrong, fragment):
    assert_fails("detect", wrong, fragment)


def test_detect_right_answer_passes_and_the_model_does_not():
    assert_passes("detect", make_detect())
    assert_fails("detect", L.reference_detect, "ready-made version")
    assert_fails("detect", lambda model, images: model(images), "ready-made version")


def test_the_detect_checkers_pipeline_is_the_models():
    model, images = L._detect_model(), list(L._detect_images())
    with torch.no_grad():
        assert L._same_detections(L._pipeline(model, images), model(images))


# --------------------------------------------------------------------------------- precision / recall
def precision_recall_curve(scores, true_positive, num_objects):  # the lesson's solution
    order = np.argsort(-scores, kind="mergesort")
    tp = np.cumsum(true_positive[order])
    return tp / np.arange(1, len(tp) + 1), tp / num_objects


def precision_recall_curve_other(scores, true_positive, num_objects):  # in torch, through a sorted tensor
    order = torch.as_tensor(scores).argsort(descending=True, stable=True)
    tp = torch.as_tensor(true_positive)[order].double().cumsum(0)
    return (tp / torch.arange(1, len(tp) + 1)).numpy(), (tp / num_objects).numpy()


def pr_with(order="descending", recall_by="objects", precision_by="n", running=True):
    def wrong(scores, true_positive, num_objects):
        index = {"descending": np.argsort(-scores), "ascending": np.argsort(scores),
                 "none": np.arange(len(scores))}[order]
        flags = true_positive[index].astype(float)
        tp = np.cumsum(flags) if running else flags
        precision = tp / (np.arange(1, len(tp) + 1) if precision_by == "n" else num_objects)
        return precision, tp / (num_objects if recall_by == "objects" else max(len(tp), 1))
    return wrong


@pytest.mark.parametrize("wrong, fragment", [
    (pr_with(order="none"), "not sorted by score"),
    (pr_with(order="ascending"), "ascending score"),
    (pr_with(recall_by="detections"), "recall is divided by the number of detections"),
    (pr_with(precision_by="objects"), "precision is divided by the number of objects"),
    (pr_with(running=False), "not running totals"),
    (lambda s, t, n: pr_with()(s, t, n)[0], "two arrays"),
], ids=["unsorted", "ascending", "recall-by-detections", "precision-by-objects", "no-cumsum", "one-output"])
def test_precision_recall_curve_mistakes(wrong, fragment):
    assert_fails("precision_recall_curve", wrong, fragment)


def test_precision_recall_curve_right_answers_pass_and_the_fallback_does_not():
    assert_passes("precision_recall_curve", precision_recall_curve)
    assert_passes("precision_recall_curve", precision_recall_curve_other)
    assert_fails("precision_recall_curve", L.reference_precision_recall_curve, "ready-made version")


def average_precision(scores, true_positive, num_objects):  # the lesson's solution
    precision, recall = precision_recall_curve(scores, true_positive, num_objects)
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    total = 0.0
    for r in np.linspace(0, 1, 101):
        reached = recall >= r
        total += envelope[reached].max() if reached.any() else 0.0
    return total / 101


def average_precision_other(scores, true_positive, num_objects):
    """Another right answer: searchsorted on the recall, the envelope by a loop from the right."""
    precision, recall = precision_recall_curve_other(scores, true_positive, num_objects)
    precision = list(precision)
    for n in range(len(precision) - 2, -1, -1):
        precision[n] = max(precision[n], precision[n + 1])
    levels = np.linspace(0, 1, 101)
    index = np.searchsorted(recall, levels, side="left")
    return float(sum(precision[i] for i in index if i < len(precision)) / len(levels))


def ap_with(envelope="right", levels=None, divide="all", recall_by="objects", sort=True):
    def wrong(scores, true_positive, num_objects):
        order = np.argsort(-scores, kind="mergesort") if sort else np.arange(len(scores))
        tp = np.cumsum(true_positive[order])
        precision = tp / np.arange(1, len(tp) + 1)
        recall = tp / (num_objects if recall_by == "objects" else max(len(tp), 1))
        if envelope == "right":
            precision = np.maximum.accumulate(precision[::-1])[::-1]
        elif envelope == "left":
            precision = np.maximum.accumulate(precision)
        values = []
        for r in (np.linspace(0, 1, 101) if levels is None else levels):
            reached = np.nonzero(recall >= r)[0]
            if len(reached):
                values.append(precision[reached[0]])
            elif divide == "all":
                values.append(0.0)
        return sum(values) / len(values) if values else 0.0
    return wrong


@pytest.mark.parametrize("wrong, fragment", [
    (ap_with(envelope="none"), "AP without the precision envelope"),
    (ap_with(envelope="left"), "the envelope runs the wrong way"),
    (ap_with(levels=np.linspace(0, 1, 100)), "100 recall levels instead of 101"),
    (ap_with(levels=np.arange(100) / 100), "stop at 0.99"),
    (ap_with(levels=np.linspace(0, 1, 11)), "11 recall levels"),
    (ap_with(divide="reached"), "divided by the levels that are reached"),
    (ap_with(recall_by="detections"), "recall is divided by the number of detections"),
    (ap_with(sort=False), "not sorted by score"),
], ids=["no-envelope", "left-envelope", "100-levels", "to-0.99", "11-levels", "reached", "by-detections",
        "unsorted"])
def test_average_precision_mistakes(wrong, fragment):
    assert_fails("average_precision", wrong, fragment)


def test_average_precision_right_answers_pass_and_ready_made_ones_do_not():
    assert_passes("average_precision", average_precision)
    assert_passes("average_precision", average_precision_other)
    # a right answer that uses the lesson's fallback for the curve
    assert_passes("average_precision", lambda s, t, n: average_precision_other(s, t, n))
    assert_fails("average_precision", L.reference_average_precision, "ready-made version")
    assert_fails("average_precision", lambda s, t, n: L.reference_average_precision(s, t, n), "ready-made version")


# ----------------------------------------------------------------------------------- matching and mAP
def match_detections(boxes, scores, gt_boxes, iou_threshold):  # the lesson's solution
    order = scores.argsort(descending=True, stable=True)
    true_positive = np.zeros(len(boxes), dtype=bool)
    if len(gt_boxes) == 0:
        return true_positive
    ious = box_iou(boxes.double(), gt_boxes.double())
    claimed = torch.zeros(len(gt_boxes), dtype=torch.bool)
    for d in order.tolist():
        free = torch.where(claimed, -1.0, ious[d])
        best = int(free.argmax())
        if free[best] >= iou_threshold:
            claimed[best] = True
            true_positive[d] = True
    return true_positive


def match_detections_other(boxes, scores, gt_boxes, iou_threshold):
    """Another right answer: plain Python lists and the pair-IoU of lesson 01's style."""
    def iou(a, b):
        w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
        return w * h / union
    dets, gts = boxes.double().tolist(), gt_boxes.double().tolist()
    taken, flags = set(), [False] * len(dets)
    for d in sorted(range(len(dets)), key=lambda d: -float(scores[d])):
        options = [(iou(dets[d], g), n) for n, g in enumerate(gts) if n not in taken]
        options = [o for o in options if o[0] >= iou_threshold]
        if options:
            taken.add(max(options)[1])
            flags[d] = True
    return flags


def match_with(**switches):
    return lambda boxes, scores, gt, t: L._match_variant(boxes, scores, gt, t, **switches)


def match_twice(boxes, scores, gt_boxes, iou_threshold):  # written as a student would, without `claimed`
    if len(gt_boxes) == 0:
        return np.zeros(len(boxes), dtype=bool)
    return (box_iou(boxes, gt_boxes).max(dim=1).values >= iou_threshold).numpy()


@pytest.mark.parametrize("wrong, fragment", [
    (match_twice, "a ground truth is matched twice"),
    (match_with(in_score_order=False), "in the order given"),
    (match_with(best_even_if_claimed=True), "best *unclaimed* object"),
    (match_with(first_above=True), "first object above the threshold"),
    (match_with(strict=True), "IoU exactly at the threshold"),
    (lambda b, s, g, t: match_detections(b, s, g, t)[:1], "should have shape"),
], ids=["twice", "input-order", "claimed-best", "first-above", "strict", "shape"])
def test_match_detections_mistakes(wrong, fragment):
    assert_fails("match_detections", wrong, fragment)


def test_match_detections_right_answers_pass_and_ready_made_ones_do_not():
    assert_passes("match_detections", match_detections)
    assert_passes("match_detections", match_detections_other)
    assert_fails("match_detections", L.reference_match_detections, "ready-made version")


def mean_ap(predictions, targets, iou_thresholds, num_classes=3):  # the lesson's solution
    aps = []
    for label in range(num_classes):
        num_objects = sum(int((t["labels"] == label).sum()) for t in targets)
        if num_objects == 0:
            continue
        for iou_threshold in iou_thresholds:
            scores, tps = [], []
            for p, t in zip(predictions, targets):
                mine = p["labels"] == label
                scores.append(p["scores"][mine].numpy())
                tps.append(match_detections(p["boxes"][mine], p["scores"][mine],
                                            t["boxes"][t["labels"] == label], iou_threshold))
            aps.append(average_precision(np.concatenate(scores), np.concatenate(tps), num_objects))
    return float(np.mean(aps))


def mean_ap_other(predictions, targets, iou_thresholds, num_classes=3):
    """Another right answer, on the lesson's fallbacks for matching and AP: thresholds outermost."""
    per_threshold = []
    for t in iou_thresholds:
        aps = {}
        for label in range(num_classes):
            pairs = [(p["scores"][p["labels"] == label], L.reference_match_detections(
                p["boxes"][p["labels"] == label], p["scores"][p["labels"] == label],
                g["boxes"][g["labels"] == label], t)) for p, g in zip(predictions, targets)]
            count = sum(int((g["labels"] == label).sum()) for g in targets)
            if count:
                aps[label] = L.reference_average_precision(torch.cat([s for s, _ in pairs]).numpy(),
                                                           np.concatenate([f for _, f in pairs]), count)
        per_threshold.append(list(aps.values()))
    return float(np.mean(per_threshold))


def map_with(**switches):
    return lambda predictions, targets, thresholds, num_classes=3: L._map_variant(predictions, targets, thresholds,
                                                                                  **switches)


@pytest.mark.parametrize("wrong, fragment", [
    (map_with(skip_empty=False), "a class without objects counts as AP 0"),
    (map_with(pool=False), "computed per image and averaged"),
    (map_with(objects_of="all"), "num_objects counts the objects of every class"),
    (map_with(gt_of="all"), "objects of every class"),
], ids=["empty-class", "per-image", "all-objects", "all-gt"])
def test_mean_ap_mistakes(wrong, fragment):
    assert_fails("mean_ap", wrong, fragment)


def test_mean_ap_right_answers_pass_and_ready_made_ones_do_not():
    assert_passes("mean_ap", mean_ap)
    assert_passes("mean_ap", mean_ap_other)
    assert_fails("mean_ap", L.reference_mean_ap, "ready-made version")
    assert_fails("mean_ap", lambda *a: L.reference_mean_ap(*a), "ready-made version")


def test_the_fallbacks_agree_with_the_lessons_solutions():
    """The package's versions that the lesson falls back on compute what the solutions compute."""
    predictions, targets = L._map_data()
    for thresholds in ([0.5], [0.75], [0.5 + 0.05 * i for i in range(10)]):
        assert L.reference_mean_ap(predictions, targets, thresholds) == pytest.approx(
            mean_ap(predictions, targets, thresholds), abs=1e-9)
    for _, scores, flags, count in L._pr_cases():
        assert L.reference_average_precision(scores, flags, count) == pytest.approx(
            average_precision(scores, flags, count), abs=1e-9)


# --- predict_nms_off: the stored answer is what the thresholds explorer shows ----------------------------------

def test_nms_at_threshold_1_deletes_nothing():
    """Structural half of predict_nms_off's answer: no IoU is above 1, so NMS at 1.0 keeps every box."""
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0]] * 3 + [[1.0, 0.0, 11.0, 10.0]])
    kept = B.class_wise_nms(boxes, torch.tensor([0.9, 0.8, 0.7, 0.6]), torch.zeros(4, dtype=torch.long), 1.0)
    assert sorted(kept.tolist()) == [0, 1, 2, 3]


def test_predict_nms_off_is_what_the_explorer_shows(lesson_model):
    from retinanet_lite.data import VAL_SEED_OFFSET, ShapesDataset
    from retinanet_lite.widgets.inference import draw_thresholds
    from workbook_checks import prediction_is
    dataset = ShapesDataset(32, 128, seed=VAL_SEED_OFFSET)
    usual = draw_thresholds(0.05, 0.5, 0, model=lesson_model, dataset=dataset)
    off = draw_thresholds(0.05, 1.0, 0, model=lesson_model, dataset=dataset)
    objects = len(dataset[0][1]["boxes"])
    assert objects == 4 and usual["missed"] == 0  # as the question says
    if off["detections"] == min(off["candidates"], lesson_model.config.max_detections) and off["true_positives"] == objects:
        answer = "a"
    elif off == usual:
        answer = "b"
    elif off["true_positives"] > usual["true_positives"]:
        answer = "c"
    else:
        answer = "d"
    prediction_is("08_inference_and_map.ipynb", "predict_nms_off", answer)
