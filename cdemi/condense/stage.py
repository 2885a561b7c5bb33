"""One ``condense`` entry of a profile, end to end: condense, save with provenance, evaluate.

``python -m cdemi.condense PARAMS RUN OUT`` condenses one entry (no evaluation); under ``torchrun``
DM splits its classes over the ranks (see :mod:`cdemi.condense.dm`).  DSA and MTT stay
single-process and refuse to run under ``torchrun``: their steps are sequential chains (DSA
alternates image steps with ``inner_loop`` epochs of training the network on the synthetic
set, which every rank would have to repeat or train under DDP; MTT differentiates through one
unrolled trajectory of ``syn_steps`` student updates per iteration), so splitting them takes more
than summing independent per-class gradients.
"""
from __future__ import annotations

import json
import statistics
from pathlib import Path

import torch

from .. import data as datasets
from .. import distributed
from .. import runtime as rt
from ..artifacts import record_path
from ..data import public_formats
from ..data.condensed import CondensedSet, load_condensed, save_condensed
from ..data.subsets import real_subset
from ..registry import Registry
from ..resume import Timer
from .base import run_digest
from .dm import condense_dm
from .dsa import condense_dsa
from .evaluate import evaluate_condensed
from .mtt import condense_mtt, train_experts

# method name -> runner(train, run, state_dir, progress, device) -> CondensedSet
CONDENSERS: Registry = Registry("condensation method")
_COMMON = {"method", "ipc", "dataset"}


@CONDENSERS.register("dm")
def _dm(train, run, state_dir: Path, progress: bool, device) -> CondensedSet:
    return condense_dm(train, run.ipc, **run.model_dump(exclude=_COMMON), state_path=state_dir / "dm.state",
                       progress=progress, device=device)


@CONDENSERS.register("dsa")
def _dsa(train, run, state_dir: Path, progress: bool, device) -> CondensedSet:
    return condense_dsa(train, run.ipc, **run.model_dump(exclude=_COMMON), state_path=state_dir / "dsa.state",
                        progress=progress, device=device)


@CONDENSERS.register("mtt")
def _mtt(train, run, state_dir: Path, progress: bool, device) -> CondensedSet:
    experts = {"num_experts", "expert_train_epochs", "expert_lr"}
    settings = dict(num_experts=run.num_experts, epochs=run.expert_train_epochs, lr=run.expert_lr,
                    augment=run.augment, width=run.width, seed=run.seed)
    # sets condensed from the same experts (IPC 1 / 10 / 50) share one resumable trajectory file
    shared = state_dir.parent / f"mtt_experts_{run_digest('experts', settings, run.seed, train, dataset=train.spec.name)}.work.pt"
    traj = train_experts(train, **settings, path=shared, progress=progress, device=device)
    return condense_mtt(train, run.ipc, traj, **run.model_dump(exclude=_COMMON | experts),
                        state_path=state_dir / "mtt.state", progress=progress, device=device)


@CONDENSERS.register("random_real")
def _real(train, run, state_dir: Path, progress: bool, device) -> CondensedSet:
    return real_subset(train, run.ipc, run.seed, "random_real")


@CONDENSERS.register("kshot")
def _kshot(train, run, state_dir: Path, progress: bool, device) -> CondensedSet:
    return real_subset(train, run.ipc, run.seed, "kshot")


@CONDENSERS.register("import")
def _import(train, run, state_dir: Path, progress: bool, device) -> CondensedSet:
    """A public file (:class:`cdemi.params.ImportRun`) read by its format's reader, pinned by SHA-256,
    checked against the entry's dataset and IPC; its method is the source's with the format appended
    (``dm_vico``, ``mtt_public``), so that tables keep it apart from the sets condensed here."""
    dataset = train.spec.name
    if run.format == "vico":
        name = public_formats.VICO_NAME.match(Path(run.source).name)
        cs = public_formats.read_vico(run.source, run.experiment, sha256=run.sha256,
                                      dataset=None if name and name["dataset"] in public_formats.SOURCE_DATASETS
                                      else dataset)
        method = f"{cs.method}_vico"
    else:
        folder = Path(run.source)
        zca = public_formats.ZCA.fit(train.float_images()) if run.zca else None  # MTT fits it on [0, 1] images
        cs = public_formats.read_mtt(folder / "images_best.pt", folder / "labels_best.pt", dataset, zca=zca,
                                     sha256=run.sha256)
        method = "mtt_public"
    if cs.dataset != dataset:
        raise ValueError(f"{run.source} condenses {cs.dataset}, this profile runs {dataset}: import it into a profile "
                         f"of that dataset, or set the entry's dataset")
    if cs.ipc != run.ipc:
        raise ValueError(f"{run.source} holds {cs.ipc} images per class, the entry says ipc: {run.ipc}; set ipc: {cs.ipc}")
    return CondensedSet(cs.images, cs.labels, cs.dataset, method, cs.ipc, {**cs.meta, "source_format": run.format})


def condense_entry(run, data, runtime, out: str | Path, progress: bool = True) -> dict:
    """Condense per ``run`` (a :data:`cdemi.params.CondenseRun`) and write ``out`` (+ record).

    Resume state lives in ``<out>.work/``; the record adds the parameters, seed,
    wall time and peak memory.  :returns: the record (written by rank 0 under ``torchrun``).
    :raises ValueError: under ``torchrun`` with more than one process, a method other than ``dm``.
    """
    device = distributed.setup(runtime.device)  # rt.select_device without torchrun
    if distributed.world_size() > 1 and run.method != "dm":
        raise ValueError(f"condensation method {run.method!r} runs in one process only (DM alone splits over "
                         f"processes): run it without torchrun")
    train = datasets.load(run.dataset or data.dataset, "train", data.root)
    rt.configure(runtime.threads, run.seed)
    out = Path(out)
    state_dir = out.with_suffix(".work")
    state_dir.mkdir(parents=True, exist_ok=True)
    cs = CONDENSERS.get(run.method)(train, run, state_dir, progress and distributed.is_main(), device)
    cs.meta.setdefault("params", run.model_dump())
    cs.meta["threads"] = runtime.threads
    cs.meta["device"] = str(device)
    cs.meta["torch_version"] = torch.__version__
    if distributed.world_size() > 1:
        cs.meta["processes"] = distributed.world_size()
    if not distributed.is_main():
        distributed.barrier()  # rank 0 writes the set and its record
        return json.loads(record_path(out).read_text())
    record = save_condensed(out, cs)
    distributed.barrier()
    return record


def evaluate_entry(path: str | Path, evaluation, data, runtime, progress: bool = True) -> dict:
    """ConvNet-from-scratch accuracies of the condensed set at ``path`` (per ``evaluation``).

    :returns: ``{"accuracies": [...], "mean": ..., "std": ...}`` in percent, and ``seconds`` (wall time).
    """
    cs = load_condensed(path)
    device = rt.select_device(runtime.device)
    rt.configure(runtime.threads, 0)
    test = datasets.load(cs.dataset, "test", data.root)
    timer = Timer()
    accs = evaluate_condensed(cs, test, runs=evaluation.runs, epochs=evaluation.epochs, batch_size=evaluation.batch_size,
                              width=evaluation.width, augment=evaluation.augment, progress=progress, device=device,
                              **({} if "learned_lr" in cs.meta else {"lr": evaluation.lr}))
    return {"accuracies": [round(a, 2) for a in accs], "mean": round(statistics.fmean(accs), 2),
            "std": round(statistics.pstdev(accs), 2), "seconds": round(timer.seconds, 1)}
