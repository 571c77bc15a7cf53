"""Ways to run the same convolutions faster on a CPU, measured side by side (issue 3's 1.25× attempt).

All variants compute exactly the same function (checked before timing), forward + backward, batch
16 with the benchmark's head architecture (64-channel FPN, 4-conv heads, A = 9, K = 3):

* heads, per level        — what ``retinanet_lite.heads`` does: each tower runs on each level;
* heads, grouped towers   — class and box towers side by side as one grouped convolution per layer;
* heads, shared first conv — only the first layer (same input for both towers) fused into one conv;
* heads, packed levels    — the five levels packed into one zero-separated canvas, one conv per layer;
* heads, native conv      — per level, with oneDNN switched off (PyTorch's own convolution).

(Channels-last memory format for the whole model is measured by ``step_time.py --channels-last``.)

Variants are interleaved (A, B, C, …, A, B, C, …) so that all see the same machine load; the script
prints medians.

    .venv/bin/python bench/conv_variants.py [--steps 40]
"""
from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import torch
from torch import Tensor, nn

BATCH, CHANNELS, CONVS, SIZES = 16, 64, 4, (16, 8, 4, 2, 1)  # P3–P7 of a 128×128 image
OUTPUTS = {"class": 9 * 3, "box": 9 * 4}


def tower(channels: int, groups: int = 1, first: bool = True) -> nn.Sequential:
    """``CONVS`` × (3×3 conv → ReLU) (without the first conv when ``first`` is False)."""
    layers: list[nn.Module] = []
    for i in range(CONVS):
        if i or first:
            layers += [nn.Conv2d(channels, channels, 3, padding=1, groups=groups), nn.ReLU()]
    return nn.Sequential(*layers)


class Heads(nn.Module):
    """The two subnets' towers and prediction convs, with the variants' ways to run them."""

    def __init__(self) -> None:
        super().__init__()
        self.towers = nn.ModuleDict({name: tower(CHANNELS) for name in OUTPUTS})
        self.predict = nn.ModuleDict({name: nn.Conv2d(CHANNELS, n, 3, padding=1) for name, n in OUTPUTS.items()})

    def per_level(self, features: list[Tensor]) -> list[Tensor]:
        return [self.predict[n](self.towers[n](f)) for f in features for n in OUTPUTS]

    def packed(self, features: list[Tensor]) -> list[Tensor]:
        """P3 on the left; P4 top right; P5, P6, P7 in a row below P4 — one zero column/row between them."""
        height, width = SIZES[0], SIZES[0] + 1 + SIZES[1] + 1
        places = [(0, 0), (0, SIZES[0] + 1)]
        column = SIZES[0] + 1
        for size in SIZES[2:]:
            places.append((SIZES[1] + 1, column))
            column += size + 1
        width = max(width, column)
        mask = features[0].new_zeros(1, 1, height, width)
        canvas = features[0].new_zeros(BATCH, CHANNELS, height, width)
        for (row, col), size, f in zip(places, SIZES, features):
            mask[..., row:row + size, col:col + size] = 1
            canvas[..., row:row + size, col:col + size] = f
        outputs = []
        for name in OUTPUTS:
            x = canvas
            for layer in self.towers[name]:
                x = layer(x)
                if isinstance(layer, nn.ReLU):
                    x = x * mask  # the gaps stay zero, like each level's own zero padding
            y = self.predict[name](x)
            outputs.append([y[..., r:r + s, c:c + s] for (r, c), s in zip(places, SIZES)])
        return [o for pair in zip(*outputs) for o in pair]


class GroupedHeads(nn.Module):
    """Both towers as one grouped convolution per layer (first layer: one conv to 2C channels)."""

    def __init__(self) -> None:
        super().__init__()
        self.first = nn.Conv2d(CHANNELS, 2 * CHANNELS, 3, padding=1)
        self.rest = tower(2 * CHANNELS, groups=2, first=False)
        self.predict = nn.ModuleDict({name: nn.Conv2d(CHANNELS, n, 3, padding=1) for name, n in OUTPUTS.items()})

    def forward(self, features: list[Tensor]) -> list[Tensor]:
        outputs = []
        for f in features:
            class_x, box_x = self.rest(torch.relu(self.first(f))).split(CHANNELS, dim=1)
            outputs += [self.predict["class"](class_x), self.predict["box"](box_x)]
        return outputs


class SharedFirstHeads(Heads):
    """Per level, but the two towers' first convs (same input) run as one conv to 2C channels."""

    def __init__(self) -> None:
        super().__init__()
        self.first = nn.Conv2d(CHANNELS, 2 * CHANNELS, 3, padding=1)

    def forward(self, features: list[Tensor]) -> list[Tensor]:
        outputs = []
        for f in features:
            class_x, box_x = torch.relu(self.first(f)).split(CHANNELS, dim=1)
            outputs += [self.predict["class"](self.towers["class"][2:](class_x)),
                        self.predict["box"](self.towers["box"][2:](box_x))]
        return outputs


def copy_into_grouped(grouped: GroupedHeads, heads: Heads) -> None:
    """Give ``grouped`` exactly the weights of ``heads`` (so both compute the same function)."""
    with torch.no_grad():
        grouped.first.weight.copy_(torch.cat([heads.towers[n][0].weight for n in OUTPUTS]))
        grouped.first.bias.copy_(torch.cat([heads.towers[n][0].bias for n in OUTPUTS]))
        for layer in range(1, CONVS):
            target = grouped.rest[2 * (layer - 1)]
            target.weight.copy_(torch.cat([heads.towers[n][2 * layer].weight for n in OUTPUTS]))
            target.bias.copy_(torch.cat([heads.towers[n][2 * layer].bias for n in OUTPUTS]))
        grouped.predict.load_state_dict(heads.predict.state_dict())


def copy_into_shared_first(shared: SharedFirstHeads, heads: Heads) -> None:
    """Give ``shared`` exactly the weights of ``heads``."""
    shared.load_state_dict(heads.state_dict(), strict=False)
    with torch.no_grad():
        shared.first.weight.copy_(torch.cat([heads.towers[n][0].weight for n in OUTPUTS]))
        shared.first.bias.copy_(torch.cat([heads.towers[n][0].bias for n in OUTPUTS]))


def timed(run: Callable[[], list[Tensor]]) -> float:
    """Seconds for one forward + backward of ``run``'s outputs."""
    started = time.perf_counter()
    sum(o.square().sum() for o in run()).backward()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=40, help="timed repetitions per variant (after 5 warm-up)")
    args = parser.parse_args()
    torch.manual_seed(0)
    features = [torch.randn(BATCH, CHANNELS, s, s, requires_grad=True) for s in SIZES]
    heads, grouped, shared = Heads(), GroupedHeads(), SharedFirstHeads()
    copy_into_grouped(grouped, heads)
    copy_into_shared_first(shared, heads)
    reference = heads.per_level(features)
    for name, outputs in (("grouped", grouped(features)), ("shared first", shared(features)),
                          ("packed", heads.packed(features))):
        worst = max((a - b).abs().max().item() for a, b in zip(reference, outputs))
        assert worst < 1e-4, f"{name} heads compute something else (max difference {worst:.2e})"

    variants: dict[str, tuple[Callable[[], list[Tensor]], bool]] = {  # name: (run, oneDNN on)
        "heads, per level (ours)": (lambda: heads.per_level(features), True),
        "heads, grouped towers": (lambda: grouped(features), True),
        "heads, shared first conv": (lambda: shared(features), True),
        "heads, packed levels": (lambda: heads.packed(features), True),
        "heads, native conv": (lambda: heads.per_level(features), False),
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    for step in range(args.steps + 5):
        for name, (run, onednn) in variants.items():
            torch.backends.mkldnn.enabled = onednn
            seconds = timed(run)
            if step >= 5:
                times[name].append(seconds)
    torch.backends.mkldnn.enabled = True
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {BATCH}, forward + backward, "
          f"median of {args.steps} interleaved repetitions")
    for name, values in times.items():
        print(f"{name:>28}: {statistics.median(values) * 1000:7.1f} ms")


if __name__ == "__main__":
    main()
