"""Condensation methods by name: ``CONDENSERS.get("dm")(train, ipc, **kwargs)`` -> :class:`CondensedSet`.

``dm`` (distribution matching), ``dsa`` (gradient matching with Siamese augmentation),
``mtt`` (trajectory matching; needs expert ``trajectories``, see :func:`mtt.train_experts`),
and ``random_real`` (a seeded, class-balanced real subset, the usual baseline).
"""
from __future__ import annotations

from ..data.subsets import real_subset
from ..registry import Registry
from .dm import condense_dm
from .dsa import condense_dsa
from .evaluate import evaluate_condensed, train_on_condensed
from .mtt import condense_mtt, train_experts

CONDENSERS: Registry = Registry("condensation method")
CONDENSERS.register("dm")(condense_dm)
CONDENSERS.register("dsa")(condense_dsa)
CONDENSERS.register("mtt")(condense_mtt)


@CONDENSERS.register("random_real")
def random_real(data, ipc: int, *, seed: int = 0):
    """``ipc`` random real images per class (the baseline row of every condensation table)."""
    return real_subset(data, ipc, seed, "random_real")


__all__ = ["CONDENSERS", "condense_dm", "condense_dsa", "condense_mtt", "evaluate_condensed", "train_experts",
           "train_on_condensed"]
