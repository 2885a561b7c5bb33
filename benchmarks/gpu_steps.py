"""The per-step figures of the paper profile's cost estimate, measured on the GPU at hand.

:mod:`cdemi.report.cost` estimates what the paper profile costs from seconds per step at a reference
setting (:class:`cdemi.report.cost.StepTimes`: 32x32 images, 10 classes, full-width networks): one
synthesis step of each host with a batch of 256 and a ResNet-34 teacher, the guided / plain ratio of
that step, one KD step (one KL term, batch 256, ResNet-34 -> ResNet-18) and one training step of
ResNet-34 (batch 128).  Its default figures are derived from published totals on an older GPU; this
script times the same steps with this project's hosts, models and KD loss, on random images (the
time of a step does not depend on what the pixels show) and writes them as JSON::

    python benchmarks/gpu_steps.py --out results/benchmarks/gpu_steps.json      # on a CUDA machine

``python -m cdemi.report.cost profiles/paper.yaml --times results/benchmarks/gpu_steps.json`` then
estimates the profile with them, and the README's ``gpu_cost`` block shows both estimates.

Each host runs at its published settings (its constructor's defaults) except the batch (256, the
reference) and the warm-up (0: the adversarial term is on, as after the warm-up); a synthesis call
runs :data:`STEPS` of its steps, and a step's figure is the call's time over that count.  A guided
call adds the paper's feature alignment toward a random IPC-10 set.  A KD step is the loop's without
its crop-and-flip augmentation.  The switches are the ones ``runtime: auto`` picks on a CUDA device:
bf16 autocast of the KD and training forward passes (the synthesis stays float32), channels-last,
cuDNN's autotuner.  Figures, not tests: nothing here asserts a time.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cdemi import data as datasets  # noqa: E402
from cdemi import models  # noqa: E402
from cdemi.artifacts import atomic_write_bytes  # noqa: E402
from cdemi.guidance import FeatureAlignment  # noqa: E402
from cdemi.invert import HOSTS  # noqa: E402
from cdemi.losses import kd_kl  # noqa: E402

# the hosts of the cost estimate, in its order
HOST_NAMES = ("deepinversion", "fast", "cmi", "predfkd")
# the step-count argument of each host
STEP_ARGUMENT = {"deepinversion": "iterations", "fast": "g_steps", "cmi": "g_steps", "predfkd": "g_steps"}
# synthesis steps per timed call: the published call for Fast and PRE-DFKD (5 generator steps, whose
# per-call work, PRE-DFKD's memory update among it, is then spread as in a published run); fewer for
# DeepInversion (2,000 pixel steps, nothing else per call) and CMI (200 generator steps and one bank update)
STEPS = {"deepinversion": 50, "fast": 5, "cmi": 40, "predfkd": 5}


def _timed(fn, device: torch.device, repeat: int, warmup: int = 2) -> float:
    """Mean seconds of ``fn()`` over ``repeat`` calls after ``warmup`` untimed ones, in which cuDNN's
    autotuner meets every shape (a host's second synthesis is the first to replay or to use its bank)
    and the allocator settles; the GPU is synchronised around the timed calls."""
    for _ in range(warmup):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - start) / repeat


def measure(device: torch.device, batch: int = 256, steps: dict[str, int] | None = None, repeat: int = 3,
            amp: bool = True, hosts: tuple[str, ...] = HOST_NAMES, seed: int = 0) -> dict:
    """Seconds per step at the reference setting (see the module docstring).

    :param batch: the synthesis and KD batch (training uses half of it); 256 is the reference.
    :param steps: host -> synthesis steps per timed call (default :data:`STEPS`).
    :param repeat: timed calls per figure.
    :param amp: bf16 autocast of the KD and training forward passes (as ``runtime.amp: auto`` on CUDA).
    :returns: ``{"synthesis": {host: s}, "guidance": {host: guided / plain}, "kd": s, "train": s,
        "steps": {host: steps per call}}``.
    """
    steps = {**STEPS, **(steps or {})}
    torch.manual_seed(seed)
    spec = datasets.spec("cifar10")
    layout = torch.channels_last
    teacher = models.build("resnet34", spec.num_classes, spec.channels).to(device, memory_format=layout).eval()
    student = models.build("resnet18", spec.num_classes, spec.channels).to(device, memory_format=layout)

    def autocast():
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp)

    condensed = torch.rand(10 * spec.num_classes, *spec.shape)  # IPC 10 on the pixel scale
    condensed_labels = torch.arange(spec.num_classes).repeat_interleave(10)

    synthesis, guidance = {}, {}
    for name in hosts:
        settings = {"batch_size": batch, STEP_ARGUMENT[name]: steps[name], "seed": seed}
        if name != "deepinversion":
            settings["warmup"] = 0
        per_step = {}
        for variant in ("plain", "guided"):
            host = HOSTS.get(name)(teacher, spec, **settings)
            extra = None
            if variant == "guided":
                extra = FeatureAlignment(teacher, condensed.to(device), condensed_labels.to(device), spec, seed=seed)
            per_step[variant] = _timed(lambda: host.synthesize(student, extra), device, repeat) / steps[name]
        synthesis[name] = per_step["plain"]
        guidance[name] = per_step["guided"] / per_step["plain"]

    optimiser = torch.optim.SGD(student.parameters(), lr=0.1, momentum=0.9)
    images = torch.rand(batch, *spec.shape, device=device).contiguous(memory_format=layout)

    def kd_step():
        with torch.no_grad(), autocast():
            t = teacher(images)
        with autocast():
            s = student(images)
        loss = kd_kl(s, t, 20.0)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()

    trainee = models.build("resnet34", spec.num_classes, spec.channels).to(device, memory_format=layout)
    train_optimiser = torch.optim.SGD(trainee.parameters(), lr=0.1, momentum=0.9)
    train_images = images[: batch // 2]
    labels = torch.randint(0, spec.num_classes, (batch // 2,), device=device)

    def train_step():
        with autocast():
            loss = torch.nn.functional.cross_entropy(trainee(train_images).float(), labels)
        train_optimiser.zero_grad(set_to_none=True)
        loss.backward()
        train_optimiser.step()

    return {"synthesis": synthesis, "guidance": guidance, "kd": _timed(kd_step, device, 10 * repeat),
            "train": _timed(train_step, device, 10 * repeat), "steps": steps}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="write the figures here as JSON (atomically)")
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu (to try the script on a tiny batch)")
    parser.add_argument("--batch", type=int, default=256, help="the reference is 256; another batch is not "
                        "the reference setting and is written as such")
    parser.add_argument("--steps", type=int, help="synthesis steps per timed call of every host (default: STEPS)")
    parser.add_argument("--repeat", type=int, default=3, help="timed calls per synthesis figure")
    parser.add_argument("--hosts", nargs="+", default=list(HOST_NAMES), choices=HOST_NAMES)
    parser.add_argument("--amp", choices=("bf16", "off"), default="bf16")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("benchmarks/gpu_steps.py: no CUDA device here; run it on a GPU machine "
                         "(or pass --device cpu with a small --batch to try it)")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    steps = {h: args.steps for h in HOST_NAMES} if args.steps else {}
    figures = measure(device, args.batch, steps, args.repeat, args.amp == "bf16", tuple(args.hosts))
    figures.update(
        device=torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        torch_version=torch.__version__, batch=args.batch, repeat=args.repeat, amp=args.amp,
        reference=args.batch == 256, threads=torch.get_num_threads())
    print(json.dumps(figures, indent=1))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(args.out, (json.dumps(figures, indent=1) + "\n").encode())


if __name__ == "__main__":
    main()
