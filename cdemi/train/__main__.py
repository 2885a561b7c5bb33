"""``python -m cdemi.train PARAMS SECTION RUN OUT [--metrics JSON]``: one ``train`` or ``kd_full``
entry of a profile, as the training notebook runs it; under ``torchrun`` on every rank."""
from __future__ import annotations

import argparse

from .. import distributed, params
from ..artifacts import atomic_write_json
from ..models.checkpoint import metrics_of
from .stage import train_run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cdemi.train", description=__doc__.splitlines()[0])
    parser.add_argument("params", help="profile file, e.g. params.yaml")
    parser.add_argument("section", choices=["train", "kd_full"])
    parser.add_argument("run", help="entry name in that section")
    parser.add_argument("out", help="checkpoint path (.pt; its record goes beside it as .json)")
    parser.add_argument("--metrics", help="DVC metrics JSON to write, as the notebook does")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    config, profile = params.resolve(args.params, args.run, args.section, smoke={})
    try:
        record = train_run(config, profile.data, profile.runtime, args.out, progress=not args.no_progress)
        if args.metrics and distributed.is_main():
            atomic_write_json(args.metrics, metrics_of(record))
    finally:
        distributed.teardown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
