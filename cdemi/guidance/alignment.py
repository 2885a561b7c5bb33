"""Condensed-sample-guided inversion: the paper's feature-alignment (FA) module.

At every synthesis step of a host, ``FeatureAlignment`` (an ``ExtraTerm`` of
:mod:`cdemi.invert`) receives the host's normalised synthetic view ``x`` (with grad) and
its target labels ``y``, and

1. reads teacher features ``h = T_l(A(x))`` at layer ``l`` (default: penultimate) after
   DiffAugment ``A`` (colour, translation, cutout; off with ``augment=False``), and the
   same for a batch of condensed images ``h_c = T_l(A(x_c))`` with their labels ``y_c``;
2. takes ``d_steps`` Adam steps on the discriminator ``D`` (see
   :mod:`cdemi.guidance.discriminator`) to separate ``(h_c, y_c)`` (real) from
   ``(h.detach(), y)`` (fake);
3. returns ``weight * L_FA`` with ``L_FA`` the generator's adversarial loss on ``D(h, y)``,
   which the host adds to its own generator loss (for DeepInversion it drives the pixels).

The host is not changed: FA runs its own frozen copy of the teacher, so the host's
BN-statistics and feature hooks never see FA's passes.  Its state (``D``, its optimiser,
its RNG) joins the host's for resume; :meth:`pop_stats` hands the KD loop the epoch's
discriminator accuracies and losses.  Under ``torchrun`` each rank draws its own condensed
batches and augmentation, ``D`` is made equal from rank 0 by the KD loop and its gradients are
averaged over the ranks before every step.

Defaults where the paper is silent (``../shared/paper.md``): D = SN-MLP d->256->256 with
projection conditioning, non-saturating loss, Adam lr 2e-4 betas (0.5, 0.999), one D step
per generator step, weight 1.0.

Held-out accuracy (``held_out_per_class`` > 0): that many condensed images per class are kept out
of D's training.  At the first generator step of every synthesis, before D's step, D (in eval mode,
so its spectral-norm estimates stay put) classifies the held-out condensed features and the
features of that step's synthetic images, both without augmentation; neither was ever a D
training sample.  :meth:`pop_stats` then adds ``d_held_out_real`` and ``d_held_out_fake``
(fractions classified correctly) and ``d_held_out`` (their mean: 0.5 is chance).
"""
from __future__ import annotations

import copy
from typing import Optional

import torch
from torch import nn

from .. import distributed
from ..augment import diffaugment
from .discriminator import Conditioning, FeatureDiscriminator, GanLoss, discriminator_loss, generator_adversarial_loss
from .features import PENULTIMATE, FeatureTap, feature_dim


def check_condensed_matches(images: torch.Tensor, labels: torch.Tensor, spec, num_classes: int) -> None:
    """Refuse a condensed (or k-shot) set that disagrees with the teacher.

    :param images: float (N, C, H, W); :param labels: int64 (N,);
    :param num_classes: the teacher's class count.
    :raises ValueError: image shape other than ``spec.shape``, a label outside the teacher's
        classes, or a class of the teacher without any condensed image.
    """
    if images.dim() != 4 or tuple(images.shape[1:]) != tuple(spec.shape):
        raise ValueError(f"condensed images have shape {tuple(images.shape)} but the teacher takes {spec.name} images "
                         f"(N, {', '.join(map(str, spec.shape))}): condense the teacher's dataset at its resolution")
    if labels.shape != (images.shape[0],):
        raise ValueError(f"{images.shape[0]} condensed images but labels of shape {tuple(labels.shape)}")
    if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ValueError(f"condensed labels span {int(labels.min())}..{int(labels.max())} but the teacher has "
                         f"{num_classes} classes: use a condensed set of the teacher's dataset")
    missing = sorted(set(range(num_classes)) - set(labels.tolist()))
    if missing:
        raise ValueError(f"the condensed set has no image of class(es) {missing[:10]} of the teacher's {num_classes}: "
                         f"the class-conditional discriminator needs every class")


def held_out_split(labels: torch.Tensor, per_class: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Split condensed labels (N,) into D's training indices and ``per_class`` held-out indices per
    class, drawn with ``seed`` (its own generator); :returns: (train, held_out), int64, ascending.

    :raises ValueError: ``per_class`` < 0, or a class with ``per_class`` images or fewer (nothing would
        be left for D to train on): lower ``held_out_per_class`` (0 holds nothing out).
    """
    if per_class < 0:
        raise ValueError(f"held_out_per_class must be >= 0, got {per_class}")
    n = labels.shape[0]
    if per_class == 0:
        return torch.arange(n), torch.zeros(0, dtype=torch.long)
    gen = torch.Generator().manual_seed(seed)
    held: list[torch.Tensor] = []
    for k in torch.unique(labels.cpu()).tolist():
        members = torch.nonzero(labels.cpu() == k).flatten()
        if len(members) <= per_class:
            raise ValueError(f"class {k} has {len(members)} condensed image(s), but held_out_per_class is {per_class}: "
                             f"D would have none of that class to train on; lower held_out_per_class (0 holds "
                             f"nothing out)")
        held.append(members[torch.randperm(len(members), generator=gen)[:per_class]])
    held_out = torch.cat(held).sort().values
    keep = torch.ones(n, dtype=torch.bool)
    keep[held_out] = False
    return torch.nonzero(keep).flatten(), held_out


class FeatureAlignment:
    """The guidance term ``weight * L_FA`` for one host run.

    :param teacher: the frozen classifier the host inverts (copied; the original is untouched).
    :param condensed_images: float (N, C, H, W), pixel scale [0, 1] (a condensed or k-shot set).
    :param condensed_labels: int64 (N,), every class of the teacher at least once.
    :param spec: the dataset spec (normalisation, shape, class count).
    :param weight: lambda_FA (default 1.0).
    :param layer: ``penultimate`` or a submodule path of the teacher (layer ablation).
    :param conditional: projection-conditioned D (True) or unconditional (False).
    :param loss: ``nonsaturating`` or ``hinge``.
    :param augment: DiffAugment both sides before the teacher (default True).
    :param hidden: D's width m (default 256).
    :param d_lr, d_betas, d_steps: D's Adam and its steps per generator step.
    :param real_batch: condensed images per D step, drawn without replacement (all if fewer).
    :param held_out_per_class: condensed images per class kept out of D's training to measure D on
        (default 0: D trains on all; every class needs more images than this).
    :param seed: D's initialisation, the condensed draws, the augmentation and the held-out choice.
    """

    def __init__(self, teacher: nn.Module, condensed_images: torch.Tensor, condensed_labels: torch.Tensor, spec, *,
                 weight: float = 1.0, layer: str = PENULTIMATE, conditional: bool = True,
                 loss: GanLoss = "nonsaturating", augment: bool = True, hidden: int = 256, d_lr: float = 2e-4,
                 d_betas: tuple[float, float] = (0.5, 0.999), d_steps: int = 1, real_batch: int = 128,
                 held_out_per_class: int = 0, seed: int = 0):
        num_classes = getattr(getattr(teacher, "head", None), "out_features", spec.num_classes)
        if num_classes != spec.num_classes:
            raise ValueError(f"the teacher predicts {num_classes} classes but {spec.name} has {spec.num_classes}")
        check_condensed_matches(condensed_images, condensed_labels, spec, num_classes)
        if weight < 0 or d_steps < 1 or real_batch < 1 or d_lr <= 0:
            raise ValueError(f"feature alignment needs weight >= 0, d_steps >= 1, real_batch >= 1 and d_lr > 0; got "
                             f"weight={weight}, d_steps={d_steps}, real_batch={real_batch}, d_lr={d_lr}")
        if loss not in ("nonsaturating", "hinge"):
            raise ValueError(f"GAN loss must be 'nonsaturating' or 'hinge', got {loss!r}")
        self.teacher = copy.deepcopy(teacher).eval()
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.tap = FeatureTap(self.teacher, layer)
        device = next(self.teacher.parameters()).device
        self.spec, self.weight, self.loss_kind, self.augment = spec, weight, loss, augment
        self.d_steps, self.real_batch = d_steps, real_batch
        train, held_out = held_out_split(condensed_labels, held_out_per_class, seed)
        images = spec.normalise(condensed_images.float().to(device))
        labels = condensed_labels.long().to(device)
        self.real_images, self.real_labels = images[train.to(device)], labels[train.to(device)]
        self.held_out: Optional[tuple[torch.Tensor, torch.Tensor]] = None
        if len(held_out):
            with torch.no_grad():
                self.held_out = self.tap(images[held_out.to(device)]), labels[held_out.to(device)]
        self._held_out_stats: dict[str, float] = {}
        self.generator = torch.Generator().manual_seed(seed)
        conditioning: Conditioning = "projection" if conditional else "none"
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.discriminator = FeatureDiscriminator(feature_dim(self.tap, spec.shape), num_classes, hidden,
                                                      conditioning).to(device)
        self.optimizer = torch.optim.Adam(self.discriminator.parameters(), lr=d_lr, betas=tuple(d_betas))
        self._fixed_real: Optional[torch.Tensor] = None
        self._sums: dict[str, float] = {}
        self._calls = 0

    def _view(self, x: torch.Tensor) -> torch.Tensor:
        return diffaugment(x, self.generator) if self.augment else x

    def real_features(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher features (B, d) of one draw of augmented condensed images, and their labels (B,).
        Without augmentation the features of the whole set are fixed: computed once."""
        n = self.real_images.shape[0]
        if not self.augment:
            if self._fixed_real is None:
                with torch.no_grad():
                    self._fixed_real = self.tap(self.real_images)
            feats, labels = self._fixed_real, self.real_labels
            if n > self.real_batch:
                idx = torch.randperm(n, generator=self.generator)[: self.real_batch].to(feats.device)
                feats, labels = feats[idx], labels[idx]
            return feats, labels
        idx = torch.randperm(n, generator=self.generator)[: self.real_batch].to(self.real_images.device)
        with torch.no_grad():
            return self.tap(self._view(self.real_images[idx])), self.real_labels[idx]

    def discriminator_step(self, real: torch.Tensor, real_labels: torch.Tensor, fake: torch.Tensor,
                           fake_labels: torch.Tensor) -> dict[str, float]:
        """One Adam step of D on detached features; :returns: its loss and accuracy per side."""
        d_real = self.discriminator(real, real_labels)
        d_fake = self.discriminator(fake.detach(), fake_labels)
        loss = discriminator_loss(d_real, d_fake, self.loss_kind)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"feature alignment: non-finite discriminator loss ({float(loss)})")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        distributed.all_reduce_gradients(self.discriminator.parameters())  # nothing in one process
        self.optimizer.step()
        return {"d_loss": float(loss.detach()), "d_acc_real": float((d_real > 0).float().mean()),
                "d_acc_fake": float((d_fake < 0).float().mean())}

    def __call__(self, view: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """``weight * L_FA`` for the host's normalised view (N, C, H, W, with grad) and targets (N,),
        after ``d_steps`` discriminator steps; :returns: (scalar, numbers of this step)."""
        fake = self.tap(self._view(view))
        if self.held_out is not None and self._calls == 0:  # the synthesis's first step, before D's
            self._held_out_stats = self.held_out_accuracy(view, targets)
        stats: dict[str, float] = {}
        for _ in range(self.d_steps):
            real, real_labels = self.real_features()
            stats = self.discriminator_step(real, real_labels, fake, targets)
        for p in self.discriminator.parameters():
            p.requires_grad_(False)
        try:
            l_fa = generator_adversarial_loss(self.discriminator(fake, targets), self.loss_kind)
        finally:
            for p in self.discriminator.parameters():
                p.requires_grad_(True)
        stats["l_fa"] = float(l_fa.detach())
        for k, v in stats.items():
            self._sums[k] = self._sums.get(k, 0.0) + v
        self._calls += 1
        return self.weight * l_fa, stats

    @torch.no_grad()
    def held_out_accuracy(self, view: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        """D's accuracy on the held-out condensed features and on the features of ``view`` (normalised
        synthetic images (N, C, H, W) and their targets (N,)), both unaugmented; D in eval mode.

        :returns: ``d_held_out_real``, ``d_held_out_fake`` (fractions) and ``d_held_out`` (their mean).
        :raises ValueError: the module holds nothing out (``held_out_per_class`` 0).
        """
        if self.held_out is None:
            raise ValueError("no condensed image is held out: set held_out_per_class > 0")
        was_training = self.discriminator.training
        self.discriminator.eval()
        try:
            real = float((self.discriminator(*self.held_out) > 0).float().mean())
            fake = float((self.discriminator(self.tap(view.detach()), targets) < 0).float().mean())
        finally:
            self.discriminator.train(was_training)
        return {"d_held_out_real": real, "d_held_out_fake": fake, "d_held_out": (real + fake) / 2}

    def pop_stats(self) -> dict[str, float]:
        """Means of ``d_loss``, ``d_acc_real``, ``d_acc_fake`` and ``l_fa`` over the steps since the
        last call (one synthesis), plus the held-out accuracies taken at its first step (if any
        image is held out), then reset; empty if no step ran."""
        out = {k: v / self._calls for k, v in self._sums.items()} if self._calls else {}
        if self._calls:
            out.update(self._held_out_stats)
        self._sums, self._calls, self._held_out_stats = {}, 0, {}
        return out

    def shared_modules(self) -> list[nn.Module]:
        """The discriminator: all ranks hold it alike under ``torchrun``."""
        return [self.discriminator]

    def state_dict(self) -> dict:
        """D, its optimiser and the RNG: everything a resumed run needs."""
        return {"discriminator": self.discriminator.state_dict(), "optimizer": self.optimizer.state_dict(),
                "rng": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.discriminator.load_state_dict(state["discriminator"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["rng"])
