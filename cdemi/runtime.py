"""Device choice, thread count, seeding and the speed switches (autocast, memory layout, pinned
copies, compilation) of one process."""
from __future__ import annotations

import hashlib
import platform
import random
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional

import numpy as np
import torch


def select_device(device: str = "auto") -> torch.device:
    """``auto`` -> CUDA when present, else CPU; otherwise the named device.

    :raises ValueError: a CUDA device was asked for on a machine without one.
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available; use 'cpu' or 'auto'")
    return dev


def configure(threads: int, seed: int) -> None:
    """Fix intra-op threads (CPU results depend on it) and seed every RNG.

    :param threads: ``torch.set_num_threads`` value; 0 leaves torch's default.
    :param seed: seed for ``random``, numpy and torch.
    """
    if threads > 0:
        torch.set_num_threads(threads)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@dataclass(frozen=True)
class Acceleration:
    """The speed switches of one process, resolved for its device (:func:`accelerate`).

    :param device: where models and batches live.
    :param amp_dtype: autocast dtype of the KD, evaluation and training forward passes
        (``torch.bfloat16``), or None for float32 throughout.  Under autocast the KL of
        :func:`cdemi.losses.kd_kl` and cross-entropy stay float32 (autocast's float32 list).
        The synthesis is never autocast: under bf16 the hosts' BN-statistics prior starts about
        twice as high on the default profile's teacher (Fast: L_BN 63 against 35 after one
        synthesis, 42 against 24 after eight) and a Fast-5 student fell to 27% against 74%.
    :param teacher_amp_dtype: autocast dtype of the teacher's forward in KD alone (the
        student, the synthesis and the evaluation stay float32), or None.  Changes the numbers.
    :param channels_last: NHWC layout for models and their inputs.
    :param pin_memory: host batches are pinned and copied with ``non_blocking`` (CUDA only).
    :param compile: the student's forward goes through ``torch.compile``.
    :param cudnn_benchmark: the cuDNN autotuner (``torch.backends.cudnn.benchmark``).
    :param placed: the layout was decided for the run's models (:meth:`place`); until then
        ``channels_last`` is the wish, after it the decision.
    """

    device: torch.device
    amp_dtype: Optional[torch.dtype] = None
    channels_last: bool = False
    pin_memory: bool = False
    compile: bool = False
    cudnn_benchmark: bool = False
    placed: bool = False
    teacher_amp_dtype: Optional[torch.dtype] = None

    def place(self, *models: torch.nn.Module) -> "Acceleration":
        """Decide a run's memory layout once, by :func:`use_channels_last` over all of ``models``,
        and put ``models`` in it.  :returns: these switches with :attr:`channels_last` the decision
        and :attr:`placed` set; on switches already placed, ``self`` unchanged (models untouched)."""
        if self.placed:
            return self
        nhwc = use_channels_last(self.channels_last, self.device, *models)
        for model in models:
            model.to(memory_format=torch.channels_last if nhwc else torch.contiguous_format)
        return replace(self, channels_last=nhwc, placed=True)

    def autocast(self):
        """Context: autocast to :attr:`amp_dtype` on this device; a no-op when it is None."""
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def teacher_autocast(self):
        """Context for the teacher's KD forward: autocast to :attr:`teacher_amp_dtype` when set,
        else :meth:`autocast`."""
        if self.teacher_amp_dtype is None:
            return self.autocast()
        return torch.autocast(self.device.type, dtype=self.teacher_amp_dtype)

    def switches(self) -> dict:
        """The switches that change numbers and are not the float32 default, for run records:
        ``{"autocast": "torch.bfloat16"}`` and/or ``{"teacher_autocast": ...}``; empty on the default path."""
        named = {"autocast": self.amp_dtype, "teacher_autocast": self.teacher_amp_dtype}
        return {k: str(v) for k, v in named.items() if v is not None}

    def to_device(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` on :attr:`device`; a CPU tensor is pinned first and copied without blocking when
        :attr:`pin_memory` is set (the layout is the caller's)."""
        if self.pin_memory and x.device.type == "cpu":
            x = x.pin_memory()
        return x.to(self.device, non_blocking=self.pin_memory)

    def compiled(self, model: torch.nn.Module):
        """``torch.compile(model)`` when :attr:`compile` is set, else ``model`` itself.  The compiled
        module shares the parameters, so optimisers and ``state_dict`` keep using ``model``."""
        return torch.compile(model) if self.compile else model


def accelerate(runtime, device: torch.device) -> Acceleration:
    """Resolve a profile's ``runtime`` section (:class:`cdemi.params.RuntimeParams`) for ``device``.

    ``auto`` switches are on with CUDA and off on the CPU (bf16 autocast where the GPU supports
    bf16), so the CPU path is the plain float32 one whose results the committed records hold.
    ``cudnn_benchmark`` is applied here.

    :raises ValueError: ``pin_memory: true`` without a CUDA device (nothing to copy to).
    """
    cuda = device.type == "cuda"
    if runtime.amp == "auto":
        amp_dtype = torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else None
    else:
        amp_dtype = torch.bfloat16 if runtime.amp == "bf16" else None
    teacher_amp_dtype = torch.bfloat16 if runtime.amp == "teacher" else None
    pin = cuda if runtime.pin_memory == "auto" else runtime.pin_memory
    if pin and not cuda:
        raise ValueError(f"runtime.pin_memory is true but the device is {device}: pinned memory speeds up copies "
                         f"to a CUDA device only; set it to 'auto' or false")
    bench = cuda if runtime.cudnn_benchmark == "auto" else runtime.cudnn_benchmark
    torch.backends.cudnn.benchmark = bench
    return Acceleration(device, amp_dtype, runtime.channels_last, pin, runtime.compile, bench,
                        teacher_amp_dtype=teacher_amp_dtype)


def peak_memory_mb() -> float:
    """Peak resident memory of this process so far, MiB (Linux ``ru_maxrss``)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def machine() -> dict[str, str]:
    """What decides the CPU's rounding: the processor's name, its family / model / stepping, a digest
    of the instruction-set flags it reports, and the vector instruction set torch dispatches to
    (``AVX2``, ``AVX512``, ...).  Two machines that agree on all of them are one kind: on the CPU a
    run is bitwise reproducible within a kind; elsewhere the same seed gives other numbers (see
    :mod:`cdemi.tools.recheck`).  Virtual machines often report one generic name for several kinds
    ("Intel(R) Xeon(R) Processor"), which is why the model and the flags are kept."""
    info: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key in ("model name", "cpu family", "model", "stepping", "flags") and key not in info:
                info[key] = value.strip()
            if line.strip() == "" and info:
                break  # the first processor's block is enough
    except OSError:
        pass
    out = {"cpu": info.get("model name") or platform.processor() or platform.machine(),
           "cpu_capability": torch.backends.cpu.get_cpu_capability()}
    if "model" in info:
        out["cpu_model"] = f"family {info.get('cpu family', '?')} model {info['model']} stepping {info.get('stepping', '?')}"
    if "flags" in info:
        out["cpu_flags"] = hashlib.sha256(" ".join(sorted(info["flags"].split())).encode()).hexdigest()[:12]
    return out


def channels_last_safe(*models: torch.nn.Module) -> bool:
    """Whether NHWC is safe on the CPU for all of ``models``.

    torch 2.14.1's oneDNN fails in the backward of a 1x1 stride-2 convolution with fewer than 16 input
    channels in NHWC: it corrupts the heap on AVX-512 CPUs and spins forever in
    ``jit_avx2_1x1_convolution_bwd_weights`` on AVX2 ones.  Narrow nets (width <= 1/8 ResNets, such as the
    smoke profile's and the tests') have such shortcuts; the loops keep them NCHW on the CPU.  The default
    profile's nets (16 channels and more at every 1x1 stride-2 convolution) are not affected.
    """
    return not any(isinstance(m, torch.nn.Conv2d) and m.kernel_size == (1, 1) and m.stride != (1, 1)
                   and m.in_channels < 16 for model in models for m in model.modules())


def use_channels_last(wanted: bool, device: torch.device, *models: torch.nn.Module) -> bool:
    """The layout rule of every loop: NHWC when ``wanted``, except on the CPU for nets that are not
    :func:`channels_last_safe`."""
    return wanted and (device.type != "cpu" or channels_last_safe(*models))
