"""One ``train`` or ``kd_full`` entry of a profile, end to end: check inputs, train, write the
checkpoint and its record (by rank 0 under ``torchrun``)."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from .. import data as datasets
from .. import distributed, models
from .. import runtime as rt
from ..artifacts import record_path
from ..models.checkpoint import load_classifier, save_classifier
from .loop import train_classifier


def train_run(run, data, runtime, out: str | Path, state: str | Path | None = None, progress: bool = True) -> dict:
    """Execute one ``train`` entry of a profile and write its checkpoint and record.

    Checks run before any computation: the dataset loads, and a KD teacher
    checkpoint matches the dataset and class count.

    :param run: :class:`cdemi.params.TrainRun` (its ``dataset`` overrides ``data.dataset``); the
        loop receives it as its settings.
    :param data: :class:`cdemi.params.DataParams`;
    :param runtime: :class:`cdemi.params.RuntimeParams`.
    :param out: checkpoint path (``.pt``; the record goes to ``.json`` beside it).
    :param state: resume-state path (default: ``out`` with suffix ``.state``).
    :returns: the record written beside the checkpoint (by rank 0 under ``torchrun``; every rank
        returns it).
    """
    device = distributed.setup(runtime.device)  # rt.select_device without torchrun
    dataset = run.dataset or data.dataset
    train_set = datasets.load(dataset, "train", data.root)
    test_set = datasets.load(dataset, "test", data.root)
    spec = train_set.spec
    teacher, teacher_record = None, None
    if run.teacher:
        teacher, teacher_record = load_classifier(run.teacher, dataset=dataset, num_classes=spec.num_classes)
    rt.configure(runtime.threads, run.seed)
    arch_kwargs = {"num_classes": spec.num_classes, "in_channels": spec.channels, "width": run.width}
    if run.arch == "convnet":
        arch_kwargs["image_size"] = spec.image_size
    model = models.build(run.arch, **arch_kwargs)
    out = Path(out)
    accel = rt.accelerate(runtime, device)
    result = train_classifier(model, train_set, test_set, run, teacher=teacher,
                              state_path=state or out.with_suffix(".state"), device=device,
                              accel=accel, progress=progress and distributed.is_main())
    if not distributed.is_main():
        distributed.barrier()  # rank 0 writes the checkpoint and its record
        return json.loads(record_path(out).read_text())
    record = save_classifier(
        out, model, run.arch, arch_kwargs, dataset,
        params=run.model_dump(), test_accuracy=result.test_accuracy, best_accuracy=result.best_accuracy,
        curve=result.curve, train_seconds=result.seconds, threads=runtime.threads, device=str(device),
        torch_version=torch.__version__, teacher_sha256=teacher_record["sha256"] if teacher_record else None,
        **accel.switches(),
    )
    distributed.barrier()
    return record
