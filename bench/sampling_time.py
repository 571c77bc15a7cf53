"""The training-step cost of each ``cls_sampling`` option (lesson 09's Table 1d): ms per step of the grid's short
runs (``shapes-cpu``, cross-entropy, batch 16) with every non-ignored anchor ("all"), random 1:3 sampling, OHEM
and OHEM 1:3, one after the other on the same machine, and each one's ratio to "all" (OHEM adds a per-image NMS
over the anchors to every step).

    .venv/bin/python bench/sampling_time.py [--steps 60]                # ~2 minutes on a 2-core CPU
"""
from __future__ import annotations

import argparse
import time

from retinanet_lite.data import ShapesDataset
from retinanet_lite.matching import SAMPLINGS
from retinanet_lite.train import InMemory, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=60)
    args = parser.parse_args()
    images = InMemory(ShapesDataset(256, 128, seed=0))
    per_step = {}
    for sampling in SAMPLINGS:
        started = time.perf_counter()
        train("shapes-cpu", seed=0, steps=args.steps, warmup_steps=5, train_set=images, val_set=None, progress=False,
              focal_gamma=0.0, focal_alpha=0.5, cls_sampling=sampling)
        per_step[sampling] = (time.perf_counter() - started) / args.steps * 1000
        print(f"{sampling:>9}: {per_step[sampling]:6.0f} ms per step, {per_step[sampling] / per_step['all']:.2f}× 'all'",
              flush=True)


if __name__ == "__main__":
    main()
