"""CIFAR-style ResNets (He et al. 2016): 3x3 stem, no max-pool, four stages.

At ``width=1`` the stages have 64/128/256/512 channels, as in the data-free KD
literature's ResNet-18/34; ``width`` scales every stage.  Works at any input size
(28x28x1 and 32x32x3 alike) thanks to the global average pool.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import Classifier, scaled
from .registry import ARCHITECTURES


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet(Classifier):
    """CIFAR ResNet with :class:`BasicBlock` stages.

    :param blocks: blocks per stage, e.g. (2, 2, 2, 2) for ResNet-18.
    :param num_classes: output classes.
    :param in_channels: image channels (1 for Fashion-MNIST, 3 for CIFAR).
    :param width: channel multiplier (1.0 = 64/128/256/512).
    """

    def __init__(self, blocks, num_classes: int = 10, in_channels: int = 3, width: float = 1.0):
        super().__init__()
        planes = [scaled(c, width) for c in (64, 128, 256, 512)]
        self.conv1 = nn.Conv2d(in_channels, planes[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes[0])
        stages, in_planes = [], planes[0]
        for i, (p, n) in enumerate(zip(planes, blocks)):
            layers = []
            for j in range(n):
                layers.append(BasicBlock(in_planes, p, stride=2 if (i > 0 and j == 0) else 1))
                in_planes = p
            stages.append(nn.Sequential(*layers))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.feature_dim = in_planes
        self.head = nn.Linear(in_planes, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        return torch.flatten(F.adaptive_avg_pool2d(out, 1), 1)


@ARCHITECTURES.register("resnet18")
def resnet18(**kw) -> ResNet:
    return ResNet((2, 2, 2, 2), **kw)


@ARCHITECTURES.register("resnet34")
def resnet34(**kw) -> ResNet:
    return ResNet((3, 4, 6, 3), **kw)
