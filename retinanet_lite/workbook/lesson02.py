"""Lesson 02's exercises: the anchors of one location, of one level and of the whole pyramid."""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torchvision.models.detection.anchor_utils import AnchorGenerator

from .. import anchors as A
from .answers import prediction
from .core import Mistake, declare, exercise
from .diagnose import as_tensor, diagnose

#: Ratios (height / width) that are not symmetric around 1, so that swapping h/w is not just a reordering.
ODD_RATIOS = (0.5, 1.0, 2.0, 3.0)


def _cells(size: float, ratios: Sequence[float], scales: Sequence[float], *, ratio_is_w_over_h: bool = False,
           side: Callable[[float, float], float] = lambda size, scale: size * scale, root: bool = True,
           scale_major: bool = False, layout: str = "centred") -> torch.Tensor:
    """The anchors of one location, right (the defaults) or with one of the usual mistakes: [A, 4]."""
    pairs = [(r, s) for s in scales for r in ratios] if scale_major else [(r, s) for r in ratios for s in scales]
    rows = []
    for ratio, scale in pairs:
        s = side(size, scale)
        factor = math.sqrt(ratio) if root else ratio
        w, h = (s * factor, s / factor) if ratio_is_w_over_h else (s / factor, s * factor)
        rows.append({"centred": [-w / 2, -h / 2, w / 2, h / 2], "corner": [0.0, 0.0, w, h],
                     "half_missing": [-w, -h, w, h]}[layout])
    return torch.tensor(rows, dtype=torch.float64)


@exercise("cell_anchors", "02", fallback=A.cell_anchors, forbidden=(A.level_anchors, A.make_anchors, AnchorGenerator))
def check_cell_anchors(cell_anchors: Callable[..., torch.Tensor]) -> None:
    """``cell_anchors(size, ratios, scales)`` → ``[len(ratios)·len(scales), 4]`` xyxy, centred on (0, 0),
    ratio-major; ratio = height / width, area (size·scale)²."""
    for size, ratios, scales in [(32.0, A.PAPER_RATIOS, A.PAPER_SCALES), (40.0, ODD_RATIOS, (1.0, 2.0)),
                                 (16.0, (1.0,), (1.0,))]:
        n = len(ratios) * len(scales)
        call = f"cell_anchors({size:g}, {list(ratios)}, {[round(s, 3) for s in scales]})"
        got = as_tensor(cell_anchors(size, ratios, scales), "cell_anchors")
        if tuple(got.shape) == (len(ratios), len(scales), 4):
            raise Mistake(f"{call} returns [{len(ratios)}, {len(scales)}, 4]: flatten it to one row per anchor, "
                          f"[{n}, 4] (ratio-major: .reshape(-1, 4))")
        if tuple(got.shape) == (4, n) and n != 4:
            raise Mistake(f"{call} returns [4, {n}]: one row per anchor is [{n}, 4] (stack along dim=1, or transpose)")
        if tuple(got.shape) != (n, 4):
            raise Mistake(f"{call} should return [{n}, 4] (one row per ratio × scale), got {list(got.shape)}")
        diagnose(got, _cells(size, ratios, scales), {
            "the ratio is read as width / height: in this course (and torchvision) ratio = h / w, so ratio 2 is "
            "a tall box — w = s / √r and h = s · √r":
                lambda: _cells(size, ratios, scales, ratio_is_w_over_h=True),
            "the sizes are not multiplied by the scales: an anchor's side is s = size · scale (all your anchors "
            "of one ratio have the same size)": lambda: _cells(size, ratios, scales, side=lambda b, s: b),
            "the side is the scale alone: multiply it by the base size, s = size · scale":
                lambda: _cells(size, ratios, scales, side=lambda b, s: s),
            "the area is not s²: the square root is missing — w = s / √r and h = s · √r keep w · h = s²":
                lambda: _cells(size, ratios, scales, root=False),
            "the anchors are in the wrong order: ratio-major — all scales of the first ratio, then of the second "
            "(the outer loop runs over the ratios), as torchvision and the heads of lesson 04 expect":
                lambda: _cells(size, ratios, scales, scale_major=True),
            "the anchors are not centred on (0, 0): (−w/2, −h/2, w/2, h/2), not (0, 0, w, h)":
                lambda: _cells(size, ratios, scales, layout="corner"),
            "the anchors are twice too big: the corners are half a width from the centre, (−w/2, −h/2, w/2, h/2)":
                lambda: _cells(size, ratios, scales, layout="half_missing"),
            "the anchors have the right sizes in the wrong order, and ratio is read as w / h: ratio = h / w, "
            "ratio-major": lambda: _cells(size, ratios, scales, ratio_is_w_over_h=True, scale_major=True),
        }, f"{call} disagrees with the anchors worked out in section 1 (w = s / √r, h = s · √r, "
           "s = size · scale, centred on (0, 0), ratio-major)", atol=1e-3)


def _level(image_size: tuple[int, int], stride: int, size: float, ratios: Sequence[float], scales: Sequence[float],
           offset: float, *, order: str = "rows",
           centre: Callable[[torch.Tensor, int, float], torch.Tensor] | None = None,
           grid: Callable[[float], int] = math.ceil) -> torch.Tensor:
    """One level's anchors, right (the defaults) or with one of the usual mistakes: [rows·cols·A, 4]."""
    rows, cols = grid(image_size[0] / stride), grid(image_size[1] / stride)
    place = centre or (lambda index, s, o: (index + o) * s)
    ys = place(torch.arange(rows, dtype=torch.float64), stride, offset)
    xs = place(torch.arange(cols, dtype=torch.float64), stride, offset)
    cy, cx = torch.meshgrid(ys, xs, indexing="ij")  # [rows, cols]
    if order == "columns":  # column by column: x changes slowest
        cy, cx = cy.T, cx.T
    centres = torch.stack([cx, cy, cx, cy], dim=-1).reshape(-1, 1, 4)
    boxes = centres + _cells(size, ratios, scales)[None]  # [cells, A, 4]
    if order == "anchors":  # anchor-major: anchor 0 of every cell, then anchor 1, …
        boxes = boxes.transpose(0, 1)
    return boxes.reshape(-1, 4)


#: (image size, stride, base size, offset) of level_anchors's checks: a square, a non-multiple, torchvision's offset.
LEVEL_CASES = [((128, 128), 8, 16.0, 0.5), ((100, 150), 16, 40.0, 0.5), ((96, 160), 16, 40.0, 0.0),
               ((70, 45), 32, 64.0, 0.5)]


@exercise("level_anchors", "02", fallback=A.level_anchors, forbidden=(A.make_anchors, AnchorGenerator))
def check_level_anchors(level_anchors: Callable[..., torch.Tensor]) -> None:
    """``level_anchors(image_size, stride, size, ratios, scales, offset=0.5)`` → ``[rows·cols·A, 4]`` xyxy,
    location-major, cell (row, col) centred at ((col + offset)·stride, (row + offset)·stride)."""
    ratios, scales = A.PAPER_RATIOS, A.PAPER_SCALES
    for image_size, stride, size, offset in LEVEL_CASES:
        rows, cols = A.grid_size(image_size, stride)
        call = f"level_anchors({image_size}, stride {stride}, size {size:g}, offset {offset:g})"
        got = as_tensor(level_anchors(image_size, stride, size, ratios, scales, offset), "level_anchors")
        n = rows * cols * 9
        if tuple(got.shape) != (n, 4):
            floor_n = (image_size[0] // stride) * (image_size[1] // stride) * 9
            if got.ndim == 2 and got.shape[0] == floor_n:
                raise Mistake(f"{call}: the grid is rounded down — a {image_size[0]}×{image_size[1]} input has "
                              f"ceil(H / s) × ceil(W / s) = {rows}×{cols} cells at stride {stride} (math.ceil, "
                              "not //), as the backbone's convolutions round up")
            if got.ndim == 3 and got.shape[-1] == 4 and got.shape[0] * got.shape[1] == n:
                raise Mistake(f"{call} returns {list(got.shape)}: flatten it to one row per anchor, [{n}, 4]")
            raise Mistake(f"{call} should return [rows·cols·A, 4] = [{n}, 4] ({rows}×{cols} cells × 9 anchors), "
                          f"got {list(got.shape)}")

        def level(**mistake):
            return _level(image_size, stride, size, ratios, scales, offset, **mistake)

        wrong = {}
        if offset:
            wrong["the anchors are off by half a stride: the centre of cell (row, col) is ((col + offset)·stride, "
                  "(row + offset)·stride), in the middle of the cell — yours sit on the cells' top-left corners "
                  "(the offset is missing)"] = lambda: level(centre=lambda i, s, o: i * s)
            wrong["the anchors are off by almost half a stride: the offset is a fraction of the stride, "
                  "(col + offset)·stride, not col·stride + offset pixels"] = \
                lambda: level(centre=lambda i, s, o: i * s + o)
        else:
            wrong["the anchors are off by half a stride: with offset 0 (torchvision's convention) the centres "
                  "are at col·stride — the offset argument is ignored"] = \
                lambda: level(centre=lambda i, s, o: (i + 0.5) * s)
        wrong["the anchors are in the wrong order: location-major, row by row — all A anchors of cell (0, 0), then "
              "of cell (0, 1), … (x changes fastest); yours go column by column, or swap x and y"] = \
            lambda: level(order="columns")
        wrong["the anchors are in the wrong order: location-major — all A anchors of one cell together, then the "
              "next cell; yours give anchor 0 of every cell first ([cells, 1, 4] + [1, A, 4], in that order)"] = \
            lambda: level(order="anchors")
        wrong["the anchors are off by a whole stride: the first cell is cell 0, centred at offset·stride "
              "(torch.arange starts at 0)"] = lambda: level(centre=lambda i, s, o: (i + 1 + o) * s)
        diagnose(got, level(), wrong,
                 f"{call} disagrees with retinanet_lite.anchors.level_anchors: centres at ((col + offset)·stride, "
                 "(row + offset)·stride), plus the cell anchors of section 1, location-major", atol=1e-3)


def _pyramid(image_size: tuple[int, int], strides: Sequence[int], sizes: Sequence[float], ratios: Sequence[float],
             scales: Sequence[float], offset: float) -> torch.Tensor:
    return torch.cat([_level(image_size, s, b, ratios, scales, offset) for s, b in zip(strides, sizes)])


@exercise("pyramid_anchors", "02", fallback=A.make_anchors, forbidden=(A.config_anchors, AnchorGenerator))
def check_pyramid_anchors(make_anchors: Callable[..., torch.Tensor]) -> None:
    """``make_anchors(image_size, strides, sizes, ratios, scales, offset=0.5)`` → ``[Σ_l rows_l·cols_l·A, 4]``
    xyxy, level after level (P3 first); a ValueError when there is not one size per stride."""
    ratios, scales = A.PAPER_RATIOS, A.PAPER_SCALES
    for image_size, strides, sizes, offset in [((128, 128), A.PAPER_STRIDES, (16, 32, 64, 128, 256), 0.5),
                                               ((100, 150), (8, 16, 32), (24, 48, 96), 0.5),
                                               ((96, 160), A.PAPER_STRIDES, A.PAPER_SIZES, 0.0)]:
        call = f"make_anchors({image_size}, strides {list(strides)}, sizes {list(sizes)}, offset {offset:g})"
        got = as_tensor(make_anchors(image_size, strides, sizes, ratios, scales, offset), "make_anchors")
        counts = A.anchors_per_level(image_size, strides, 9)
        if tuple(got.shape) != (sum(counts), 4):
            if got.ndim == 2 and got.shape[0] == counts[0]:
                raise Mistake(f"{call} returns only the first level's {counts[0]} anchors: concatenate all levels "
                              f"({' + '.join(map(str, counts))} = {sum(counts)}) with torch.cat")
            raise Mistake(f"{call} should return [Σ_l rows_l·cols_l·A, 4] = [{sum(counts)}, 4] "
                          f"({' + '.join(map(str, counts))}), got {list(got.shape)}")
        diagnose(got, _pyramid(image_size, strides, sizes, ratios, scales, offset), {
            "the levels are in the wrong order: P3 (the finest, smallest stride) first, then P4, … — the order "
            "in which the heads produce their rows":
                lambda: _pyramid(image_size, strides[::-1], sizes[::-1], ratios, scales, offset),
            "every level uses the first base size: level l's anchors have size sizes[l] (zip the strides with "
            "the sizes)": lambda: _pyramid(image_size, strides, [sizes[0]] * len(sizes), ratios, scales, offset),
            "the offset is not passed on to the levels: give level_anchors_by_hand the offset argument "
            "(with offset 0 the centres sit on the cells' corners)":
                lambda: _pyramid(image_size, strides, sizes, ratios, scales, 0.5),
        }, f"{call} disagrees with retinanet_lite.anchors.make_anchors: the levels' anchors, P3 first, "
           "concatenated", atol=1e-3)
    try:
        make_anchors((128, 128), A.PAPER_STRIDES, A.PAPER_SIZES[:4], ratios, scales, 0.5)
    except ValueError:
        return
    raise Mistake("make_anchors with 5 strides and only 4 sizes should raise a ValueError naming the problem: "
                  "zip silently stops at the shorter list, and P7 would be left without anchors")


prediction(
    "predict_coverage", "02", "535eac124288",
    explanation="(b). With one scale the sizes jump ×2 from level to level (16, 32, 64, …): a square box of side "
                "√2 · 16 ≈ 22.6 px lies midway, and its best IoU, with either neighbour, is (16 / 22.6)² = 1/2 — "
                "boxes near such in-between sizes fall to the threshold (coverage 90 % → 72 %). Three scales "
                "step by 2^(1/3), whose worst case is IoU 2^(−1/3) ≈ 0.79. The ratios barely matter (90 % → 89 %): "
                "the shapes are nearly square (h / w between 0.7 and 1.5).",
    hint="a square box between two square anchors of sides b and k · b fits the nearer one best: how low can that "
         "IoU get for k = 2 (one scale per level), and for k = 2^(1/3) (three)? And how far from square are the shapes?")

declare("02", "count_anchors", "anchor_sizes")
