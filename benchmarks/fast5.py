"""The Fast-5 configuration of the public Fast code, run by this project's loop: per-epoch seconds and accuracy.

Run from the repository root (``make bench``; needs ``data/models/teacher.pt`` and the Fashion-MNIST data)::

    python benchmarks/fast5.py                       # today's path and the chosen one (bf16), side by side
    python benchmarks/fast5.py --seeds 0 1 2         # three seeds of each
    python benchmarks/fast5.py --paths today         # one path

The configuration is the one the public Fast code was timed with, so that the comparison can be
repeated: teacher ResNet-34 w0.25 (the default profile's), student ResNet-18 w0.25; generator nz 256,
ngf 64; loss weights bn 10, oh 0.5, adv 1.33; lr_g 3e-3, lr_z 0.01; 12 epochs, the first 2 synthesis
only (warm-up); 128 images x 5 generator steps per epoch; 50 KD steps of 128 at lr 0.2 (cosine),
weight decay 1e-4, tau 20; the whole test set every epoch; one thread per process.

Paths (``--paths``; default ``today`` and ``bf16``), each in its own one-thread process, the paths of
one seed (``--seeds``, default 0) side by side (so they see the same load):

- ``today``: float32, the Welford BN statistics (the committed records' path);
- ``two-pass``: float32, ``bn_statistics: two_pass``;
- ``bf16-teacher``: ``runtime.amp: teacher`` (the teacher's KD forward in bf16) and ``two_pass``;
- ``bf16``: ``runtime.amp: bf16`` (KD and evaluation forward passes under bf16 autocast; the synthesis
  and the KL stay float32) and ``two_pass``.
Every path but ``today`` changes the numbers.

Prints, per path and seed, each epoch's synthesis, KD and evaluation seconds and the test accuracy,
then per path the mean seconds per epoch after the warm-up and the final accuracy (mean and std over
the seeds), and writes ``results/benchmarks/fast5.json``.  Figures, not tests: nothing here asserts a time.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# path -> (runtime.amp, bn_statistics)
PATHS = {"today": ("off", "welford"), "two-pass": ("off", "two_pass"), "bf16-teacher": ("teacher", "two_pass"),
         "bf16": ("bf16", "two_pass")}
HOST = dict(batch_size=128, g_steps=5, lr_g=3e-3, lr_z=0.01, bn=10.0, oh=0.5, adv=1.33, bn_momentum=0.9,
            warmup=2, nz=256, ngf=64)
LOOP = dict(epochs=12, kd_steps=50, batch_size=128, lr=0.2, momentum=0.9, weight_decay=1e-4, temperature=20.0,
            curve_test_per_class=None)


def measure(path: str, seed: int, teacher_path: str, data_root: str) -> dict:
    """Run the configuration along ``path`` with ``seed`` (student, host, data order) in this process;
    :returns: per-epoch seconds and accuracies."""
    import torch

    import cdemi.distill.loop as loop
    from cdemi import data as datasets
    from cdemi import models, params
    from cdemi import runtime as rt
    from cdemi.invert import Fast
    from cdemi.models.checkpoint import load_classifier

    test = datasets.load("fashion_mnist", "test", data_root)
    teacher, _ = load_classifier(teacher_path, arch="resnet34", dataset="fashion_mnist", num_classes=10)
    rt.configure(1, seed)
    student = models.build("resnet18", num_classes=10, in_channels=1, width=0.25)
    amp, bn_statistics = PATHS[path]
    accel = rt.accelerate(params.RuntimeParams(threads=1, device="cpu", amp=amp), torch.device("cpu")).place(teacher,
                                                                                                             student)
    host = Fast(teacher, test.spec, seed=seed, bn_statistics=bn_statistics, **HOST)
    evaluation_seconds = []
    evaluate = loop.evaluate

    def timed_evaluate(*args, **kwargs):  # the loop's own evaluation, timed
        start = time.perf_counter()
        out = evaluate(*args, **kwargs)
        evaluation_seconds.append(time.perf_counter() - start)
        return out

    loop.evaluate = timed_evaluate
    with tempfile.TemporaryDirectory() as tmp:
        result = loop.distill_student(teacher, student, test, params.DistillSettings(**LOOP, seed=seed), host=host, accel=accel,
                                      state_path=Path(tmp) / "state.pt", progress=False)
    return {"epochs": [{"epoch": r["epoch"], "synthesis_seconds": r["synthesis_seconds"],
                        "kd_seconds": r["kd_seconds"], "evaluation_seconds": e, "test_accuracy": r["test_accuracy"]}
                       for r, e in zip(result["curve"], evaluation_seconds)],
            "final_accuracy": result["final_accuracy"]}


def _spawn(path: str, seed: int, args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, __file__, "--measure", path, "--seed", str(seed), "--teacher", args.teacher,
                             "--data", args.data], env={**os.environ, "OMP_NUM_THREADS": "1"},
                            stdout=subprocess.PIPE, text=True)


def _result(proc: subprocess.Popen, what: str) -> dict:
    out, _ = proc.communicate()
    if proc.returncode:
        raise SystemExit(f"{what} failed (exit {proc.returncode})")
    return json.loads(out.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paths", nargs="+", choices=list(PATHS), default=["today", "bf16"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--teacher", default="data/models/teacher.pt")
    parser.add_argument("--data", default="data/fashion_mnist")
    parser.add_argument("--out", default="results/benchmarks/fast5.json")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:  # a child: one path and seed, its figures as JSON on the last line
        print(json.dumps(measure(args.measure, args.seed, args.teacher, args.data)))
        return 0
    for need in (args.teacher, args.data):
        if not Path(need).exists():
            raise SystemExit(f"{need} not found: run `make repro` (the teacher) and `make data` first")

    import torch

    from cdemi.artifacts import atomic_write_json
    from cdemi.runtime import machine

    runs: dict[str, dict[str, dict]] = {p: {} for p in args.paths}
    for seed in args.seeds:  # the paths of one seed side by side, so that they see the same load
        procs = {p: _spawn(p, seed, args) for p in args.paths}
        for p, proc in procs.items():
            runs[p][str(seed)] = _result(proc, f"the {p} path, seed {seed},")
    summary = {}
    for p, by_seed in runs.items():
        for seed, run in by_seed.items():
            print(f"{p}, seed {seed}: epoch  synthesis_s  kd_s  evaluation_s  test_accuracy")
            for e in run["epochs"]:
                print(f"  {e['epoch']:5d}  {e['synthesis_seconds']:11.1f}  {e['kd_seconds']:4.1f}  "
                      f"{e['evaluation_seconds']:12.1f}  {e['test_accuracy']:13.2f}")
        after = [e for run in by_seed.values() for e in run["epochs"] if e["epoch"] > HOST["warmup"]]
        mean = {k: sum(e[k] for e in after) / len(after) for k in ("synthesis_seconds", "kd_seconds", "evaluation_seconds")}
        finals = torch.tensor([run["final_accuracy"] for run in by_seed.values()])
        summary[p] = {**mean, "epoch_seconds": sum(mean.values()), "final_accuracy": finals.mean().item(),
                      "final_accuracy_std": finals.std().item() if len(finals) > 1 else 0.0, "seeds": len(finals)}
        print(f"{p}: per epoch after warm-up {summary[p]['epoch_seconds']:.1f} s (synthesis "
              f"{mean['synthesis_seconds']:.1f}, KD {mean['kd_seconds']:.1f}, evaluation {mean['evaluation_seconds']:.1f}); "
              f"final accuracy {summary[p]['final_accuracy']:.2f} +- {summary[p]['final_accuracy_std']:.2f} "
              f"over {len(finals)} seed(s)")
    figures = {"machine": machine(), "torch_version": torch.__version__, "threads_per_process": 1,
               "side_by_side": len(runs) > 1,
               "configuration": {"teacher": "resnet34 w0.25", "student": "resnet18 w0.25", "host": HOST, "loop": LOOP,
                                 "paths": {p: {"amp": a, "bn_statistics": b} for p, (a, b) in PATHS.items()}},
               "seeds": args.seeds, "runs": runs, "per_epoch_after_warmup": summary}
    if "today" in runs:
        figures["epoch_speedup"] = {p: summary["today"]["epoch_seconds"] / v["epoch_seconds"]
                                    for p, v in summary.items() if p != "today"}
        print("epoch_speedup over today:", {p: round(v, 2) for p, v in figures["epoch_speedup"].items()})
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out, figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
