"""Lesson 11's exercise checks name the usual mistakes, pass other correct answers, and refuse the package's."""
import math

import pytest
import torch

from retinanet_lite.config import preset_config, preset_recipe
from retinanet_lite.data.tiling import crop_target
from retinanet_lite.tta import unview_boxes
from retinanet_lite.workbook import lesson11, lesson_exercises
from workbook_checks import failed_with, notebook_check, passes

LESSON = "11_tree_crowns.ipynb"


def test_exercises_are_registered_in_the_lessons_order():
    assert [e.name for e in lesson_exercises("11")] == ["crop_target", "unview_boxes", "recall_by_size", "one_change",
                                                        "verdict"]


def cropper(shift=True, clip=True, rule=lambda inside, area, mv: inside >= mv * area, labels=True):
    """A crop_target written by hand, with one of the usual slips switched on."""
    def crop(target, window, min_visible=0.5):
        x1, y1, x2, y2 = window
        boxes = target["boxes"]
        moved = boxes - torch.tensor([x1, y1, x1, y1], dtype=boxes.dtype)
        clipped = torch.stack([moved[:, 0].clamp(0, x2 - x1), moved[:, 1].clamp(0, y2 - y1),
                               moved[:, 2].clamp(0, x2 - x1), moved[:, 3].clamp(0, y2 - y1)], 1)
        area = (boxes[:, 2:] - boxes[:, :2]).prod(1)
        keep = rule((clipped[:, 2:] - clipped[:, :2]).prod(1), area, min_visible)
        out = clipped if clip else moved
        out = out if shift else out + torch.tensor([x1, y1, x1, y1], dtype=boxes.dtype)
        return {"boxes": out[keep], "labels": target["labels"][keep] if labels else target["labels"][:int(keep.sum())]}
    return crop


def test_crop_target():
    passes("crop_target", cropper())
    failed_with("crop_target", crop_target, "ready-made")
    failed_with("crop_target", cropper(shift=False), "in the image's coordinates")
    failed_with("crop_target", cropper(clip=False), "not clipped")
    failed_with("crop_target", cropper(rule=lambda i, a, mv: i > mv * a), "exactly that fraction is kept (≥)")
    failed_with("crop_target", cropper(rule=lambda i, a, mv: i >= a), "only the crowns wholly inside")
    failed_with("crop_target", cropper(rule=lambda i, a, mv: i > 0), "however little")
    failed_with("crop_target", cropper(rule=lambda i, a, mv: i >= mv * 100 * 80), "you keep")
    failed_with("crop_target", cropper(labels=False), "do not follow their boxes")


def unviewer(mirror="last", turns_back=True, widths="alternate"):
    """unview_boxes written by hand (its own quarter-turn formula), with one of the usual slips switched on."""
    def turn(boxes, width):  # a quarter turn counter-clockwise: pixel (y, x) → (width - 1 - x, y)
        return torch.stack([boxes[:, 1], width - boxes[:, 2], boxes[:, 3], width - boxes[:, 0]], 1)

    def mirrored(boxes, width):
        return torch.stack([width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0], boxes[:, 3]], 1)

    def unview(boxes, size, turns, flip):
        height, width = size
        view_width, view_height = (height, width) if turns % 2 else (width, height)
        if flip and mirror == "first":
            boxes = mirrored(boxes, view_width)
        now_width, now_height = (width, height) if widths == "original" else (view_width, view_height)
        for _ in range((4 - turns) % 4 if turns_back else turns):
            boxes = turn(boxes, now_width)
            if widths != "fixed":
                now_width, now_height = now_height, now_width
        return mirrored(boxes, width) if flip and mirror == "last" else boxes
    return unview


def test_unview_boxes():
    passes("unview_boxes", unviewer())
    failed_with("unview_boxes", unview_boxes, "ready-made")
    failed_with("unview_boxes", lambda boxes, size, turns, flip: boxes, "as the view shows them")
    failed_with("unview_boxes", unviewer(mirror="never"), "the mirror is not")
    failed_with("unview_boxes", unviewer(mirror="first"), "undone first")
    failed_with("unview_boxes", unviewer(turns_back=False), "wrong way")
    failed_with("unview_boxes", unviewer(widths="fixed"), "wrong width")
    failed_with("unview_boxes", unviewer(widths="original"), "wrong width")
    failed_with("unview_boxes", lambda boxes, size, turns, flip: unviewer()(boxes, size, turns, flip)[:2], "shape")
    failed_with("unview_boxes", lambda boxes, size, turns, flip: unviewer()(boxes, size, turns, flip) + 1, "should map")


def binned(sizes, found, edges, count=False, denominator=None, closed_right=False, missed=False, empty=math.nan):
    """recall_by_size written by hand, with one of the usual slips switched on."""
    out = []
    for low, high in zip(edges, edges[1:]):
        in_bin = (sizes > low) & (sizes <= high) if closed_right else (sizes >= low) & (sizes < high)
        if not in_bin.any():
            out.append(empty)
            continue
        hits = float(found[in_bin].sum()) if not missed else float((~found[in_bin]).sum())
        out.append(hits if count else hits / (denominator or int(in_bin.sum())))
    return torch.tensor(out)


def test_recall_by_size():
    passes("recall_by_size", binned)
    passes("recall_by_size", lambda s, f, e: torch.tensor([
        (f & (s >= a) & (s < b)).sum() / ((s >= a) & (s < b)).sum() for a, b in zip(e, e[1:])]))  # 0/0 = NaN
    failed_with("recall_by_size", lesson11.recall_by_size, "ready-made")
    failed_with("recall_by_size", lambda s, f, e: binned(s, f, e, empty=0.0), "should be NaN")
    failed_with("recall_by_size", lambda s, f, e: binned(s, f, e, count=True), "counts of found crowns")
    failed_with("recall_by_size", lambda s, f, e: binned(s, f, e, denominator=len(s)), "divided by all crowns")
    failed_with("recall_by_size", lambda s, f, e: binned(s, f, e, closed_right=True), "upper edge")
    failed_with("recall_by_size", lambda s, f, e: binned(s, f, e, missed=True), "MISSED")
    failed_with("recall_by_size", lambda s, f, e: binned(s, f, e)[:-1], "bins")


def test_one_change_check():
    check = notebook_check(LESSON, "one_change")
    base = {"recipe": preset_recipe("trees-cpu"), "config": preset_config("trees-cpu")}

    def run(change, prediction="worse"):
        check({**base, "one_change": lambda: (change, prediction)})

    run({"rot90": 0.0})
    run({"tile_size": 256}, "better")
    run({"anchor_sizes": (16, 32, 64, 128, 256)}, "no clear change")
    run({"zoom": 0.25})
    with pytest.raises(AssertionError, match="exactly one knob"):
        run({"rot90": 0.0, "hflip": 0.0})
    with pytest.raises(AssertionError, match="exactly one knob"):
        run({})
    with pytest.raises(AssertionError, match="not one of the knobs"):
        run({"lr": 0.01})
    with pytest.raises(AssertionError, match="preset's own value"):
        run({"rot90": preset_recipe("trees-cpu").rot90})
    with pytest.raises(AssertionError, match="preset's own value"):
        run({"anchor_sizes": list(preset_config("trees-cpu").anchor_sizes)})
    with pytest.raises(AssertionError, match="the prediction"):
        run({"rot90": 0.0}, "maybe")


def test_verdict():
    passes("verdict", lambda d, n: "no clear change" if -n <= d <= n else ("better" if d > 0 else "worse"))
    failed_with("verdict", lesson11.judge, "ready-made")
    failed_with("verdict", lambda d, n: "no clear change" if abs(d) < n else ("better" if d > 0 else "worse"), "use ≤")
    failed_with("verdict", lambda d, n: "better" if d > 0 else ("worse" if d < 0 else "no clear change"),
                "the noise is ignored")
    failed_with("verdict", lambda d, n: "no clear change" if 0 <= d <= n else ("better" if d > 0 else "worse"),
                "small negative difference")
    failed_with("verdict", lambda d, n: "no clear change" if abs(d) <= n else ("worse" if d > 0 else "better"),
                "swapped")
    failed_with("verdict", lambda d, n: "no clear change" if abs(d) <= 2 * n else ("better" if d > 0 else "worse"),
                "should be")
