"""The README's generated blocks, written from their sources or checked against them.

A block is the text between ``<!-- begin:NAME -->`` and ``<!-- end:NAME -->``.  :data:`BLOCKS` maps
the result blocks to the generated file each shows (T1, the claims report and the convergence stage's
tables, among them the runs repeated on another kind of CPU, committed with the pipeline's outputs); the ``kd_paths``, ``hosts`` and ``fast5`` blocks render the figures ``make bench``
writes (:data:`BENCHMARKS`, each when its file exists); the ``gpu_cost`` block, the paper profile's GPU
hours with the step figures ``benchmarks/gpu_steps.py`` measured on a GPU (:func:`cdemi.report.cost.measured_markdown`); the ``deviations`` block lists the default
profile's host settings that differ from the published ones and what the convergence study's probe
pairs measured of them (:mod:`cdemi.report.deviations`); the ``reliability`` block shows the counts a
whole, passing run of the test suite writes to a JSON file (``make test``; ``tests/reliability_tally.py``), rendered by
:func:`reliability_markdown`.

``python -m cdemi.tools.readme [README.md] [--reliability COUNTS.json] [--check]`` rewrites every
block from its source, atomically (``make readme``); with ``--check`` it changes nothing and exits 1
naming every stale block (the last step of ``make test``).  Without ``--reliability``, or while that
file does not exist yet, the reliability block is left as it is when writing, and is stale when
checking with a path given.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from ..artifacts import atomic_write_bytes

# block -> file, relative to the README
BLOCKS = {"t1": "results/tables/t1_main.md", "claims": "results/claims.md", "convergence": "results/tables/convergence.md",
          "convergence_budgets": "results/tables/convergence_budgets.md",
          "convergence_seed_budgets": "results/tables/convergence_seed_budgets.md",
          "convergence_costs": "results/tables/convergence_costs.md", "cross_cpu": "results/tables/cross_cpu.md",
          "regeneration": "results/tables/regeneration.md"}
RELIABILITY = "reliability"
# block -> figures of `make bench`, relative to the README
BENCHMARKS = {"kd_paths": "results/benchmarks/kd_paths.json", "hosts": "results/benchmarks/hosts.json",
              "fast5": "results/benchmarks/fast5.json"}
GPU_COST, GPU_STEPS, PAPER_PROFILE = "gpu_cost", "results/benchmarks/gpu_steps.json", "profiles/paper.yaml"
DEVIATIONS, PROFILE = "deviations", "params.yaml"  # the hosts' settings against their published ones
STUDY_RECORDS = "results/study"  # the convergence study's records: the probes of those settings


def _pattern(name: str) -> re.Pattern:
    return re.compile(rf"(<!-- begin:{name} -->\n)(.*?)(<!-- end:{name} -->)", re.S)


def block(text: str, name: str) -> str:
    """The current content of block ``name``.  :raises KeyError: the README has no such block."""
    m = _pattern(name).search(text)
    if m is None:
        raise KeyError(f"the README has no block {name!r} (<!-- begin:{name} --> ... <!-- end:{name} -->)")
    return m.group(2)


def reliability_markdown(counts: dict) -> str:
    """The reliability block's text: a sentence with the totals, then one table row per kind.

    :param counts: ``{"bad_inputs": {kind: n}, "faults": {kind: n}, "checked": n, "lost": n}``: the
        bad inputs offered and faults injected per kind, the files compared byte for byte after a fault
        or a refusal, and how many of them changed.
    """
    bad, faults = counts["bad_inputs"], counts["faults"]
    rows = ["| what | kind | count |", "|---|---|---|"]
    rows += [f"| bad input | {k} | {n} |" for k, n in sorted(bad.items())]
    rows += [f"| fault injected | {k} | {n} |" for k, n in sorted(faults.items())]
    return "\n".join([
        f"The last full run of the suite offered **{sum(bad.values())} bad inputs** and injected "
        f"**{sum(faults.values())} faults**; every one ended in the expected clear error or in a resumed, "
        f"identical result. Of the {counts['checked']} files that existed before a fault or a refusal and were "
        f"compared byte for byte afterwards, **{counts['lost']} were lost or changed**.", "", *rows])


def kd_paths_markdown(figures: dict) -> str:
    """The ``kd_paths`` block: the KD step's speed per path and under sharing, from the JSON that
    ``benchmarks/kd_paths.py`` writes (its machine, torch version and ratios)."""
    today = figures["img_per_s"]["today"]
    rows = ["| path (one thread) | img/s | vs today |", "|---|---|---|"]
    paths = sorted(figures["img_per_s"], key=lambda p: (p != "today", p))  # today's path first
    rows += [f"| {p} | {figures['img_per_s'][p]:.1f} | {figures['img_per_s'][p] / today:.2f} |" for p in paths]
    if "resnet18_img_per_s" in figures:  # the same paths with a ResNet-18 w0.25 student
        resnet = figures["resnet18_img_per_s"]
        rows += ["", "| path, ResNet-18 w0.25 student (one thread) | img/s | vs today |", "|---|---|---|"]
        rows += [f"| {p} | {resnet[p]:.1f} | {resnet[p] / resnet['today']:.2f} |"
                 for p in sorted(resnet, key=lambda p: (p != "today", p))]
    rows += ["", "| sharing (path today) | img/s |", "|---|---|"]
    rows += [f"| {k} | {v:.1f} |" for k, v in figures["sharing_img_per_s"].items()]
    cpu = figures["machine"]
    return "\n".join([
        f"`python benchmarks/kd_paths.py` on {cpu['cpu']} ({cpu['cpu_capability']}), torch {figures['torch_version']}: "
        f"`kd_speedup` {figures['kd_speedup']:.2f} ({figures['kd_fastest_path']})"
        + (f", with a ResNet-18 student {figures['kd_speedup_resnet18']:.2f} ({figures['kd_fastest_path_resnet18']})"
           if "kd_speedup_resnet18" in figures else "") + ", "
        f"`parallel_speedup` {figures['parallel_speedup']:.2f} (two one-thread workers over one two-thread worker).",
        "", *rows])


def hosts_markdown(figures: dict) -> str:
    """The ``hosts`` block: synthesis speed per run and path, the step's cost over its passes, and
    ``synthesis_speedup``, from the JSON of ``benchmarks/hosts.py --out``."""
    rows = ["| run | path | synthesis img/s | step / teacher pass | step / required passes | KD img/s |",
            "|---|---|---|---|---|---|"]
    rows += [f"| {r['run']} | {r['path']} | {r['synthesis_img_per_s']:.2f} | {r['step_over_teacher_pass']:.2f} | "
             f"{r['step_over_passes']:.2f} | {r['kd_img_per_s']:.1f} |" for r in figures["rows"]]
    cpu = figures["machine"]
    speedup = ", ".join(f"{run} {v:.2f}" for run, v in figures["synthesis_speedup"].items())
    return "\n".join([
        f"`python benchmarks/hosts.py` on {cpu['cpu']} ({cpu['cpu_capability']}), torch {figures['torch_version']}, "
        f"{figures['threads_per_process']} thread(s): `synthesis_speedup` (chosen over today) {speedup or 'not measured'}.",
        "", *rows])


def fast5_markdown(figures: dict) -> str:
    """The ``fast5`` block: per-epoch seconds (after the warm-up), their speed-up over today's path and
    the final accuracy of the public Fast-5 configuration along each path, from the JSON of
    ``benchmarks/fast5.py``."""
    speedup = figures.get("epoch_speedup", {})
    rows = ["| path | synthesis s | KD s | evaluation s | epoch s | vs today | final accuracy (mean ± std) | seeds |",
            "|---|---|---|---|---|---|---|---|"]
    rows += [f"| {p} | {v['synthesis_seconds']:.1f} | {v['kd_seconds']:.1f} | {v['evaluation_seconds']:.1f} | "
             f"{v['epoch_seconds']:.1f} | {1.0 if p == 'today' else speedup.get(p, float('nan')):.2f} | "
             f"{v['final_accuracy']:.2f} ± {v['final_accuracy_std']:.2f} | {v['seeds']} |"
             for p, v in sorted(figures["per_epoch_after_warmup"].items(), key=lambda kv: kv[0] != "today")]
    cpu = figures["machine"]
    together = "side by side, " if figures["side_by_side"] else ""
    return "\n".join([
        f"`python benchmarks/fast5.py` on {cpu['cpu']} ({cpu['cpu_capability']}), torch {figures['torch_version']}, "
        f"{together}one thread each:", "", *rows])


RENDERERS = {"kd_paths": kd_paths_markdown, "hosts": hosts_markdown, "fast5": fast5_markdown}


def generated(root: Path = Path("."), reliability: Path | None = None) -> dict[str, str]:
    """What each block should hold: block name -> text, for every block whose source exists.

    :param root: the folder the :data:`BLOCKS` files are relative to (the README's).
    :param reliability: the counts file of the last whole, passing test run (None: not shown).
    :raises FileNotFoundError: a file of :data:`BLOCKS` is missing.
    """
    out = {name: (root / source).read_text() for name, source in BLOCKS.items()}
    for name, source in BENCHMARKS.items():
        if (root / source).is_file():
            out[name] = RENDERERS[name](json.loads((root / source).read_text())) + "\n"
    if (root / GPU_STEPS).is_file() and (root / PAPER_PROFILE).is_file():
        from ..params import load
        from ..report.cost import load_step_times, measured_markdown

        out[GPU_COST] = measured_markdown(load(root / PAPER_PROFILE), load_step_times(root / GPU_STEPS)) + "\n"
    if (root / PROFILE).is_file():
        from ..params import load
        from ..report.deviations import deviations, deviations_markdown, read_study_records

        records = read_study_records(root / STUDY_RECORDS)
        out[DEVIATIONS] = deviations_markdown(deviations(load(root / PROFILE), records)) + "\n"
    if reliability is not None and reliability.is_file():
        out[RELIABILITY] = reliability_markdown(json.loads(reliability.read_text())) + "\n"
    return out


def refreshed(text: str, root: Path = Path("."), reliability: Path | None = None) -> str:
    """``text`` with every block of :func:`generated` replaced by its source's content.

    :raises KeyError: ``text`` lacks one of those blocks.
    """
    for name, content in generated(root, reliability).items():
        block(text, name)  # raises when absent
        text = _pattern(name).sub(lambda m: m.group(1) + content + m.group(3), text)
    return text


def stale(text: str, root: Path = Path("."), reliability: Path | None = None) -> list[str]:
    """Names of the blocks of ``text`` that differ from their sources; with a ``reliability`` path
    that does not exist, the reliability block counts as stale (its source was never written)."""
    wanted = generated(root, reliability)
    names = [name for name, content in wanted.items() if block(text, name) != content]
    return names + ([RELIABILITY] if reliability is not None and RELIABILITY not in wanted else [])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cdemi.tools.readme", description=__doc__.splitlines()[0])
    parser.add_argument("readme", nargs="?", type=Path, default=Path("README.md"))
    parser.add_argument("--reliability", type=Path, help="the counts file a whole, passing test run wrote")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 when a block is stale")
    args = parser.parse_args(argv)
    text, root = args.readme.read_text(), args.readme.parent
    if args.check:
        names = stale(text, root, args.reliability)
        if names:
            missing = args.reliability is not None and not args.reliability.is_file()
            print(f"{args.readme}: block(s) {', '.join(names)} differ from their sources: run `make readme` and commit "
                  f"{args.readme}" + (f" ({args.reliability} is missing: a whole, passing `make test` writes it)"
                                      if missing else ""), file=sys.stderr)
            return 1
        print(f"{args.readme}: every generated block is current")
        return 0
    if args.reliability is not None and not args.reliability.is_file():
        print(f"{args.reliability} does not exist yet (a whole, passing `make test` writes it): "
              f"the reliability block is left as it is", file=sys.stderr)
    new = refreshed(text, root, args.reliability)
    if new != text:
        atomic_write_bytes(args.readme, new.encode())
    print(f"{args.readme}: blocks {', '.join(generated(root, args.reliability))} written from their sources")
    return 0


if __name__ == "__main__":
    sys.exit(main())
