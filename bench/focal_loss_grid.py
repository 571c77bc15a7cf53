"""Lesson 09's γ/α grid with several seeds, and full-length runs: the numbers its text quotes.

Grid: exactly the lesson's short runs (`train("shapes-cpu", steps=250, warmup_steps=50)` on the same
2 000 training images and 300 held-out images), for every (γ, α) and seed; prints each run and the
mean ± spread over seeds, and writes every seed's grid (AP@[.5:.95] and AP50 per cell) with the
command, date, machine and settings to ``bench/results/focal_loss_grid.json`` — the file lesson 09
shows. With ``--full``: the preset's whole schedule (2 000 steps, 500 held-out images, as lesson 07
trains it) for the (γ, α) pairs given, written to ``bench/results/focal_loss_full.json``.

Interrupted (on a shared machine, say), the same command started again continues where it stopped:
finished runs are kept in ``<result file>.partial``, and a full run resumes from its last checkpoint
in ``runs/focal_loss_full/``. Every run is seeded, so this changes no number.

    .venv/bin/python bench/focal_loss_grid.py [--seeds 0,1,2] [--steps 250]            # 45 runs, ~15 min
    .venv/bin/python bench/focal_loss_grid.py --full --seeds 0                          # 4 runs, ~7 min
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shlex
import shutil
import statistics
import sys
from pathlib import Path

import torch

from retinanet_lite.data import VAL_SEED_OFFSET, ShapesDataset
from retinanet_lite.config import preset_recipe
from retinanet_lite.train import InMemory, train

RESULTS = Path(__file__).resolve().parent / "results"
PRESET = "shapes-cpu"
TRAIN_IMAGES, VAL_IMAGES, IMAGE_SIZE, WARMUP_STEPS = 2000, 300, 128, 50  # the lesson's short runs
PARTIAL = ".partial"  # suffix of the file that keeps the finished runs of an unfinished invocation
#: A full run saves a checkpoint here every CHECKPOINT_EVERY steps and, started again, resumes from it
#: (exactly: optimizer, schedule, flips and data order are restored); removed when the run is done.
SCRATCH, CHECKPOINT_EVERY = Path(__file__).resolve().parent.parent / "runs" / "focal_loss_full", 100


def floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",")]


def cpu_model() -> str:
    """The CPU's name from /proc/cpuinfo (Linux), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def provenance() -> dict:
    """The command line that regenerates the file (relative to the working directory), the date (now: when
    the file is written) and the machine."""
    python = Path(sys.executable)
    try:
        python = python.relative_to(Path.cwd())
    except ValueError:
        pass
    return {
        "command": shlex.join([str(python), *sys.argv]),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "torch": torch.__version__, "python": platform.python_version(),
                    "platform": platform.platform()},
    }


def write(path: Path, result: dict) -> None:
    """``result`` as indented JSON, each list of numbers (a grid row, the settings' values) on one line."""
    text = json.dumps(result, indent=1, ensure_ascii=False)
    text = re.sub(r"\[\s*([-0-9.e, \n]*?)\s*\]", lambda m: "[" + re.sub(r",\s+", ", ", m[1]) + "]", text)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")
    print(f"wrote {path}")


def scores(evaluation: dict, keys: tuple[str, ...]) -> dict[str, float]:
    return {k: round(float(evaluation[k]), 6) for k in keys}


class FinishedRuns:
    """The runs finished so far, one JSON line each in ``<out>.partial`` (the first line: the settings),
    so that an invocation that is interrupted (on a shared machine, say) continues where it stopped
    when it is started again with the same settings. Every run is seeded, so resuming changes no
    number. The file is removed once the result file is written."""

    def __init__(self, out: Path, settings: dict):
        self.path = out.with_name(out.name + PARTIAL)
        self.done: dict[str, dict] = {}
        lines = self.path.read_text().splitlines() if self.path.exists() else []
        self.fresh = not (lines and json.loads(lines[0]) == json.loads(json.dumps(settings)))  # nothing to resume
        if not self.fresh:
            for line in lines[1:]:
                try:
                    key, result = json.loads(line)
                except ValueError:  # a line cut short by the interruption
                    continue
                self.done[key] = result
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(json.dumps(settings) + "\n")
        self.resumed = len(self.done)

    def get(self, key: str, run) -> dict:
        """The result of the run called ``key``: from the file if it finished before, else ``run()``."""
        if key not in self.done:
            self.done[key] = run()
            with self.path.open("a") as f:
                f.write(json.dumps([key, self.done[key]]) + "\n")
        return self.done[key]

    def close(self) -> None:
        self.path.unlink(missing_ok=True)


def full_runs(args: argparse.Namespace, seeds: list[int]) -> None:
    recipe = preset_recipe(PRESET)
    pairs = [tuple(map(float, pair.split(":"))) for pair in args.pairs.split(",")]
    settings = {"preset": PRESET, "steps": recipe.steps, "warmup_steps": recipe.warmup_steps,
                "train_images": recipe.num_train_images, "val_images": recipe.num_val_images,
                "image_size": recipe.image_size, "data_seed": "the run's seed (validation: seed + "
                f"{VAL_SEED_OFFSET})", "seeds": seeds, "pairs": pairs}
    out = args.out or RESULTS / "focal_loss_full.json"
    finished = FinishedRuns(out, settings)
    if finished.fresh:  # checkpoints of another invocation (maybe of other code) are not resumed
        shutil.rmtree(SCRATCH, ignore_errors=True)

    def full_run(gamma: float, alpha: float, seed: int) -> dict:
        scratch = SCRATCH / f"gamma{gamma}-alpha{alpha}-seed{seed}"
        checkpoint = scratch / "model.pt"
        _, history = train(PRESET, seed=seed, progress=False, focal_gamma=gamma, focal_alpha=alpha, out=scratch,
                           checkpoint_every=CHECKPOINT_EVERY, resume=checkpoint if checkpoint.exists() else None)
        shutil.rmtree(scratch)
        return {"steps": len(history["step"]), **scores(history["eval"][-1], ("map", "map_50", "map_75"))}

    runs = []
    for gamma, alpha in pairs:
        for seed in seeds:
            e = finished.get(f"{gamma} {alpha} {seed}", lambda: full_run(gamma, alpha, seed))
            runs.append({"gamma": gamma, "alpha": alpha, "seed": seed, **e})
            print(f"γ={gamma} α={alpha} seed {seed}: AP {e['map']:.3f}  AP50 {e['map_50']:.3f}  "
                  f"AP75 {e['map_75']:.3f}  ({e['steps']} steps)", flush=True)
    write(out, {"what": "the preset's whole schedule for each (gamma, alpha, seed); AP on the preset's held-out images",
                **provenance(), "resumed_runs": finished.resumed, "settings": settings, "runs": runs})
    finished.close()


def grid(args: argparse.Namespace, seeds: list[int]) -> None:
    train_set = InMemory(ShapesDataset(TRAIN_IMAGES, IMAGE_SIZE, seed=0))
    val_set = InMemory(ShapesDataset(VAL_IMAGES, IMAGE_SIZE, seed=VAL_SEED_OFFSET))
    settings = {"preset": PRESET, "steps": args.steps, "warmup_steps": WARMUP_STEPS,
                "train_images": TRAIN_IMAGES, "train_data_seed": 0, "val_images": VAL_IMAGES,
                "val_data_seed": VAL_SEED_OFFSET, "image_size": IMAGE_SIZE, "seeds": seeds,
                "gammas": args.gammas, "alphas": args.alphas}
    out = args.out or RESULTS / "focal_loss_grid.json"
    finished = FinishedRuns(out, settings)

    def short_run(seed: int, gamma: float, alpha: float) -> dict:
        _, history = train(PRESET, seed=seed, steps=args.steps, warmup_steps=WARMUP_STEPS, train_set=train_set,
                           val_set=val_set, progress=False, focal_gamma=gamma, focal_alpha=alpha)
        return scores(history["eval"][-1], ("map", "map_50"))

    results: dict[tuple[int, float, float], dict[str, float]] = {}
    for seed in seeds:
        for gamma in args.gammas:
            for alpha in args.alphas:
                results[seed, gamma, alpha] = finished.get(f"{seed} {gamma} {alpha}",
                                                           lambda: short_run(seed, gamma, alpha))
                print(f"seed {seed} γ={gamma} α={alpha}: AP {results[seed, gamma, alpha]['map']:.3f}", flush=True)
    print(f"\nmean AP@[.5:.95] over seeds {seeds} after {args.steps} steps (± spread: max − min)")
    print("γ \\ α  " + "".join(f"{a:>16}" for a in args.alphas))
    for gamma in args.gammas:
        cells = [[results[s, gamma, a]["map"] for s in seeds] for a in args.alphas]
        print(f"{gamma:<6} " + "".join(f"{statistics.mean(c):>9.3f} ± {max(c) - min(c):.3f}" for c in cells))
    write(out, {
        "what": "AP@[.5:.95] ('map') and AP50 ('map_50') on the held-out images after a short training, "
                "per seed; grids are rows gamma (in 'gammas' order) x columns alpha (in 'alphas' order)",
        **provenance(), "resumed_runs": finished.resumed, "settings": settings,
        "grids": {str(seed): {key: [[results[seed, g, a][key] for a in args.alphas] for g in args.gammas]
                              for key in ("map", "map_50")} for seed in seeds},
    })
    finished.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--steps", type=int, default=250)
    parser.add_argument("--gammas", type=floats, default=[0.0, 0.5, 1.0, 2.0, 5.0])
    parser.add_argument("--alphas", type=floats, default=[0.25, 0.5, 0.75])
    parser.add_argument("--full", action="store_true", help="full preset schedule for --pairs instead of the grid")
    parser.add_argument("--pairs", default="0.5:0.25,1:0.25,2:0.25,0:0.5", help="gamma:alpha,… for --full")
    parser.add_argument("--out", type=Path, help="result file (default: bench/results/focal_loss_{grid,full}.json)")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    (full_runs if args.full else grid)(args, seeds)


if __name__ == "__main__":
    main()
