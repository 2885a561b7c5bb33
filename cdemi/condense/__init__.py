"""Condensation methods: ``condense_dm(train, ipc, ...)`` etc., and by name for the pipeline.

``CONDENSERS.get(name)`` runs a validated ``condense`` entry of a profile.

``dm`` (distribution matching), ``dsa`` (gradient matching with Siamese augmentation),
``mtt`` (trajectory matching; needs expert ``trajectories``, see :func:`mtt.train_experts`),
``random_real`` (a seeded, class-balanced real subset, the usual baseline) and ``kshot``
(the same draw, named as the k real images per class of the few-shot setting).
"""
from __future__ import annotations

from .dm import condense_dm
from .dsa import condense_dsa
from .evaluate import evaluate_condensed, train_on_condensed
from .mtt import condense_mtt, train_experts
from .stage import CONDENSERS, condense_entry, evaluate_entry

__all__ = ["CONDENSERS", "condense_dm", "condense_dsa", "condense_entry", "condense_mtt", "evaluate_condensed",
           "evaluate_entry", "train_experts", "train_on_condensed"]
