"""Train our `shapes-cpu` recipe and torchvision's RetinaNet side by side under one time budget.

Both get the same 2000 training images and are scored by pycocotools on the same 500 held-out
images (data generation and evaluation are not timed). Rows:

* ours             — `train("shapes-cpu")`, the preset's recipe exactly as the lessons use it;
* torchvision      — torchvision's RetinaNet around the same tiny ResNet, FPN width and anchors,
                     its default 4-conv heads and L1 box loss, trained by its reference recipe
                     (SGD 0.01, momentum 0.9, wd 1e-4, linear warm-up, ×0.1 steps at 62 % / 85 %);
* torchvision+GN+GIoU — the same with GroupNorm in the heads and GIoU loss (its "v2" tricks).

torchvision's runs are given the whole budget; their schedule is laid out over the number of steps
that fit in it (measured on the first steps). With `--runs N` the table shows medians.

    .venv/bin/python bench/train_vs_torchvision.py [--budget 150] [--runs 1]
"""
from __future__ import annotations

import argparse
import statistics

import torch

from common import pycocotools_map, torchvision_retinanet, train_torchvision
from retinanet_lite.config import preset_config
from retinanet_lite.data import VAL_SEED_OFFSET, ShapesDataset
from retinanet_lite.config import preset_recipe
from retinanet_lite.train import InMemory, run_inference, seed_everything, train

RECIPE = preset_recipe("shapes-cpu")


def run_ours(train_set, budget: float, seed: int) -> tuple[torch.nn.Module, float, int]:
    """The lessons' recipe, unchanged (it must finish inside the budget on its own)."""
    model, history = train("shapes-cpu", seed=seed, device="cpu", train_set=train_set, val_set=None, progress=False,
                           max_seconds=budget)
    return model, history["train_seconds"][0], len(history["step"])


def run_torchvision(train_set, budget: float, seed: int, group_norm: bool, box_loss: str
                    ) -> tuple[torch.nn.Module, float, int]:
    """torchvision's model and reference recipe, for as many steps as fit in ``budget`` seconds."""
    seed_everything(seed)
    model = torchvision_retinanet(preset_config("shapes-cpu"), RECIPE.image_size, group_norm=group_norm,
                                  box_loss=box_loss)
    return train_torchvision(model, train_set, RECIPE, budget, seed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", type=float, default=150.0, help="seconds of training per model")
    parser.add_argument("--runs", type=int, default=1, help="repeat with seeds 0..runs-1 and report medians")
    parser.add_argument("--only", choices=["ours", "torchvision", "torchvision+GN+GIoU"], nargs="*")
    args = parser.parse_args()
    contenders = {
        "ours": run_ours,
        "torchvision": lambda data, budget, seed: run_torchvision(data, budget, seed, False, "l1"),
        "torchvision+GN+GIoU": lambda data, budget, seed: run_torchvision(data, budget, seed, True, "giou"),
    }
    if args.only:
        contenders = {name: run for name, run in contenders.items() if name in args.only}
    rows: dict[str, list[dict[str, float]]] = {name: [] for name in contenders}
    for seed in range(args.runs):
        train_set = InMemory(ShapesDataset(RECIPE.num_train_images, RECIPE.image_size, seed=seed))
        val_set = InMemory(ShapesDataset(RECIPE.num_val_images, RECIPE.image_size, seed=seed + VAL_SEED_OFFSET))
        for name, run in contenders.items():
            model, seconds, steps = run(train_set, args.budget, seed)
            metrics = pycocotools_map(*run_inference(model, val_set), num_classes=3)
            rows[name].append({"seconds": seconds, "steps": steps, **metrics})
            print(f"run {seed}: {name:<20} {seconds:6.1f} s {steps:5d} steps  AP {metrics['map']:.3f}  "
                  f"AP50 {metrics['map_50']:.3f}  AP75 {metrics['map_75']:.3f}", flush=True)
    print(f"\nmedians over {args.runs} run(s); budget {args.budget:.0f} s; {torch.get_num_threads()} threads; "
          f"AP by pycocotools on {RECIPE.num_val_images} held-out images")
    print(f"{'model':<20} {'train s':>8} {'steps':>6} {'AP':>6} {'AP50':>6} {'AP75':>6}")
    medians = {name: {k: statistics.median(r[k] for r in runs) for k in runs[0]} for name, runs in rows.items()}
    for name, m in medians.items():
        print(f"{name:<20} {m['seconds']:>8.1f} {m['steps']:>6.0f} {m['map']:>6.3f} {m['map_50']:>6.3f} {m['map_75']:>6.3f}")
    if "ours" in medians:
        for name, m in medians.items():
            if name != "ours":
                print(f"ours vs {name}: AP {medians['ours']['map'] - m['map']:+.3f}, "
                      f"training time ×{medians['ours']['seconds'] / m['seconds']:.2f}")


if __name__ == "__main__":
    main()
