"""Loss terms shared by KD and model inversion (each defined once)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def kd_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Hinton KD loss ``tau^2 * KL(softmax(t/tau) || softmax(s/tau))``, mean over the batch.

    :param student_logits: float (N, K).
    :param teacher_logits: float (N, K); treated as a constant target only if detached by the caller.
    :param temperature: tau > 0.
    :returns: scalar, computed in float32.
    """
    s = F.log_softmax(student_logits.float() / temperature, dim=1)
    t = F.log_softmax(teacher_logits.float() / temperature, dim=1)
    return F.kl_div(s, t, reduction="batchmean", log_target=True) * temperature**2
