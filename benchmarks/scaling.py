"""How the cost grows: with the condensed set's size (IPC), the synthesis and KD batch sizes, and the pool.

Run from the repository root (``make bench`` runs it after ``hosts.py``)::

    python benchmarks/scaling.py                          # Fast + guidance, the headline run
    python benchmarks/scaling.py --run cmi_guided_dm10_mnv2_s0

Three tables, figures not tests:

- **IPC**: the guided run toward DM IPC 1 / 10 / 50.  Guidance draws ``real_batch`` condensed images
  per discriminator step (all of them when fewer), so the cost grows with IPC up to that cap.
- **batch size**: the host's synthesis batch and the KD batch at 32 / 64 / 128 / 256 images:
  synthesised and distilled images per second (per-image cost falls while the cores are not yet full).
- **pool**: appending one synthesis batch to a pool of N images and sampling one KD batch from it,
  and the pool's memory (uint8, 1 byte per pixel value): appends are amortised O(batch), samples
  O(batch), memory O(N).
"""
from __future__ import annotations

import argparse
import time

import torch

from hosts import measure_in_subprocess


def pool_row(n_images: int, batch: int, shape: tuple[int, int, int], repeat: int = 20) -> dict:
    """Seconds per append of ``batch`` images to a pool of ``n_images`` and per sample of ``batch``."""
    from cdemi.distill.pool import SyntheticPool

    pool, gen = SyntheticPool(shape), torch.Generator().manual_seed(0)
    fill = torch.rand((min(n_images, 4096), *shape))
    while len(pool) < n_images:
        k = min(len(fill), n_images - len(pool))
        pool.add(fill[:k], torch.zeros(k, dtype=torch.long))
    held = pool.nbytes()
    new = torch.rand((batch, *shape))
    start = time.perf_counter()
    for _ in range(repeat):
        pool.add(new, torch.zeros(batch, dtype=torch.long))
    append = (time.perf_counter() - start) / repeat
    start = time.perf_counter()
    for _ in range(repeat):
        pool.sample(batch, gen)
    sample = (time.perf_counter() - start) / repeat
    return {"pool_images": n_images, "append_ms": round(1e3 * append, 3), "sample_ms": round(1e3 * sample, 3),
            "pool_mb": round(held / 2**20, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--run", default="fast_guided_dm10_mnv2_s0")
    parser.add_argument("--syntheses", type=int, default=2)
    parser.add_argument("--kd-steps", type=int, default=5)
    args = parser.parse_args()
    import pandas as pd

    from cdemi import data as datasets
    from cdemi import params

    profile = params.load(args.params)
    run = profile.distill[args.run]
    measure = lambda overrides: measure_in_subprocess(args.run, args.params, args.syntheses, args.kd_steps, overrides)
    keep = ["synthesis_img_per_s", "step_over_teacher_pass", "kd_img_per_s", "peak_memory_mb"]
    print(f"torch {torch.__version__}, {profile.runtime.threads} threads, device cpu; run {args.run}")

    if run.guidance is not None:
        rows = []
        for ipc in (1, 10, 50):
            row = measure({"transfer": f"data/condensed/dm_ipc{ipc}.pt"})
            rows.append({"ipc": ipc, **{k: row[k] for k in keep}})
        print("\n## Condensed set size (guidance toward DM IPC 1 / 10 / 50)\n")
        print(pd.DataFrame(rows).set_index("ipc").to_markdown())

    rows = []
    for batch in (32, 64, 128, 256):
        row = measure({"batch_size": batch, "host_params": {**run.host_params, "batch_size": batch}})
        rows.append({"batch": batch, **{k: row[k] for k in keep}})
    print("\n## Batch size (synthesis batch = KD batch)\n")
    print(pd.DataFrame(rows).set_index("batch").to_markdown())

    shape = datasets.spec(run.dataset or profile.data.dataset).shape
    rows = [pool_row(n, run.batch_size, shape) for n in (1_000, 10_000, 100_000)]
    print(f"\n## Pool size (append and sample {run.batch_size} images)\n")
    print(pd.DataFrame(rows).set_index("pool_images").to_markdown())


if __name__ == "__main__":
    main()
