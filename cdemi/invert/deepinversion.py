"""DeepInversion (Yin et al., CVPR 2020): pixels optimised against a frozen teacher.

Loss per step on a jittered, randomly flipped view of the batch:
``ce * CE(T(x), y) + bn * L_BN + tv * TV_L2(x) + l2 * ||x|| (+ adv * L_adv with a student)``,
Adam on the normalised pixels, projected back onto the valid pixel range [0, 1] after
every step (as the ImageNet version of DeepInversion does).  Published CIFAR-10 values: batch 256, 2000 iterations,
lr 0.05, bn 10, tv 2.5e-5, l2 0, jitter 2 pixels.  The optimised images are returned on
the pixel scale, clipped to [0, 1].  These are the constructor's defaults; what the default profile
changes, and why: :mod:`cdemi.report.deviations`.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from .base import HOSTS, ExtraTerm, InversionHost, SynthesisBatch
from .bn_stats import BNStatistics
from .losses import adversarial_disagreement, image_l2, total_variation


@HOSTS.register("deepinversion")
class DeepInversion(InversionHost):
    """:param batch_size: images per synthesis; :param iterations: Adam steps per batch.
    :param lr: Adam learning rate; :param bn, ce, tv, l2, adv: loss weights;
    :param jitter: largest random shift in pixels; :param flip: random horizontal flips.
    :param bn_statistics: how L_BN's variance is computed (:data:`cdemi.invert.bn_stats.METHODS`;
        ``two_pass`` is faster and changes the numbers by rounding)."""

    name = "deepinversion"

    def __init__(self, teacher, spec, *, batch_size: int = 256, iterations: int = 2000, lr: float = 0.05,
                 bn: float = 10.0, ce: float = 1.0, tv: float = 2.5e-5, l2: float = 0.0, adv: float = 0.0,
                 jitter: int = 2, flip: bool = True, bn_statistics: str = "welford", seed: int = 0):
        super().__init__(teacher, spec, seed)
        self.batch_size, self.iterations, self.lr = batch_size, iterations, lr
        self.weights = {"bn": bn, "ce": ce, "tv": tv, "l2": l2, "adv": adv}
        self.jitter, self.flip = jitter, flip
        self.bn_stats = BNStatistics(self.teacher, method=bn_statistics)

    def _view(self, x: torch.Tensor) -> torch.Tensor:
        if self.jitter:
            dx, dy = torch.randint(-self.jitter, self.jitter + 1, (2,), generator=self.generator).tolist()
            x = torch.roll(x, shifts=(dy, dx), dims=(2, 3))
        if self.flip and torch.rand(1, generator=self.generator).item() < 0.5:
            x = x.flip(3)
        return x

    def synthesize(self, student: Optional[torch.nn.Module] = None, extra: Optional[ExtraTerm] = None) -> SynthesisBatch:
        device = next(self.teacher.parameters()).device
        targets = self.balanced_targets(self.batch_size).to(device)
        x = torch.randn((self.batch_size, *self.spec.shape), generator=self.generator).to(device).requires_grad_(True)
        opt = torch.optim.Adam([x], lr=self.lr, betas=(0.5, 0.9))
        terms: dict[str, torch.Tensor] = {}
        with self.bn_stats:
            for step in range(self.iterations):
                view = self._view(x)
                logits = self.teacher(view)
                terms = {"ce": F.cross_entropy(logits, targets), "bn": self.bn_stats.loss(),
                         "tv": total_variation(view), "l2": image_l2(view)}
                if self.weights["adv"] and student is not None:
                    terms["adv"] = adversarial_disagreement(student(view), logits)
                loss = self.generator_loss(terms, view, targets, extra, step=step)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                with torch.no_grad():  # keep the pixels displayable (the pool stores them as uint8)
                    x.copy_(self.spec.normalise(self.spec.denormalise(x).clamp_(0, 1)))
        images = self.spec.denormalise(x.detach()).clamp_(0, 1).cpu()
        return SynthesisBatch(images, targets.cpu(), {k: float(v.detach()) for k, v in terms.items()}, self.iterations)
