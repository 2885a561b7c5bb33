"""CMI (Fang et al., IJCAI 2021, "Contrastive model inversion for data-free knowledge transfer").

Every synthesis builds a fresh DCGAN generator ``G`` (its initialisation seeded from the host's
RNG), draws latents ``z`` and runs ``g_steps`` Adam steps (betas (0.5, 0.999); generator lr
``lr_g``, latent lr ``lr_z``) on both against
``bn * L_BN + oh * CE(T(x_g), y) + adv * L_adv + cr * L_cr`` for ``x = G(z)``, where ``x_g`` is
a crop-and-flip (global) view and ``x_l`` a random-resized-crop-and-flip (local) view, area
scale (0.25, 1).  ``L_BN`` uses plain batch statistics unless ``bn_momentum`` is given; the
adversarial term starts after ``warmup`` syntheses.  The lowest-loss batch goes to KD.

``L_cr``: forward hooks on the teacher's ``BatchNorm2d`` layers take each image's mean over
H, W of every BN *input*; concatenated they form a global feature ``f`` of width ``d`` (the
sum of the BN widths; 4800 for a CIFAR ResNet-18, so the default head has 24 M weights:
``head_hidden`` narrows it).  An MLP head ``h`` (Linear(d, d_h) - ReLU -
Linear(d_h, 256), L2-normalised output, its own Adam at ``lr_g``, stepped with ``G``) projects
them, and ``L_cr = InfoNCE(h(f(x_l)), [h(f(x_g)); h(bank)])`` at temperature ``cr_temperature``:
each local view must pick its own global view among the batch's global views and the bank,
a FIFO (at most ``bank_size`` rows, on the CPU) of the global features of past kept batches.
The keys are detached, as in the public code, so ``G`` learns the term through the local view.

Published values (paper and public scripts): batch 256, g_steps 200, lr_g 1e-3, adv 0.5, bn 1,
oh 1 (0.5 in the CIFAR reproduction script), cr 0.8, cr_T 0.1 (0.1-0.2), head 256-d with hidden
width d, nz 256, ngf 64, bank 40960 rows of which 4096 negatives per step; KD lr 0.1, tau 20.

Deviations from the public code, and why (the settings a profile changes are listed, with their
reasons or the probe they still lack, by :mod:`cdemi.report.deviations`):
- The public code optimises ``z`` with the generator's rate; ``lr_z`` is separate here and
  defaults to the same 1e-3, so the default is the published one.
- Bank: the public one holds (local, global) feature pairs of 40960 images, samples 4096 of
  them per step, and also uses the cached pairs as extra anchors (a second loss mean that only
  trains the head).  Here it holds global features only, all of them are negatives, and only
  the current batch anchors: a plain InfoNCE (about ln(B + M) for unrelated features), half
  the memory, and no Python ``random`` (resume stays exact).
- Features always come from the BN inputs (public: the four stage outputs for a ResNet-34
  teacher), so one rule covers every architecture.
- ``G`` is cdemi's fresh :class:`Generator` with PyTorch's default initialisation (public:
  re-initialises one generator with N(0, 0.02) DCGAN weights); targets are class-balanced
  (public: uniform random); the random-resized crop caps a side at the image instead of
  retrying, and is written with ``affine_grid`` / ``grid_sample`` so gradients reach ``G``.
"""
from __future__ import annotations

import copy
from contextlib import contextmanager
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from .. import distributed
from ..augment import random_crop_flip, random_resized_crop
from ..models.generator import Generator
from ..models.hooks import ForwardHooks
from .base import HOSTS, ExtraTerm, InversionHost, SynthesisBatch
from .bn_stats import BNStatistics
from .losses import adversarial_disagreement


def info_nce(queries: torch.Tensor, keys: torch.Tensor, temperature: float) -> torch.Tensor:
    """InfoNCE: query ``i``'s positive is key ``i``; every other key is a negative.

    :param queries: float (B, D), L2-normalised rows.
    :param keys: float (B + M, D), L2-normalised rows; rows ``B..`` are extra negatives (the bank).
    :param temperature: > 0, divides the cosine similarities.
    :returns: float32 scalar >= 0; about ln(B + M) when queries and keys are unrelated.
    """
    logits = queries.float() @ keys.float().T / temperature
    return F.cross_entropy(logits, torch.arange(len(queries), device=queries.device))


class InstanceMeans(ForwardHooks):
    """Forward hooks that record, per image, the mean over H, W of each layer's input.

    Use: ``with InstanceMeans(layers) as f: model(x); feature = f.feature()``  (N, sum C_l).
    """

    def __init__(self, layers: list[nn.Module]):
        super().__init__(layers)
        self.means = [None] * len(self.layers)

    def record(self, index: int, module: nn.Module, inputs: tuple, output) -> None:
        """Keep the layer input's per-image mean over H, W, float32 (N, C)."""
        self.means[index] = inputs[0].float().mean(dim=(2, 3))

    def feature(self) -> torch.Tensor:
        """The last forward pass's per-image feature, float32 (N, sum of the layers' channels)."""
        return torch.cat(self.means, dim=1)


@HOSTS.register("cmi")
class CMI(InversionHost):
    """:param g_steps: generator steps per synthesis; :param lr_g, lr_z: Adam rates of G and z.
    :param bn, oh, adv, cr: loss weights; :param cr_temperature: InfoNCE temperature.
    :param bn_momentum: None (published) or BN-statistics smoothing in [0, 1).
    :param warmup: syntheses before the adversarial term is switched on.
    :param nz, ngf: generator latent size and width.
    :param head_dim, head_hidden: projection size and hidden width (None: the feature width d).
    :param bank_size: most rows the memory bank keeps (0: no bank, the batch's own negatives only).
    :param bn_statistics: how L_BN's variance is computed (:data:`cdemi.invert.bn_stats.METHODS`;
        ``two_pass`` is faster and changes the numbers by rounding).
    :param batch_size: images per synthesis; :param seed: seeds the host's RNG, the only source
        of randomness (generator and head initialisation, latents, targets, views).

    The defaults are the published CIFAR values (see the module docstring), except ``bank_size``."""

    name = "cmi"
    teacher_passes = 2  # the local (resized crop) and the global view

    def __init__(self, teacher, spec, *, batch_size: int = 256, g_steps: int = 200, lr_g: float = 1e-3,
                 lr_z: float = 1e-3, bn: float = 1.0, oh: float = 1.0, adv: float = 0.5, cr: float = 0.8,
                 cr_temperature: float = 0.1, bn_momentum: Optional[float] = None, warmup: int = 0, nz: int = 256,
                 ngf: int = 64, head_dim: int = 256, head_hidden: Optional[int] = None, bank_size: int = 4096,
                 bn_statistics: str = "welford", seed: int = 0):
        super().__init__(teacher, spec, seed)
        self.batch_size, self.g_steps, self.lr_g, self.lr_z = batch_size, g_steps, lr_g, lr_z
        self.weights = {"bn": bn, "oh": oh, "adv": adv, "cr": cr}
        self.cr_temperature, self.warmup, self.nz, self.ngf = cr_temperature, warmup, nz, ngf
        self.bank_size = bank_size
        self.bn_stats = BNStatistics(self.teacher, momentum=bn_momentum, method=bn_statistics)
        self.features = InstanceMeans(self.bn_stats.layers)
        d = sum(m.num_features for m in self.bn_stats.layers)
        with self._seeded():
            hidden = head_hidden or d
            self.head = nn.Sequential(nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, head_dim))
        self.head.to(next(teacher.parameters()).device)
        self.head_optimizer = torch.optim.Adam(self.head.parameters(), lr_g)
        self.bank = torch.zeros(0, d)  # (M, d) global features of past kept batches, M <= bank_size
        self.syntheses = 0

    @contextmanager
    def _seeded(self):
        """Seed the CPU global RNG from the host's generator for a module's init, then restore it."""
        seed = int(torch.randint(0, 2**62, (1,), generator=self.generator))
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(seed)
            yield

    def contrastive_loss(self, local_feature: torch.Tensor, global_feature: torch.Tensor,
                         bank: torch.Tensor) -> torch.Tensor:
        """``L_cr`` for teacher features (B, d) of the local and global views and bank rows (M, d)."""
        queries = F.normalize(self.head(local_feature), dim=1)
        with torch.no_grad():
            keys = F.normalize(self.head(torch.cat([global_feature, bank])), dim=1)
        return info_nce(queries, keys, self.cr_temperature)

    def synthesize(self, student: Optional[torch.nn.Module] = None, extra: Optional[ExtraTerm] = None) -> SynthesisBatch:
        device = next(self.teacher.parameters()).device
        with self._seeded():
            net = Generator(self.nz, self.ngf, self.spec.image_size, self.spec.channels)
        net.to(device).train()
        distributed.broadcast_parameters([*net.parameters(), *net.buffers()])  # under torchrun: rank 0's G
        z = torch.randn((self.batch_size, self.nz), generator=self.generator).to(device).requires_grad_(True)
        targets = self.balanced_targets(self.batch_size).to(device)
        opt = torch.optim.Adam([{"params": net.parameters()}, {"params": [z], "lr": self.lr_z}], lr=self.lr_g,
                               betas=(0.5, 0.999))
        bank = self.bank.to(device)
        use_adv = self.weights["adv"] > 0 and student is not None and self.syntheses >= self.warmup
        if student is not None:
            student.eval()
        best_loss, best, best_feature, terms = float("inf"), None, None, {}
        padding = max(1, self.spec.image_size // 8)
        with self.bn_stats, self.features:
            for step in range(self.g_steps):
                images = net(z)
                view = self.spec.normalise(random_crop_flip(images, padding, self.generator))
                local = self.spec.normalise(random_resized_crop(images, self.generator))
                with self.bn_stats.paused():  # L_BN is the global view's: the local pass computes no statistics
                    self.teacher(local)
                local_feature = self.features.feature()
                logits = self.teacher(view)
                global_feature = self.features.feature()
                terms = {"bn": self.bn_stats.loss(), "oh": F.cross_entropy(logits, targets)}
                if use_adv:
                    terms["adv"] = adversarial_disagreement(student(view), logits)
                terms["cr"] = self.contrastive_loss(local_feature, global_feature, bank)
                loss = self.generator_loss(terms, view, targets, extra, step=step)
                if loss.item() < best_loss:
                    best_loss, best, best_feature = loss.item(), images.detach(), global_feature.detach()
                opt.zero_grad(set_to_none=True)
                self.head_optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.sync([*net.parameters(), *self.head.parameters()])  # not z: each rank's own latents
                opt.step()
                self.head_optimizer.step()
            self.bn_stats.update_average()
        if self.bank_size > 0:  # FIFO: the oldest rows leave first
            self.bank = torch.cat([self.bank, best_feature.cpu()])[-self.bank_size:]
        self.syntheses += 1
        if student is not None:
            student.train()
        return SynthesisBatch(best.clamp(0, 1).cpu(), targets.cpu(), {k: float(v.detach()) for k, v in terms.items()},
                              self.g_steps)

    def shared_modules(self) -> list[nn.Module]:
        """The projection head (each synthesis's fresh ``G`` is made equal from rank 0 when it is built;
        the memory bank stays each rank's own)."""
        return [self.head]

    def state_dict(self) -> dict:
        """A snapshot of the RNG, memory bank, head and its optimiser, BN average and syntheses count.

        ``G`` is not saved: a fresh one is built (from the saved RNG) at every synthesis."""
        return copy.deepcopy({**super().state_dict(), "bank": self.bank, "head": self.head.state_dict(),
                              "head_optimizer": self.head_optimizer.state_dict(),
                              "bn_stats": self.bn_stats.state_dict(), "syntheses": self.syntheses})

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.bank = state["bank"].detach().clone().cpu()
        self.head.load_state_dict(state["head"])
        self.head_optimizer.load_state_dict(state["head_optimizer"])
        self.bn_stats.load_state_dict(state["bn_stats"])
        self.syntheses = int(state["syntheses"])
