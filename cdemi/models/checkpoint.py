"""Classifier checkpoints: weights plus a JSON record that vouches for them.

``<name>.pt`` holds the ``state_dict`` (loadable with ``weights_only=True``);
``<name>.json`` holds the architecture, its arguments, the dataset, the weights'
SHA-256 and whatever the producer adds (accuracy, curve, parameters).  Loading
checks the checksum and the architecture before any weight is used.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from torch import nn

from ..artifacts import atomic_torch_save, atomic_write_json, sha256_file, safe_torch_load
from . import build
from .base import Classifier


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt, or not what the caller expects."""


def record_path(weights: str | Path) -> Path:
    return Path(weights).with_suffix(".json")


def save_classifier(path: str | Path, model: nn.Module, arch: str, arch_kwargs: dict, dataset: str, **record: Any) -> dict:
    """Write ``model``'s weights to ``path`` and its record beside it (both atomically).

    :param arch: registry name; ``arch_kwargs`` are the other arguments of
        :func:`cdemi.models.build` (``num_classes``, ``in_channels``, ``width``, ...).
    :param dataset: name of the dataset the weights were trained for.
    :returns: the record written.
    """
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    digest = atomic_torch_save(path, state)
    full = {"arch": arch, "arch_kwargs": dict(arch_kwargs), "dataset": dataset, "sha256": digest,
            "num_parameters": sum(p.numel() for p in model.parameters()), **record}
    atomic_write_json(record_path(path), full)
    return full


def read_record(path: str | Path) -> dict:
    """The JSON record of checkpoint ``path``; :raises CheckpointError: missing or unreadable."""
    rec = record_path(path)
    if not rec.is_file():
        raise CheckpointError(f"checkpoint record {rec} is missing: rerun the stage that trains {Path(path).name}")
    try:
        return json.loads(rec.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"checkpoint record {rec} is not valid JSON ({e}); rerun the stage that wrote it") from e


def load_classifier(path: str | Path, arch: str | None = None, dataset: str | None = None,
                    num_classes: int | None = None) -> tuple[Classifier, dict]:
    """Load a checkpoint written by :func:`save_classifier`, in eval mode on the CPU.

    :param arch, dataset, num_classes: what the caller expects; any disagreement with
        the record is refused.
    :raises CheckpointError: missing file, checksum mismatch, or wrong architecture,
        dataset or class count, each with what was expected and what was found.
    """
    path = Path(path)
    record = read_record(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} is missing (its record exists): rerun the stage that trains it")
    digest = sha256_file(path)
    if digest != record.get("sha256"):
        raise CheckpointError(
            f"checkpoint {path} does not match its record (sha256 {digest[:12]}... != {str(record.get('sha256'))[:12]}...): "
            "the file is corrupt or was replaced; restore it (git checkout / dvc checkout) or retrain it"
        )
    for key, want, have in (("architecture", arch, record.get("arch")), ("dataset", dataset, record.get("dataset")),
                            ("num_classes", num_classes, record.get("arch_kwargs", {}).get("num_classes"))):
        if want is not None and want != have:
            raise CheckpointError(f"checkpoint {path} has {key} {have!r}, expected {want!r}")
    model = build(record["arch"], **record["arch_kwargs"])
    state = safe_torch_load(path, "checkpoint")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).splitlines()[1].strip() if len(str(e).splitlines()) > 1 else str(e)
        raise CheckpointError(
            f"checkpoint {path} does not hold weights of {record['arch']} {record['arch_kwargs']} "
            f"(a checkpoint of another architecture?): {first}"
        ) from e
    return model.eval(), record
