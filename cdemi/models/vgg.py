"""VGG-11 with BatchNorm (Simonyan & Zisserman 2015), CIFAR variant (one linear head)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import Classifier, scaled
from .registry import ARCHITECTURES

_VGG11 = [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]


class VGG(Classifier):
    """VGG feature stack, global average pool, linear head.

    Pools are skipped once the map is 1 pixel wide, so 28x28 inputs work too.
    :param width: channel multiplier (1.0 = 64..512).
    """

    def __init__(self, cfg=_VGG11, num_classes: int = 10, in_channels: int = 3, width: float = 1.0):
        super().__init__()
        layers, cin = [], in_channels
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2, ceil_mode=True))
            else:
                c = scaled(v, width)
                layers += [nn.Conv2d(cin, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True)]
                cin = c
        self.features = nn.Sequential(*layers)
        self.feature_dim = cin
        self.head = nn.Linear(cin, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(F.adaptive_avg_pool2d(self.features(x), 1), 1)


@ARCHITECTURES.register("vgg11_bn")
def vgg11_bn(**kw) -> VGG:
    return VGG(_VGG11, **kw)
