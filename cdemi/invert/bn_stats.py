"""The BatchNorm-statistics prior shared by every model-inversion host.

``L_BN = sum_l ||mu_l(x) - running_mean_l||_2 + ||var_l(x) - running_var_l||_2`` over the
inputs of every ``BatchNorm2d`` of the teacher (DeepInversion, Yin et al. 2020).  With
``momentum`` set, the batch statistics are blended with an exponential average of the
previous synthesis steps' statistics first (Fast / NAYER, momentum 0.9).

The hooks attach on entering the context and detach on leaving it, so KD passes
through the teacher pay nothing for them.
"""
from __future__ import annotations

import torch
from torch import nn

from ..models.hooks import ForwardHooks


class BNStatistics(ForwardHooks):
    """Forward hooks on every ``BatchNorm2d`` of ``model`` that collect the BN loss.

    :param model: the teacher (kept in eval mode by the caller).
    :param momentum: None for plain batch statistics; ``m`` in [0, 1) blends them as
        ``(1 - m) * batch + m * average`` where ``average`` is updated by :meth:`update_average`.

    Use: ``with BNStatistics(teacher) as bn: teacher(x); loss = bn.loss()``.
    """

    def __init__(self, model: nn.Module, momentum: float | None = None):
        if momentum is not None and not 0 <= momentum < 1:
            raise ValueError(f"BN-statistics momentum must lie in [0, 1), got {momentum}")
        super().__init__([m for m in model.modules() if isinstance(m, nn.BatchNorm2d)])
        if not self.layers:
            raise ValueError(f"{type(model).__name__} has no BatchNorm2d layer: the BN-statistics prior needs one")
        self.momentum = momentum
        self.average: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * len(self.layers)
        self._batch: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * len(self.layers)

    def record(self, index: int, module: nn.BatchNorm2d, inputs: tuple, output) -> None:
        """Keep the per-channel mean and biased variance, float32 (C,), of the layer's input."""
        x = inputs[0].float()
        self._batch[index] = (x.mean(dim=(0, 2, 3)), x.transpose(0, 1).reshape(x.shape[1], -1).var(1, unbiased=False))

    def loss(self) -> torch.Tensor:
        """``L_BN`` of the last forward pass, a float32 scalar (differentiable w.r.t. the input)."""
        if any(b is None for b in self._batch):
            raise RuntimeError("no forward pass through the model since the hooks were attached")
        total = torch.zeros((), device=self._batch[0][0].device)
        for layer, (mean, var), avg in zip(self.layers, self._batch, self.average):
            if self.momentum is not None and avg is not None:
                mean = (1 - self.momentum) * mean + self.momentum * avg[0]
                var = (1 - self.momentum) * var + self.momentum * avg[1]
            total = total + torch.linalg.vector_norm(layer.running_mean - mean) \
                + torch.linalg.vector_norm(layer.running_var - var)
        return total

    def update_average(self) -> None:
        """Fold the last batch statistics into the running average (call once per synthesis step)."""
        if self.momentum is None:
            return
        for i, (mean, var) in enumerate(self._batch):
            mean, var = mean.detach(), var.detach()
            avg = self.average[i]
            self.average[i] = (mean, var) if avg is None else (
                self.momentum * avg[0] + (1 - self.momentum) * mean, self.momentum * avg[1] + (1 - self.momentum) * var)

    def state_dict(self) -> dict:
        """The running average (for resume)."""
        return {"average": [None if a is None else torch.stack(a) for a in self.average]}

    def load_state_dict(self, state: dict) -> None:
        self.average = [None if a is None else (a[0], a[1]) for a in state["average"]]
