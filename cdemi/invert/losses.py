"""Generator-side loss terms shared by the model-inversion hosts (each defined once)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def adversarial_disagreement(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """``-mean_i KL(p_T(x_i) || p_S(x_i)) * 1[argmax p_S = argmax p_T]`` (Fast, CMI).

    Minimising it pushes synthesis towards images where student and teacher still agree
    on the class but disagree on the distribution.  Temperature 1, float32, scalar.
    """
    s = F.log_softmax(student_logits.float(), dim=1)
    t = F.log_softmax(teacher_logits.float(), dim=1)
    kl = (t.exp() * (t - s)).sum(dim=1)
    agree = (student_logits.argmax(1) == teacher_logits.argmax(1)).float()
    return -(kl * agree).mean()


def total_variation(images: torch.Tensor) -> torch.Tensor:
    """DeepInversion's L2 total-variation prior: mean of the four neighbour-difference norms.

    :param images: float (N, C, H, W).
    """
    d1 = images[:, :, :, :-1] - images[:, :, :, 1:]
    d2 = images[:, :, :-1, :] - images[:, :, 1:, :]
    d3 = images[:, :, 1:, :-1] - images[:, :, :-1, 1:]
    d4 = images[:, :, :-1, :-1] - images[:, :, 1:, 1:]
    return sum(torch.linalg.vector_norm(d) for d in (d1, d2, d3, d4)) / images.shape[0]


def image_l2(images: torch.Tensor) -> torch.Tensor:
    """DeepInversion's L2 prior on the (normalised) pixels: ``||x||_2 / N``."""
    return torch.linalg.vector_norm(images) / images.shape[0]
