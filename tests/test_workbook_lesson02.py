"""Lesson 02's workbook checks: each named mistake is caught with its message, right answers pass,
and the package's own anchors do not earn the exercise."""
from __future__ import annotations

import math

import pytest
import torch

from retinanet_lite import anchors as A
from retinanet_lite import workbook
from retinanet_lite.workbook import lesson02
from workbook_checks import failed_with as assert_fails


def status(name, answer):
    return workbook.run_checker(name, answer)



# --- the instructor's solutions (as in notebooks/02_anchors.ipynb) ----------------------------------

def cell_anchors_by_hand(size, ratios, scales):
    rows = []
    for ratio in ratios:  # ratio = height / width
        for scale in scales:
            side = size * scale  # the anchor has the area of a side × side square
            w, h = side / math.sqrt(ratio), side * math.sqrt(ratio)
            rows.append([-w / 2, -h / 2, w / 2, h / 2])
    return torch.tensor(rows)


def level_anchors_by_hand(image_size, stride, size, ratios, scales, offset=0.5):
    rows, cols = math.ceil(image_size[0] / stride), math.ceil(image_size[1] / stride)
    ys = (torch.arange(rows) + offset) * stride  # centre of each row
    xs = (torch.arange(cols) + offset) * stride  # centre of each column
    cy, cx = torch.meshgrid(ys, xs, indexing="ij")  # [rows, cols] each
    centres = torch.stack([cx, cy, cx, cy], dim=-1).reshape(-1, 1, 4)  # [rows·cols, 1, 4]
    return (centres + cell_anchors_by_hand(size, ratios, scales)[None]).reshape(-1, 4)


def make_anchors_by_hand(image_size, strides, sizes, ratios, scales, offset=0.5):
    if len(strides) != len(sizes):
        raise ValueError(f"one anchor size per stride: {len(sizes)} sizes for {len(strides)} strides")
    return torch.cat([level_anchors_by_hand(image_size, stride, size, ratios, scales, offset)
                      for stride, size in zip(strides, sizes)])


def test_the_instructors_solutions_pass():
    assert status("cell_anchors", cell_anchors_by_hand).state == "passed"
    assert status("level_anchors", level_anchors_by_hand).state == "passed"
    assert status("pyramid_anchors", make_anchors_by_hand).state == "passed"


# --- right answers written differently --------------------------------------------------------------

def cell_vectorised(size, ratios, scales):
    r = torch.tensor(ratios, dtype=torch.float64).repeat_interleave(len(scales))
    s = size * torch.tensor(scales, dtype=torch.float64).repeat(len(ratios))
    half_w, half_h = s / r.sqrt() / 2, s * r.sqrt() / 2
    return torch.stack([-half_w, -half_h, half_w, half_h], dim=1)


def level_with_loops(image_size, stride, size, ratios, scales, offset=0.5):
    cell = cell_vectorised(size, ratios, scales)
    out = []
    for row in range(-(-image_size[0] // stride)):
        for col in range(-(-image_size[1] // stride)):
            cx, cy = (col + offset) * stride, (row + offset) * stride
            out.append(cell + torch.tensor([cx, cy, cx, cy], dtype=torch.float64))
    return torch.cat(out)


def pyramid_with_list(image_size, strides, sizes, ratios, scales, offset=0.5):
    if len(sizes) != len(strides):
        raise ValueError("need as many sizes as strides")
    levels = []
    for i in range(len(strides)):
        levels.append(level_with_loops(image_size, strides[i], sizes[i], ratios, scales, offset))
    return torch.cat(levels, dim=0)


def test_right_answers_written_differently_pass():
    assert status("cell_anchors", cell_vectorised).state == "passed"
    assert status("level_anchors", level_with_loops).state == "passed"
    assert status("pyramid_anchors", pyramid_with_list).state == "passed"


# --- cell anchors: the named mistakes ---------------------------------------------------------------

def cell_with(side=lambda size, scale: size * scale, root=True, w_over_h=False, scale_major=False, corner=False,
              doubled=False):
    def cell(size, ratios, scales):
        pairs = [(r, s) for s in scales for r in ratios] if scale_major else [(r, s) for r in ratios for s in scales]
        rows = []
        for ratio, scale in pairs:
            s = side(size, scale)
            f = math.sqrt(ratio) if root else ratio
            w, h = (s * f, s / f) if w_over_h else (s / f, s * f)
            rows.append([0, 0, w, h] if corner else [-w, -h, w, h] if doubled else [-w / 2, -h / 2, w / 2, h / 2])
        return torch.tensor(rows)
    return cell


@pytest.mark.parametrize("wrong, message", [
    (cell_with(w_over_h=True), "ratio is read as width / height"),
    (cell_with(side=lambda size, scale: size), "sizes are not multiplied by the scales"),
    (cell_with(side=lambda size, scale: scale), "the side is the scale alone"),
    (cell_with(root=False), "the square root is missing"),
    (cell_with(scale_major=True), "wrong order: ratio-major"),
    (cell_with(corner=True), "not centred on (0, 0)"),
    (cell_with(doubled=True), "twice too big"),
    (cell_with(w_over_h=True, scale_major=True), "wrong order, and ratio is read as w / h"),
    (lambda size, ratios, scales: cell_anchors_by_hand(size, ratios, scales).reshape(len(ratios), len(scales), 4),
     "flatten it to one row per anchor"),
    (lambda size, ratios, scales: cell_anchors_by_hand(size, ratios, scales).T, "one row per anchor is"),
    (lambda size, ratios, scales: cell_anchors_by_hand(size, ratios, scales)[:len(ratios)], "should return ["),
], ids=["w-over-h", "no-scales", "scale-only", "no-sqrt", "scale-major", "corner", "doubled", "both",
        "3d", "transposed", "too-few"])
def test_cell_anchors_mistakes_are_named(wrong, message):
    assert_fails("cell_anchors", wrong, message)


# --- level anchors ----------------------------------------------------------------------------------

def level_with(place=lambda i, stride, offset: (i + offset) * stride, grid=math.ceil, order="rows"):
    def level(image_size, stride, size, ratios, scales, offset=0.5):
        rows, cols = grid(image_size[0] / stride), grid(image_size[1] / stride)
        ys, xs = place(torch.arange(rows), stride, offset), place(torch.arange(cols), stride, offset)
        if order == "columns":  # meshgrid with indexing="xy" and no transpose back
            cx, cy = torch.meshgrid(xs, ys, indexing="ij")
        else:
            cy, cx = torch.meshgrid(ys, xs, indexing="ij")
        centres = torch.stack([cx, cy, cx, cy], dim=-1).reshape(-1, 1, 4)
        cell = cell_anchors_by_hand(size, ratios, scales)
        if order == "anchors":
            return (centres.reshape(1, -1, 4) + cell[:, None]).reshape(-1, 4)
        return (centres + cell[None]).reshape(-1, 4)
    return level


@pytest.mark.parametrize("wrong, message", [
    (level_with(place=lambda i, stride, offset: i * stride), "off by half a stride"),
    (level_with(place=lambda i, stride, offset: (i + 0.5) * stride), "the offset argument is ignored"),
    (level_with(place=lambda i, stride, offset: i * stride + offset), "not col·stride + offset pixels"),
    (level_with(place=lambda i, stride, offset: (i + 1 + offset) * stride), "off by a whole stride"),
    (level_with(grid=math.floor), "the grid is rounded down"),
    (level_with(order="columns"), "column by column"),
    (level_with(order="anchors"), "anchor 0 of every cell first"),
    (lambda *args, **kwargs: level_anchors_by_hand(*args, **kwargs).reshape(-1, 9, 4), "flatten it"),
], ids=["corner", "offset-ignored", "offset-in-pixels", "one-based", "floor", "column-major", "anchor-major", "3d"])
def test_level_anchors_mistakes_are_named(wrong, message):
    assert_fails("level_anchors", wrong, message)


def test_level_anchors_check_names_half_a_stride_for_the_lessons_old_wrong_answer():
    """The old self-check's wrong answer (centres on the corners) now gets the named message."""
    def corner(image_size, stride, size, ratios, scales, offset=0.5):
        return level_anchors_by_hand(image_size, stride, size, ratios, scales, offset=0.0)
    assert_fails("level_anchors", corner, "off by half a stride")


# --- pyramid ----------------------------------------------------------------------------------------

def pyramid_with(transform=lambda strides, sizes: (strides, sizes), offset=None, validate=True, first_only=False):
    def pyramid(image_size, strides, sizes, ratios, scales, offset_=0.5):
        if validate and len(strides) != len(sizes):
            raise ValueError("lengths differ")
        s, b = transform(strides, sizes)
        levels = [level_anchors_by_hand(image_size, st, si, ratios, scales, offset_ if offset is None else offset)
                  for st, si in zip(s, b)]
        return levels[0] if first_only else torch.cat(levels)
    return pyramid


@pytest.mark.parametrize("wrong, message", [
    (pyramid_with(transform=lambda st, si: (st[::-1], si[::-1])), "levels are in the wrong order"),
    (pyramid_with(transform=lambda st, si: (st, [si[0]] * len(si))), "every level uses the first base size"),
    (pyramid_with(offset=0.5), "the offset is not passed on"),
    (pyramid_with(validate=False), "should raise a ValueError"),
    (pyramid_with(first_only=True), "only the first level"),
], ids=["reversed", "one-size", "offset-dropped", "no-valueerror", "first-level"])
def test_pyramid_anchors_mistakes_are_named(wrong, message):
    assert_fails("pyramid_anchors", wrong, message)


# --- the package's own versions ---------------------------------------------------------------------

@pytest.mark.parametrize("name, package", [("cell_anchors", A.cell_anchors), ("level_anchors", A.level_anchors),
                                           ("pyramid_anchors", A.make_anchors)])
def test_the_packages_function_and_a_wrapper_do_not_pass(name, package):
    assert_fails(name, package, "ready-made version")
    assert_fails(name, lambda *args, **kwargs: package(*args, **kwargs), "ready-made version")


def test_cell_anchors_from_a_one_cell_pyramid_or_torchvision_do_not_pass():
    def via_level(size, ratios, scales):
        return A.level_anchors((1, 1), 1, size, ratios, scales, offset=0.0)

    def via_torchvision(size, ratios, scales):
        from torchvision.models.detection.anchor_utils import AnchorGenerator
        return AnchorGenerator().generate_anchors([size * s for s in scales], list(ratios))

    assert_fails("cell_anchors", via_level, "ready-made version")
    assert_fails("cell_anchors", via_torchvision, "ready-made version")


def test_the_lessons_exercises_are_registered_in_order():
    assert [e.name for e in workbook.lesson_exercises("02")] == [
        "cell_anchors", "level_anchors", "pyramid_anchors", "predict_coverage", "count_anchors", "anchor_sizes"]
    assert lesson02.LEVEL_CASES  # the level check covers a non-multiple of the stride and offset 0
    assert any(size[0] % stride for size, stride, _, _ in lesson02.LEVEL_CASES)
    assert any(offset == 0 for *_, offset in lesson02.LEVEL_CASES)


def test_predict_coverage_is_what_the_explorer_shows():
    """One scale per level costs far more coverage than square-only anchors (the stored answer, b)."""
    from retinanet_lite.widgets.anchors import RATIO_SETS, SCALE_SETS, draw_anchor_coverage
    from workbook_checks import prediction_is
    paper_scales, paper_ratios = SCALE_SETS["2^0, 2^(1/3), 2^(2/3) (paper)"], RATIO_SETS["0.5, 1, 2 (paper)"]
    base = draw_anchor_coverage(16, paper_scales, paper_ratios)["share_positive"]
    square = base - draw_anchor_coverage(16, paper_scales, RATIO_SETS["1 only"])["share_positive"]
    one_scale = base - draw_anchor_coverage(16, SCALE_SETS["1 only"], paper_ratios)["share_positive"]
    assert round(base, 2) == 0.90  # "about 90 %" in the question
    if max(square, one_scale) < 0.02:
        answer = "d"
    elif abs(square - one_scale) < 0.02:
        answer = "c"
    else:
        answer = "a" if square > one_scale else "b"
    prediction_is("02_anchors.ipynb", "predict_coverage", answer)
