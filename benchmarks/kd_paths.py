"""KD step speed on the headline pair along candidate paths, and how workers share this machine.

Run from the repository root (``make bench``)::

    python benchmarks/kd_paths.py                 # every path, then the sharing table
    python benchmarks/kd_paths.py --steps 30      # longer timing windows

One KD step is what the distillation loop takes: teacher forward (no grad), student forward and
backward, the float32 KL at tau 20, an SGD step, on a batch of 64 (28x28x1, the default profile's
ResNet-34 w0.25 -> MobileNetV2 w0.25, untrained weights: speed does not depend on them).  The
paths are timed again with a ResNet-18 w0.25 student (``kd_speedup_resnet18``): its dense
convolutions gain from bf16 on a CPU with AMX, MobileNetV2's depthwise layers and batch norm do not.

Paths (each in a fresh one-thread process, so no run warms another's caches):

- ``today``: float32, channels-last (the profile's layout);
- ``bf16-teacher``: the teacher's forward under bf16 autocast, the student in float32 (changes numbers);
- ``bf16-all``: teacher and student forward under bf16 autocast (``runtime.amp: bf16``; changes numbers);
- ``nchw``: float32 in the contiguous layout;
- ``compiled``: ``torch.compile`` of the student (``--compile``; about a minute of compilation first).

Sharing: ``today`` alone with 1 and with 2 threads, two one-thread processes side by side, and a
two-thread process beside a one-thread one (OpenMP's default wait policy, then ``PASSIVE``).

Prints a table and writes ``results/benchmarks/kd_paths.json`` (machine, torch version, configuration,
images per second, ``kd_speedup``: the fastest path over ``today``; ``parallel_speedup``: two
one-thread workers together over one two-thread worker).  Figures, not tests: nothing here asserts a time.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

PATHS = ("today", "bf16-teacher", "bf16-all", "nchw")
BATCH, TEMPERATURE = 64, 20.0


def measure(path: str, steps: int, student_arch: str = "mobilenetv2") -> float:
    """Images per second of ``steps`` KD steps along ``path`` in this process (after 3 warm-up steps),
    ResNet-34 w0.25 into ``student_arch`` w0.25."""
    import torch

    from cdemi import models
    from cdemi.losses import kd_kl

    torch.manual_seed(0)
    layout = torch.contiguous_format if path == "nchw" else torch.channels_last
    teacher = models.build("resnet34", num_classes=10, in_channels=1, width=0.25).eval().to(memory_format=layout)
    student = models.build(student_arch, num_classes=10, in_channels=1, width=0.25).to(memory_format=layout)
    opt = torch.optim.SGD(student.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    net = torch.compile(student) if path == "compiled" else student
    x = torch.rand(BATCH, 1, 28, 28).contiguous(memory_format=layout)
    bf16_teacher, bf16_student = path in ("bf16-teacher", "bf16-all"), path == "bf16-all"

    def step():
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16_teacher):
            target = teacher(x)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16_student):
            logits = net(x)
        loss = kd_kl(logits, target, TEMPERATURE)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(3):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return BATCH * steps / (time.perf_counter() - start)


def _spawn(path: str, threads: int, steps: int, wait_policy: str | None = None,
           student: str = "mobilenetv2") -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    env.pop("OMP_WAIT_POLICY", None)
    if wait_policy:
        env["OMP_WAIT_POLICY"] = wait_policy
    return subprocess.Popen([sys.executable, __file__, "--measure", path, "--threads", str(threads),
                             "--steps", str(steps), "--student", student], env=env, stdout=subprocess.PIPE, text=True)


def _result(proc: subprocess.Popen) -> float:
    out, _ = proc.communicate()
    if proc.returncode:
        raise SystemExit(f"a measuring process failed (exit {proc.returncode})")
    return float(out.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=15, help="timed KD steps per measurement")
    parser.add_argument("--compile", action="store_true", help="also time the compiled student")
    parser.add_argument("--out", default="results/benchmarks/kd_paths.json")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--student", default="mobilenetv2", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:  # a child: one measurement, its figure on the last line
        import torch

        torch.set_num_threads(args.threads)
        print(measure(args.measure, args.steps, args.student))
        return 0

    import torch

    from cdemi.artifacts import atomic_write_json
    from cdemi.runtime import machine

    paths = PATHS + (("compiled",) if args.compile else ())
    speed = {p: _result(_spawn(p, 1, args.steps)) for p in paths}
    print(f"KD step, ResNet-34 w0.25 -> MobileNetV2 w0.25, batch {BATCH}, one thread")
    for p, v in speed.items():
        print(f"  {p:14s} {v:7.1f} img/s  {v / speed['today']:4.2f}x today")
    resnet = {p: _result(_spawn(p, 1, args.steps, student="resnet18")) for p in PATHS}
    print(f"KD step, ResNet-34 w0.25 -> ResNet-18 w0.25 (the Fast-5 pair), batch {BATCH}, one thread")
    for p, v in resnet.items():
        print(f"  {p:14s} {v:7.1f} img/s  {v / resnet['today']:4.2f}x today")
    sharing = {"alone, 1 thread": _result(_spawn("today", 1, args.steps)),
               "alone, 2 threads": _result(_spawn("today", 2, args.steps))}
    pair = [_spawn("today", 1, args.steps), _spawn("today", 1, args.steps)]
    sharing["two 1-thread side by side (each)"] = min(_result(p) for p in pair)
    for policy in (None, "PASSIVE"):
        other = _spawn("today", 1, 3 * args.steps)  # outlasts the measured one
        time.sleep(5)
        sharing[f"2 threads beside a 1-thread run, wait policy {policy or 'default'}"] = \
            _result(_spawn("today", 2, args.steps, policy))
        _result(other)
    print("Sharing the machine (path today)")
    for k, v in sharing.items():
        print(f"  {k:55s} {v:7.1f} img/s")
    figures = {
        "machine": machine(), "torch_version": torch.__version__,
        "configuration": {"teacher": "resnet34 w0.25", "student": "mobilenetv2 w0.25", "batch": BATCH,
                          "image": [1, 28, 28], "temperature": TEMPERATURE, "timed_steps": args.steps},
        "img_per_s": speed, "sharing_img_per_s": sharing, "resnet18_img_per_s": resnet,
        "kd_speedup_resnet18": max(resnet.values()) / resnet["today"],
        "kd_fastest_path_resnet18": max(resnet, key=resnet.get),
        "kd_speedup": max(speed.values()) / speed["today"], "kd_fastest_path": max(speed, key=speed.get),
        "parallel_speedup": 2 * sharing["two 1-thread side by side (each)"] / sharing["alone, 2 threads"],
    }
    print(f"kd_speedup {figures['kd_speedup']:.2f} ({figures['kd_fastest_path']}), "
          f"parallel_speedup {figures['parallel_speedup']:.2f}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out, figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
