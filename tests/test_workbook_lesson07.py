"""Lesson 07's exercise checks name the usual mistakes, pass other correct answers, and refuse the package's."""
import math
import re
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest
import torch

from retinanet_lite import workbook
from retinanet_lite.boxes import decode_boxes
from retinanet_lite.losses import focal_loss, giou_loss
from retinanet_lite.matching import IGNORE, match_anchors
from retinanet_lite.model import RetinaNet
from retinanet_lite.train import hflip, lr_factor
from retinanet_lite.workbook import lesson07 as W
from workbook_checks import failed_with, passes

LESSON = Path(__file__).resolve().parent.parent / "notebooks" / "07_training.ipynb"



# --- classification_targets ---------------------------------------------------------------------------------

def lesson_targets(matches, labels, num_classes):
    """The lesson's own solution."""
    positive = matches >= 0
    wanted = torch.zeros(len(matches), num_classes, device=matches.device)
    wanted[positive, labels[matches[positive]]] = 1.0
    return wanted


def other_targets(matches, labels, num_classes):
    """A correct answer written differently: one-hot of the labels, masked by the positives."""
    classes = torch.nn.functional.one_hot(labels[matches.clamp(min=0)], num_classes) if len(labels) else \
        torch.zeros(len(matches), num_classes)
    return classes.float() * (matches >= 0).float()[:, None]


def test_classification_targets():
    passes("classification_targets", lesson_targets)
    passes("classification_targets", other_targets)
    failed_with("classification_targets",
                lambda m, l, k: torch.nn.functional.one_hot(l[m], k).float() if len(l) else torch.zeros(len(m), k),
                "background and ignored anchors get a class")
    failed_with("classification_targets", lambda m, l, k: lesson_targets(m, torch.arange(max(len(l), 1)), k),
                "object's index")
    failed_with("classification_targets", lambda m, l, k: lesson_targets(m, (l - 1) % k, k), "shifted by one")
    failed_with("classification_targets", lambda m, l, k: torch.cat([torch.zeros(len(m), 1), lesson_targets(m, l, k)], 1),
                "no background column")
    failed_with("classification_targets", W.classification_targets, "ready-made")


# --- image_loss ---------------------------------------------------------------------------------------------

def make_image_loss(counted="non-ignored", boxes_on="positive", reduction="sum", decode=True, weights=True,
                    positives="anchors"):
    """The lesson's image_loss, with one mistake chosen by the arguments."""
    def image_loss(logits, deltas, anchors, boxes, labels, config):
        matches = match_anchors(anchors, boxes, config.pos_iou, config.neg_iou, config.allow_low_quality)
        positive = matches >= 0
        keep = {"non-ignored": matches != IGNORE, "all": torch.ones_like(positive), "positive": positive}[counted]
        wanted = lesson_targets(matches, labels, logits.shape[-1])
        cls = focal_loss(logits[keep], wanted[keep], config.focal_alpha, config.focal_gamma, reduction)
        on = {"positive": positive, "non-ignored": matches != IGNORE}[boxes_on]
        matched = boxes[matches.clamp(min=0)] if len(boxes) else anchors
        predicted = (decode_boxes(anchors[on], deltas[on], config.box_weights if weights else (1.0, 1.0, 1.0, 1.0))
                     if decode else anchors[on])
        box = giou_loss(predicted, matched[on], reduction)
        count = int(positive.sum()) if positives == "anchors" else len(boxes)
        return cls, box, count
    return image_loss


def other_image_loss(logits, deltas, anchors, boxes, labels, config):
    """A correct answer written differently: losses masked by multiplication, boxes gathered with index_select."""
    matches = match_anchors(anchors, boxes, config.pos_iou, config.neg_iou, config.allow_low_quality)
    weight = (matches != IGNORE).to(logits.dtype)[:, None]
    cls = (focal_loss(logits, other_targets(matches, labels, logits.shape[-1]), config.focal_alpha,
                      config.focal_gamma) * weight).sum()
    index = torch.nonzero(matches >= 0).flatten()
    predicted = decode_boxes(anchors.index_select(0, index), deltas.index_select(0, index), config.box_weights)
    box = giou_loss(predicted, boxes[matches[index]]).sum()
    return cls, box, len(index)


def test_image_loss():
    passes("image_loss", make_image_loss())
    passes("image_loss", other_image_loss)
    failed_with("image_loss", make_image_loss(counted="all"), "ignored anchors are counted")
    failed_with("image_loss", make_image_loss(counted="positive"), "only the positive anchors")
    failed_with("image_loss", make_image_loss(boxes_on="non-ignored"), "includes negative anchors")
    failed_with("image_loss", make_image_loss(decode=False), "does not use the predicted deltas")
    failed_with("image_loss", make_image_loss(weights=False), "box weights are ignored")
    failed_with("image_loss", make_image_loss(reduction="mean"), "averaged")
    failed_with("image_loss", make_image_loss(positives="objects"), "number of objects")
    failed_with("image_loss", W.image_loss, "ready-made")
    failed_with("image_loss", lambda *args: W.image_loss(*args), "ready-made")


# --- batch_loss ---------------------------------------------------------------------------------------------

def make_batch_loss(normalise="positives", at_least_one=True, weight=True, per_image=False):
    """The lesson's batch_loss (on the package's image_loss), with one mistake chosen by the arguments."""
    image_loss = make_image_loss()

    def batch_loss(logits, deltas, anchors, targets, config):
        sums = [image_loss(lg, dl, anchors, t["boxes"], t["labels"], config) for lg, dl, t in zip(logits, deltas, targets)]
        lam = config.box_loss_weight if weight else 1.0
        if per_image:
            parts = [(c / max(p, 1), lam * b / max(p, 1)) for c, b, p in sums]
            return {"classification": sum(p[0] for p in parts) / len(parts),
                    "regression": sum(p[1] for p in parts) / len(parts)}
        cls, box = sum(s[0] for s in sums), sum(s[1] for s in sums)
        count = {"positives": sum(s[2] for s in sums), "anchors": logits.shape[0] * logits.shape[1],
                 "objects": sum(len(t["boxes"]) for t in targets)}[normalise]
        count = max(count, 1) if at_least_one else count
        return {"classification": cls / count, "regression": lam * box / count}
    return batch_loss


def other_batch_loss(logits, deltas, anchors, targets, config):
    """A correct answer written differently: stack the per-image sums, one division at the end."""
    sums = torch.stack([torch.stack([torch.as_tensor(v, dtype=logits.dtype) for v in
                                     other_image_loss(lg, dl, anchors, t["boxes"], t["labels"], config)])
                        for lg, dl, t in zip(logits, deltas, targets)]).sum(0)
    cls, box, count = sums.unbind()
    count = count.clamp(min=1)
    return {"classification": cls / count, "regression": box * config.box_loss_weight / count}


def test_batch_loss():
    passes("batch_loss", make_batch_loss())
    passes("batch_loss", other_batch_loss)
    failed_with("batch_loss", make_batch_loss(normalise="anchors"), "normalised by all anchors")
    failed_with("batch_loss", make_batch_loss(normalise="objects"), "normalised by the number of objects")
    failed_with("batch_loss", make_batch_loss(at_least_one=False), "zero positives divide by 0")
    failed_with("batch_loss", make_batch_loss(weight=False), "box_loss_weight")
    failed_with("batch_loss", make_batch_loss(per_image=True), "per-image losses are averaged")
    failed_with("batch_loss", W.batch_loss, "ready-made")
    failed_with("batch_loss", lambda lg, dl, a, t, c: RetinaNet.loss(SimpleNamespace(config=c), lg, dl, a, t), "ready-made")


def test_the_fallbacks_agree_with_the_model():
    config = W.CONFIGS[1]
    anchors = W.config_anchors(config, (128, 128))
    targets = W.shapes_targets(3, seed=1)
    logits, deltas = W.head_outputs(3, len(anchors), config.num_classes, seed=2)
    sums = [W.image_loss(lg, dl, anchors, t["boxes"], t["labels"], config) for lg, dl, t in zip(logits, deltas, targets)]
    positives = max(sum(s[2] for s in sums), 1)
    expected = W.batch_loss(logits, deltas, anchors, targets, config)
    assert math.isclose(float(sum(s[0] for s in sums)) / positives, float(expected["classification"]), rel_tol=1e-5)
    assert math.isclose(2.0 * float(sum(s[1] for s in sums)) / positives, float(expected["regression"]), rel_tol=1e-5)


# --- the end-of-lesson exercises: their asserts live in the notebook's check cells ----------------------------

def run_check_cell(name, **answers):
    """Run exercise ``name``'s check cell of the lesson (strict, as the grader does) with ``answers`` defined."""
    cell = next(c for c in nbformat.read(LESSON, as_version=4).cells
                if "exercise-check" in c.metadata.get("tags", []) and c.metadata.get("exercise") == name)
    exec(cell.source, {"workbook": workbook, "torch": torch, "math": math, "lr_factor": lr_factor, "hflip": hflip,
                       **answers})


def lesson_warmup_cosine(step, warmup, total):
    if step < warmup:
        return 0.01 + 0.99 * step / warmup
    return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))


@pytest.mark.parametrize("wrong, words", [
    (lambda s, w, t: s / w if s < w else lesson_warmup_cosine(s, w, t), "starts from 0"),
    (lambda s, w, t: lesson_warmup_cosine(s, w, t) if s < w else 0.5 * (1 + math.cos(math.pi * min(1.0, s / t))),
     "runs over all the steps"),
    (lambda s, w, t: lesson_warmup_cosine(s, w, t) if s <= t else 0.5 * (1 + math.cos(math.pi * (s - w) / (t - w))),
     "clamp the progress"),
], ids=["warmup-from-0", "cosine-over-all-steps", "no-clamp"])
def test_warmup_cosine_check_names_the_mistake(monkeypatch, wrong, words):
    monkeypatch.setenv("RETINANET_WORKBOOK", "strict")
    run_check_cell("warmup_cosine", warmup_cosine=lesson_warmup_cosine)
    run_check_cell("warmup_cosine", warmup_cosine=lambda s, w, t: lr_factor(s, w, t) * 1.0)
    with pytest.raises(workbook.ExerciseFailed, match=re.escape(words)):
        run_check_cell("warmup_cosine", warmup_cosine=wrong)


def flip(boxes, width, swap=True, minus_one=False):
    x1, y1, x2, y2 = boxes.unbind(-1)
    left, right = (width - x2, width - x1) if swap else (width - x1, width - x2)
    shift = 1 if minus_one else 0
    return torch.stack([left - shift, y1, right - shift, y2], -1)


@pytest.mark.parametrize("wrong, words", [
    (lambda b, w: flip(b, w, swap=False), "x1 and x2 are not swapped"),
    (lambda b, w: flip(b, w, minus_one=True), "one pixel"),
    (lambda b, w: flip(b, w)[:, [0, 3, 2, 1]], "y coordinates changed"),
], ids=["no-swap", "minus-one", "y-changed"])
def test_flip_boxes_check_names_the_mistake(monkeypatch, wrong, words):
    monkeypatch.setenv("RETINANET_WORKBOOK", "strict")
    run_check_cell("flip_boxes", flip_boxes=flip)
    run_check_cell("flip_boxes", flip_boxes=lambda b, w: b[:, [2, 1, 0, 3]] * torch.tensor([-1.0, 1, -1, 1]) +
                   torch.tensor([float(w), 0, float(w), 0]))
    with pytest.raises(workbook.ExerciseFailed, match=re.escape(words)):
        run_check_cell("flip_boxes", flip_boxes=wrong)


def test_lesson_07_exercises_in_order():
    assert [e.name for e in workbook.lesson_exercises("07")] == [
        "classification_targets", "image_loss", "batch_loss", "drill", "warmup_cosine", "flip_boxes"]
    metadata = nbformat.read(LESSON, as_version=4).metadata["workbook"]
    assert [e["name"] for e in metadata["exercises"]] == [e.name for e in workbook.lesson_exercises("07")]
