"""Fast (Fang et al., AAAI 2022, "Up to 100x faster data-free knowledge distillation").

A generator ``G`` is meta-learned across epochs: every synthesis clones ``G`` into a fast
generator, draws fresh latents ``z`` and runs ``g_steps`` Adam steps on both (generator lr
``lr_g``, latent lr ``lr_z``) against
``bn * L_BN (momentum-smoothed) + oh * CE(T(x), y) + adv * L_adv`` on a crop-and-flip view
of ``x = G(z)``; the lowest-loss batch goes to KD.  The first-order meta update (FOMAML)
accumulates the fast generator's gradients of every step into ``G`` and takes one meta
Adam step (lr ``lr_g * g_steps``, betas (0.5, 0.999)).  The adversarial term starts after
``warmup`` syntheses.  Published CIFAR values: batch 256, bn 10, oh 0.5, adv 1.33,
BN momentum 0.9, warm-up 20; Fast-2/5/10: g_steps 2/5/10, lr_z 0.015/0.01/0.01,
lr_g 5e-3/3e-3/2e-3; generator nz 256, ngf 64.  These are the constructor's defaults.

The default profile runs Fast with bn 1, oh 1 (and lr_g 1e-2, lr_z 0.05, 10 steps): with the
published weights the teacher assigned only 10-25% of the syntheses to their target class within
the grid's budget (in the public code as here), about 60% with these.  Every setting the profile
changes, with its reason or the probe it still lacks: :mod:`cdemi.report.deviations`.
"""
from __future__ import annotations

import copy
from typing import Optional

import torch
import torch.nn.functional as F

from ..augment import random_crop_flip
from ..models.generator import Generator
from .base import HOSTS, ExtraTerm, InversionHost, SynthesisBatch
from .bn_stats import BNStatistics
from .losses import adversarial_disagreement


@HOSTS.register("fast")
class Fast(InversionHost):
    """:param g_steps: generator steps per synthesis; :param lr_g, lr_z: their Adam rates.
    :param bn, oh, adv: loss weights; :param bn_momentum: BN-statistics smoothing.
    :param warmup: syntheses before the adversarial term is switched on.
    :param nz, ngf: generator latent size and width.
    :param bn_statistics: how L_BN's variance is computed (:data:`cdemi.invert.bn_stats.METHODS`;
        ``two_pass`` is faster and changes the numbers by rounding)."""

    name = "fast"

    def __init__(self, teacher, spec, *, batch_size: int = 256, g_steps: int = 5, lr_g: float = 3e-3,
                 lr_z: float = 0.01, bn: float = 10.0, oh: float = 0.5, adv: float = 1.33, bn_momentum: float = 0.9,
                 warmup: int = 20, nz: int = 256, ngf: int = 64, bn_statistics: str = "welford",
                 seed: int = 0):
        super().__init__(teacher, spec, seed)
        self.batch_size, self.g_steps, self.lr_g, self.lr_z = batch_size, g_steps, lr_g, lr_z
        self.weights = {"bn": bn, "oh": oh, "adv": adv}
        self.warmup = warmup
        device = next(teacher.parameters()).device
        torch.manual_seed(seed)
        self.meta_generator = Generator(nz, ngf, spec.image_size, spec.channels).to(device)
        self.meta_optimizer = torch.optim.Adam(self.meta_generator.parameters(), lr_g * g_steps, betas=(0.5, 0.999))
        self.bn_stats = BNStatistics(self.teacher, momentum=bn_momentum, method=bn_statistics)
        self.syntheses = 0

    def synthesize(self, student: Optional[torch.nn.Module] = None, extra: Optional[ExtraTerm] = None) -> SynthesisBatch:
        device = next(self.teacher.parameters()).device
        fast = copy.deepcopy(self.meta_generator).train()
        z = torch.randn((self.batch_size, self.meta_generator.nz), generator=self.generator).to(device).requires_grad_(True)
        targets = self.balanced_targets(self.batch_size).to(device)
        opt = torch.optim.Adam([{"params": fast.parameters()}, {"params": [z], "lr": self.lr_z}], lr=self.lr_g,
                               betas=(0.5, 0.999))
        self.meta_optimizer.zero_grad(set_to_none=True)
        meta_params = list(self.meta_generator.parameters())
        for p in meta_params:
            p.grad = torch.zeros_like(p)
        use_adv = self.weights["adv"] > 0 and student is not None and self.syntheses >= self.warmup
        if student is not None:
            student.eval()
        best_loss, best, terms = float("inf"), None, {}
        padding = max(1, self.spec.image_size // 8)
        with self.bn_stats:
            for step in range(self.g_steps):
                images = fast(z)
                view = self.spec.normalise(random_crop_flip(images, padding, self.generator))
                logits = self.teacher(view)
                terms = {"bn": self.bn_stats.loss(), "oh": F.cross_entropy(logits, targets)}
                if use_adv:
                    terms["adv"] = adversarial_disagreement(student(view), logits)
                loss = self.generator_loss(terms, view, targets, extra, step=step)
                if loss.item() < best_loss:
                    best_loss, best = loss.item(), images.detach()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                for p, q in zip(meta_params, fast.parameters()):  # first-order MAML: accumulate the fast gradients
                    if q.grad is not None:
                        p.grad += q.grad
                opt.step()
            self.bn_stats.update_average()
        self.sync(meta_params)  # under torchrun: the meta gradients of every rank's fast generator, averaged
        self.meta_optimizer.step()
        self.syntheses += 1
        if student is not None:
            student.train()
        return SynthesisBatch(best.clamp(0, 1).cpu(), targets.cpu(), {k: float(v.detach()) for k, v in terms.items()},
                              self.g_steps)

    def shared_modules(self) -> list[torch.nn.Module]:
        return [self.meta_generator]

    def state_dict(self) -> dict:
        return {**super().state_dict(), "meta_generator": self.meta_generator.state_dict(),
                "meta_optimizer": self.meta_optimizer.state_dict(), "bn_stats": self.bn_stats.state_dict(),
                "syntheses": self.syntheses}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.meta_generator.load_state_dict(state["meta_generator"])
        self.meta_optimizer.load_state_dict(state["meta_optimizer"])
        self.bn_stats.load_state_dict(state["bn_stats"])
        self.syntheses = int(state["syntheses"])
