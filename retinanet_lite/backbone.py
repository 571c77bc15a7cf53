"""Backbones: a ResNet that returns the feature maps C3, C4, C5 (strides 8, 16, 32).

``C_l`` is the output of the last block whose stride is ``2^l``. The ``paper`` preset uses
torchvision's ResNet-50; ``shapes-cpu`` a tiny ResNet made of the same residual blocks, narrow
enough to train on a laptop CPU. Weights start random (``weights=None``): nothing is downloaded.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn
from torchvision.models import resnet
from torchvision.ops.misc import FrozenBatchNorm2d

TORCHVISION_RESNETS = ("resnet18", "resnet34", "resnet50", "resnet101")
_STEM_KEYS = {"conv1": "stem.0", "bn1": "stem.1"}  # torchvision ResNet names → ours


class ResNetFeatures(nn.Module):
    """Wraps a torchvision-style ResNet and returns ``[C3, C4, C5]``.

    Input ``[B, 3, H, W]``; outputs ``[B, channels[i], ceil(H / s), ceil(W / s)]`` for s = 8, 16, 32.
    """

    def __init__(self, net: resnet.ResNet, channels: tuple[int, int, int]) -> None:
        super().__init__()
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
        self.channels = channels

    def load_pretrained(self, path: str | Path) -> None:
        """Load a local torchvision ResNet state-dict file (``weights_only=True``; nothing is downloaded).

        The classifier (``fc.*``) is skipped; any other missing or unexpected key raises a ``ValueError``.
        """
        state = torch.load(path, map_location="cpu", weights_only=True)
        renamed = {_our_key(k): v for k, v in state.items() if not k.startswith("fc.")}
        try:
            missing, unexpected = self.load_state_dict(renamed, strict=False)
        except RuntimeError as error:  # same names, other shapes: e.g. a ResNet-18 file for a ResNet-50
            raise ValueError(f"{path} does not fit this backbone: {str(error).splitlines()[-1].strip()}") from None
        if missing or unexpected:
            raise ValueError(f"{path} does not fit this backbone: missing {missing[:5]}, unexpected {unexpected[:5]}")

    def forward(self, x: Tensor) -> list[Tensor]:
        c2 = self.layer1(self.stem(x))
        c3 = self.layer2(c2)
        c4 = self.layer3(c3)
        c5 = self.layer4(c4)
        return [c3, c4, c5]


def _our_key(key: str) -> str:
    """A torchvision ResNet state-dict key → ours (``conv1.weight`` → ``stem.0.weight``)."""
    first, _, rest = key.partition(".")
    return f"{_STEM_KEYS.get(first, first)}.{rest}"


class TinyResNet(resnet.ResNet):
    """A narrow ResNet (torchvision's ``BasicBlock``) whose stage widths are ``widths``.

    Same stem and stage layout as ResNet-18 (``blocks`` residual blocks per stage) but e.g.
    ``widths = (32, 64, 128, 256)`` instead of (64, 128, 256, 512): roughly 4× fewer FLOPs.
    """

    def __init__(self, widths: tuple[int, int, int, int], blocks: tuple[int, int, int, int]) -> None:
        super().__init__(resnet.BasicBlock, list(blocks))
        self.inplanes = widths[0]
        self.conv1 = nn.Conv2d(3, widths[0], kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.layer1 = self._make_layer(resnet.BasicBlock, widths[0], blocks[0])
        self.layer2 = self._make_layer(resnet.BasicBlock, widths[1], blocks[1], stride=2)
        self.layer3 = self._make_layer(resnet.BasicBlock, widths[2], blocks[2], stride=2)
        self.layer4 = self._make_layer(resnet.BasicBlock, widths[3], blocks[3], stride=2)
        del self.fc, self.avgpool  # a feature extractor has no classifier
        for module in self.modules():  # the same initialisation as torchvision's ResNet
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")


def build_backbone(
    name: str, widths: tuple[int, int, int, int] = (32, 64, 128, 256), blocks: tuple[int, int, int, int] = (1, 1, 1, 1),
    pretrained_path: str | None = None, frozen_bn: bool = False,
) -> ResNetFeatures:
    """A C3–C5 feature extractor: ``"tiny"`` (``TinyResNet(widths, blocks)``) or a torchvision ResNet.

    ``pretrained_path`` loads a local torchvision ResNet state dict (``weights_only=True``; nothing is
    downloaded). ``frozen_bn`` swaps BatchNorm for torchvision's ``FrozenBatchNorm2d`` (small batches).
    """
    norm_layer = FrozenBatchNorm2d if frozen_bn else nn.BatchNorm2d
    if name == "tiny":
        net: resnet.ResNet = TinyResNet(widths, blocks)
        channels = (widths[1], widths[2], widths[3])
    elif name in TORCHVISION_RESNETS:
        net = getattr(resnet, name)(weights=None, norm_layer=norm_layer)
        expansion = 4 if name in ("resnet50", "resnet101") else 1
        channels = (128 * expansion, 256 * expansion, 512 * expansion)
    else:
        raise ValueError(f"unknown backbone {name!r}; choose 'tiny' or one of {TORCHVISION_RESNETS}")
    features = ResNetFeatures(net, channels)
    if pretrained_path is not None:
        features.load_pretrained(pretrained_path)
    return features
