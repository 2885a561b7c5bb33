"""Supervised training and full-data KD of a classifier, resumable per epoch.

The same loop trains the teacher and the reference students from labels, and
distils a student from a teacher on the real training set (the "KD on full data"
upper bound).  Every epoch ends with an atomic resume state (:mod:`cdemi.resume`: weights,
optimiser, schedule, RNG, curve), so an interrupted run resumes where it stopped and, on the CPU,
ends with the same weights as an uninterrupted one.

Under ``torchrun`` (see :mod:`cdemi.distributed`) the model is wrapped in DistributedDataParallel:
every rank draws the same epoch permutation and augmentation from the shared seed, takes every
``world_size``-th image of each batch (``batch_size // world_size`` per rank), and the averaged
gradients make one step on the whole batch; rank 0 alone evaluates and writes the resume state.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .. import distributed
from ..augment import random_crop_flip
from ..data import ImageSet
from ..losses import kd_kl
from ..params import TrainSettings
from ..resume import ResumeState, digest
from ..runtime import Acceleration
from .evaluate import evaluate


@dataclass
class TrainResult:
    """Outcome of :func:`train_classifier`: accuracies in percent, seconds of wall time."""

    test_accuracy: float
    best_accuracy: float
    curve: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    resumed_from_epoch: int = 0


def _batches(n: int, batch_size: int, generator: torch.Generator):
    order = torch.randperm(n, generator=generator)
    for i in range(0, n - batch_size + 1 if n >= batch_size else 1, batch_size):
        yield order[i:i + batch_size]


def train_classifier(model: nn.Module, train: ImageSet, test: ImageSet, settings: TrainSettings, *,
                     teacher: nn.Module | None = None, state_path: str | Path | None = None,
                     device: torch.device | str = "cpu", channels_last: bool = False,
                     accel: Acceleration | None = None, progress: bool = True) -> TrainResult:
    """Train ``model`` on ``train`` (cross-entropy, or KD from ``teacher``), testing each epoch.

    :param model: a freshly initialised classifier (its init is part of the run's seed).
    :param teacher: if given, the loss is :func:`cdemi.losses.kd_kl` to the teacher's
        logits on the same augmented batch (labels unused).
    :param settings: :class:`cdemi.params.TrainSettings` (or a whole :class:`cdemi.params.TrainRun`).
    :param state_path: where the per-epoch resume state lives (:class:`cdemi.resume.ResumeState`); a
        state written with other settings is set aside (renamed ``*.stale``), never silently reused.
    :param accel: the speed switches (:func:`cdemi.runtime.accelerate`): bf16 autocast of the forward
        passes, or of the teacher's alone (the loss in float32), a compiled model; its ``channels_last`` replaces the argument of
        that name; the layout is decided here (:meth:`cdemi.runtime.Acceleration.place`) unless the
        switches were placed already.  None: float32 and no compilation.
    :returns: final and best test accuracy (%), per-epoch curve, seconds spent.
    :raises ValueError: under ``torchrun``, ``batch_size`` not a multiple of the number of processes.
    """
    world, me = distributed.world_size(), distributed.rank()
    distributed.share(settings.batch_size, "batch_size")  # each rank's part of a batch; refuses a remainder
    device = torch.device(device)
    model.to(device)
    if teacher is not None:
        teacher.to(device).eval()
    accel = (accel or Acceleration(device, channels_last=channels_last)).place(
        model, *([teacher] if teacher is not None else []))
    channels_last = accel.channels_last
    steps_per_epoch = max(1, len(train) // settings.batch_size)
    opt = torch.optim.SGD(model.parameters(), lr=settings.lr, momentum=settings.momentum,
                          weight_decay=settings.weight_decay, nesterov=settings.momentum > 0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=settings.lr, total_steps=settings.epochs * steps_per_epoch,
                                                pct_start=settings.warmup, anneal_strategy="cos",
                                                div_factor=25.0, final_div_factor=1e3)
    gen = torch.Generator().manual_seed(settings.seed)
    curve: list[dict] = []
    resume = ResumeState(state_path, digest({"settings": settings.digest(), "kd": teacher is not None}),
                         "training state")
    start_epoch, state = resume.load()
    spent = 0.0
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        gen.set_state(state["generator"])
        curve = [dict(zip(("epoch", "train_loss", "test_accuracy", "seconds"), row)) for row in state["curve"].tolist()]
        for row in curve:
            row["epoch"] = int(row["epoch"])
        spent = float(state["seconds"])
    padding = max(1, train.spec.image_size // 8)
    images = train.images.to(device)
    labels = train.labels.to(device)
    net = accel.compiled(distributed.wrap(model))  # DDP under torchrun (rank 0's weights broadcast), else the model
    model.train()
    bar = tqdm(range(start_epoch, settings.epochs), desc="train", disable=not progress, initial=start_epoch,
               total=settings.epochs, unit="epoch")
    for epoch in bar:
        t0 = time.perf_counter()
        total, count = 0.0, 0
        for idx in _batches(len(train), settings.batch_size, gen):
            x = images[idx.to(device)].float().div_(255)
            if settings.augment:
                x = random_crop_flip(x, padding, gen)
            if world > 1:  # this rank's images of the batch every rank drew alike
                idx, x = idx[me::world], x[me::world]
            x = train.spec.normalise(x)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with accel.autocast():
                logits = net(x)
            if teacher is not None:
                with torch.no_grad(), accel.teacher_autocast():
                    target = teacher(x)
            if teacher is None:  # both losses in float32
                loss = F.cross_entropy(logits.float(), labels[idx.to(device)])
            else:
                loss = kd_kl(logits, target, settings.temperature)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"non-finite training loss at epoch {epoch + 1}, step {count + 1}: {loss.item()}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item()
            count += 1
        train_loss = distributed.mean(total / max(1, count))
        acc = distributed.from_main(evaluate(model, test, device, channels_last=channels_last, amp_dtype=accel.amp_dtype)
                                    if distributed.is_main() else 0.0)
        spent += time.perf_counter() - t0
        curve.append({"epoch": epoch + 1, "train_loss": train_loss, "test_accuracy": acc, "seconds": spent})
        bar.set_postfix(loss=f"{train_loss:.3f}", test=f"{acc:.2f}%")
        resume.save(epoch + 1, {
            "model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
            "generator": gen.get_state(), "seconds": spent,
            "curve": torch.tensor([[r["epoch"], r["train_loss"], r["test_accuracy"], r["seconds"]] for r in curve],
                                  dtype=torch.float64)})
    model.to(memory_format=torch.contiguous_format)
    accs = [r["test_accuracy"] for r in curve]
    return TrainResult(test_accuracy=accs[-1] if accs else float("nan"), best_accuracy=max(accs, default=float("nan")),
                       curve=curve, seconds=spent, resumed_from_epoch=start_epoch)
