"""The interleaved synthesis + KD loop of the paper, and plain KD on a fixed transfer set.

Every epoch (every ``synthesis_every``-th epoch): the host (if any) synthesises one batch, which
joins the pool; then the student takes ``kd_steps`` SGD steps.  Each step's loss is
``KL_tau(T(x_pool) || S(x_pool))`` plus, with a transfer set (the condensed set) and
``mixing="two_term"``, ``KL_tau(T(x_c) || S(x_c))`` on a transfer batch (weight 1 each,
the paper's two-term loss); ``mixing="concat"`` instead puts the transfer images into
the pool once, at the start.  Without a host the loop is plain KD on the transfer set.
Both sides get the standard crop + flip augmentation.  With ``guidance`` (the paper's
feature alignment) the host's generator loss gains ``lambda_FA * L_FA`` at every step.  The complete state (student,
optimiser, schedule, host, pool, RNG, curve) is saved atomically every epoch; a rerun
resumes from it and, on the CPU, ends with the same numbers.

Under ``torchrun`` (:mod:`cdemi.distributed`) every rank runs this loop with its own seed, its own
host (made with ``batch_size // world_size``) and its own pool; the student is wrapped in
DistributedDataParallel and each rank's KD batch is ``batch_size // world_size``; the hosts'
shared modules and the guidance's discriminator start from rank 0's and have their gradients
averaged (see :class:`cdemi.invert.base.InversionHost`).  Rank 0 alone evaluates; each rank keeps
its own resume state (``<state stem>.rank<r><suffix>``).
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional

import torch
from tqdm.auto import tqdm

from .. import distributed
from ..augment import random_crop_flip
from ..data import ImageSet
from ..data.subsets import per_class_indices
from ..guidance import FeatureAlignment, FeatureDiagnostics
from ..invert.base import InversionHost
from ..losses import kd_kl
from ..params import DistillSettings
from ..resume import ResumeState
from ..runtime import Acceleration, peak_memory_mb
from ..train import evaluate
from .pool import SyntheticPool


def process_shares(settings: DistillSettings) -> tuple[int, Optional[int]]:
    """This process's part of the KD batch and of the pool cap: the whole values in one process,
    ``// world_size`` under ``torchrun``.  A caller may call it before any work to fail early.

    :raises ValueError: ``batch_size`` (or ``pool_max``) is not a multiple of the number of processes.
    """
    kd_batch = distributed.share(settings.batch_size, "batch_size")
    if settings.pool_max is None or distributed.world_size() == 1:
        return kd_batch, settings.pool_max
    return kd_batch, distributed.share(settings.pool_max, "pool_max")


SAMPLES_KEPT = 128  # newest pool images returned with the result (figures: sample grids, feature maps)


def distill_student(teacher: torch.nn.Module, student: torch.nn.Module, test: ImageSet, settings: DistillSettings, *,
            host: Optional[InversionHost] = None, transfer: Optional[torch.Tensor] = None,
            guidance: Optional[FeatureAlignment] = None, diagnostics: Optional[FeatureDiagnostics] = None,
            state_path: str | Path | None = None, run_digest: str = "", channels_last: bool = False,
            accel: Optional[Acceleration] = None, validation: Optional[ImageSet] = None,
            progress: bool = True) -> dict:
    """Distil ``student`` from ``teacher``; :returns: the run's numbers (curve, costs, accuracies)
    and ``samples``: the newest :data:`SAMPLES_KEPT` pool images (uint8 (N, C, H, W)) and targets.

    :param transfer: extra transfer images, float (N, C, H, W) on the pixel scale (the
        condensed set, a k-shot or random real subset, or the whole training set).
    :param guidance: the guidance term handed to ``host.synthesize`` at every synthesis
        (:class:`cdemi.guidance.FeatureAlignment`); its state is saved with the host's, and
        each epoch's row gets its discriminator numbers under ``guidance``.
    :param diagnostics: measures each synthesised batch (teacher accuracy, feature distances);
        each epoch's row gets them under ``diagnostics``.
    :param run_digest: identifies everything else the run depends on (host and its
        parameters, guidance, transfer set, teacher); a saved state resumes only when both
        it and the loop settings match, otherwise it is set aside as ``.stale``.
    :param settings: :class:`cdemi.params.DistillSettings` (or a whole :class:`cdemi.params.DistillRun`).
    :param state_path: the resume state (:class:`cdemi.resume.ResumeState`, one per rank under
        ``torchrun``), written at the end of every epoch.
    :param channels_last: NHWC layout for teacher, student and their inputs (about 1.7x
        faster KD on the CPU here); the numbers differ from NCHW by rounding only.
    :param accel: the speed switches (:func:`cdemi.runtime.accelerate`): bf16 autocast of the
        KD and evaluation forward passes (or of the teacher's KD forward alone; the synthesis stays
        float32), pinned non-blocking copies of KD
        batches, a compiled student; its ``channels_last`` replaces the argument of that name.
        None: float32, plain copies, no compilation (the CPU defaults).  The layout is decided here
        (:meth:`cdemi.runtime.Acceleration.place`) unless the switches were placed already.
    :param validation: a validation split of the training set (:func:`cdemi.data.subsets.validation_split`).
        Given, every epoch's row gets ``validation_accuracy`` on all of it, and ``test`` is read once,
        after the last epoch (the last row alone has ``test_accuracy``); the result adds
        ``validation_accuracy`` (the last epoch's).  It excludes ``curve_test_per_class``.
        None: the per-epoch curve is measured on test images (the committed grid's records).
    """
    if guidance is not None and host is None:
        raise ValueError("guidance steers an inversion host: give a host too")
    if host is None and transfer is None:
        raise ValueError("nothing to distil on: give an inversion host, a transfer set, or both")
    if host is None and settings.synthesis_every != 1:
        raise ValueError(f"synthesis_every is {settings.synthesis_every} but there is no host to synthesise: "
                         f"give a host or leave synthesis_every at 1")
    if validation is not None and settings.curve_test_per_class is not None:
        raise ValueError(f"curve_test_per_class is {settings.curve_test_per_class} but a validation split was given: "
                         f"with one, the curve is measured on it and the test set is read once, at the end; "
                         f"set curve_test_per_class to null")
    spec = test.spec
    for role, model in (("teacher", teacher), ("student", student)):
        classes = getattr(getattr(model, "head", None), "out_features", spec.num_classes)
        if classes != spec.num_classes:
            raise ValueError(f"the {role} predicts {classes} classes but {spec.name} has {spec.num_classes}: "
                             f"build the {role} with num_classes={spec.num_classes}")
    device = next(student.parameters()).device
    accel = (accel or Acceleration(device, channels_last=channels_last)).place(teacher, student)
    channels_last = accel.channels_last
    teacher.eval()
    layout = torch.channels_last if channels_last else torch.contiguous_format
    world = distributed.world_size()
    kd_batch, pool_max = process_shares(settings)
    gen = torch.Generator().manual_seed(distributed.rank_seed(settings.seed))
    pool = SyntheticPool(spec.shape, pool_max)
    if transfer is not None and settings.mixing == "concat" and host is not None:
        with torch.no_grad():
            labels = teacher(spec.normalise(transfer.to(device))).argmax(1)
        pool.add(transfer, labels)
    total = settings.epochs * settings.kd_steps
    opt = torch.optim.SGD(student.parameters(), lr=settings.lr, momentum=settings.momentum,
                          weight_decay=settings.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
    resume_key = f"{settings.digest()}:{run_digest}:{'nhwc' if channels_last else 'nchw'}"
    if world > 1:
        resume_key += f":{world}-processes"
    if accel.amp_dtype is not None:  # autocast changes the numbers: a float32 state does not resume it
        resume_key += f":autocast-{accel.amp_dtype}"
    if accel.teacher_amp_dtype is not None:
        resume_key += f":teacher-autocast-{accel.teacher_amp_dtype}"
    resume = ResumeState(state_path, resume_key, "distillation state", per_rank=True)  # each rank its own
    start, state = resume.load()
    curve: list[dict] = []
    if state is not None:
        student.load_state_dict(state["student"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        pool.load_state_dict(state["pool"])
        gen.set_state(state["generator"])
        if host is not None:
            host.load_state_dict(state["host"])
        if guidance is not None:
            guidance.load_state_dict(state["guidance"])
        curve = json.loads(state["curve"])
    curve_test = test
    if settings.curve_test_per_class is not None:
        curve_test = test.subset(per_class_indices(test, settings.curve_test_per_class, seed=0))
    padding = max(1, spec.image_size // 8)
    warmup = getattr(host, "warmup", 0) if host is not None else 0

    if host is not None:  # under torchrun: rank 0's shared host modules, discriminator and student
        distributed.broadcast_parameters(t for m in host.shared_modules() for t in (*m.parameters(), *m.buffers()))
    if guidance is not None:
        distributed.broadcast_parameters(t for m in guidance.shared_modules() for t in m.parameters())
    model = accel.compiled(distributed.wrap(student))  # DDP under torchrun; the student itself in one process

    def kl_on(images: torch.Tensor) -> torch.Tensor:
        x = spec.normalise(random_crop_flip(accel.to_device(images), padding, gen)).contiguous(memory_format=layout)
        with torch.no_grad(), accel.teacher_autocast():
            t = teacher(x)
        with accel.autocast():
            s = model(x)
        return kd_kl(s, t, settings.temperature)  # in float32 whatever the autocast

    for epoch in tqdm(range(start, settings.epochs), desc="distill", disable=not progress, initial=start,
                      total=settings.epochs, unit="epoch"):
        row = {"epoch": epoch + 1, "synthesis_seconds": 0.0, "kd_seconds": 0.0, "synthesised": 0}
        if host is not None and epoch % settings.synthesis_every == 0:
            t0 = time.perf_counter()
            try:  # float32 whatever the autocast: bf16 synthesis misses the BN statistics (see accel)
                batch = host.synthesize(student, guidance)
            except FloatingPointError as e:  # the host names the step and the terms
                raise FloatingPointError(f"distill: epoch {epoch + 1}, synthesis: {e}") from e
            pool.add(batch.images, batch.targets)
            row.update(synthesis_seconds=time.perf_counter() - t0, synthesised=len(batch.targets) * world,
                       synthesis_losses=batch.losses)
            if guidance is not None:
                row["guidance"] = guidance.pop_stats()
            if diagnostics is not None:
                row["diagnostics"] = diagnostics.measure(batch.images, batch.targets)
        t0 = time.perf_counter()
        student.train()
        if epoch >= warmup:
            for step in range(settings.kd_steps):
                loss = torch.zeros((), device=device)
                terms = {}  # the same sum as before, its terms kept to name a non-finite one
                if len(pool):
                    terms["pool"] = kl_on(pool.sample(kd_batch, gen)[0])
                    loss = loss + terms["pool"]
                if transfer is not None and (settings.mixing == "two_term" or host is None):
                    idx = torch.randint(0, transfer.shape[0], (kd_batch,), generator=gen)
                    terms["transfer"] = kl_on(transfer[idx])
                    loss = loss + terms["transfer"]
                if not torch.isfinite(loss):
                    values = ", ".join(f"{k} KL = {float(v.detach())}" for k, v in terms.items())
                    bad = [k for k, v in terms.items() if not torch.isfinite(v)] or ["their sum"]
                    raise FloatingPointError(
                        f"distill: non-finite KD loss at epoch {epoch + 1}, step {step + 1} of {settings.kd_steps}: "
                        f"term {' and '.join(bad)} ({values}); the last finished epoch's resume state, if any, "
                        f"is unchanged. Lower lr or the temperature, or check the teacher and the transfer set")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
        row["kd_seconds"] = time.perf_counter() - t0
        final = epoch == settings.epochs - 1

        def accuracy(data: ImageSet) -> float:  # rank 0 evaluates; every rank gets its number
            return distributed.from_main(
                evaluate(student, data, device, batch_size=256, channels_last=channels_last, amp_dtype=accel.amp_dtype)
                if distributed.is_main() else 0.0)

        if validation is not None:
            row["validation_accuracy"] = accuracy(validation)
        if validation is None or final:
            row["test_images"] = len(test if final else curve_test)
            row["test_accuracy"] = accuracy(test if final else curve_test)
        curve.append(row)
        resume.save(epoch + 1, {
            "student": student.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
            "pool": pool.state_dict(), "generator": gen.get_state(),
            "host": host.state_dict() if host is not None else None,
            "guidance": guidance.state_dict() if guidance is not None else None, "curve": json.dumps(curve)})
    accs = [r["test_accuracy"] for r in curve if "test_accuracy" in r]
    held_out = {} if validation is None else {"validation_accuracy": curve[-1]["validation_accuracy"]}
    return {"settings": settings.loop_settings(), "settings_digest": settings.digest(), "curve": curve,
            "final_accuracy": accs[-1], "best_accuracy": max(accs), **held_out,
            "synthesis_seconds": sum(r["synthesis_seconds"] for r in curve),
            "kd_seconds": sum(r["kd_seconds"] for r in curve),
            "images_synthesised": sum(r["synthesised"] for r in curve), "pool_bytes": pool.nbytes(),
            "peak_memory_mb": round(peak_memory_mb(), 1),
            "samples": {"images": pool.images[-SAMPLES_KEPT:].clone(), "targets": pool.targets[-SAMPLES_KEPT:].clone()}}
