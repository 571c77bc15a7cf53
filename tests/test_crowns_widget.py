"""Lesson 11's crown explorer: the error categories worked out by hand on a small synthetic image, the
drawing and its title, the explorer headless, and one run on the real test images."""
import matplotlib.pyplot as plt
import pytest
import torch

from retinanet_lite.data import TreeCrowns
from retinanet_lite.widgets import (MERGE_COVER, SHADOW_QUANTILE, SMALL_CROWN, crown_errors, crown_explorer,
                                    draw_crowns)

# Crowns, xyxy pixels of a 64 × 64 image:
CROWNS = torch.tensor([[4., 4., 30., 30.],    # 0: 26 px, found by detection 0
                       [30., 30., 42., 42.],  # 1: 12 px } both covered by detection 1, which
                       [44., 30., 56., 42.],  # 2: 12 px }   matches neither (IoU 144/480 = 0.3)
                       [4., 40., 20., 56.],   # 3: 16 px, found only by detection 3 (score 0.2)
                       [22., 44., 52., 64.]])  # 4: √(30·20) ≈ 24.5 px, never detected: missed, not small
DETECTIONS = torch.tensor([[5., 5., 30., 30.],     # 0: IoU 625/676 with crown 0: true positive
                           [28., 28., 58., 44.],   # 1: covers crowns 1 and 2 whole: merged
                           [46., 2., 62., 18.],    # 2: inside the dark patch, no crown: in shadow
                           [4., 40., 20., 56.]])   # 3: exactly crown 3, but only score 0.2
SCORES = torch.tensor([0.9, 0.8, 0.7, 0.2])


def synthetic_image():
    """Brightness (mean of R, G, B) rises from 0.3 at the left to 0.7 at the right, except a dark patch
    (0.05) at x 44–64, y 0–20; greenish, like canopy."""
    brightness = (0.3 + 0.4 * torch.arange(64.) / 63).expand(64, 64).clone()
    brightness[0:20, 44:64] = 0.05
    return torch.stack([0.8 * brightness, 1.3 * brightness, 0.9 * brightness])


def target(boxes=CROWNS):
    return {"boxes": boxes.clone(), "labels": torch.zeros(len(boxes), dtype=torch.int64)}


def prediction(boxes=DETECTIONS, scores=SCORES):
    return {"boxes": boxes.clone(), "scores": scores.clone(), "labels": torch.zeros(len(boxes), dtype=torch.int64)}


def no_detections():
    return prediction(torch.zeros(0, 4), torch.zeros(0))


@pytest.fixture
def setting():
    """Two tiny in-memory splits: "a" has 3 images (image 1 is the worked example), "b" has 1."""
    image = synthetic_image()
    only_crown_0 = target(CROWNS[:1])
    datasets = {"a": [(image, only_crown_0), (image, target()), (image, only_crown_0)],
                "b": [(image, target())]}
    predictions = {"a": [no_detections(), prediction(), prediction(DETECTIONS[:1], SCORES[:1])],
                   "b": [prediction()]}
    return predictions, datasets


def test_the_worked_example_has_one_error_of_each_kind():
    image = synthetic_image()
    dark = torch.quantile(image.mean(dim=0).flatten(), SHADOW_QUANTILE)
    assert 0.05 < dark < 0.4  # the patch is darker than the quarter-darkest pixels, the rest is not
    assert (SMALL_CROWN, SHADOW_QUANTILE, MERGE_COVER) == (24, 0.25, 0.5)

    errors = crown_errors(prediction(), target(), image, score_threshold=0.3)
    assert torch.equal(errors["boxes"], DETECTIONS[:3]) and torch.equal(errors["scores"], SCORES[:3])
    assert errors["true_positive"].tolist() == [True, False, False]
    assert errors["merged"].tolist() == [False, True, False]
    assert errors["in_shadow"].tolist() == [False, False, True]
    assert errors["found"].tolist() == [True, False, False, False, False]
    assert errors["missed_small"].tolist() == [False, True, True, True, False]  # crown 4 is ≥ 24 px
    assert (errors["num_found"], errors["num_crowns"], errors["num_false_positives"]) == (1, 5, 2)
    assert all(isinstance(errors[k], int) for k in ("num_found", "num_crowns", "num_false_positives"))


def test_a_box_over_one_crown_and_under_half_of_another_is_not_merged():
    image = synthetic_image()
    wide = torch.tensor([[28., 28., 49., 44.]])  # crown 1 whole, 5/12 of crown 2
    errors = crown_errors(prediction(wide, torch.tensor([0.9])), target(), image)
    assert errors["true_positive"].tolist() == [False]
    assert errors["merged"].tolist() == [False]


def test_true_positives_are_never_merged_or_in_shadow():
    image = synthetic_image()
    shadow_crown = torch.tensor([[46., 2., 62., 18.]])  # a real crown in the dark patch, found
    errors = crown_errors(prediction(shadow_crown, torch.tensor([0.9])), target(shadow_crown), image)
    assert errors["true_positive"].tolist() == [True]
    assert errors["in_shadow"].tolist() == [False] and errors["merged"].tolist() == [False]


def test_the_score_threshold_drops_detections():
    image = synthetic_image()
    low = crown_errors(prediction(), target(), image, score_threshold=0.1)
    assert len(low["boxes"]) == 4
    assert low["true_positive"].tolist() == [True, False, False, True]
    assert low["found"].tolist() == [True, False, False, True, False]
    assert low["missed_small"].tolist() == [False, True, True, False, False]  # crown 3 is found now
    assert (low["num_found"], low["num_false_positives"]) == (2, 2)

    high = crown_errors(prediction(), target(), image, score_threshold=0.75)  # the shadow box goes
    assert high["true_positive"].tolist() == [True, False]
    assert (high["num_found"], high["num_false_positives"], int(high["in_shadow"].sum())) == (1, 1, 0)

    none = crown_errors(prediction(), target(), image, score_threshold=0.95)
    assert none["boxes"].shape == (0, 4)
    assert (none["num_found"], none["num_crowns"], none["num_false_positives"]) == (0, 5, 0)
    assert none["missed_small"].tolist() == [False, True, True, True, False]


def test_bad_predictions_are_refused():
    image = synthetic_image()
    with pytest.raises(ValueError, match="scores"):
        crown_errors({"boxes": DETECTIONS, "labels": torch.zeros(4, dtype=torch.int64)}, target(), image)
    with pytest.raises(ValueError, match="3 scores"):
        crown_errors(prediction(DETECTIONS, SCORES[:3]), target(), image)


def test_draw_crowns_titles_the_counts_and_returns_the_errors(setting):
    predictions, datasets = setting
    errors = draw_crowns(0.3, "a", 1, predictions=predictions, datasets=datasets)
    title = plt.gcf().get_suptitle()
    assert "found 1 of 5 crowns, 2 false positives (1 merged, 1 in shadow)" in title
    assert "4 missed, 3 of them small" in title
    expected = crown_errors(predictions["a"][1], datasets["a"][1][1], datasets["a"][1][0], 0.3)
    assert errors.keys() == expected.keys()
    assert all(torch.equal(errors[k], v) if isinstance(v, torch.Tensor) else errors[k] == v
               for k, v in expected.items())
    assert plt.gcf().legends


def test_draw_crowns_names_a_bad_split_or_index(setting):
    predictions, datasets = setting
    with pytest.raises(ValueError, match="'nope'"):
        draw_crowns(0.3, "nope", 0, predictions=predictions, datasets=datasets)
    for index in (3, -1):
        with pytest.raises(ValueError, match=f"index {index}.*'a'"):
            draw_crowns(0.3, "a", index, predictions=predictions, datasets=datasets)
    with pytest.raises(ValueError, match="1 images but 2 predictions"):
        draw_crowns(0.3, "b", 0, predictions={**predictions, "b": predictions["b"] * 2}, datasets=datasets)


def test_the_explorer_follows_the_split_and_the_threshold(setting):
    predictions, datasets = setting
    explorer = crown_explorer(predictions, datasets)
    threshold, split, index = explorer.children[:3]
    assert (threshold.value, threshold.min, threshold.max, threshold.step) == (0.3, 0.05, 0.95, 0.05)
    assert list(split.options) == ["a", "b"] and (index.min, index.max) == (0, 2)
    assert (explorer.result["num_found"], explorer.result["num_crowns"]) == (0, 1)  # "a" image 0: nothing found

    index.value = 1
    assert (explorer.result["num_found"], explorer.result["num_false_positives"]) == (1, 2)
    threshold.value = 0.1  # detection 3 (score 0.2) comes in and finds crown 3
    assert explorer.result["num_found"] == 2

    index.value = 2
    split.value = "b"  # one image: the slider's range shrinks and its value is clamped
    assert (index.max, index.value) == (0, 0)
    assert (explorer.result["num_found"], explorer.result["num_crowns"]) == (2, 5)
    split.value = "a"
    assert (index.max, index.value) == (2, 0)


@pytest.mark.usefixtures("tree_data")
def test_predicting_the_ground_truth_finds_every_real_crown():
    test_set = TreeCrowns("test")
    predictions = {"test": [{"boxes": t["boxes"].clone(), "scores": torch.full((len(t["boxes"]),), 0.9),
                             "labels": t["labels"].clone()} for _, t in test_set]}
    for index in range(len(test_set)):
        errors = draw_crowns(0.3, "test", index, predictions=predictions, datasets={"test": test_set})
        assert errors["num_crowns"] == len(test_set.targets[index]["boxes"]) > 0
        assert errors["num_found"] == errors["num_crowns"]
        assert errors["num_false_positives"] == 0
        assert not errors["missed_small"].any()
