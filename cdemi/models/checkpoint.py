"""Classifier checkpoints: weights plus a JSON record that vouches for them.

``<name>.pt`` holds the ``state_dict`` (loadable with ``weights_only=True``);
``<name>.json`` holds the architecture, its arguments, the dataset, the weights'
SHA-256 and whatever the producer adds (accuracy, curve, parameters).  Loading
checks the checksum and the architecture before any weight is used.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from ..artifacts import ArtifactError, load_with_record, save_with_record
from . import build
from .base import Classifier

CheckpointError = ArtifactError


def save_classifier(path: str | Path, model: nn.Module, arch: str, arch_kwargs: dict, dataset: str, **record: Any) -> dict:
    """Write ``model``'s weights to ``path`` and its record beside it (both atomically).

    :param arch: registry name; ``arch_kwargs`` are the other arguments of
        :func:`cdemi.models.build` (``num_classes``, ``in_channels``, ``width``, ...).
    :param dataset: name of the dataset the weights were trained for.
    :returns: the record written.
    """
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    return save_with_record(path, state, {
        "arch": arch, "arch_kwargs": dict(arch_kwargs), "dataset": dataset,
        "num_parameters": sum(p.numel() for p in model.parameters()), **record})


def load_classifier(path: str | Path, arch: str | None = None, dataset: str | None = None,
                    num_classes: int | None = None) -> tuple[Classifier, dict]:
    """Load a checkpoint written by :func:`save_classifier`, in eval mode on the CPU.

    :param arch, dataset, num_classes: what the caller expects; any disagreement with
        the record is refused.
    :raises CheckpointError: missing file, checksum mismatch, or wrong architecture,
        dataset or class count, each with what was expected and what was found.
    """
    state, record = load_with_record(path, "checkpoint")
    for key, want, have in (("architecture", arch, record.get("arch")), ("dataset", dataset, record.get("dataset")),
                            ("num_classes", num_classes, record.get("arch_kwargs", {}).get("num_classes"))):
        if want is not None and want != have:
            raise CheckpointError(f"checkpoint {path} has {key} {have!r}, expected {want!r}: use a checkpoint with "
                                  f"{key} {want!r}, or expect the {key} this one has ({have!r}; for a run's teacher, "
                                  f"its teacher_arch)")
    model = build(record["arch"], **record["arch_kwargs"])
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        lines = str(e).splitlines()
        raise CheckpointError(
            f"checkpoint {path} does not hold weights of {record['arch']} {record['arch_kwargs']} "
            f"(a checkpoint of another architecture?): {(lines[1] if len(lines) > 1 else lines[0]).strip()}"
        ) from e
    return model.eval(), record


def metrics_of(record: dict) -> dict:
    """The DVC metrics of a training run from its checkpoint record: final and best test accuracy
    (%, two decimals) and the parameter count."""
    return {"test_accuracy": round(record["test_accuracy"], 2), "best_accuracy": round(record["best_accuracy"], 2),
            "num_parameters": record["num_parameters"]}
