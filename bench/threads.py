"""Why `make test` gives each worker one torch thread: training speed with 1 or 2 processes at once, each with
1 or 2 threads, side by side in one run (bench/README.md, *Test suite: threads per worker*).

Each configuration starts its processes together; each trains `shapes-cpu` for ``--steps`` steps (batch 16,
256 in-memory images, no evaluation) and prints its milliseconds per step.

    .venv/bin/python bench/threads.py [--steps 60]                    # ~2 minutes on a 2-core CPU
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys

ONE_RUN = """
import sys, time
from retinanet_lite.data import ShapesDataset
from retinanet_lite.train import InMemory, train
images = InMemory(ShapesDataset(256, 128, seed=0))
started = time.perf_counter()
train("shapes-cpu", seed=0, steps=int(sys.argv[1]), warmup_steps=5, train_set=images, val_set=None, progress=False)
print((time.perf_counter() - started) / int(sys.argv[1]) * 1000)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=60)
    args = parser.parse_args()
    print(f"{'processes × threads':>20} | ms per step (each process) | steps per second, all processes")
    for processes, threads in ((1, 2), (1, 1), (2, 1), (2, 2)):
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        running = [subprocess.Popen([sys.executable, "-c", ONE_RUN, str(args.steps)], env=env, stdout=subprocess.PIPE,
                                    text=True) for _ in range(processes)]
        ms = [float(p.communicate()[0].split()[-1]) for p in running]
        print(f"{processes:>16} × {threads} | {', '.join(f'{m:.0f}' for m in ms):>26} | {sum(1000 / m for m in ms):.1f}")


if __name__ == "__main__":
    main()
