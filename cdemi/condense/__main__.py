"""``python -m cdemi.condense PARAMS RUN OUT [--section imports]``: condense one ``condense`` entry of a
profile, or import one ``imports`` entry (a public condensed-set file, read as its code writes it).

As the condensation notebook's first step, without its evaluation (run that from the notebook or
:func:`cdemi.condense.evaluate_entry`).  Under ``torchrun --nproc_per_node=N`` DM splits its
classes over the N processes; the other methods refuse (they run in one process).
"""
from __future__ import annotations

import argparse

from .. import distributed, params
from .stage import condense_entry


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cdemi.condense", description=__doc__.splitlines()[0])
    parser.add_argument("params", help="profile file, e.g. params.yaml")
    parser.add_argument("run", help="entry name under the section")
    parser.add_argument("--section", choices=("condense", "imports"), default="condense")
    parser.add_argument("out", help="condensed-set path (.pt; its record goes beside it as .json)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    config, profile = params.resolve(args.params, args.run, args.section, smoke={})
    try:
        condense_entry(config, profile.data, profile.runtime, args.out, progress=not args.no_progress)
    finally:
        distributed.teardown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
