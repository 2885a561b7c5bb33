"""Wide ResNets WRN-depth-k (Zagoruyko & Komodakis 2016), pre-activation blocks.

Stage channels are 16k/32k/64k after a 16-channel stem; ``width`` scales them
further (1.0 = the published widths).  Registered as ``wrn16_1``, ``wrn16_2``,
``wrn40_1`` and ``wrn40_2``, the KD literature's standard pairs.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import Classifier, scaled
from .registry import ARCHITECTURES


class _WideBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.shortcut = None if (cin == cout and stride == 1) else nn.Conv2d(cin, cout, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        o = F.relu(self.bn1(x))
        y = self.conv1(o)
        y = self.conv2(F.relu(self.bn2(y)))
        return y + (x if self.shortcut is None else self.shortcut(o))


class WideResNet(Classifier):
    """:param depth: 6n+4 layers; :param widen: k; :param width: extra multiplier."""

    def __init__(self, depth: int, widen: int, num_classes: int = 10, in_channels: int = 3, width: float = 1.0):
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError(f"WRN depth must be 6n+4, got {depth}")
        n = (depth - 4) // 6
        chans = [scaled(16, width)] + [scaled(c * widen, width) for c in (16, 32, 64)]
        self.conv1 = nn.Conv2d(in_channels, chans[0], 3, 1, 1, bias=False)
        stages, cin = [], chans[0]
        for i, c in enumerate(chans[1:]):
            stages.append(nn.Sequential(*[_WideBlock(cin if j == 0 else c, c, (1 if i == 0 else 2) if j == 0 else 1) for j in range(n)]))
            cin = c
        self.block1, self.block2, self.block3 = stages
        self.bn = nn.BatchNorm2d(cin)
        self.feature_dim = cin
        self.head = nn.Linear(cin, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block3(self.block2(self.block1(self.conv1(x))))
        return torch.flatten(F.adaptive_avg_pool2d(F.relu(self.bn(out)), 1), 1)


def _register(depth: int, widen: int) -> None:
    @ARCHITECTURES.register(f"wrn{depth}_{widen}")
    def build(**kw) -> WideResNet:
        return WideResNet(depth, widen, **kw)


for _d, _k in ((16, 1), (16, 2), (40, 1), (40, 2)):
    _register(_d, _k)
