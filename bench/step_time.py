"""Median training-step and batched-inference times: ours vs torchvision's RetinaNet, same architecture.

Both models get the same tiny ResNet, FPN width (64), 4-conv heads without GroupNorm, anchors, L1-type
box loss, batch of 16 shapes images at 128×128, and the same SGD optimiser. Ours runs as the lessons
run it (channels-last memory layout, the config default); torchvision's as it comes. For reference
the script also times ours in the default (contiguous) layout and torchvision's converted to
channels-last, so that the layout's share of the difference is visible. Steps of the four models
are interleaved (A, B, C, D, A, …) so that all see the same machine load; the script prints the
medians and each one's ratio to torchvision's as it comes (> 1 means faster than it).

With ``--profile`` it also splits ours' and torchvision's training step (``torch.profiler``, CPU time
of the main thread) into convolutions — forward and backward, the same layers in both models — and
everything else, and prints the fastest step ours could reach if everything but the convolutions
cost nothing: an upper bound on the ratio for an identical architecture.

    .venv/bin/python bench/step_time.py [--steps 30] [--batch 16] [--profile]
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


def same_architecture_models() -> dict[str, torch.nn.Module]:
    """Ours and torchvision's with identical architecture (shapes-cpu widths, 4-conv heads, no GroupNorm),
    each in both memory layouts; ours first as the lessons run it, then torchvision's as it comes."""
    config = preset_config("shapes-cpu", head_convs=4, head_group_norm=False, box_loss="smooth_l1")
    torch.manual_seed(0)
    return {
        "ours": RetinaNet(config),
        "torchvision": torchvision_retinanet(config, IMAGE_SIZE),
        "ours, contiguous": RetinaNet(config.replace(channels_last=False)),
        "torchvision, channels-last": torchvision_retinanet(config, IMAGE_SIZE).to(memory_format=torch.channels_last),
    }


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
    args = parser.parse_args()
    data = ShapesDataset(args.batch * 4, IMAGE_SIZE, seed=0)
    batches = [list(zip(*(data[i] for i in range(b * args.batch, (b + 1) * args.batch)))) for b in range(4)]
    models = same_architecture_models()
    params = {name: sum(p.numel() for p in m.parameters()) for name, m in models.items()}
    assert len(set(params.values())) == 1, f"architectures differ: {params}"
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
          f"{IMAGE_SIZE}×{IMAGE_SIZE}, {args.steps} timed steps each, {params['ours']:,} parameters each")
    medians = {name: {kind: statistics.median(t) * 1000 for kind, t in kinds.items()} for name, kinds in times.items()}
    print(f"{'':>28} {'training step':>14} {'ratio':>7} {'batched inference':>18} {'ratio':>7}")
    for name, ms in medians.items():
        ratios = [medians["torchvision"][kind] / ms[kind] for kind in ("train", "infer")]
        print(f"{name:>28} {ms['train']:>11.1f} ms {ratios[0]:>6.2f}x {ms['infer']:>15.1f} ms {ratios[1]:>6.2f}x")
    print("(ratio = torchvision's time / this row's time; > 1 is faster than torchvision's RetinaNet as it comes)")
    if args.profile:
        pair = {name: models[name] for name in ("ours", "torchvision")}
        for model in pair.values():
            model.train()
        split = {name: profile_step(m, optimizers[name], batches) for name, m in pair.items()}
        print("\nprofiled training step (8 steps each; the profiler slows both down a little):")
        for name, (conv, total, others) in split.items():
            print(f"{name:>12}: {total:6.1f} ms, convolutions {conv:6.1f} ms ({conv / total:.0%}), rest {total - conv:6.1f} ms")
            print("              costliest other ops: " + ", ".join(f"{op} {ms:.1f} ms" for op, ms in others))
        best_ratio = split["torchvision"][1] / split["ours"][0]
        print(f"upper bound on the training-step ratio with these convolutions: {best_ratio:.2f}x")


if __name__ == "__main__":
    main()
