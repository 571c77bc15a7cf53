"""Lesson 09's remaining ablations of the paper's Table 1, and the prior-probability bias, over seeds.

The same short runs as ``bench/focal_loss_grid.py`` (``train("shapes-cpu", steps=250, warmup_steps=50)`` on
the same 2 000 training and 300 held-out images), for each seed:

- **Table 1d** — cross-entropy (γ = 0, α = 0.5: both kinds weighted alike, sampling does the balancing)
  with online hard example mining (``cls_sampling="ohem"``: the 128 highest-loss anchors per image after
  NMS at 0.5 over the anchor boxes, the paper's best OHEM setting), with OHEM 1:3 (``"ohem_1:3"``) and
  with random 1:3 sampling (``"random"``);
- **Table 1c** — focal loss (γ = 2, α = 0.25) with 1 anchor per location (scale 2^0, ratio 1:1, the
  same sizes), and the mean number of positive anchors per object on the held-out images, counted with
  the package's matching, for 1 and for the preset's 3 × 3 anchors;
- **the prior π** — cross-entropy (γ = 0, α = 0.5) with the classification bias set for π = 0.01 and for
  π = 0.5 (a zero bias), ``--prior-steps`` steps (the same warm-up): every step's loss, whether training
  diverged (a NaN or infinite loss, or the last 10 steps' mean loss above the first step's) and the AP.

Plain CE over all anchors (γ = 0, α = 0.5) is a cell of ``bench/results/focal_loss_grid.json``, trained
with exactly these settings (checked): it is read from that file, not trained again. Focal loss (γ = 2,
α = 0.25, all anchors, 3 × 3 anchors: the FL row of Table 1d and the 9-anchor row of Table 1c) is a cell
of that file too, but it is trained again here, once per seed: that file records AP@[.5:.95] to three
digits and no AP50 (see its ``provenance``), and was made with 2 threads — a run here is scored exactly
like the others of this file; the grid's value is kept beside it as a check. Writes
``bench/results/ablations.json`` with the command, date, machine and settings. Interrupted, the same
command continues where it stopped (finished runs are kept in ``ablations.json.partial``).

    .venv/bin/python bench/ablations.py [--seeds 0,1,2]            # 21 runs, ~25 min on a quiet 2-core CPU
"""
from __future__ import annotations

import argparse
import json
import math
import statistics

import torch
from focal_loss_grid import (IMAGE_SIZE, PRESET, RESULTS, TRAIN_IMAGES, VAL_IMAGES, WARMUP_STEPS, FinishedRuns,
                             provenance, scores, write)

from retinanet_lite.config import preset_config
from retinanet_lite.data import VAL_SEED_OFFSET, ShapesDataset
from retinanet_lite.model import RetinaNet
from retinanet_lite.matching import match_anchors
from retinanet_lite.train import InMemory, train

CE = {"focal_gamma": 0.0, "focal_alpha": 0.5}
FL = {"focal_gamma": 2.0, "focal_alpha": 0.25}
SAMPLINGS = ("ohem", "ohem_1:3", "random")
ONE_ANCHOR = {"anchor_ratios": (1.0,), "anchor_scales": (1.0,)}
PRIORS = (0.01, 0.5)
#: The paper's numbers (COCO AP, AP50), Table 1d (ResNet-101-FPN; OHEM: batch size 128 per image, NMS 0.5, its best
#: setting for each variant shown here) and Table 1c (ResNet-50, 600-pixel images).
PAPER = {"table_1d": {"FL": [36.0, 54.9], "OHEM": [32.8, 50.3], "OHEM 1:3": [31.1, 47.2]},
         "table_1c": {"1 anchor (1 scale, 1 ratio)": [30.3, 49.0], "9 anchors (3 scales, 3 ratios)": [34.0, 52.5]}}


def positives_per_object(val_set, **anchor_settings) -> float:
    """The mean number of positive anchors per object over ``val_set``'s images, by the package's matching."""
    config = preset_config(PRESET, **anchor_settings)
    anchors = RetinaNet(config).anchors((IMAGE_SIZE, IMAGE_SIZE), torch.device("cpu"))
    positives = objects = 0
    for _, target in val_set:
        matches = match_anchors(anchors, target["boxes"], config.pos_iou, config.neg_iou, config.allow_low_quality)
        positives += int((matches >= 0).sum())
        objects += len(target["boxes"])
    return round(positives / objects, 3)


def from_grid(grid: dict, seed: int, gamma: float, alpha: float) -> dict[str, float]:
    cell = (grid["settings"]["gammas"].index(gamma), grid["settings"]["alphas"].index(alpha))
    return {key: values[cell[0]][cell[1]] for key, values in grid["grids"][str(seed)].items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--steps", type=int, default=250)
    parser.add_argument("--prior-steps", type=int, default=150)
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    grid = json.loads((RESULTS / "focal_loss_grid.json").read_text())
    settings = {"preset": PRESET, "steps": args.steps, "warmup_steps": WARMUP_STEPS, "train_images": TRAIN_IMAGES,
                "train_data_seed": 0, "val_images": VAL_IMAGES, "val_data_seed": VAL_SEED_OFFSET,
                "image_size": IMAGE_SIZE, "seeds": seeds, "ce": CE, "fl": FL, "cls_sampling_batch": 128,
                "ohem_nms_iou": 0.5, "one_anchor": ONE_ANCHOR, "prior_steps": args.prior_steps, "priors": PRIORS}
    shared = ("preset", "steps", "warmup_steps", "train_images", "train_data_seed", "val_images", "val_data_seed",
              "image_size")
    if any(grid["settings"][k] != settings[k] for k in shared) or not set(seeds) <= set(grid["settings"]["seeds"]):
        raise SystemExit("focal_loss_grid.json was made with other settings or seeds: run bench/focal_loss_grid.py first")
    train_set = InMemory(ShapesDataset(TRAIN_IMAGES, IMAGE_SIZE, seed=0))
    val_set = InMemory(ShapesDataset(VAL_IMAGES, IMAGE_SIZE, seed=VAL_SEED_OFFSET))
    out = RESULTS / "ablations.json"
    finished = FinishedRuns(out, settings)

    def short_run(seed: int, **overrides) -> dict:
        _, history = train(PRESET, seed=seed, steps=args.steps, warmup_steps=WARMUP_STEPS, train_set=train_set,
                           val_set=val_set, progress=False, **overrides)
        return scores(history["eval"][-1], ("map", "map_50"))

    def prior_run(seed: int, prior: float) -> dict:
        losses: list[float] = []
        try:
            _, history = train(PRESET, seed=seed, steps=args.prior_steps, warmup_steps=WARMUP_STEPS,
                               train_set=train_set, val_set=val_set, progress=False, prior_prob=prior,
                               callback=lambda h: losses.append(h["loss"][-1]), **CE)
            final = scores(history["eval"][-1], ("map", "map_50"))
        except FloatingPointError:  # train stops at a NaN or infinite loss
            final = {"map": None, "map_50": None}
        finite = all(math.isfinite(x) for x in losses) and len(losses) == args.prior_steps
        rose = finite and statistics.mean(losses[-10:]) > losses[0]
        return {"loss": [round(x, 5) if math.isfinite(x) else str(x) for x in losses],
                "diverged": (not finite) or rose, "non_finite": not finite, **final}

    result: dict = {"table_1d": [], "table_1c": [], "prior": []}
    for seed in seeds:
        for prior in PRIORS:
            run = finished.get(f"prior {seed} {prior}", lambda: prior_run(seed, prior))
            result["prior"].append({"seed": seed, "prior_prob": prior, **run})
            print(f"seed {seed} π={prior}: loss {run['loss'][0]} → {run['loss'][-1]}, diverged {run['diverged']}, "
                  f"AP {run['map']}", flush=True)
    for seed in seeds:
        for sampling in SAMPLINGS:
            run = finished.get(f"1d {seed} {sampling}", lambda: short_run(seed, cls_sampling=sampling, **CE))
            result["table_1d"].append({"seed": seed, "method": f"CE + {sampling}", "cls_sampling": sampling, **CE, **run})
            print(f"seed {seed} CE + {sampling}: AP {run['map']:.3f}", flush=True)
        result["table_1d"].append({"seed": seed, "method": "CE, all anchors (from focal_loss_grid.json)",
                                   "cls_sampling": "all", **CE, **from_grid(grid, seed, 0.0, 0.5)})
        focal = finished.get(f"fl {seed}", lambda: short_run(seed, **FL))
        result["table_1d"].append({"seed": seed, "method": "FL", "cls_sampling": "all", **FL, **focal,
                                   "map_in_focal_loss_grid.json": from_grid(grid, seed, 2.0, 0.25)["map"]})
        print(f"seed {seed} FL: AP {focal['map']:.3f} (focal_loss_grid.json: "
              f"{from_grid(grid, seed, 2.0, 0.25)['map']:.3f})", flush=True)
    counts = {"1": positives_per_object(val_set, **ONE_ANCHOR), "9": positives_per_object(val_set)}
    for seed in seeds:
        run = finished.get(f"1c {seed}", lambda: short_run(seed, **ONE_ANCHOR, **FL))
        result["table_1c"].append({"seed": seed, "anchors_per_location": 1, **FL, **run,
                                   "positives_per_object": counts["1"]})
        result["table_1c"].append({"seed": seed, "anchors_per_location": 9, **FL,
                                   **finished.get(f"fl {seed}", lambda: short_run(seed, **FL)),
                                   "positives_per_object": counts["9"], "same_run_as": "table_1d's FL row"})
        print(f"seed {seed} 1 anchor: AP {run['map']:.3f}", flush=True)
    write(out, {
        "what": "Table 1d (CE with OHEM / OHEM 1:3 / random 1:3 sampling vs FL), Table 1c (1 vs 9 anchors per "
                "location) and CE with and without the prior bias, on the shapes data; AP@[.5:.95] ('map') and AP50 "
                "('map_50') on the held-out images after a short training, per seed. The row 'from "
                "focal_loss_grid.json' is that file's cell (same settings; AP only), not trained again; FL is trained "
                "again (the grid's AP beside it). 'loss' (prior): the total training loss of every step.",
        **provenance(), "resumed_runs": finished.resumed, "grid_file": {"command": grid["command"],
                                                                        "date": grid["date"]},
        "settings": settings, "paper": PAPER, **result})
    finished.close()


if __name__ == "__main__":
    main()
