"""bench/trees_errors.py labels detections the way COCO matching counts them (a hand-worked image)."""
from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from trees_errors import best_iou_per_crown, label_detections, placement_errors  # noqa: E402

CROWNS = {"boxes": torch.tensor([[0.0, 0, 10, 10], [50, 50, 70, 70]]), "labels": torch.tensor([0, 0])}
FOUND = {"boxes": torch.tensor([[2.0, 0, 12, 10],     # IoU 8/12 with crown 0: a hit
                                [0, 0, 10, 10],       # IoU 1 with crown 0, found already: a duplicate
                                [50, 50, 60, 60],     # IoU 100/400 = 0.25 with crown 1: misplaced
                                [100, 100, 110, 110]]),  # overlaps nothing: background
         "scores": torch.tensor([0.9, 0.8, 0.7, 0.6]), "labels": torch.zeros(4, dtype=torch.int64)}


def test_the_best_scored_detection_finds_a_crown_and_later_ones_are_duplicates():
    labelled = label_detections(FOUND, CROWNS)
    assert [(round(s, 1), kind) for s, kind in labelled] == [
        (0.9, "hit"), (0.8, "duplicate"), (0.7, "misplaced"), (0.6, "background")]
    order = torch.tensor([1, 0, 2, 3])  # the same boxes listed in another order: the scores still decide
    shuffled = {k: v[order] for k, v in FOUND.items()}
    assert [kind for _, kind in label_detections(shuffled, CROWNS)] == ["hit", "duplicate", "misplaced",
                                                                           "background"]


def test_an_image_without_crowns_has_only_background_and_no_crown_no_detection():
    empty = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}
    assert [kind for _, kind in label_detections(FOUND, empty)] == ["background"] * 4
    nothing = {"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.int64)}
    torch.testing.assert_close(best_iou_per_crown([nothing, FOUND], [CROWNS, CROWNS]),
                               torch.tensor([0.0, 0.0, 1.0, 0.25]))


def test_placement_errors_measure_the_misplaced_box_against_its_crown():
    errors = placement_errors([FOUND], [CROWNS])
    assert errors["n"] == 1  # only the box of IoU 0.25: half as wide and high as crown 1, centre 5 px off each way
    assert abs(errors["log_w"] - torch.tensor(0.5).log().item()) < 1e-6
    assert abs(errors["centre_offset"] - (0.25 ** 2 * 2) ** 0.5) < 1e-6
