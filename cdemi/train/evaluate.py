"""Top-1 accuracy of a classifier on a labelled image set: the number every loop reports."""
from __future__ import annotations

import torch
from torch import nn

from ..data import ImageSet


@torch.inference_mode()
def evaluate(model: nn.Module, data: ImageSet, device: torch.device | str = "cpu", batch_size: int = 1000,
             channels_last: bool = False, amp_dtype: torch.dtype | None = None) -> float:
    """Top-1 accuracy in percent of ``model`` on ``data`` (normalised with its spec); forward passes
    autocast to ``amp_dtype`` when given (bf16 on a GPU)."""
    was_training = model.training
    model.eval()
    correct = 0
    device = torch.device(device)
    for i in range(0, len(data), batch_size):
        x = data.spec.normalise(data.images[i:i + batch_size].to(device).float().div_(255))
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=amp_dtype or torch.bfloat16, enabled=amp_dtype is not None):
            logits = model(x)
        correct += (logits.argmax(1).cpu() == data.labels[i:i + batch_size]).sum().item()
    model.train(was_training)
    return 100.0 * correct / max(1, len(data))
