"""The discriminator of the feature-alignment module and its two GAN losses.

An MLP on teacher features h (N, d): ``f(h)`` = SN-Linear(d, m) -> LeakyReLU(0.2) ->
SN-Linear(m, m) -> LeakyReLU(0.2), then one logit per sample,

- ``projection`` (the default; Miyato & Koyama 2018): ``psi(f(h)) + <embed(y), f(h)>``,
  so the class decides which direction of f(h) counts as real;
- ``none`` (unconditional): ``psi(f(h))``; the label is ignored.

Every linear map and the class embedding carry spectral normalisation.  Positive
logits mean "condensed" (real), negative "synthetic" (fake).
"""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

Conditioning = Literal["projection", "none"]
GanLoss = Literal["nonsaturating", "hinge"]


class FeatureDiscriminator(nn.Module):
    """:param feature_dim: d; :param num_classes: K; :param hidden: m (default 256);
    :param conditioning: ``projection`` or ``none``."""

    def __init__(self, feature_dim: int, num_classes: int, hidden: int = 256, conditioning: Conditioning = "projection"):
        super().__init__()
        if conditioning not in ("projection", "none"):
            raise ValueError(f"discriminator conditioning must be 'projection' or 'none', got {conditioning!r}")
        self.conditioning = conditioning
        self.body = nn.Sequential(spectral_norm(nn.Linear(feature_dim, hidden)), nn.LeakyReLU(0.2),
                                  spectral_norm(nn.Linear(hidden, hidden)), nn.LeakyReLU(0.2))
        self.psi = spectral_norm(nn.Linear(hidden, 1))
        self.embed = spectral_norm(nn.Embedding(num_classes, hidden)) if conditioning == "projection" else None

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Logits (N,) for features (N, d) and int64 labels (N,)."""
        h = self.body(features)
        out = self.psi(h).squeeze(1)
        if self.embed is not None:
            out = out + (self.embed(labels) * h).sum(1)
        return out


def discriminator_loss(real: torch.Tensor, fake: torch.Tensor, kind: GanLoss = "nonsaturating") -> torch.Tensor:
    """D's loss on its logits for real (condensed) and fake (synthetic) features, a scalar.

    ``nonsaturating``: ``softplus(-real).mean() + softplus(fake).mean()`` (the cross-entropy);
    ``hinge``: ``relu(1 - real).mean() + relu(1 + fake).mean()``.
    """
    if kind == "nonsaturating":
        return F.softplus(-real).mean() + F.softplus(fake).mean()
    if kind == "hinge":
        return F.relu(1 - real).mean() + F.relu(1 + fake).mean()
    raise ValueError(f"GAN loss must be 'nonsaturating' or 'hinge', got {kind!r}")


def generator_adversarial_loss(fake: torch.Tensor, kind: GanLoss = "nonsaturating") -> torch.Tensor:
    """L_FA, the generator's loss on D's logits for its features: ``softplus(-fake).mean()``
    (non-saturating) or ``-fake.mean()`` (hinge)."""
    if kind == "nonsaturating":
        return F.softplus(-fake).mean()
    if kind == "hinge":
        return -fake.mean()
    raise ValueError(f"GAN loss must be 'nonsaturating' or 'hinge', got {kind!r}")
