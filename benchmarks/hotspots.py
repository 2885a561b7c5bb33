"""Where one epoch of a run spends its time: torch.profiler over one synthesis and a few KD steps.

Run from the repository root (``make bench`` runs it for the headline run)::

    python benchmarks/hotspots.py                                # Fast + guidance
    python benchmarks/hotspots.py --run cmi_plain_mnv2_s0 --rows 25

Prints the share of the two phases and the operators with the most self time (CPU; with CUDA the
device time too).  Figures, not tests.
"""
from __future__ import annotations

import argparse

import torch
from torch.profiler import ProfilerActivity, profile, record_function

from hosts import build, kd_step_fn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--run", default="fast_guided_dm10_mnv2_s0")
    parser.add_argument("--kd-steps", type=int, default=10)
    parser.add_argument("--rows", type=int, default=15)
    args = parser.parse_args()
    run, spec, teacher, student, host, guidance, layout = build(args.run, args.params)
    kd_step = kd_step_fn(run, spec, teacher, student, layout)
    host.synthesize(student, guidance)  # warm-up: first-call allocations
    kd_step()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    with profile(activities=activities) as prof:
        with record_function("phase: synthesis"):
            host.synthesize(student, guidance)
        with record_function("phase: kd"):
            for _ in range(args.kd_steps):
                kd_step()
    events = prof.key_averages()
    phases = {e.key: e.cpu_time_total / 1e6 for e in events if e.key.startswith("phase: ")}
    total = sum(phases.values())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; run {args.run}: one synthesis "
          f"({host.batch_size} images) and {args.kd_steps} KD steps of {run.batch_size}")
    for k, v in phases.items():
        print(f"  {k[7:]}: {v:.2f} s ({100 * v / total:.0f}%)")
    print(events.table(sort_by="self_cpu_time_total", row_limit=args.rows, max_name_column_width=40))


if __name__ == "__main__":
    main()
