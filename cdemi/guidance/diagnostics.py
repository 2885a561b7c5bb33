"""What a run records about its synthetic images, to explain whether guidance helped.

- ``teacher_accuracy``: % of synthetic images the teacher assigns to the class the host
  aimed at (its own inversions);
- ``distance_condensed``: the class-wise distance between mean teacher features of the
  synthetic batch and of the condensed set,
  ``mean_k ||mean(h(x_hat) | y = k) - mean(h(x_c) | y_c = k)||_2`` over classes present in
  both (features at the guidance layer, penultimate by default; no augmentation);
- ``distance_real``: the same against a real training subset (ground truth; default profile);
- ``condensed_to_real`` (constant per run): the condensed set's own distance to the real subset.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from .features import PENULTIMATE, FeatureTap


@torch.no_grad()
def class_means(tap: FeatureTap, images: torch.Tensor, labels: torch.Tensor, num_classes: int, spec,
                batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-class mean features (K, d) of pixel-scale images (N, C, H, W) and labels (N,),
    and a bool mask (K,) of the classes present."""
    device = next(tap.model.parameters()).device
    feats = torch.cat([tap(spec.normalise(images[i:i + batch_size].to(device))).cpu()
                       for i in range(0, len(images), batch_size)])
    labels = labels.cpu()
    counts = torch.bincount(labels, minlength=num_classes).float()
    sums = torch.zeros(num_classes, feats.shape[1]).index_add_(0, labels, feats)
    return sums / counts.clamp_min(1).unsqueeze(1), counts > 0


def class_distance(a: tuple[torch.Tensor, torch.Tensor], b: tuple[torch.Tensor, torch.Tensor]) -> float:
    """Mean L2 distance between the class means of ``a`` and ``b`` (each ``(means, mask)``)
    over the classes both contain; NaN when they share none."""
    both = a[1] & b[1]
    if not bool(both.any()):
        return float("nan")
    return float(torch.linalg.vector_norm(a[0][both] - b[0][both], dim=1).mean())


class FeatureDiagnostics:
    """Measures each synthesised batch against fixed references.

    :param teacher: the classifier (eval mode).
    :param spec: dataset spec; :param layer: where features are read (as the guidance).
    :param condensed: (images, labels) of the condensed set, pixel scale, or None.
    :param real: (images, labels) of a real training subset, pixel scale, or None.
    """

    def __init__(self, teacher: nn.Module, spec, layer: str = PENULTIMATE,
                 condensed: Optional[tuple[torch.Tensor, torch.Tensor]] = None,
                 real: Optional[tuple[torch.Tensor, torch.Tensor]] = None):
        self.teacher, self.spec = teacher, spec
        self.tap = FeatureTap(teacher, layer)
        k = spec.num_classes
        self.condensed = class_means(self.tap, *condensed, k, spec) if condensed is not None else None
        self.real = class_means(self.tap, *real, k, spec) if real is not None else None
        self.reference: dict[str, float] = {}
        if self.condensed is not None and self.real is not None:
            self.reference["condensed_to_real"] = class_distance(self.condensed, self.real)

    @torch.no_grad()
    def measure(self, images: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        """Numbers for one synthetic batch: pixel-scale images (N, C, H, W) and host targets (N,)."""
        device = next(self.teacher.parameters()).device
        self.teacher.eval()
        logits = self.teacher(self.spec.normalise(images.to(device)))
        out = {"teacher_accuracy": 100.0 * float((logits.argmax(1).cpu() == targets.cpu()).float().mean())}
        means = class_means(self.tap, images, targets, self.spec.num_classes, self.spec)
        if self.condensed is not None:
            out["distance_condensed"] = class_distance(means, self.condensed)
        if self.real is not None:
            out["distance_real"] = class_distance(means, self.real)
        return out
