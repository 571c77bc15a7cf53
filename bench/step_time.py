"""Median training-step and batched-inference times: ours vs torchvision's RetinaNet, same architecture.

Both models get the same tiny ResNet, FPN width (64), 4-conv heads without GroupNorm, anchors, L1-type
box loss, batch of 16 shapes images at 128×128, and the same SGD optimiser. Steps of the two models
are interleaved (A, B, A, B, …) so that both see the same machine load; the script prints the
medians and the ratio torchvision / ours (> 1 means ours is faster).

With ``--profile`` it also splits each model's training step (``torch.profiler``, CPU time of the
main thread) into convolutions — forward and backward, the same layers in both models — and
everything else, and prints the fastest step ours could reach if everything but the convolutions
cost nothing: an upper bound on the ratio for an identical architecture.

With ``--channels-last`` our model (not torchvision's) runs in channels-last memory format — an
experiment, not what the lessons use.

    .venv/bin/python bench/step_time.py [--steps 30] [--batch 16] [--profile] [--channels-last]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.profiler import ProfilerActivity, profile

from common import torchvision_retinanet
from retinanet_lite.config import preset_config
from retinanet_lite.data import ShapesDataset
from retinanet_lite.model import RetinaNet

IMAGE_SIZE = 128


def same_architecture_pair() -> tuple[torch.nn.Module, torch.nn.Module]:
    """(ours, torchvision's) with identical architecture: shapes-cpu widths, 4-conv heads, no GroupNorm."""
    config = preset_config("shapes-cpu", head_convs=4, head_group_norm=False, box_loss="smooth_l1")
    torch.manual_seed(0)
    return RetinaNet(config), torchvision_retinanet(config, IMAGE_SIZE)


def train_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, images: list, targets: list) -> float:
    """One forward + backward + SGD step; returns its wall time in seconds."""
    started = time.perf_counter()
    loss = sum(model(images, targets).values())
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return time.perf_counter() - started


def is_convolution(op_name: str) -> bool:
    """Whether a profiler op is convolution work (aten::conv2d, mkldnn_convolution, convolution_backward, …)."""
    return "conv" in op_name.lower()


def profile_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, batches: list, steps: int = 8
                 ) -> tuple[float, float, list[tuple[str, float]]]:
    """From a ``torch.profiler`` trace of ``steps`` training steps, per step: (convolution ms, total ms,
    the five costliest other ops as (name, ms))."""
    with profile(activities=[ProfilerActivity.CPU]) as trace:
        started = time.perf_counter()
        for step in range(steps):
            images, targets = batches[step % len(batches)]
            train_step(model, optimizer, list(images), list(targets))
        total = (time.perf_counter() - started) / steps
    events = trace.key_averages()
    conv_ms = sum(e.self_cpu_time_total for e in events if is_convolution(e.key)) / 1000 / steps
    others = sorted(((e.key, e.self_cpu_time_total / 1000 / steps) for e in events if not is_convolution(e.key)),
                    key=lambda item: -item[1])
    return conv_ms, total * 1000, others[:5]


@torch.no_grad()
def inference(model: torch.nn.Module, images: list) -> float:
    """One batched eval-mode forward pass (decode, threshold, top-k, NMS included); returns seconds."""
    started = time.perf_counter()
    model(images)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=30, help="timed steps per model (after 5 warm-up steps)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--profile", action="store_true", help="also split the step into convolutions and the rest")
    parser.add_argument("--channels-last", action="store_true", help="run our model in channels-last memory format")
    args = parser.parse_args()
    data = ShapesDataset(args.batch * 4, IMAGE_SIZE, seed=0)
    batches = [list(zip(*(data[i] for i in range(b * args.batch, (b + 1) * args.batch)))) for b in range(4)]
    models = dict(zip(("ours", "torchvision"), same_architecture_pair()))
    if args.channels_last:
        models["ours"] = models["ours"].to(memory_format=torch.channels_last)
    params = {name: sum(p.numel() for p in m.parameters()) for name, m in models.items()}
    assert params["ours"] == params["torchvision"], f"architectures differ: {params}"
    optimizers = {name: torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9) for name, m in models.items()}
    times: dict[str, dict[str, list[float]]] = {name: {"train": [], "infer": []} for name in models}
    for model in models.values():
        model.train()
    for step in range(args.steps + 5):
        images, targets = batches[step % 4]
        for name, model in models.items():
            seconds = train_step(model, optimizers[name], list(images), list(targets))
            if step >= 5:
                times[name]["train"].append(seconds)
    for model in models.values():
        model.eval()
    for step in range(args.steps + 3):
        images, _ = batches[step % 4]
        for name, model in models.items():
            seconds = inference(model, list(images))
            if step >= 3:
                times[name]["infer"].append(seconds)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch} at "
          f"{IMAGE_SIZE}×{IMAGE_SIZE}, {args.steps} timed steps each, {params['ours']:,} parameters each"
          + (", ours in channels-last" if args.channels_last else ""))
    print(f"{'':>22} {'ours':>10} {'torchvision':>12} {'ratio tv/ours':>14}")
    for kind, label in (("train", "training step (ms)"), ("infer", "batched inference (ms)")):
        ours, theirs = (statistics.median(times[n][kind]) * 1000 for n in ("ours", "torchvision"))
        print(f"{label:>22} {ours:>10.1f} {theirs:>12.1f} {theirs / ours:>13.2f}x")
    if args.profile:
        for model in models.values():
            model.train()
        split = {name: profile_step(m, optimizers[name], batches) for name, m in models.items()}
        print("\nprofiled training step (8 steps each; the profiler slows both down a little):")
        for name, (conv, total, others) in split.items():
            print(f"{name:>12}: {total:6.1f} ms, convolutions {conv:6.1f} ms ({conv / total:.0%}), rest {total - conv:6.1f} ms")
            print("              costliest other ops: " + ", ".join(f"{op} {ms:.1f} ms" for op, ms in others))
        best_ratio = split["torchvision"][1] / split["ours"][0]
        print(f"upper bound on the training-step ratio with identical convolutions: {best_ratio:.2f}x")


if __name__ == "__main__":
    main()
