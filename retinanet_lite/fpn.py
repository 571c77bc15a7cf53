"""Feature Pyramid Network: P3–P7 from C3–C5, exactly as in the RetinaNet paper.

Top-down path: ``P5 = smooth(lateral(C5))``; ``P4 = smooth(lateral(C4) + up(P5_in))``;
``P3 = smooth(lateral(C3) + up(P4_in))`` where ``lateral`` is a 1×1 conv, ``up`` nearest-neighbour
upsampling *to the lateral's exact size* (so any input size works, not only multiples of 32) and
``smooth`` a 3×3 conv. Extra levels: ``P6 = conv3×3/2(C5)``, ``P7 = conv3×3/2(ReLU(P6))``.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class PyramidFeatures(nn.Module):
    """``[C3, C4, C5]`` → ``[P3, P4, P5, P6, P7]``, each with ``channels`` channels.

    ``P_l`` has stride ``2^l``: ``[B, channels, ceil(H / 2^l), ceil(W / 2^l)]``.
    """

    def __init__(self, in_channels: tuple[int, int, int], channels: int = 256) -> None:
        super().__init__()
        c3, c4, c5 = in_channels
        self.lateral3 = nn.Conv2d(c3, channels, kernel_size=1)
        self.lateral4 = nn.Conv2d(c4, channels, kernel_size=1)
        self.lateral5 = nn.Conv2d(c5, channels, kernel_size=1)
        self.smooth3 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)
        self.smooth4 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)
        self.smooth5 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)
        self.p6 = nn.Conv2d(c5, channels, kernel_size=3, stride=2, padding=1)
        self.p7 = nn.Conv2d(channels, channels, kernel_size=3, stride=2, padding=1)
        for conv in self.modules():
            if isinstance(conv, nn.Conv2d):
                nn.init.kaiming_uniform_(conv.weight, a=1)
                nn.init.zeros_(conv.bias)

    def forward(self, features: list[Tensor]) -> list[Tensor]:
        c3, c4, c5 = features
        top5 = self.lateral5(c5)
        top4 = self.lateral4(c4) + F.interpolate(top5, size=c4.shape[-2:], mode="nearest")
        top3 = self.lateral3(c3) + F.interpolate(top4, size=c3.shape[-2:], mode="nearest")
        p6 = self.p6(c5)
        p7 = self.p7(F.relu(p6))
        return [self.smooth3(top3), self.smooth4(top4), self.smooth5(top5), p6, p7]
