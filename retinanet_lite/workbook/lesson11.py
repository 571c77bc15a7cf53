"""Lesson 11's exercises: the crowns of a training tile, boxes seen in a turned view mapped back, recall by
crown size, one change to the recipe, and the verdict on what it did."""
from __future__ import annotations

import math
from collections.abc import Callable

import torch

from ..boxes import clip_boxes, hflip_boxes, rot90_boxes
from ..data.targets import Target
from ..data.tiling import crop_target, visible_fraction
from ..tta import VIEWS, unview_boxes, view_boxes
from .core import Mistake, declare, exercise
from .diagnose import as_tensor, diagnose, expect_shape

#: A 100×80 tile at (50, 40) of a larger image, and crowns around it: wholly outside, inside, cut a little,
#: cut in half exactly, mostly outside, touching its corner.
TILE = (50, 40, 150, 120)
CROWNS = torch.tensor([
    [200.0, 50.0, 230.0, 80.0],   # wholly outside
    [60.0, 50.0, 90.0, 80.0],     # wholly inside
    [130.0, 60.0, 160.0, 90.0],   # 2/3 inside (cut by the right edge)
    [100.0, 110.0, 120.0, 150.0],  # a quarter inside (cut by the bottom edge)
    [30.0, 70.0, 70.0, 100.0],    # exactly half inside (cut by the left edge)
    [140.0, 10.0, 170.0, 45.0],   # a sliver at the top-right corner
])
LABELS = torch.tensor([0, 1, 2, 0, 1, 2])


def _target(boxes: torch.Tensor = CROWNS, labels: torch.Tensor = LABELS) -> Target:
    return {"boxes": boxes.clone(), "labels": labels.clone()}


@exercise("crop_target", "11", fallback=crop_target, forbidden=(visible_fraction,))
def check_crop_target(my_crop_target: Callable[..., Target]) -> None:
    """``crop_target(target, window, min_visible=0.5)`` → the crowns of the tile, in its coordinates."""
    x1, y1, x2, y2 = TILE
    shift = torch.tensor([x1, y1, x1, y1], dtype=torch.float64)
    boxes = CROWNS.double()
    area = (boxes[:, 2:] - boxes[:, :2]).prod(1)
    inside = clip_boxes(boxes - shift, (y2 - y1, x2 - x1))
    fraction = (inside[:, 2:] - inside[:, :2]).clamp(min=0).prod(1) / area
    for min_visible in (0.5, 0.2, 1.0):
        got = my_crop_target(_target(), TILE, min_visible)
        if not isinstance(got, dict) or "boxes" not in got or "labels" not in got:
            raise Mistake("crop_target should return a target dict with 'boxes' and 'labels'")
        expected = crop_target(_target(), TILE, min_visible)
        keep = fraction >= min_visible
        n = int(keep.sum())
        got_boxes = as_tensor(got["boxes"], "crop_target's 'boxes'")
        if got_boxes.dim() != 2 or got_boxes.shape[-1] != 4:
            raise Mistake(f"'boxes' should be [K, 4], got {list(got_boxes.shape)}")
        if len(got_boxes) != n:
            counts = {"every crown, even those wholly outside the tile": len(boxes),
                      "only the crowns wholly inside the tile (cut crowns are dropped)": int((fraction >= 1).sum()),
                      "every crown that touches the tile, however little of it is inside": int((fraction > 0).sum()),
                      "the crowns with MORE than min_visible inside: a crown with exactly that fraction is kept (≥)":
                          int((fraction > min_visible).sum())}
            for what, count in counts.items():
                if len(got_boxes) == count:
                    raise Mistake(f"with min_visible = {min_visible} you keep {count} crowns: {what}. Keep a crown "
                                  f"when (its area inside the tile) / (its whole area) ≥ min_visible: {n} here")
            raise Mistake(f"with min_visible = {min_visible}, {n} of the crowns have that fraction of their area "
                          f"inside the tile, but you keep {len(got_boxes)}")
        diagnose(got_boxes, expected["boxes"].double(), {
            "the boxes are still in the image's coordinates: subtract the tile's top-left corner (x1, y1, x1, y1)":
                lambda: boxes[keep],
            "the boxes are not clipped to the tile: a kept crown cut by an edge ends at that edge "
            "(0 ≤ x ≤ width, 0 ≤ y ≤ height of the tile)": lambda: (boxes - shift)[keep],
            "the boxes are clipped to the tile but in the image's coordinates: subtract (x1, y1, x1, y1) too":
                lambda: inside[keep] + shift,
        }, f"min_visible = {min_visible}: expected the boxes {expected['boxes'].tolist()}, got {got_boxes.tolist()}")
        if torch.as_tensor(got["labels"]).tolist() != expected["labels"].tolist():
            raise Mistake(f"the labels {torch.as_tensor(got['labels']).tolist()} do not follow their boxes: expected "
                          f"{expected['labels'].tolist()} (keep labels[keep] with the same mask)")
    empty = my_crop_target(_target(CROWNS[:0], LABELS[:0]), TILE)
    expect_shape(torch.as_tensor(empty["boxes"]), (0, 4), "a tile of an image with no crowns: its 'boxes'")


#: A 60×100 image (H × W: not square, so a quarter turn changes the width) and boxes in its views.
VIEW_SIZE = (60, 100)
VIEW_BOXES = torch.tensor([[5.0, 10.0, 25.0, 22.0], [40.0, 3.0, 47.0, 18.0], [0.0, 0.0, 12.0, 9.0]])


def _quarter_turns(boxes: torch.Tensor, width: int, height: int, turns: int, keep_width: bool = False
                   ) -> torch.Tensor:
    """``turns`` quarter turns counter-clockwise of boxes in an image ``width`` × ``height`` (the width
    alternating with each turn, unless ``keep_width``: a known mistake)."""
    for _ in range(turns):
        boxes = rot90_boxes(boxes, width)
        if not keep_width:
            width, height = height, width
    return boxes


@exercise("unview_boxes", "11", fallback=unview_boxes, forbidden=(view_boxes,))
def check_unview_boxes(my_unview_boxes: Callable[..., torch.Tensor]) -> None:
    """``unview_boxes(boxes, size, turns, flip)`` → boxes found in a view, in the original image's pixels."""
    height, width = VIEW_SIZE
    for turns, flip in sorted(VIEWS, key=lambda view: (-(view[0] % 2), view[1])):  # the telling views first
        seen = view_boxes(VIEW_BOXES, VIEW_SIZE, turns, flip)  # where the view shows the three boxes
        got = as_tensor(my_unview_boxes(seen.clone(), VIEW_SIZE, turns, flip), "unview_boxes")
        expect_shape(got, (3, 4), "the boxes mapped back")
        view_height, view_width = (width, height) if turns % 2 else (height, width)
        back = _quarter_turns(seen, view_width, view_height, (4 - turns) % 4)
        diagnose(got, VIEW_BOXES.double(), {
            "the boxes are returned as the view shows them: map them back to the original image": lambda: seen,
            "the turns are undone but the mirror is not: after turning back, mirror left-right again "
            "(x → width − x) if the view was mirrored": lambda: back,
            "the mirror is undone first: the view was mirrored *then* turned, so undo the turns first, then the "
            "mirror": lambda: _quarter_turns(hflip_boxes(seen, view_width), view_width, view_height,
                                             (4 - turns) % 4),
            "turned the wrong way: `turns` more quarter turns counter-clockwise do not undo `turns`; 4 − turns do":
                lambda: _maybe_flip(_quarter_turns(seen, view_width, view_height, turns), width, flip),
            "a quarter turn uses the wrong width: each turn needs the width of the image as it is at that "
            "turn — the view's width first (the original height after an odd number of turns), then the width "
            "and height swap with every turn": lambda: _maybe_flip(
                _quarter_turns(seen, view_width, view_height, (4 - turns) % 4, keep_width=True), width, flip),
        }, f"in the view turned {turns} time(s){' and mirrored' if flip else ''}, the boxes {seen.tolist()} should "
           f"map back to {VIEW_BOXES.tolist()}, got {got.tolist()}")


def _maybe_flip(boxes: torch.Tensor, width: int, flip: bool) -> torch.Tensor:
    """``boxes`` mirrored left-right in an image ``width`` px wide if ``flip``."""
    return hflip_boxes(boxes, width) if flip else boxes


def recall_by_size(sizes: torch.Tensor, found: torch.Tensor, edges: list[float]) -> torch.Tensor:
    """The fraction of crowns found in each size bin ``[edges[i], edges[i+1])``: ``sizes`` ``[G]`` (px),
    ``found`` ``[G]`` bool → ``[len(edges) - 1]`` float, NaN for a bin without crowns."""
    out = []
    for low, high in zip(edges, edges[1:]):
        in_bin = (sizes >= low) & (sizes < high)
        out.append(found[in_bin].float().mean() if in_bin.any() else torch.tensor(math.nan))
    return torch.stack(out) if out else torch.zeros(0)


@exercise("recall_by_size", "11", fallback=recall_by_size)
def check_recall_by_size(my_recall_by_size: Callable[..., torch.Tensor]) -> None:
    """``recall_by_size(sizes, found, edges)`` → ``[bins]`` recall per size bin, NaN where a bin is empty."""
    sizes = torch.tensor([8.0, 12.0, 16.0, 20.0, 31.9, 32.0, 40.0, 64.0, 70.0, 200.0])
    found = torch.tensor([False, False, True, True, True, False, True, True, True, True])
    edges = [0.0, 16.0, 32.0, 64.0, 128.0, 160.0, 256.0]  # [128, 160) holds no crown
    got = as_tensor(my_recall_by_size(sizes, found, edges), "recall_by_size")
    expected = recall_by_size(sizes, found, edges).double()
    expect_shape(got, (len(edges) - 1,), f"with {len(edges)} edges (so {len(edges) - 1} bins) the result")
    bins = list(zip(edges, edges[1:]))
    got_nan, expected_nan = torch.isnan(got), torch.isnan(expected)
    if not torch.equal(got_nan, expected_nan):
        raise Mistake("a bin without crowns should be NaN (no crowns: recall is undefined, not 0 or 1); "
                      f"expected NaN in bins {[bins[i] for i in expected_nan.nonzero().flatten().tolist()]}")
    valid = ~expected_nan
    in_bins = [((sizes >= low) & (sizes < high)) for low, high in bins]
    right_closed = [((sizes > low) & (sizes <= high)) for low, high in bins]
    diagnose(got[valid], expected[valid], {
        "these are counts of found crowns, not fractions: divide by the number of crowns in the bin":
            lambda: torch.tensor([float(found[b].sum()) for b in in_bins], dtype=torch.float64)[valid],
        "divided by all crowns: recall in a bin is (found in the bin) / (crowns in the bin)":
            lambda: torch.tensor([float(found[b].sum()) / len(sizes) for b in in_bins], dtype=torch.float64)[valid],
        "the bins include their upper edge: a crown of exactly edges[i + 1] px belongs to the next bin "
        "[low, high)": lambda: torch.tensor([float(found[b].float().mean()) if b.any() else math.nan
                                             for b in right_closed], dtype=torch.float64)[valid],
        "this is the share of MISSED crowns: recall is the share found": lambda: 1 - expected[valid],
    }, f"expected {expected.tolist()} (NaN where a bin is empty), got {got.tolist()}")


declare("11", "one_change")


def judge(difference: float, noise: float) -> str:
    """What a measured difference says: "better", "worse", or "no clear change" when ``|difference| ≤ noise``."""
    if abs(difference) <= noise:
        return "no clear change"
    return "better" if difference > 0 else "worse"


@exercise("verdict", "11", fallback=judge)
def check_verdict(verdict: Callable[[float, float], str]) -> None:
    """``verdict(difference, noise)`` → "better", "worse" or "no clear change"."""
    cases = [(0.01, 0.05), (-0.03, 0.05), (0.05, 0.05), (-0.05, 0.05), (0.08, 0.05), (-0.2, 0.05), (0.0, 0.0),
             (0.02, 0.0), (-0.02, 0.01)]
    got = [verdict(d, n) for d, n in cases]
    expected = [judge(d, n) for d, n in cases]
    if got == expected:
        return
    wrong = {
        "a difference exactly as large as the noise is still no clear change: use ≤ (abs(difference) <= noise)":
            [("no clear change" if abs(d) < n else "better" if d > 0 else "worse") for d, n in cases],
        "the noise is ignored: a difference smaller than the spread between seeds is no clear change":
            [("better" if d > 0 else "worse" if d < 0 else "no clear change") for d, n in cases],
        "a small negative difference is noise too: compare abs(difference) with the noise":
            [("no clear change" if 0 <= d <= n else "better" if d > 0 else "worse") for d, n in cases],
        "better and worse are swapped: a higher AP50 is better":
            [{"better": "worse", "worse": "better"}.get(e, e) for e in expected],
    }
    for message, answers in wrong.items():
        if got == answers:
            raise Mistake(message)
    first = next(i for i, (g, e) in enumerate(zip(got, expected)) if g != e)
    raise Mistake(f"verdict({cases[first][0]}, {cases[first][1]}) should be {expected[first]!r}, got {got[first]!r}")
