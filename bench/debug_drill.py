"""Lesson 07's debugging drill: short runs of the shapes model, each with one bug, and the correct run.

Every run is `retinanet_lite.drill.train_with(bug, …, steps=250, warmup_steps=50)` on the 2 000 training
images and 300 held-out images of lesson 09's short runs (the correct run is exactly lesson 09's grid cell
γ = 2, α = 0.25). For each seed it trains the correct run and every bug of the drill, and writes
``bench/results/debug_drill.json`` with the command, date and machine: per run and seed, the loss history
(every ``LOSS_EVERY``-th step), AP@[.5:.95] and AP50 on the held-out images and, for the drill's seed, the
best ``PICTURE_TOP`` detections on the held-out images ``PICTURE_IMAGES`` — so that the lesson draws the runs
without the models. The bugs are stored under the drill's run letters (``LETTERS``), in the order the
lesson shows them; which bug a letter is, is the students' question (the lesson checks it by hash).

Interrupted, the same command started again continues where it stopped (finished runs are kept in
``<result file>.partial``; every run is seeded, so this changes no number).

    .venv/bin/python bench/debug_drill.py [--seeds 0,1,2] [--steps 250]     # 18 runs, about 20 min
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

from focal_loss_grid import FinishedRuns, provenance, scores, write
from retinanet_lite.data import VAL_SEED_OFFSET, ShapesDataset
from retinanet_lite.drill import BUGS, train_with
from retinanet_lite.train import InMemory, run_inference

RESULTS = Path(__file__).resolve().parent / "results"
PRESET = "shapes-cpu"
TRAIN_IMAGES, VAL_IMAGES, IMAGE_SIZE, WARMUP_STEPS = 2000, 300, 128, 50  # lesson 09's short runs
#: The drill's run letters → bug (a fixed shuffled order); "none" is the correct run, shown openly.
LETTERS = {"A": "classification_over_all_anchors", "B": "boxes_for_double_size", "C": "no_prior_bias",
           "D": "classes_swapped", "E": "learning_rate_100x"}
PICTURE_IMAGES, PICTURE_TOP = (0, 3, 4, 12), 10  # held-out images drawn by the lesson; best detections kept
LOSS_EVERY = 2  # the loss history is kept at every LOSS_EVERY-th step


def rounded(values: list[float], digits: int = 4) -> list[float]:
    """Numbers to ``digits`` significant digits (the loss histories stay small in the file)."""
    return [float(f"{v:.{digits}g}") if math.isfinite(v) else v for v in values]


def run(bug: str, seed: int, steps: int, train_set, val_set, pictures: bool) -> dict:
    """One short run with ``bug``: its loss history, AP, AP50 (0 if it stopped) and the pictures' detections."""
    model, history = train_with(BUGS[bug], train_set, val_set, seed=seed, preset=PRESET, steps=steps,
                                warmup_steps=WARMUP_STEPS)
    result = {"steps_done": len(history["step"]), "stopped": history.get("stopped"),
              "loss_step": history["step"][::LOSS_EVERY],
              **{key: rounded(history[key][::LOSS_EVERY]) for key in ("loss", "classification", "regression")},
              **(scores(history["eval"][-1], ("map", "map_50")) if history["eval"] else {"map": 0.0, "map_50": 0.0})}
    if pictures:
        predictions, _ = run_inference(model, InMemory([val_set[i] for i in PICTURE_IMAGES]))
        result["detections"] = [{"boxes": [rounded(b, 5) for b in p["boxes"][:PICTURE_TOP].tolist()],
                                 "scores": rounded(p["scores"][:PICTURE_TOP].tolist(), 3),
                                 "labels": p["labels"][:PICTURE_TOP].tolist()} for p in predictions]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--steps", type=int, default=250)
    parser.add_argument("--out", type=Path, default=RESULTS / "debug_drill.json")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    train_set = InMemory(ShapesDataset(TRAIN_IMAGES, IMAGE_SIZE, seed=0))
    val_set = InMemory(ShapesDataset(VAL_IMAGES, IMAGE_SIZE, seed=VAL_SEED_OFFSET))
    runs = {"correct": "none", **LETTERS}
    settings = {"preset": PRESET, "steps": args.steps, "warmup_steps": WARMUP_STEPS, "train_images": TRAIN_IMAGES,
                "train_data_seed": 0, "val_images": VAL_IMAGES, "val_data_seed": VAL_SEED_OFFSET,
                "image_size": IMAGE_SIZE, "seeds": seeds, "drill_seed": seeds[0], "runs": list(runs),
                "picture_images": list(PICTURE_IMAGES), "picture_top": PICTURE_TOP, "loss_every": LOSS_EVERY}
    finished = FinishedRuns(args.out, settings)
    results: dict[str, dict[str, dict]] = {name: {} for name in runs}
    for seed in seeds:
        for name, bug in runs.items():
            e = finished.get(f"{name} {seed}", lambda: run(bug, seed, args.steps, train_set, val_set, seed == seeds[0]))
            results[name][str(seed)] = e
            print(f"seed {seed} run {name}: first loss {e['loss'][0]:.3g}, max {max(e['loss']):.3g}, "
                  f"last {e['loss'][-1]:.3g}, AP {e['map']:.3f}, AP50 {e['map_50']:.3f}"
                  + (f" — stopped: {e['stopped']}" if e["stopped"] else ""), flush=True)
    write(args.out, {
        "what": "lesson 07's debugging drill: per run ('correct' and the letters) and seed, the loss history "
                "(steps 'loss_step'), AP@[.5:.95] ('map') and AP50 ('map_50') on the held-out images after a "
                "short training, and for the drill seed the best 'picture_top' detections (xyxy pixels, best "
                "first) on the held-out images 'picture_images'",
        **provenance(), "resumed_runs": finished.resumed, "settings": settings, "runs": results,
    })
    finished.close()


if __name__ == "__main__":
    main()
