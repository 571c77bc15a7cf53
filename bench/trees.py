"""Tree crowns (lesson 11): the `trees-cpu` recipe against its targets, side by side, over seeds.

For each seed, one after the other on the same machine (so that every row sees the same load):

* shapes-cpu      — `train("shapes-cpu")`, timed: the yardstick for "at most 2× its training time";
* ours            — `train("trees-cpu")`: the preset from scratch (1 500 steps), the targets' row;
* ours in class   — the same for lesson 11's in-class schedule (1 100 steps): what the lesson trains, and
                    the seeds its self-check compares the lesson's model with;
* ours from shapes — the same, starting from the shapes model's weights wherever a layer's name and
                    shape match (`train(..., init_from=...)`; the model lesson 07 trains, made once);
* torchvision     — torchvision's RetinaNet around the same tiny ResNet, FPN width and anchors, with
                    GroupNorm heads and GIoU loss (its "v2" tricks; its default heads learn far more
                    slowly, see the shapes benchmark), trained by its reference recipe (SGD 0.01, momentum
                    0.9, wd 1e-4, warm-up, ×0.1 steps) on the same tiles with the preset's batch size and
                    augmentations, for the same time as ours took;
* ours short      — the preset on lesson 11's short schedule (300 steps): the seed spread its one-change
                    exercise compares a change with.

Scores: AP@[.5:.95] and AP50 by **pycocotools**, up to 300 detections per image, on the val tiles and
on the other-site test images (never used to choose anything). The preset detects in eight views of each
image at two sizes (``tta_views=8``, ``tta_scales=(1.0, 1.25)``, see retinanet_lite/tta.py); our rows are
also scored looking at each image once (``…_one_view``), the like-for-like comparison with torchvision's
single view, and with the eight views at the one size they were trained at (``…_one_size``). Prints the
table and writes it, with the command, date and machine, to ``bench/results/trees.json`` — the file
lesson 11 shows.

    .venv/bin/python bench/trees.py [--seeds 0,1,2]          # about 21 minutes per seed on 2 cores

``--rows ours --set color_jitter=0.2 --out other.json`` trains only some of the rows, with changes to the
preset (any TrainConfig / RetinaNetConfig field, plus ``tile_size`` for the training crops): how the
attempts recorded in bench/README.md were made; ``--add`` adds rows to an existing file (its
``commands`` lists every invocation that wrote it). The file is rewritten after every seed.
"""
from __future__ import annotations

import argparse
import ast
import json
import statistics
from pathlib import Path

import torch

from common import pycocotools_map, torchvision_retinanet, train_torchvision
from focal_loss_grid import provenance
from retinanet_lite.config import preset_config, preset_recipe
from retinanet_lite.data import TreeCrowns
from retinanet_lite.model import RetinaNet
from retinanet_lite.train import LESSON_CHECKPOINT, load_or_train, run_inference, seed_everything, train

RESULTS = Path(__file__).resolve().parent / "results" / "trees.json"
PRESET = "trees-cpu"
MAX_DETECTIONS = 300
TARGETS = {"val_map_50": 0.55, "test_map_50": 0.20, "time_ratio": 2.0}


def scores(model: torch.nn.Module, splits: dict[str, TreeCrowns]) -> dict[str, float]:
    """``{"val_map", "val_map_50", "test_map", "test_map_50"}`` of a model (ours or torchvision's)."""
    out = {}
    for name, dataset in splits.items():
        predictions, targets = run_inference(model, dataset, batch_size=8)
        found = pycocotools_map(predictions, targets, num_classes=1, max_detections=MAX_DETECTIONS)
        out.update({f"{name}_{k}": found[k] for k in ("map", "map_50")})
    return out


#: How one of ours that fuses several views is also scored: looking once, and its views at one size only.
FEWER_VIEWS = {"one_view": {"tta_views": 1, "tta_scales": (1.0,)}, "one_size": {"tta_scales": (1.0,)}}


def scores_and_fewer_views(model: torch.nn.Module, splits: dict[str, TreeCrowns]) -> dict[str, float]:
    """:func:`scores` of the model as configured (the preset fuses eight views at two sizes) and, for one of
    ours, also of the same model with each of :data:`FEWER_VIEWS` (``…_one_view``, ``…_one_size``)."""
    out = scores(model, splits)
    if isinstance(model, RetinaNet):
        configured = model.config
        for suffix, change in FEWER_VIEWS.items():
            model.config = configured.replace(**change)
            out.update({f"{key}_{suffix}": value for key, value in scores(model, splits).items()})
        model.config = configured
    return out


def run_ours(seed: int, changes: dict, init_from: Path | None = None) -> tuple[torch.nn.Module, float, int]:
    """``train(PRESET)`` with ``changes`` (``tile_size`` re-cuts the training crops, overlapping by half)."""
    changes = dict(changes)
    tile = changes.pop("tile_size", None)
    data = {"train_set": TreeCrowns("train", tile_size=tile, overlap=tile // 2)} if tile else {}
    model, history = train(PRESET, seed=seed, device="cpu", progress=False, val_set=None, init_from=init_from,
                           **data, **changes)
    return model, history["train_seconds"][0], len(history["step"])


def run_torchvision(train_set: TreeCrowns, budget: float, seed: int) -> tuple[torch.nn.Module, float, int]:
    """torchvision's RetinaNet (GroupNorm heads, GIoU) by its reference recipe for ``budget`` seconds, with the
    preset's batch size and augmentations, each tile at its own size."""
    seed_everything(seed)
    model = torchvision_retinanet(preset_config(PRESET), image_size=None, group_norm=True, box_loss="giou")
    return train_torchvision(model, train_set, preset_recipe(PRESET), budget, seed)


ROWS = ("ours", "ours in class", "ours from shapes", "torchvision", "ours short")
#: The rows that train the preset for fewer steps: lesson 11's in-class schedule (IN_CLASS in the lesson), and
#: the short schedule of its one-change exercise (the seed spread there is the exercise's noise level).
SCHEDULES = {"ours in class": {"steps": 1100}, "ours short": {"steps": 300, "warmup_steps": 50}}


def change(text: str) -> tuple[str, object]:
    """``key=value`` (value a Python literal) → ``(key, value)``."""
    key, _, value = text.partition("=")
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        raise argparse.ArgumentTypeError(f"--set {text!r}: expected key=<Python literal>") from None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--rows", default=",".join(ROWS), help=f"some of {ROWS}, comma-separated")
    parser.add_argument("--set", type=change, action="append", default=[], metavar="KEY=VALUE",
                        help="a change to the preset for our rows (repeatable)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--add", action="store_true", help="add these rows to --out's (replacing the same rows)")
    args = parser.parse_args()
    seeds, wanted, changes = [int(s) for s in args.seeds.split(",")], args.rows.split(","), dict(args.set)
    if not set(wanted) <= set(ROWS) or ("torchvision" in wanted and "ours" not in wanted):
        parser.error(f"--rows: choose from {ROWS} (torchvision needs ours: it gets the same training time)")
    splits = {"val": TreeCrowns("val"), "test": TreeCrowns("test")}
    shapes_checkpoint = Path(__file__).resolve().parents[1] / "notebooks" / LESSON_CHECKPOINT  # lesson 07's model
    if "ours from shapes" in wanted:
        load_or_train(shapes_checkpoint, progress=False)  # made here if lesson 07 has not made it
    kept, commands = [], []
    if args.add and args.out.is_file():
        previous = json.loads(args.out.read_text())
        kept, commands = previous["rows"], previous.get("commands", [previous["command"]])
    rows = []
    for seed in seeds:
        shapes_seconds = None
        if "ours" in wanted:
            _, shapes_history = train("shapes-cpu", seed=seed, device="cpu", progress=False, val_set=None)
            shapes_seconds = shapes_history["train_seconds"][0]
        for name in wanted:
            if name == "torchvision":
                ours = next(r for r in rows if r["model"] == "ours" and r["seed"] == seed)
                model, seconds, steps = run_torchvision(TreeCrowns("train"), ours["train_seconds"], seed)
            else:
                start = shapes_checkpoint if name == "ours from shapes" else None
                model, seconds, steps = run_ours(seed, {**changes, **SCHEDULES.get(name, {})}, start)
            row = {"model": name, "seed": seed, "train_seconds": round(seconds, 1), "steps": steps,
                   "shapes_cpu_seconds": shapes_seconds and round(shapes_seconds, 1),
                   "time_ratio": shapes_seconds and round(seconds / shapes_seconds, 2),
                   **{k: round(v, 4) for k, v in scores_and_fewer_views(model, splits).items()}}
            rows.append(row)
            print(json.dumps(row), flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        made = {(r["model"], r["seed"]) for r in rows}
        rows_now = [r for r in kept if (r["model"], r["seed"]) not in made] + rows
        result = {**provenance(), "preset": PRESET, "changes": changes, "targets": TARGETS,
                  "max_detections": MAX_DETECTIONS, "rows": rows_now}
        result["commands"] = [*commands, result["command"]]  # every invocation that wrote a row of this file
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    print_table(rows)
    print(f"wrote {args.out}")


def print_table(rows: list[dict]) -> None:
    """Medians over seeds per model, and every seed's val / test AP50."""
    columns = ("train_seconds", "time_ratio", "val_map", "val_map_50", "test_map", "test_map_50")
    print(f"{'model':<20}" + "".join(f"{c:>13}" for c in columns) + "   per seed (val / test AP50)")
    for name in dict.fromkeys(r["model"] for r in rows):
        mine = [r for r in rows if r["model"] == name]
        medians = "".join(f"{statistics.median(r[c] for r in mine):>13.3f}" if mine[0][c] is not None else f"{'-':>13}"
                          for c in columns)
        seeds = ", ".join(f"{r['val_map_50']:.3f} / {r['test_map_50']:.3f}" for r in mine)
        print(f"{name:<20}{medians}   {seeds}")
        for suffix in FEWER_VIEWS:
            if f"val_map_50_{suffix}" in mine[0]:
                seeds = ", ".join(f"{r[f'val_map_50_{suffix}']:.3f} / {r[f'test_map_50_{suffix}']:.3f}" for r in mine)
                print(f"{'  ' + suffix.replace('_', ' '):<20}{'':>{13 * len(columns)}}   {seeds}")


if __name__ == "__main__":
    main()
