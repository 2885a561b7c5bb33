"""Classifiers by name: ``build("resnet34", num_classes=10, in_channels=1, width=0.25)``.

Every architecture is a :class:`~cdemi.models.base.Classifier`: ``model(x)`` gives
logits, ``model(x, return_features=True)`` gives (logits, penultimate features).
"""
from __future__ import annotations

from . import convnet, mobilenetv2, resnet, vgg, wrn  # noqa: F401  (registration)
from .base import Classifier
from .registry import ARCHITECTURES


def build(arch: str, num_classes: int, in_channels: int, width: float = 1.0, **kwargs) -> Classifier:
    """Build the registered architecture ``arch``.

    :param arch: a name of :data:`ARCHITECTURES` (e.g. ``resnet34``, ``mobilenetv2``).
    :param num_classes: size of the head.
    :param in_channels: 1 for Fashion-MNIST, 3 for CIFAR / Tiny-ImageNet.
    :param width: channel multiplier, 1.0 = the published widths.
    :param kwargs: architecture-specific extras (``image_size`` for ``convnet``).
    """
    return ARCHITECTURES.get(arch)(num_classes=num_classes, in_channels=in_channels, width=width, **kwargs)


__all__ = ["ARCHITECTURES", "Classifier", "build"]
