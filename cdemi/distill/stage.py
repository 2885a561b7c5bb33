"""One ``distill`` entry of a profile, end to end: check inputs, distil, write the run record.

The run record (one JSON per run, a DVC metric) holds the configuration and its hash,
the teacher's and transfer set's checksums, the seed, the per-epoch curve, the costs
(synthesis and KD seconds, images synthesised, pool bytes, peak memory) and the final
and best test accuracy.  Reports are built from these records only.

A ``study`` entry (:class:`cdemi.params.StudyRun`), or a ``distill`` entry that gives
``validation_per_class`` (validated as one), runs the same way with its curve on a validation split of
the training set and the test set read once, at its end; its record adds ``validation`` (the split)
and ``convergence`` (:func:`cdemi.convergence.verdict` on that curve).

``python -m cdemi.distill PARAMS RUN RECORD [--section study]`` runs one entry; under ``torchrun`` every rank runs it
(see :mod:`cdemi.distill.loop`) and rank 0 alone writes the record and the samples.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from .. import data as datasets
from .. import distributed, models
from .. import runtime as rt
from ..artifacts import atomic_torch_save, atomic_write_json
from ..data.condensed import load_condensed
from ..data.subsets import real_subset, validation_split
from ..guidance import PENULTIMATE, FeatureAlignment, FeatureDiagnostics
from ..invert import HOSTS
from ..models.checkpoint import load_classifier
from ..params import StudyRun
from ..resume import digest
from .. import convergence
from .loop import distill_student, process_shares

RECORD_FORMAT = "cdemi-run-v1"


def config_hash(run) -> str:
    """The identity (:func:`cdemi.resume.digest`) of a run's validated configuration."""
    return digest(run.model_dump())


def _set_record(cs) -> dict:
    return {"sha256": cs.meta["sha256"], "method": cs.method, "ipc": cs.ipc}


def epoch_means(curve: list[dict]) -> dict[str, float]:
    """Mean over epochs of every number under ``guidance`` and ``diagnostics`` in the rows."""
    sums: dict[str, list[float]] = {}
    for row in curve:
        for group in ("guidance", "diagnostics"):
            for k, v in row.get(group, {}).items():
                sums.setdefault(k, []).append(v)
    return {k: sum(v) / len(v) for k, v in sorted(sums.items())}


def build_guidance(run, teacher: torch.nn.Module, condensed, spec, seed: int | None = None) -> FeatureAlignment | None:
    """The run's :class:`FeatureAlignment` toward ``condensed`` (a :class:`CondensedSet`), or None
    when the run has no guidance; ``seed`` (default: the run's) seeds it."""
    g = run.guidance
    if g is None:
        return None
    return FeatureAlignment(teacher, condensed.images, condensed.labels, spec, weight=g.weight, layer=g.layer,
                            conditional=g.conditional, loss=g.loss, augment=g.augment, hidden=g.hidden, d_lr=g.d_lr,
                            d_betas=tuple(g.d_betas), d_steps=g.d_steps, real_batch=g.real_batch,
                            held_out_per_class=g.held_out_per_class,
                            seed=run.seed if seed is None else seed)


def distill_entry(name: str, run, data, runtime, record_path: str | Path, state_path: str | Path | None = None,
                  samples_path: str | Path | None = None, progress: bool = True) -> dict:
    """Execute one ``distill`` entry and write its run record atomically.

    Checked before any computation: the dataset loads; the teacher checkpoint verifies
    and matches the dataset and class count; the transfer set (and the diagnostics
    reference) verifies and matches the dataset and image shape; a guided run's condensed
    set covers the teacher's classes.  Every host run records the diagnostics of
    :mod:`cdemi.guidance.diagnostics` per epoch.  The resume state goes to ``state_path`` (default:
    ``<record>.state``) after every epoch.  The newest synthetic images (up to
    :data:`cdemi.distill.loop.SAMPLES_KEPT`, uint8, with their targets; none for KD-only runs)
    go to ``samples_path`` (default: ``<record stem>.samples.pt``) for the figures.

    Under ``torchrun`` each rank seeds itself with :func:`cdemi.distributed.rank_seed` and builds its
    host with its share of the host's ``batch_size``; rank 0 alone measures the diagnostics and
    writes the samples and the record (which then also names the number of processes).

    :param run: :class:`cdemi.params.DistillRun` (or :class:`cdemi.params.StudyRun`: its curve on a
        validation split, its own ``threads``); :param data, runtime: the profile's sections.
    :returns: the record written.
    :raises ValueError: under ``torchrun``, a host or KD ``batch_size`` (or ``pool_max``) that is not
        a multiple of the number of processes.
    """
    study = isinstance(run, StudyRun)
    threads = run.threads if study and run.threads is not None else runtime.threads
    device = distributed.setup(runtime.device)  # rt.select_device without torchrun
    accel = rt.accelerate(runtime, device)  # refuses switches the device cannot honour, before any work
    world = distributed.world_size()
    host_params = run.host_settings
    if run.host and world > 1:  # each rank synthesises its share of the host's batch
        host_params["batch_size"] = distributed.share(host_params["batch_size"],
                                                      f"host_params.batch_size of {run.host}")
    process_shares(run)  # the loop's shares of the KD batch and pool cap, refused here before any work
    dataset = run.dataset or data.dataset
    test = datasets.load(dataset, "test", data.root)
    spec = test.spec
    teacher, teacher_record = load_classifier(run.teacher, arch=run.teacher_arch, dataset=dataset,
                                                 num_classes=spec.num_classes)
    cs, transfer_record = None, None
    if run.transfer:
        cs = load_condensed(run.transfer, dataset=dataset, shape=spec.shape)
        transfer_record = _set_record(cs)
    reference, reference_record = cs, transfer_record
    if run.diagnostics_reference:
        reference = load_condensed(run.diagnostics_reference, dataset=dataset, shape=spec.shape)
        reference_record = _set_record(reference)
    validation, validation_record = None, None
    if study:  # the curve's data: a fixed split of the training set, the same in every study run
        validation, validation_record = validation_split(datasets.load(dataset, "train", data.root),
                                                         run.validation_per_class, run.validation_seed)
    real = None
    if run.real_reference_per_class:
        real = real_subset(datasets.load(dataset, "train", data.root), run.real_reference_per_class, seed=0)
    seed = distributed.rank_seed(run.seed)  # run.seed itself in one process
    rt.configure(threads, seed)
    student = models.build(run.student.arch, num_classes=spec.num_classes, in_channels=spec.channels,
                           width=run.student.width).to(device)
    teacher = teacher.to(device)
    accel = accel.place(teacher, student)  # the run's layout, before the host and the guidance copy the teacher
    host = HOSTS.get(run.host)(teacher, spec, seed=seed, **host_params) if run.host else None
    guidance = build_guidance(run, teacher, cs, spec, seed=seed)
    diagnostics = None
    if host is not None and distributed.is_main():
        diagnostics = FeatureDiagnostics(
            teacher, spec, run.guidance.layer if run.guidance else PENULTIMATE,
            condensed=(reference.images, reference.labels) if reference is not None else None,
            real=(real.images, real.labels) if real is not None else None)
    record_path = Path(record_path)
    result = distill_student(teacher, student, test, run, host=host,
                     transfer=cs.images if cs is not None else None, guidance=guidance, diagnostics=diagnostics,
                     state_path=state_path or record_path.with_suffix(".state"),
                     run_digest=f"{config_hash(run)}:{teacher_record['sha256']}:{(transfer_record or {}).get('sha256')}",
                     accel=accel, validation=validation, progress=progress and distributed.is_main())
    if not distributed.is_main():
        distributed.barrier()  # rank 0 writes the samples and the record
        return json.loads(record_path.read_text())
    samples = result.pop("samples")
    atomic_torch_save(Path(samples_path or record_path.with_suffix(".samples.pt")),
                      {**samples, "dataset": dataset, "run": name, "config_hash": config_hash(run)})
    record = {
        "format": RECORD_FORMAT, "name": name, "host": run.host or "none", "variant": run.variant,
        "dataset": dataset, "teacher": teacher_record["arch"], "student": run.student.arch,
        "config": run.model_dump(), "config_hash": config_hash(run), "seed": run.seed,
        "teacher_sha256": teacher_record["sha256"], "teacher_accuracy": teacher_record.get("test_accuracy"),
        "transfer": transfer_record, "diagnostics_reference": reference_record,
        "reference_distances": diagnostics.reference if diagnostics is not None else {},
        "diagnostics_mean": epoch_means(result["curve"]), "threads": threads, "device": str(device),
        "machine": rt.machine(), **accel.switches(),
        "torch_version": torch.__version__, **result,
    }
    if study:
        record["validation"] = validation_record
        record["convergence"] = convergence.verdict([r["validation_accuracy"] for r in result["curve"]])
    if world > 1:
        record["processes"] = world
    atomic_write_json(record_path, record)
    distributed.barrier()
    return record
