"""The one interface every model-inversion host implements, and the host registry.

A host owns its synthesis state (generator, meta-initialisation, latents, optimisers,
memory banks, RNG) and hands batches to the KD loop through :meth:`InversionHost.synthesize`.
The paper's guidance does not reach into a host: it passes an ``extra`` term that the
host adds to its generator loss at every synthesis step.

Under ``torchrun`` every rank runs its own host (its own seed, its share of the batch); what the
ranks learn together lives in :meth:`InversionHost.shared_modules` (made equal once, from rank 0,
by the KD loop) and every host averages their gradients over the ranks with :meth:`InversionHost.sync`
right before the optimiser step that updates them.  In one process both do nothing.
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch

from .. import distributed
from ..registry import Registry

# (normalised synthetic images with grad, target labels) -> (loss scalar, numbers to log)
ExtraTerm = Callable[[torch.Tensor, torch.Tensor], "tuple[torch.Tensor, dict[str, float]]"]

HOSTS: Registry = Registry("inversion host")


@dataclass
class SynthesisBatch:
    """What a host hands to KD.

    :param images: float (N, C, H, W), pixel scale in [0, 1], detached, on the CPU.
    :param targets: int64 (N,), the classes the host aimed at.
    :param losses: the loss terms of the last synthesis step (floats).
    :param steps: optimisation steps this batch took.
    """

    images: torch.Tensor
    targets: torch.Tensor
    losses: dict[str, float] = field(default_factory=dict)
    steps: int = 0

    def __post_init__(self):
        self.images = self.images.float()  # float32 even when a caller synthesised under autocast


class InversionHost(ABC):
    """Synthesises images from a frozen teacher.

    :param teacher: the classifier to invert (put in eval mode, its weights frozen).
    :param spec: the dataset spec (shape, classes, mean/std) the teacher was trained on.
    """

    name: str = "host"
    weights: dict[str, float]  # loss weight of each term a subclass computes
    teacher_passes: int = 1  # teacher forward + backward passes one synthesis step requires (benchmarks)

    def __init__(self, teacher: torch.nn.Module, spec, seed: int = 0):
        self.teacher = teacher.eval()
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.spec = spec
        self.generator = torch.Generator().manual_seed(seed)

    @abstractmethod
    def synthesize(self, student: Optional[torch.nn.Module] = None, extra: Optional[ExtraTerm] = None) -> SynthesisBatch:
        """Run the host's synthesis steps and return one batch for KD."""

    def shared_modules(self) -> list[torch.nn.Module]:
        """The persistent modules all ranks hold alike under ``torchrun`` (a generator, a head, a
        memory), whose gradients :meth:`sync` averages; none by default (DeepInversion's pixels are
        each rank's own)."""
        return []

    @staticmethod
    def sync(parameters) -> None:
        """Average the gradients of ``parameters`` (an iterable of tensors) over the ranks, before the
        optimiser step that uses them; nothing in one process."""
        distributed.all_reduce_gradients(parameters)

    def state_dict(self) -> dict:
        """Complete synthesis state for resume (the base keeps the RNG)."""
        return {"rng": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["rng"])

    def generator_loss(self, terms: dict[str, torch.Tensor], view: torch.Tensor, targets: torch.Tensor,
                       extra: Optional[ExtraTerm], step: Optional[int] = None) -> torch.Tensor:
        """``sum_k weights[k] * terms[k]`` over the host's weighted terms, plus the ``extra``
        (guidance) term evaluated on ``view`` (normalised images with grad) and ``targets``;
        the extra term's value joins ``terms`` under ``extra``.

        :param step: the synthesis step (0-based) inside this :meth:`synthesize`, for the error.
        :raises FloatingPointError: a non-finite total, naming the step, the non-finite terms and
            every term's value.
        """
        loss = sum(self.weights[k] * v for k, v in terms.items() if k in self.weights)
        if extra is not None:
            terms["extra"], _ = extra(view, targets)
            loss = loss + terms["extra"]
        if not torch.isfinite(loss):
            values = {k: float(v.detach()) for k, v in terms.items()}
            bad = [k for k, v in values.items() if not math.isfinite(v)] or ["the weighted sum"]
            where = f" at synthesis step {step + 1}" if step is not None else ""
            raise FloatingPointError(f"{self.name}: non-finite generator loss{where}: term {' and '.join(bad)} "
                                     f"(all terms: {values})")
        return loss

    def balanced_targets(self, n: int) -> torch.Tensor:
        """``n`` class labels, as balanced as ``n`` allows, in a random order."""
        k = self.spec.num_classes
        return (torch.arange(n) % k)[torch.randperm(n, generator=self.generator)]
