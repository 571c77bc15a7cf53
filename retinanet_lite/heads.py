"""The two subnets that run on every pyramid level (weights shared across levels).

Both are ``num_convs`` × (3×3 conv → [GroupNorm] → ReLU) followed by a 3×3 conv with
``A·outputs`` channels: ``K·A`` class logits (one sigmoid per class and anchor) or ``4·A`` box
deltas. Their outputs are reshaped so that row ``i`` belongs to anchor ``i`` of ``make_anchors``:
location-major (row, column), then the ``A`` anchors of that location.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def prior_bias(prior: float) -> float:
    """The bias ``b = −log((1 − π)/π)`` that makes ``sigmoid(b) = π`` (π = 0.01 → b ≈ −4.6)."""
    if not 0 < prior < 1:
        raise ValueError(f"prior probability must be in (0, 1), got {prior}")
    return -math.log((1 - prior) / prior)


def _tower(channels: int, num_convs: int, group_norm: bool) -> nn.Sequential:
    """``num_convs`` × (conv3×3 → [GroupNorm(32)] → ReLU), keeping ``channels``."""
    layers: list[nn.Module] = []
    for _ in range(num_convs):
        layers.append(nn.Conv2d(channels, channels, kernel_size=3, padding=1))
        if group_norm:
            layers.append(nn.GroupNorm(min(32, channels // 4), channels))
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def flatten_level(x: Tensor, outputs_per_anchor: int) -> Tensor:
    """``[B, A·C, H, W]`` → ``[B, H·W·A, C]``: one row per anchor, in anchor order."""
    batch, _, height, width = x.shape
    x = x.view(batch, -1, outputs_per_anchor, height, width)  # [B, A, C, H, W]
    return x.permute(0, 3, 4, 1, 2).reshape(batch, -1, outputs_per_anchor)


class Subnet(nn.Module):
    """A head: tower + prediction conv, run on each level; returns ``[B, Σ H·W·A, outputs]``."""

    def __init__(
        self, channels: int, num_anchors: int, outputs: int, num_convs: int = 4, group_norm: bool = False,
        bias_init: float = 0.0,
    ) -> None:
        super().__init__()
        self.outputs = outputs
        self.tower = _tower(channels, num_convs, group_norm)
        self.predict = nn.Conv2d(channels, num_anchors * outputs, kernel_size=3, padding=1)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.normal_(module.weight, std=0.01)
                nn.init.zeros_(module.bias)
        nn.init.constant_(self.predict.bias, bias_init)

    def forward(self, features: list[Tensor]) -> Tensor:
        return torch.cat([flatten_level(self.predict(self.tower(f)), self.outputs) for f in features], dim=1)


def classification_head(
    channels: int, num_anchors: int, num_classes: int, num_convs: int = 4, group_norm: bool = False,
    prior: float = 0.01,
) -> Subnet:
    """Class subnet: ``[B, Σ H·W·A, K]`` logits, the last bias set so every sigmoid starts at ``prior``."""
    return Subnet(channels, num_anchors, num_classes, num_convs, group_norm, bias_init=prior_bias(prior))


def regression_head(channels: int, num_anchors: int, num_convs: int = 4, group_norm: bool = False) -> Subnet:
    """Box subnet: ``[B, Σ H·W·A, 4]`` deltas ``(dx, dy, dw, dh)`` relative to each anchor."""
    return Subnet(channels, num_anchors, 4, num_convs, group_norm)
