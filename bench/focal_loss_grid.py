"""Lesson 09's γ/α grid with several seeds, and full-length runs: the numbers its text quotes.

Grid: exactly the lesson's short runs (`train("shapes-cpu", steps=250, warmup_steps=50)` on the same
2 000 training images and 300 held-out images), for every (γ, α) and seed; prints each run and the
mean ± spread over seeds. With ``--full``: the preset's whole schedule (2 000 steps, 500 held-out
images, as lesson 07 trains it) for the (γ, α) pairs given.

    .venv/bin/python bench/focal_loss_grid.py [--seeds 0,1,2] [--steps 250]          # ~12 min
    .venv/bin/python bench/focal_loss_grid.py --full --pairs 0.5:0.25,1:0.25,0:0.5   # ~6 min
"""
from __future__ import annotations

import argparse
import statistics

from retinanet_lite.data import VAL_SEED_OFFSET, ShapesDataset
from retinanet_lite.train import InMemory, train


def floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--steps", type=int, default=250)
    parser.add_argument("--gammas", type=floats, default=[0.0, 0.5, 1.0, 2.0, 5.0])
    parser.add_argument("--alphas", type=floats, default=[0.25, 0.5, 0.75])
    parser.add_argument("--full", action="store_true", help="full preset schedule for --pairs instead of the grid")
    parser.add_argument("--pairs", default="0.5:0.25,1:0.25,2:0.25,0:0.5", help="gamma:alpha,… for --full")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]

    if args.full:
        for pair in args.pairs.split(","):
            gamma, alpha = map(float, pair.split(":"))
            for seed in seeds:
                _, history = train("shapes-cpu", seed=seed, progress=False, focal_gamma=gamma, focal_alpha=alpha)
                e = history["eval"][-1]
                print(f"γ={gamma} α={alpha} seed {seed}: AP {e['map']:.3f}  AP50 {e['map_50']:.3f}  "
                      f"AP75 {e['map_75']:.3f}  ({len(history['step'])} steps)", flush=True)
        return

    train_set = InMemory(ShapesDataset(2000, 128, seed=0))
    val_set = InMemory(ShapesDataset(300, 128, seed=VAL_SEED_OFFSET))
    ap: dict[tuple[float, float], list[float]] = {}
    for seed in seeds:
        for gamma in args.gammas:
            for alpha in args.alphas:
                _, history = train("shapes-cpu", seed=seed, steps=args.steps, warmup_steps=50, train_set=train_set,
                                   val_set=val_set, progress=False, focal_gamma=gamma, focal_alpha=alpha)
                ap.setdefault((gamma, alpha), []).append(history["eval"][-1]["map"])
                print(f"seed {seed} γ={gamma} α={alpha}: AP {ap[gamma, alpha][-1]:.3f}", flush=True)
    print(f"\nmean AP@[.5:.95] over seeds {seeds} after {args.steps} steps (± spread: max − min)")
    print("γ \\ α  " + "".join(f"{a:>16}" for a in args.alphas))
    for gamma in args.gammas:
        cells = [ap[gamma, a] for a in args.alphas]
        print(f"{gamma:<6} " + "".join(f"{statistics.mean(c):>9.3f} ± {max(c) - min(c):.3f}" for c in cells))


if __name__ == "__main__":
    main()
