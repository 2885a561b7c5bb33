"""Per-host cost on this machine: synthesis speed, its ratio to a teacher pass, KD speed, memory.

Run from the repository root (``make bench``)::

    python benchmarks/hosts.py                              # the first run of each host x variant
    python benchmarks/hosts.py --runs fast_plain_mnv2_s0    # one run

    python benchmarks/hosts.py --runs fast_plain_mnv2_s0 cmi_plain_mnv2_s0 --paths today chosen \
        --threads 1 --out results/benchmarks/hosts.json      # the synthesis speed-up (make bench)

For each run it builds the profile's teacher, student, host and guidance (guided variants)
exactly as the pipeline does, in the profile's memory layout, past the host's warm-up
(adversarial term on), and prints one row per path: synthesised images per second; one
synthesis step over one teacher forward + backward on a batch of the same size
(``step_over_teacher_pass``) and over the sum of the passes the host's algorithm requires
(``step_over_passes``: teacher forward + backward to the input, twice for CMI, the generator's forward +
backward, the student's forward + backward to the input for the adversarial term; guided runs
add their discriminator and extra teacher passes on top, which this sum leaves out); KD
images per second (teacher forward + student forward and backward + SGD step); and the peak
resident memory of a process that did only this run.  Paths: ``today`` is the profile as it
is; ``chosen`` sets ``bn_statistics: two_pass`` (changes the numbers by rounding; the synthesis
stays float32, as :class:`cdemi.runtime.Acceleration` explains); ``synthesis_speedup`` is chosen
over today, per run.
Each run is measured in a fresh subprocess so that peak memory is its own.  Figures, not tests:
nothing here asserts a time.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import torch


def _seconds(fn, repeat: int) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat


def build(name: str, params_file: str, overrides: dict | None = None):
    """The teacher, student, host and guidance of one ``distill`` entry, built as the pipeline builds
    them (seeded, in the profile's memory layout).

    :param overrides: run fields to replace before building, e.g. ``{"transfer": ..., "batch_size": 128,
        "host_params": {...}}`` (validated like the profile's own entries).
    :returns: ``(run, spec, teacher, student, host, guidance, layout)``.
    """
    from cdemi import data as datasets
    from cdemi import models, params
    from cdemi import runtime as rt
    from cdemi.data.condensed import load_condensed
    from cdemi.distill.stage import build_guidance
    from cdemi.invert import HOSTS
    from cdemi.models.checkpoint import load_classifier

    profile = params.load(params_file)
    run = profile.distill[name]
    if overrides:
        run = type(run).model_validate({**run.model_dump(), **overrides})
    if run.host is None:
        raise SystemExit(f"{name} has no inversion host: nothing to benchmark")
    spec = datasets.spec(run.dataset or profile.data.dataset)
    teacher, _ = load_classifier(run.teacher, dataset=spec.name, num_classes=spec.num_classes)
    rt.configure(profile.runtime.threads, run.seed)
    student = models.build(run.student.arch, num_classes=spec.num_classes, in_channels=spec.channels,
                           width=run.student.width)
    layout = torch.channels_last if profile.runtime.channels_last else torch.contiguous_format
    teacher, student = teacher.to(memory_format=layout), student.to(memory_format=layout)
    host = HOSTS.get(run.host)(teacher, spec, seed=run.seed, **run.host_params)
    guidance = build_guidance(run, teacher, load_condensed(run.transfer, dataset=spec.name) if run.guidance else None,
                              spec)
    return run, spec, teacher, student, host, guidance, layout


def kd_step_fn(run, spec, teacher, student, layout):
    """One KD step as the loop takes it (teacher forward, student forward and backward, SGD step) on a
    fixed batch of ``run.batch_size`` images."""
    from cdemi.losses import kd_kl

    settings = run  # a DistillRun is the loop's settings
    opt = torch.optim.SGD(student.parameters(), lr=settings.lr, momentum=settings.momentum)
    kd_x = torch.rand((settings.batch_size, *spec.shape)).contiguous(memory_format=layout)

    def kd_step():
        with torch.no_grad():
            t = teacher(kd_x)
        loss = kd_kl(student(kd_x), t, settings.temperature)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return kd_step


PATHS = ("today", "chosen")  # today: the profile as it is; chosen: two-pass BN statistics (the synthesis is float32)


def _passes_seconds(run, spec, teacher, student, host, layout, adversarial: bool) -> float:
    """Seconds of the passes one synthesis step of ``host`` cannot do without, on its batch: teacher
    forward + backward to the input (``host.teacher_passes`` of them: CMI's local and global views),
    the generator's forward + backward (hosts with one), and the student's forward + backward to the
    input when the adversarial term is on."""
    from cdemi.models.generator import Generator

    x = torch.randn((host.batch_size, *spec.shape)).contiguous(memory_format=layout).requires_grad_(True)
    passes = [lambda: teacher(x).float().sum().backward()] * host.teacher_passes
    settings = run.host_settings
    if "nz" in settings and "ngf" in settings:
        generator = Generator(settings["nz"], settings["ngf"], spec.image_size, spec.channels)
        z = torch.randn(host.batch_size, settings["nz"])
        passes.append(lambda: generator(z).float().sum().backward())
    if adversarial:
        passes.append(lambda: student.eval()(x).float().sum().backward())
    seconds = sum(_seconds(p, 3) for p in passes)
    student.train()
    return seconds


def measure(name: str, params_file: str, syntheses: int, kd_steps: int, overrides: dict | None = None,
            path: str = "today", threads: int | None = None) -> dict:
    """Measure one ``distill`` entry with a host along ``path`` (:data:`PATHS`), past the host's
    warm-up (adversarial term on), with ``threads`` (None: the profile's); :returns: the row as a dict."""
    overrides = dict(overrides or {})
    if path == "chosen":
        from cdemi import params

        run = params.load(params_file).distill[name]
        if "bn_statistics" in run.host_settings:
            overrides["host_params"] = {**run.host_params, **overrides.get("host_params", {}),
                                        "bn_statistics": "two_pass"}
    run, spec, teacher, student, host, guidance, layout = build(name, params_file, overrides)
    if threads:
        torch.set_num_threads(threads)
    host.syntheses = max(getattr(host, "syntheses", 0), getattr(host, "warmup", 0))  # the steady state

    def synthesize():
        return host.synthesize(student, guidance)

    batch = synthesize()  # warm-up: first-call allocations
    n_images = len(batch.targets)
    start = time.perf_counter()
    for _ in range(syntheses):
        batch = synthesize()
    synth = (time.perf_counter() - start) / syntheses
    per_step = synth / max(1, batch.steps)
    x = torch.randn((host.batch_size, *spec.shape)).contiguous(memory_format=layout).requires_grad_(True)

    def teacher_pass():
        teacher(x).sum().backward()

    adversarial = host.weights.get("adv", 0) > 0
    teacher_seconds = _seconds(teacher_pass, 3)
    passes_seconds = _passes_seconds(run, spec, teacher, student, host, layout, adversarial)
    kd_seconds = _seconds(kd_step_fn(run, spec, teacher, student, layout), kd_steps)
    return {"run": name, "path": path, "host": run.host, "variant": run.variant, "images_per_synthesis": n_images,
            "steps_per_synthesis": batch.steps, "synthesis_img_per_s": round(n_images / synth, 2),
            "step_over_teacher_pass": round(per_step / teacher_seconds, 2),
            "step_over_passes": round(per_step / passes_seconds, 2),
            "kd_img_per_s": round(run.batch_size / kd_seconds, 1),
            "peak_memory_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def measure_in_subprocess(name: str, params_file: str, syntheses: int, kd_steps: int,
                          overrides: dict | None = None, path: str = "today", threads: int | None = None) -> dict:
    """:func:`measure` in a fresh process, so that its peak memory is its own (``threads``: its
    ``OMP_NUM_THREADS``; None inherits this process's environment)."""
    env = None if threads is None else {**os.environ, "OMP_NUM_THREADS": str(threads)}
    out = subprocess.run([sys.executable, __file__, "--params", params_file, "--one", name, "--syntheses",
                          str(syntheses), "--kd-steps", str(kd_steps), "--overrides", json.dumps(overrides or {}),
                          "--path", path] + ([] if threads is None else ["--threads", str(threads)]),
                         capture_output=True, text=True, check=True, env=env)
    row = json.loads(out.stdout.strip().splitlines()[-1])
    print(row, file=sys.stderr, flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--runs", nargs="*", help="distill entries (default: the first entry of every host x variant)")
    parser.add_argument("--paths", nargs="+", choices=PATHS, default=["today"],
                        help="today (the profile as it is) and/or chosen (two-pass BN statistics)")
    parser.add_argument("--threads", type=int, help="threads of each measuring process (default: the profile's)")
    parser.add_argument("--syntheses", type=int, default=2)
    parser.add_argument("--kd-steps", type=int, default=5)
    parser.add_argument("--out", help="also write the rows and each run's synthesis_speedup to this JSON file")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: measure one run, print JSON
    parser.add_argument("--path", default="today", help=argparse.SUPPRESS)
    parser.add_argument("--overrides", default="{}", help=argparse.SUPPRESS)  # internal: JSON run fields
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.params, args.syntheses, args.kd_steps, json.loads(args.overrides),
                                 args.path, args.threads)))
        return
    from cdemi import params

    profile = params.load(args.params)
    first: dict[tuple, str] = {}
    for k, r in profile.distill.items():
        if r.host:
            first.setdefault((r.host, r.variant), k)
    names = args.runs or list(first.values())
    rows = [measure_in_subprocess(name, args.params, args.syntheses, args.kd_steps, path=path, threads=args.threads)
            for name in names for path in args.paths]
    import pandas as pd

    threads = args.threads or profile.runtime.threads
    print(f"torch {torch.__version__}, {threads} thread(s) per process, device cpu")
    print(pd.DataFrame(rows).set_index(["run", "path"]).to_markdown())
    speedup = {}
    if set(PATHS) <= set(args.paths):
        by = {(r["run"], r["path"]): r for r in rows}
        speedup = {n: round(by[n, "chosen"]["synthesis_img_per_s"] / by[n, "today"]["synthesis_img_per_s"], 2)
                   for n in names}
        print("synthesis_speedup (chosen over today):", speedup)
    if args.out:
        from cdemi.artifacts import atomic_write_json
        from cdemi.runtime import machine

        atomic_write_json(args.out, {"machine": machine(), "torch_version": torch.__version__,
                                     "threads_per_process": threads, "syntheses": args.syntheses,
                                     "paths": {"today": "the profile as it is",
                                               "chosen": "bn_statistics two_pass"},
                                     "rows": rows, "synthesis_speedup": speedup})


if __name__ == "__main__":
    main()
