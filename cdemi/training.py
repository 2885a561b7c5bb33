"""Supervised training and full-data KD of a classifier, resumable per epoch.

The same loop trains the teacher and the reference students from labels, and
distils a student from a teacher on the real training set (the "KD on full data"
upper bound).  Every epoch ends with an atomic checkpoint of the complete state
(weights, optimiser, schedule, RNG, curve), so an interrupted run resumes where it
stopped and, on the CPU, ends with the same weights as an uninterrupted one.

Under ``torchrun`` (see :mod:`cdemi.distributed`) the model is wrapped in DistributedDataParallel:
every rank draws the same epoch permutation and augmentation from the shared seed, takes every
``world_size``-th image of each batch (``batch_size // world_size`` per rank), and the averaged
gradients make one step on the whole batch; rank 0 alone evaluates and writes the resume state,
the checkpoint and its record.  ``python -m cdemi.training PARAMS SECTION RUN OUT`` runs one entry.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from . import distributed
from .artifacts import atomic_torch_save, record_path, safe_torch_load
from .data import ImageSet
from .data.augment import random_crop_flip
from .losses import kd_kl
from .runtime import Acceleration, use_channels_last


@dataclass(frozen=True)
class TrainSettings:
    """Hyper-parameters of one training run.

    :param epochs: passes over the training set.
    :param batch_size: images per step.
    :param lr: peak learning rate of the one-cycle schedule (SGD, Nesterov momentum).
    :param momentum: SGD momentum.
    :param weight_decay: L2 penalty.
    :param seed: seeds the weights' initialisation (by the caller) and the data order.
    :param augment: random crop (padding = image side / 8) and horizontal flip.
    :param temperature: KD temperature; used only when a teacher is given.
    :param warmup: fraction of the steps spent rising to ``lr``.
    """

    epochs: int = 15
    batch_size: int = 256
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    seed: int = 0
    augment: bool = True
    temperature: float = 4.0
    warmup: float = 0.15

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class TrainResult:
    """Outcome of :func:`train_classifier`: accuracies in percent, seconds of wall time."""

    test_accuracy: float
    best_accuracy: float
    curve: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    resumed_from_epoch: int = 0


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
    :param state_path: where the per-epoch resume state lives; a state written with
        other settings is set aside (renamed ``*.stale``), never silently reused.
    :param accel: the speed switches (:func:`cdemi.runtime.accelerate`): bf16 autocast of the forward
        passes (the loss in float32), a compiled model; its ``channels_last`` replaces the argument of
        that name.  None: float32 and no compilation.
    :returns: final and best test accuracy (%), per-epoch curve, seconds spent.
    :raises ValueError: under ``torchrun``, ``batch_size`` not a multiple of the number of processes.
    """
    world, me = distributed.world_size(), distributed.rank()
    distributed.share(settings.batch_size, "batch_size")  # each rank's part of a batch; refuses a remainder
    device = torch.device(device)
    accel = accel or Acceleration(device, channels_last=channels_last)
    channels_last = use_channels_last(accel.channels_last, device, model, *([teacher] if teacher is not None else []))
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    if teacher is not None:
        teacher.to(device).eval()
        if channels_last:
            teacher.to(memory_format=torch.channels_last)
    steps_per_epoch = max(1, len(train) // settings.batch_size)
    opt = torch.optim.SGD(model.parameters(), lr=settings.lr, momentum=settings.momentum,
                          weight_decay=settings.weight_decay, nesterov=settings.momentum > 0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=settings.lr, total_steps=settings.epochs * steps_per_epoch,
                                                pct_start=settings.warmup, anneal_strategy="cos",
                                                div_factor=25.0, final_div_factor=1e3)
    gen = torch.Generator().manual_seed(settings.seed)
    curve: list[dict] = []
    start_epoch, spent = 0, 0.0
    state_path = Path(state_path) if state_path else None
    state = None
    with distributed.main_first():  # one state for all ranks (same RNG and weights); rank 0 sets a stale one aside
        if state_path and state_path.exists():
            state = safe_torch_load(state_path, "training state")
            if not (state.get("settings") == settings.digest() and state.get("kd") == (teacher is not None)):
                state = None
                if distributed.is_main():
                    state_path.rename(state_path.with_suffix(".stale"))
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        gen.set_state(state["generator"])
        curve = [dict(zip(("epoch", "train_loss", "test_accuracy", "seconds"), row)) for row in state["curve"].tolist()]
        for row in curve:
            row["epoch"] = int(row["epoch"])
        start_epoch, spent = int(state["epoch"]), float(state["seconds"])
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
                    with torch.no_grad():
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
        if state_path and distributed.is_main():
            atomic_torch_save(state_path, {
                "model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                "generator": gen.get_state(), "epoch": epoch + 1, "seconds": spent, "settings": settings.digest(),
                "kd": teacher is not None,
                "curve": torch.tensor([[r["epoch"], r["train_loss"], r["test_accuracy"], r["seconds"]] for r in curve],
                                      dtype=torch.float64),
            })
    model.to(memory_format=torch.contiguous_format)
    accs = [r["test_accuracy"] for r in curve]
    return TrainResult(test_accuracy=accs[-1] if accs else float("nan"), best_accuracy=max(accs, default=float("nan")),
                       curve=curve, seconds=spent, resumed_from_epoch=start_epoch)


def train_run(run, data, runtime, out: str | Path, state: str | Path | None = None, progress: bool = True) -> dict:
    """Execute one ``train`` entry of a profile and write its checkpoint and record.

    Checks run before any computation: the dataset loads, and a KD teacher
    checkpoint matches the dataset and class count.

    :param run: :class:`cdemi.params.TrainRun` (its ``dataset`` overrides ``data.dataset``);
    :param data: :class:`cdemi.params.DataParams`;
    :param runtime: :class:`cdemi.params.RuntimeParams`.
    :param out: checkpoint path (``.pt``; the record goes to ``.json`` beside it).
    :param state: resume-state path (default: ``out`` with suffix ``.state``).
    :returns: the record written beside the checkpoint (by rank 0 under ``torchrun``; every rank
        returns it).
    """
    from . import data as datasets
    from . import models, runtime as rt
    from .models.checkpoint import load_classifier, save_classifier

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
    settings = TrainSettings(epochs=run.epochs, batch_size=run.batch_size, lr=run.lr, momentum=run.momentum,
                             weight_decay=run.weight_decay, seed=run.seed, augment=run.augment,
                             temperature=run.temperature, warmup=run.warmup)
    out = Path(out)
    result = train_classifier(model, train_set, test_set, settings, teacher=teacher,
                              state_path=state or out.with_suffix(".state"), device=device,
                              accel=rt.accelerate(runtime, device), progress=progress and distributed.is_main())
    if not distributed.is_main():
        distributed.barrier()  # rank 0 writes the checkpoint and its record
        return json.loads(record_path(out).read_text())
    record = save_classifier(
        out, model, run.arch, arch_kwargs, dataset,
        params=run.model_dump(), test_accuracy=result.test_accuracy, best_accuracy=result.best_accuracy,
        curve=result.curve, train_seconds=result.seconds, threads=runtime.threads, device=str(device),
        torch_version=torch.__version__, teacher_sha256=teacher_record["sha256"] if teacher_record else None,
    )
    distributed.barrier()
    return record


def main(argv: list[str] | None = None) -> int:
    """``python -m cdemi.training PARAMS SECTION RUN OUT [--metrics JSON]``: one ``train`` or ``kd_full``
    entry of a profile, as the training notebook runs it; under ``torchrun`` on every rank."""
    import argparse

    from . import params
    from .artifacts import atomic_write_json

    parser = argparse.ArgumentParser(prog="python -m cdemi.training", description=main.__doc__.splitlines()[0])
    parser.add_argument("params", help="profile file, e.g. params.yaml")
    parser.add_argument("section", choices=["train", "kd_full"])
    parser.add_argument("run", help="entry name in that section")
    parser.add_argument("out", help="checkpoint path (.pt; its record goes beside it as .json)")
    parser.add_argument("--metrics", help="DVC metrics JSON to write, as the notebook does")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    config, profile = params.resolve(args.params, args.run, args.section, smoke={})
    try:
        record = train_run(config, profile.data, profile.runtime, args.out, progress=not args.no_progress)
        if args.metrics and distributed.is_main():
            atomic_write_json(args.metrics, {"test_accuracy": round(record["test_accuracy"], 2),
                                             "best_accuracy": round(record["best_accuracy"], 2),
                                             "num_parameters": record["num_parameters"]})
    finally:
        distributed.teardown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
