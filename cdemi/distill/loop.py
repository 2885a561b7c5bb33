"""The interleaved synthesis + KD loop of the paper, and plain KD on a fixed transfer set.

Every epoch: the host (if any) synthesises one batch, which joins the pool; then the
student takes ``kd_steps`` SGD steps.  Each step's loss is
``KL_tau(T(x_pool) || S(x_pool))`` plus, with a transfer set (the condensed set) and
``mixing="two_term"``, ``KL_tau(T(x_c) || S(x_c))`` on a transfer batch (weight 1 each,
the paper's two-term loss); ``mixing="concat"`` instead puts the transfer images into
the pool once, at the start.  Without a host the loop is plain KD on the transfer set.
Both sides get the standard crop + flip augmentation.  With ``guidance`` (the paper's
feature alignment) the host's generator loss gains ``lambda_FA * L_FA`` at every step.  The complete state (student,
optimiser, schedule, host, pool, RNG, curve) is saved atomically every epoch; a rerun
resumes from it and, on the CPU, ends with the same numbers.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal, Optional

import torch
from tqdm.auto import tqdm

from ..artifacts import atomic_torch_save, safe_torch_load
from ..condense.base import peak_memory_mb
from ..data import ImageSet
from ..data.augment import random_crop_flip
from ..data.subsets import per_class_indices
from ..guidance import FeatureAlignment, FeatureDiagnostics
from ..invert.base import InversionHost
from ..losses import kd_kl
from ..training import evaluate
from .pool import SyntheticPool


@dataclass(frozen=True)
class DistillSettings:
    """:param epochs: synthesis + KD rounds; :param kd_steps: student steps per epoch;
    :param batch_size: images per KD batch (pool and transfer alike); :param lr: SGD peak
    lr (cosine to 0); :param temperature: tau; :param mixing: ``two_term`` or ``concat``;
    :param pool_max: pool cap (None = unbounded); :param seed: data order and augmentation;
    :param curve_test_per_class: the per-epoch curve is measured on this many test images per
    class (a fixed draw, seed 0); the last epoch always on the whole test set (None: every
    epoch on the whole test set)."""

    epochs: int = 20
    kd_steps: int = 50
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    temperature: float = 20.0
    mixing: Literal["two_term", "concat"] = "two_term"
    pool_max: Optional[int] = None
    seed: int = 0
    curve_test_per_class: Optional[int] = None

    def digest(self) -> str:
        fields = {k: v for k, v in asdict(self).items() if not (k == "curve_test_per_class" and v is None)}
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]


SAMPLES_KEPT = 128  # newest pool images returned with the result (figures: sample grids, feature maps)


def distill(teacher: torch.nn.Module, student: torch.nn.Module, test: ImageSet, settings: DistillSettings, *,
            host: Optional[InversionHost] = None, transfer: Optional[torch.Tensor] = None,
            guidance: Optional[FeatureAlignment] = None, diagnostics: Optional[FeatureDiagnostics] = None,
            state_path: str | Path | None = None, run_digest: str = "", channels_last: bool = False,
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
    :param channels_last: NHWC layout for teacher, student and their inputs (about 1.7x
        faster KD on the CPU here); the numbers differ from NCHW by rounding only.
    """
    if guidance is not None and host is None:
        raise ValueError("guidance steers an inversion host: give a host too")
    if host is None and transfer is None:
        raise ValueError("nothing to distil on: give an inversion host, a transfer set, or both")
    spec = test.spec
    for role, model in (("teacher", teacher), ("student", student)):
        classes = getattr(getattr(model, "head", None), "out_features", spec.num_classes)
        if classes != spec.num_classes:
            raise ValueError(f"the {role} predicts {classes} classes but {spec.name} has {spec.num_classes}: "
                             f"build the {role} with num_classes={spec.num_classes}")
    device = next(student.parameters()).device
    teacher.eval()
    layout = torch.channels_last if channels_last else torch.contiguous_format
    teacher.to(memory_format=layout)
    student.to(memory_format=layout)
    gen = torch.Generator().manual_seed(settings.seed)
    pool = SyntheticPool(spec.shape, settings.pool_max)
    if transfer is not None and settings.mixing == "concat" and host is not None:
        with torch.no_grad():
            labels = teacher(spec.normalise(transfer.to(device))).argmax(1)
        pool.add(transfer, labels)
    total = settings.epochs * settings.kd_steps
    opt = torch.optim.SGD(student.parameters(), lr=settings.lr, momentum=settings.momentum,
                          weight_decay=settings.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
    curve: list[dict] = []
    start = 0
    state_path = Path(state_path) if state_path else None
    resume_key = f"{settings.digest()}:{run_digest}:{'nhwc' if channels_last else 'nchw'}"
    if state_path and state_path.exists():
        state = safe_torch_load(state_path, "distillation state")
        if state.get("settings") == resume_key:
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
            start = len(curve)
        else:
            state_path.rename(state_path.with_suffix(".stale"))
    curve_test = test
    if settings.curve_test_per_class is not None:
        curve_test = test.subset(per_class_indices(test, settings.curve_test_per_class, seed=0))
    padding = max(1, spec.image_size // 8)
    warmup = getattr(host, "warmup", 0) if host is not None else 0

    def kl_on(images: torch.Tensor) -> torch.Tensor:
        x = spec.normalise(random_crop_flip(images.to(device), padding, gen)).contiguous(memory_format=layout)
        with torch.no_grad():
            t = teacher(x)
        return kd_kl(student(x), t, settings.temperature)

    for epoch in tqdm(range(start, settings.epochs), desc="distill", disable=not progress, initial=start,
                      total=settings.epochs, unit="epoch"):
        row = {"epoch": epoch + 1, "synthesis_seconds": 0.0, "kd_seconds": 0.0, "synthesised": 0}
        if host is not None:
            t0 = time.perf_counter()
            batch = host.synthesize(student, guidance)
            pool.add(batch.images, batch.targets)
            row.update(synthesis_seconds=time.perf_counter() - t0, synthesised=len(batch.targets),
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
                if len(pool):
                    loss = loss + kl_on(pool.sample(settings.batch_size, gen)[0])
                if transfer is not None and (settings.mixing == "two_term" or host is None):
                    idx = torch.randint(0, transfer.shape[0], (settings.batch_size,), generator=gen)
                    loss = loss + kl_on(transfer[idx])
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"distill: non-finite KD loss at epoch {epoch + 1}, step {step + 1}")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
        row["kd_seconds"] = time.perf_counter() - t0
        final = epoch == settings.epochs - 1
        row["test_images"] = len(test if final else curve_test)
        row["test_accuracy"] = evaluate(student, test if final else curve_test, device, batch_size=256,
                                        channels_last=channels_last)
        curve.append(row)
        if state_path:
            atomic_torch_save(state_path, {
                "student": student.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                "pool": pool.state_dict(), "generator": gen.get_state(), "settings": resume_key,
                "host": host.state_dict() if host is not None else None,
                "guidance": guidance.state_dict() if guidance is not None else None, "curve": json.dumps(curve)})
    accs = [r["test_accuracy"] for r in curve]
    return {"settings": asdict(settings), "settings_digest": settings.digest(), "curve": curve,
            "final_accuracy": accs[-1], "best_accuracy": max(accs),
            "synthesis_seconds": sum(r["synthesis_seconds"] for r in curve),
            "kd_seconds": sum(r["kd_seconds"] for r in curve),
            "images_synthesised": sum(r["synthesised"] for r in curve), "pool_bytes": pool.nbytes(),
            "peak_memory_mb": round(peak_memory_mb(), 1),
            "samples": {"images": pool.images[-SAMPLES_KEPT:].clone(), "targets": pool.targets[-SAMPLES_KEPT:].clone()}}
