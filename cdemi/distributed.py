"""Several processes under ``torchrun``: process group, each rank's device and seed, gradient averaging.

``torchrun --nproc_per_node=N -m cdemi.<stage> ...`` starts N processes and tells each its place
through environment variables (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR``,
``MASTER_PORT``).  :func:`setup` reads them, joins the process group (``nccl`` on CUDA, ``gloo``
on the CPU) and returns the rank's device (``cuda:LOCAL_RANK`` on a GPU machine).

Without ``torchrun`` (``WORLD_SIZE`` unset or 1) nothing here does anything: no process group is
made, :func:`rank` is 0, :func:`world_size` is 1, :func:`rank_seed` returns the seed it is given,
:func:`share` returns its argument, :func:`rank_path` its path, and the collectives return at once
without touching their tensors.  The single-process results therefore stay bitwise what they are.
"""
from __future__ import annotations

import hashlib
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable

import torch
import torch.distributed as dist

_device: torch.device | None = None  # the rank's device, set by setup()


def launched() -> bool:
    """True when this process was started by ``torchrun`` with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def active() -> bool:
    """True when a process group of more than one process is initialised."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank in ``0 .. world_size() - 1`` (0 without a process group)."""
    return dist.get_rank() if active() else 0


def world_size() -> int:
    """Number of processes (1 without a process group)."""
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    """True on rank 0, the one that evaluates and writes records, samples and checkpoints."""
    return rank() == 0


def setup(device: str = "auto") -> torch.device:
    """Join the process group ``torchrun`` describes, and :returns: this rank's device.

    :param device: ``auto``, ``cpu`` or ``cuda[:i]`` (as :func:`cdemi.runtime.select_device`).
        Under ``torchrun`` a CUDA choice becomes ``cuda:LOCAL_RANK`` (one GPU per process) with the
        ``nccl`` backend; the CPU uses ``gloo``.  Calling it again returns the same device.
    Without ``torchrun`` it is exactly :func:`cdemi.runtime.select_device` (no process group).
    """
    global _device
    from .runtime import select_device

    if not launched():
        return select_device(device)
    chosen = select_device(device)
    if chosen.type == "cuda":
        chosen = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(chosen)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if chosen.type == "cuda" else "gloo")
    _device = chosen
    return chosen


def teardown() -> None:
    """Leave the process group (after a final barrier); nothing without one."""
    global _device
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
    _device = None


def barrier() -> None:
    """Wait until every rank gets here (nothing without a process group)."""
    if active():
        dist.barrier()


@contextmanager
def main_first():
    """Rank 0 runs the ``with`` block before the other ranks do (e.g. it alone sets a stale resume
    state aside, which the others then no longer find).  A plain block without a process group."""
    if active() and not is_main():
        dist.barrier()
    try:
        yield
    finally:
        if active() and is_main():
            dist.barrier()


def rank_seed(seed: int, rank_: int | None = None) -> int:
    """The seed of rank ``rank_`` (default: this rank) derived from a run's ``seed``.

    Rank 0 keeps ``seed`` itself (so one process is the single-process run); rank r > 0 gets
    the first 31 bits of SHA-256 of ``"seed:r"``: in ``[0, 2**31 - 1)``, distinct per rank, stable
    across machines and PyTorch versions.
    """
    r = rank() if rank_ is None else rank_
    if r == 0:
        return seed
    return int.from_bytes(hashlib.sha256(f"{seed}:{r}".encode()).digest()[:4], "big") % (2**31 - 1)


def share(n: int, what: str = "batch_size", world: int | None = None) -> int:
    """This rank's part of ``n`` (a batch size): ``n // world_size``.

    :param what: the name the error message gives ``n``.
    :param world: the number of processes (default: :func:`world_size`).
    :raises ValueError: ``n`` is not a multiple of the number of processes.
    """
    world = world_size() if world is None else world
    if n % world:
        raise ValueError(f"{what} {n} does not divide among {world} processes: choose a multiple of {world} "
                         f"(each process takes {what} / {world})")
    return n // world


def rank_path(path: str | Path) -> Path:
    """``path`` itself with one process; under ``torchrun`` ``<stem>.rank<r><suffix>`` (a per-rank
    resume state: ``run.state`` -> ``run.rank1.state``, set aside as ``run.rank1.stale``)."""
    path = Path(path)
    return path.with_name(f"{path.stem}.rank{rank()}{path.suffix}") if active() else path


def _buffer_device() -> torch.device:
    return _device if _device is not None and _device.type == "cuda" else torch.device("cpu")


def all_reduce_gradients(parameters: Iterable[torch.Tensor], average: bool = True) -> None:
    """Sum (``average=False``) or average the ``.grad`` of ``parameters`` over the ranks, in place.

    All ranks must call it with the same parameters in the same order.  The gradients travel in
    one flat buffer (one collective per call).  A parameter whose gradient is None on some rank
    counts as zero there; one whose gradient is None on every rank stays None.  Without a process
    group it returns at once and touches nothing.
    """
    if not active():
        return
    params = [p for p in parameters if p.requires_grad]
    if not params:
        return
    dev = next((p.grad.device for p in params if p.grad is not None), params[0].device)
    flat = torch.zeros(sum(p.numel() for p in params) + len(params), dtype=torch.float32, device=dev)
    offset = 0
    for i, p in enumerate(params):
        if p.grad is not None:
            flat[offset:offset + p.numel()] = p.grad.detach().reshape(-1).float()
            flat[-len(params) + i] = 1.0  # presence flag
        offset += p.numel()
    dist.all_reduce(flat)
    if average:
        flat[:offset] /= world_size()
    offset = 0
    for i, p in enumerate(params):
        n = p.numel()
        if flat[-len(params) + i] > 0:
            grad = flat[offset:offset + n].view(p.shape).to(p.dtype)
            if p.grad is None:
                p.grad = grad.clone(memory_format=torch.preserve_format).to(p.device)
            else:
                p.grad.copy_(grad)
        offset += n


def broadcast_parameters(tensors: Iterable[torch.Tensor], src: int = 0) -> None:
    """Overwrite ``tensors`` (parameters or buffers) on every rank with rank ``src``'s values, so
    that modules initialised from different per-rank seeds start equal.  No-op without a group."""
    if not active():
        return
    with torch.no_grad():
        for t in tensors:
            if t.device.type == _buffer_device().type and t.is_contiguous():
                dist.broadcast(t.data, src)
            else:  # another device than the backend's, or a channels_last layout
                tmp = t.detach().contiguous().to(_buffer_device())
                dist.broadcast(tmp, src)
                t.copy_(tmp)


def from_main(value: float) -> float:
    """Rank 0's ``value`` on every rank (a float, e.g. an accuracy only rank 0 measured)."""
    if not active():
        return value
    t = torch.tensor([float(value)], dtype=torch.float64, device=_buffer_device())
    dist.broadcast(t, 0)
    return float(t.item())


def mean(value: float) -> float:
    """The mean over the ranks of a float (e.g. each rank's training loss)."""
    if not active():
        return value
    t = torch.tensor([float(value)], dtype=torch.float64, device=_buffer_device())
    dist.all_reduce(t)
    return float(t.item()) / world_size()


def same_everywhere(value: int) -> bool:
    """True when every rank passes the same integer (e.g. the epoch its resume state holds)."""
    if not active():
        return True
    t = torch.tensor([int(value), -int(value)], dtype=torch.int64, device=_buffer_device())
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t[0]) == -int(t[1])


def wrap(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` in :class:`~torch.nn.parallel.DistributedDataParallel` under ``torchrun`` (its
    weights broadcast from rank 0, its gradients averaged in the backward pass); ``model`` itself
    otherwise.  Keep the unwrapped ``model`` for ``state_dict``, evaluation and saving."""
    if not active():
        return model
    from torch.nn.parallel import DistributedDataParallel

    dev = next(model.parameters()).device
    return DistributedDataParallel(model, device_ids=[dev] if dev.type == "cuda" else None)
