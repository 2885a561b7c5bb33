"""Reading a classifier's features at a named layer through a forward hook.

``penultimate`` (the default) is the global-pooled vector that feeds the linear head, read
as the head's input, so it works for every :class:`cdemi.models.Classifier` without a
rewrite.  Any other name is the dotted path of a submodule (``layer3``,
``features.10``); its output (N, C, H, W) is global-average-pooled to (N, C).
"""
from __future__ import annotations

import torch
from torch import nn

from ..models.hooks import ForwardHooks

PENULTIMATE = "penultimate"


class FeatureTap(ForwardHooks):
    """Features of ``model`` at ``layer``, float (N, d), for normalised images (N, C, H, W).

    The hook is attached only while :meth:`__call__` runs, so the model's other passes
    (KD, the host's own steps) pay nothing for it.  Gradients flow to the images when
    they require grad; the model's parameters are not touched.

    :raises ValueError: ``layer`` names no submodule (the message lists the candidates).
    """

    def __init__(self, model: nn.Module, layer: str = PENULTIMATE):
        self.model, self.layer = model, layer
        names = dict(model.named_modules())
        if layer == PENULTIMATE:
            if not isinstance(getattr(model, "head", None), nn.Linear):
                raise ValueError(f"{type(model).__name__} has no linear `head`: name a layer instead of 'penultimate'")
            self.module, self.pre = model.head, True
        elif layer in names and layer:
            self.module, self.pre = names[layer], False
        else:
            top = [n for n in names if n and "." not in n]
            raise ValueError(f"feature layer {layer!r} is not a submodule of {type(model).__name__}; "
                             f"use 'penultimate' or one of: {', '.join(top)}")
        super().__init__([self.module])
        self._out: torch.Tensor | None = None

    def record(self, index: int, module: nn.Module, inputs: tuple, output) -> None:
        """Keep the tapped layer's input (``pre``: the head's) or output, as the model computed it."""
        self._out = inputs[0] if self.pre else output

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        with self:
            self.model(x)
        out, self._out = self._out, None
        if out is None:
            raise RuntimeError(f"layer {self.layer!r} was not reached by the forward pass")
        if out.dim() == 4:
            out = out.mean(dim=(2, 3))
        return out.flatten(1).float()


def feature_dim(tap: FeatureTap, shape: tuple[int, int, int]) -> int:
    """Size d of ``tap``'s features for images of ``shape`` (C, H, W)."""
    device = next(tap.model.parameters()).device
    was_training = tap.model.training
    tap.model.eval()
    with torch.no_grad():
        d = tap(torch.zeros((1, *shape), device=device)).shape[1]
    tap.model.train(was_training)
    return d
