"""Device choice, thread count and seeding for one process."""
from __future__ import annotations

import random

import numpy as np
import torch


def select_device(device: str = "auto") -> torch.device:
    """``auto`` -> CUDA when present, else CPU; otherwise the named device.

    :raises ValueError: a CUDA device was asked for on a machine without one.
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available; use 'cpu' or 'auto'")
    return dev


def configure(threads: int, seed: int) -> None:
    """Fix intra-op threads (CPU results depend on it) and seed every RNG.

    :param threads: ``torch.set_num_threads`` value; 0 leaves torch's default.
    :param seed: seed for ``random``, numpy and torch.
    """
    if threads > 0:
        torch.set_num_threads(threads)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
