"""The dataset registry: name -> ``load(split, root)`` returning an :class:`ImageSet`."""
from __future__ import annotations

from functools import partial

from ..registry import Registry
from . import cifar, digits, fashion_mnist, tiny_imagenet

DATASETS: Registry = Registry("dataset")
DATASETS.register("fashion_mnist")(fashion_mnist.load)
DATASETS.register("cifar10")(partial(cifar.load, "cifar10"))
DATASETS.register("cifar100")(partial(cifar.load, "cifar100"))
DATASETS.register("tiny_imagenet")(tiny_imagenet.load)
DATASETS.register("digits")(digits.load)

SPECS = {
    "fashion_mnist": fashion_mnist.SPEC,
    "cifar10": cifar.CIFAR10,
    "cifar100": cifar.CIFAR100,
    "tiny_imagenet": tiny_imagenet.SPEC,
    "digits": digits.SPEC,
}
