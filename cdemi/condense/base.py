"""Pieces every condensation method shares: initialisation, class sampling, resume, the result."""
from __future__ import annotations

from pathlib import Path

import torch

from ..data import ImageSet
from ..data.condensed import CondensedSet
from ..data.subsets import per_class_indices
from ..resume import ResumeState, Timer, digest
from ..runtime import peak_memory_mb


class ClassSampler:
    """Draws normalised real images of one class.

    :param data: the real training set (uint8 images).
    """

    def __init__(self, data: ImageSet, device: torch.device | str = "cpu"):
        self.data = data
        self.device = device
        self.by_class = [torch.nonzero(data.labels == c).flatten() for c in range(data.spec.num_classes)]

    def sample(self, c: int, n: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` images of class ``c`` (without replacement when possible), normalised float (n, C, H, W)."""
        pool = self.by_class[c]
        idx = pool[torch.randperm(len(pool), generator=generator)[:n]]
        return self.data.spec.normalise(self.data.images[idx].to(self.device).float().div_(255))

    def skip(self, c: int, generator: torch.Generator) -> None:
        """Advance ``generator`` exactly as :meth:`sample` of class ``c`` would, loading nothing (a
        rank that leaves class ``c`` to another keeps its RNG in step with theirs)."""
        torch.randperm(len(self.by_class[c]), generator=generator)


def initial_images(data: ImageSet, ipc: int, init: str, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Starting synthetic set: ``real`` (random real images per class) or ``noise`` (standard normal).

    :returns: normalised images float (K*ipc, C, H, W), labels (K*ipc,) sorted by class.
    """
    k = data.spec.num_classes
    labels = torch.arange(k).repeat_interleave(ipc)
    if init == "real":
        idx = per_class_indices(data, ipc, seed)
        return data.spec.normalise(data.images[idx].float() / 255), labels
    if init == "noise":
        return torch.randn((k * ipc, *data.spec.shape), generator=torch.Generator().manual_seed(seed)), labels
    raise ValueError(f"init must be 'real' or 'noise', got {init!r}")


def run_digest(method: str, params: dict, seed: int, data: ImageSet, **extra) -> str:
    """A short hash of everything that determines a condensation run (guards resume).

    ``iterations`` is left out: the first ``n`` iterations of a longer run are those of a run
    of ``n`` (no schedule depends on the total), so a finished run extended to more
    iterations resumes from its last state instead of starting over.
    """
    kept = {k: v for k, v in params.items() if k != "iterations"}
    return digest({method: kept, "seed": seed, "n": len(data), **extra})


def learnable_images(data: ImageSet, ipc: int, init: str, seed: int, lr_img: float, device) \
        -> tuple[torch.Tensor, torch.Tensor, torch.optim.Optimizer, torch.Generator]:
    """Initial synthetic images (normalised, requiring grad), their labels, their SGD
    optimiser (momentum 0.5, as DC/DSA/DM/MTT) and the run's random generator."""
    images, labels = initial_images(data, ipc, init, seed)
    images = images.to(device).requires_grad_(True)
    opt = torch.optim.SGD([images], lr=lr_img, momentum=0.5)
    return images, labels.to(device), opt, torch.Generator().manual_seed(seed + 1)


class Checkpointer:
    """A condensation run's resume state (:class:`cdemi.resume.ResumeState`, shared by the ranks),
    saved every ``every`` iterations and at the last one.

    :param tensors: learnable tensors restored in place (the images, MTT's lr).
    :param optimizers: optimisers by name; :param generator: the run's RNG.
    :param digest: the run's identity (:func:`run_digest`); a state with another is set aside.
    """

    def __init__(self, path: str | Path | None, digest: str, every: int, tensors: dict[str, torch.Tensor],
                 optimizers: dict[str, torch.optim.Optimizer], generator: torch.Generator):
        self.state = ResumeState(path, digest, "condensation state")
        self.every = max(1, every)
        self.tensors, self.optimizers, self.generator = tensors, optimizers, generator

    def resume(self, total: int) -> tuple[int, Timer]:
        """Restore the saved state if any; :returns: (iterations already done, a running timer).
        A state past ``total`` iterations is set aside as ``*.stale``."""
        done, state = self.state.load(limit=total)
        if state is None:
            return 0, Timer()
        with torch.no_grad():
            for name, t in self.tensors.items():
                t.copy_(state["tensors"][name])
        for name, opt in self.optimizers.items():
            opt.load_state_dict(state["optimizers"][name])
        self.generator.set_state(state["generator"])
        return done, Timer(float(state["seconds"]))

    def maybe_save(self, iteration: int, total: int, timer: Timer) -> None:
        if iteration % self.every == 0 or iteration == total:
            self.state.save(iteration, {
                "tensors": {k: t.detach().cpu() for k, t in self.tensors.items()},
                "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
                "generator": self.generator.get_state(), "seconds": timer.seconds})


def finish(images: torch.Tensor, labels: torch.Tensor, data: ImageSet, method: str, ipc: int, seed: int,
           params: dict, seconds: float, extra: dict | None = None) -> CondensedSet:
    """Wrap optimised normalised images as a :class:`CondensedSet` on the pixel scale with its cost."""
    pixels = data.spec.denormalise(images.detach().cpu())
    return CondensedSet(pixels, labels, data.spec.name, method, ipc,
                        {"seed": seed, "params": params, "wall_seconds": round(seconds, 3),
                         "peak_memory_mb": round(peak_memory_mb(), 1), **(extra or {})})
