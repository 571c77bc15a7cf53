"""Lesson 07's debugging drill: each bug of retinanet_lite.drill produces the symptom the lesson shows (in runs
much shorter than bench/debug_drill.py's, with thresholds that held for every seed of the bench), the input
checks stop the xywh boxes, and the lesson's answer check accepts the right mapping and names wrong letters."""
import json
import re
import statistics
import sys
from pathlib import Path

import nbformat
import pytest
import torch

from retinanet_lite import workbook
from retinanet_lite.boxes import box_iou
from retinanet_lite.data import VAL_SEED_OFFSET, ShapesDataset
from retinanet_lite.drill import BUGS, SWAP, ClassificationOverAllAnchors, Setup, boxes_as_xywh, train_with
from retinanet_lite.matching import match_anchors_batch
from retinanet_lite.metrics import evaluate
from retinanet_lite.model import RetinaNet, pad_targets
from retinanet_lite.train import InMemory, run_inference
from workbook_checks import notebook_check

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from debug_drill import LETTERS  # noqa: E402  (the drill's answer: run letter → bug)

LESSON = ROOT / "notebooks" / "07_training.ipynb"
RESULTS = ROOT / "bench" / "results" / "debug_drill.json"


@pytest.fixture(scope="module")
def train_set():
    return InMemory(ShapesDataset(512, 128, seed=0))


@pytest.fixture(scope="module")
def val_set():
    return InMemory(ShapesDataset(96, 128, seed=VAL_SEED_OFFSET))


@pytest.fixture(scope="module")
def first_steps(train_set):
    """The losses of the first step of every bug (and of the correct run, "none")."""
    return {name: train_with(bug, train_set, steps=1, warmup_steps=1)[1] for name, bug in BUGS.items()}


def test_every_bug_passes_the_input_checks_and_changes_one_thing(train_set):
    setup = Setup(train_set)
    for name, bug in BUGS.items():
        changed = bug(setup)
        assert isinstance(changed, Setup), name
        differs = [field for field in ("train_set", "model_class", "overrides")
                   if getattr(changed, field) is not getattr(setup, field)]
        assert len(differs) == (name != "none"), f"{name} changes {differs}"


def test_no_prior_bias_starts_far_above_the_correct_run(first_steps):
    # bench, seeds 0-2: step 0 at about 40 against 1.75
    assert first_steps["no_prior_bias"]["loss"][0] > 10 * first_steps["none"]["loss"][0]


def test_classification_over_all_anchors_is_a_hundred_times_smaller(first_steps):
    # bench: about 0.012 against 1.1 at step 0; the regression loss unchanged
    bug, clean = first_steps["classification_over_all_anchors"], first_steps["none"]
    assert bug["classification"][0] < clean["classification"][0] / 30
    assert bug["regression"][0] == pytest.approx(clean["regression"][0], rel=1e-4)


def test_swapped_classes_and_double_boxes_start_like_the_correct_run(first_steps):
    # their symptoms are in what the model learns, not in the untrained loss
    for name in ("classes_swapped", "boxes_for_double_size"):
        assert first_steps[name]["loss"][0] == pytest.approx(first_steps["none"]["loss"][0], rel=0.2)


def test_the_loss_over_all_anchors_is_the_correct_loss_divided_by_all_anchors(train_set):
    images, targets = map(list, zip(*(train_set[i] for i in range(4))))
    correct = RetinaNet.from_preset("shapes-cpu").train()
    bugged = ClassificationOverAllAnchors(correct.config).train()
    bugged.load_state_dict(correct.state_dict())
    with torch.no_grad():
        ours, theirs = bugged(images, targets), correct(images, targets)
    anchors = len(correct.anchors((128, 128), torch.device("cpu")))
    config = correct.config
    gt_boxes, _, gt_valid = pad_targets(targets, torch.device("cpu"))
    positives = int((match_anchors_batch(correct.anchors((128, 128), torch.device("cpu")), gt_boxes, gt_valid,
                                         config.pos_iou, config.neg_iou, config.allow_low_quality) >= 0).sum())
    assert float(ours["classification"]) == pytest.approx(float(theirs["classification"]) * positives / (4 * anchors),
                                                          rel=1e-5)
    assert float(ours["regression"]) == pytest.approx(float(theirs["regression"]), rel=1e-6)


@pytest.fixture(scope="module")
def short_runs(train_set, val_set):
    """60 steps (warm-up 20) of the correct run and of the two bugs whose symptom needs some training:
    name → (history, predictions on the held-out images)."""
    runs = {}
    for name in ("none", "boxes_for_double_size", "learning_rate_100x"):
        model, history = train_with(BUGS[name], train_set, steps=60, warmup_steps=20)
        runs[name] = history, run_inference(model, val_set)[0]
    return runs


def late_loss(history: dict, key: str = "loss") -> float:
    """The mean loss of the last 20 steps."""
    return statistics.mean(history[key][-20:])


def top_width(predictions: list[dict]) -> float:
    """The mean width of each image's three best detections."""
    return statistics.mean(float((p["boxes"][:3, 2] - p["boxes"][:3, 0]).mean())
                           for p in predictions if len(p["boxes"]))


@pytest.mark.training
def test_learning_rate_100x_shoots_up_in_the_warmup_and_stays_high(short_runs):
    # 60 steps, seeds 0-2: the loss peaks at 37-55x its start; the last 20 steps 1.21-1.88x the correct run's
    history, clean = short_runs["learning_rate_100x"][0], short_runs["none"][0]
    assert max(history["loss"]) > 10 * history["loss"][0]
    assert late_loss(history) > 1.1 * late_loss(clean)


@pytest.mark.training
def test_boxes_for_double_size_gives_boxes_far_too_large_and_a_loss_that_stays_high(short_runs, val_set):
    # 60 steps, seeds 0-2: detections 1.6-2.6x as wide as the correct run's, last-20-step loss 1.32-1.36x,
    # AP50 0.001 against 0.06-0.07
    (history, found), (clean, clean_found) = short_runs["boxes_for_double_size"], short_runs["none"]
    assert top_width(found) > 1.4 * top_width(clean_found)
    assert late_loss(history) > 1.2 * late_loss(clean)
    targets = [val_set[i][1] for i in range(len(val_set))]
    assert evaluate(found, targets, 3)["map_50"] < evaluate(clean_found, targets, 3)["map_50"] / 5


def names_of_found_objects(predictions: list[dict], targets: list[dict]) -> tuple[int, int]:
    """For the circles and squares that a detection finds (IoU ≥ 0.5), how often the best such detection
    names the object's own class and how often the other one's: (right, swapped)."""
    right = swapped = 0
    for found, target in zip(predictions, targets):
        if len(found["boxes"]) == 0:
            continue
        overlaps = box_iou(target["boxes"], found["boxes"])  # [G, D]
        for obj in (target["labels"] != 2).nonzero().flatten().tolist():
            hits = (overlaps[obj] >= 0.5).nonzero().flatten()
            if len(hits):
                label = int(found["labels"][hits[found["scores"][hits].argmax()]])
                right += label == int(target["labels"][obj])
                swapped += label == int(SWAP[target["labels"][obj]])
    return right, swapped


@pytest.mark.training
def test_classes_swapped_learns_the_other_names(train_set, val_set):
    # 120 steps, seeds 0-2: of ~190 circles and squares found, the best detection names the other class
    # 33-39 % of the time and the right one 21-27 % (the correct run: the right one 31-37 %, the other 25-28 %)
    model, _ = train_with(BUGS["classes_swapped"], train_set, steps=120, warmup_steps=20)
    right, swapped = names_of_found_objects(*run_inference(model, val_set))
    assert swapped > 1.15 * right


def test_xywh_boxes_are_stopped_by_the_input_checks():
    with pytest.raises(ValueError, match=re.escape("has x2 < x1; boxes must be xyxy")):
        train_with(boxes_as_xywh, InMemory(ShapesDataset(16, 128, seed=2)), steps=1)


# --- the lesson's answer check ---------------------------------------------------------------------------------

def test_the_answer_is_the_bench_files_order():
    settings = json.loads(RESULTS.read_text())["settings"]
    assert settings["runs"] == ["correct", *LETTERS]


def test_the_check_accepts_the_right_mapping_and_names_wrong_letters(capsys):
    check = notebook_check("07_training.ipynb", "drill")
    namespace = drill_namespace()
    check({**namespace, "drill_answers": lambda: dict(LETTERS)})
    assert "All five right" in capsys.readouterr().out
    swapped = dict(LETTERS)
    swapped["A"], swapped["B"] = swapped["B"], swapped["A"]
    with pytest.raises(workbook.ExerciseFailed, match="not right yet: run A, B"):
        check({**namespace, "drill_answers": lambda: swapped})
    with pytest.raises(workbook.ExerciseFailed, match="not a bug of the drill"):
        check({**namespace, "drill_answers": lambda: {**LETTERS, "C": "typo"}})
    with pytest.raises(workbook.ExerciseFailed, match="used twice"):
        check({**namespace, "drill_answers": lambda: {**LETTERS, "C": LETTERS["D"]}})


def drill_namespace() -> dict:
    """What the check cell uses from the lesson's earlier cells."""
    drill = json.loads(RESULTS.read_text())
    seed = str(drill["settings"]["drill_seed"])
    return {"BUGS": BUGS,
            "RUNS": {name: runs[seed] for name, runs in drill["runs"].items()}}

