"""``python -m cdemi.distill PARAMS RUN RECORD [--section study]``: one ``distill`` (or ``study``) entry
of a profile, as the distillation notebook runs it (record, samples and resume state beside ``RECORD``).

Under ``torchrun --nproc_per_node=N`` every process runs it (see :mod:`cdemi.distill.loop`); rank 0
writes the record and the samples, each rank keeps its own resume state.
"""
from __future__ import annotations

import argparse

from .. import distributed, params
from .stage import distill_entry


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cdemi.distill", description=__doc__.splitlines()[0])
    parser.add_argument("params", help="profile file, e.g. params.yaml")
    parser.add_argument("run", help="entry name under the section")
    parser.add_argument("--section", choices=("distill", "study"), default="distill")
    parser.add_argument("record", help="run-record JSON path")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    config, profile = params.resolve(args.params, args.run, args.section, smoke={})
    try:
        distill_entry(args.run, config, profile.data, profile.runtime, args.record, progress=not args.no_progress)
    finally:
        distributed.teardown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
