"""The reproduction check: rerun a slice of the pipeline in a fresh clone and compare.

``python -m cdemi.tools.recheck STAGE [STAGE ...]`` clones the repository's committed state into a
temporary folder (the gitignored dataset folder is linked in, nothing else is carried),
forces each named DVC stage to run there again, and compares every metrics JSON and run
artifact the stage declares with the committed one.  JSON files must agree exactly
except for the fields that measure this machine rather than the result
(:data:`MEASURED`: wall times, peak memory and the machine); tensor files must be bitwise equal.
Bitwise agreement is defined on one kind of CPU (:func:`cdemi.runtime.machine`: the processor and
the instruction set torch dispatches to): on another kind the same seed rounds differently and the
numbers move, so a record committed elsewhere can only be matched in everything but its numbers
(:func:`beyond_rounding`).  The exit status is 0 when every stage reproduced, 1 otherwise, with the
differences listed.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
import yaml

from ..artifacts import safe_torch_load
from ..runtime import machine

MEASURED = frozenset({"synthesis_seconds", "kd_seconds", "peak_memory_mb", "wall_seconds", "eval_seconds",
                      "train_seconds", "seconds", "machine"})
_NUMBER = r"-?\d[\d.eE+-]*"
_ROUNDING = re.compile(rf"(: {_NUMBER} vs {_NUMBER}|: tensors differ)$")


def json_differences(ours, theirs, path: str = "") -> list[str]:
    """Paths at which two JSON values differ, fields named in :data:`MEASURED` left out."""
    if isinstance(ours, dict) and isinstance(theirs, dict):
        out = []
        for key in sorted(set(ours) | set(theirs)):
            if key in MEASURED:
                continue
            if key not in ours or key not in theirs:
                out.append(f"{path}.{key}: present on one side only")
            else:
                out += json_differences(ours[key], theirs[key], f"{path}.{key}")
        return out
    if isinstance(ours, list) and isinstance(theirs, list):
        if len(ours) != len(theirs):
            return [f"{path}: {len(ours)} vs {len(theirs)} items"]
        return [d for i, (a, b) in enumerate(zip(ours, theirs)) for d in json_differences(a, b, f"{path}[{i}]")]
    return [] if ours == theirs else [f"{path}: {ours!r} vs {theirs!r}"]


def tensor_differences(ours, theirs, path: str = "") -> list[str]:
    """Paths at which two loaded tensor files differ (tensors bitwise, other values by ==,
    :data:`MEASURED` fields left out)."""
    if isinstance(ours, dict) and isinstance(theirs, dict):
        if set(ours) != set(theirs):
            return [f"{path}: keys {sorted(set(ours) ^ set(theirs))} on one side only"]
        return [d for k in sorted(ours) if k not in MEASURED for d in tensor_differences(ours[k], theirs[k], f"{path}.{k}")]
    if isinstance(ours, (list, tuple)) and isinstance(theirs, (list, tuple)) and len(ours) == len(theirs):
        return [d for i, (a, b) in enumerate(zip(ours, theirs)) for d in tensor_differences(a, b, f"{path}[{i}]")]
    if isinstance(ours, torch.Tensor) and isinstance(theirs, torch.Tensor):
        if ours.shape != theirs.shape or ours.dtype != theirs.dtype:
            return [f"{path}: {tuple(ours.shape)} {ours.dtype} vs {tuple(theirs.shape)} {theirs.dtype}"]
        return [] if torch.equal(ours, theirs) else [f"{path}: tensors differ"]
    return [] if ours == theirs else [f"{path}: {ours!r} vs {theirs!r}"]


def stage_outputs(root: Path, stage: str) -> list[str]:
    """The metrics and ``.pt`` outputs a stage (``name`` or ``group@key``) writes, from ``dvc.lock``."""
    lock = yaml.safe_load((root / "dvc.lock").read_text())["stages"]
    if stage not in lock:
        raise KeyError(f"stage {stage!r} is not in dvc.lock: run it once and commit its outputs first")
    return [o["path"] for o in lock[stage].get("outs", []) if o["path"].endswith((".json", ".pt"))]


def beyond_rounding(differences: list[str]) -> list[str]:
    """The differences that float rounding cannot explain: all but number-vs-number values and
    tensors of the same shape and dtype with other contents."""
    return [d for d in differences if not _ROUNDING.search(d)]


def made_here(root: Path, stage: str) -> bool:
    """Whether every committed JSON output of ``stage`` records this machine's kind of CPU."""
    records = [json.loads((root / p).read_text()) for p in stage_outputs(root, stage) if p.endswith(".json")]
    return bool(records) and all(r.get("machine") == machine() for r in records)


def compare(ours: Path, theirs: Path) -> list[str]:
    """Differences between a file reproduced here (``ours``) and the committed one."""
    if not ours.exists():
        return ["not written by the rerun"]
    if ours.suffix == ".json":
        return json_differences(json.loads(ours.read_text()), json.loads(theirs.read_text()))
    return tensor_differences(safe_torch_load(ours, "reproduced output"), safe_torch_load(theirs, "committed output"))


def recheck(stages: list[str], root: Path = Path("."), data_dirs: tuple[str, ...] = ("data/fashion_mnist",),
            keep: bool = False) -> dict[str, list[str]]:
    """Rerun ``stages`` in a fresh clone of ``root``'s committed state and compare each output.

    :returns: stage -> list of ``<file>: <difference>`` (empty: reproduced exactly).
    :raises RuntimeError: the clone or a stage run failed (DVC's output attached).
    """
    root = root.resolve()
    work = Path(tempfile.mkdtemp(prefix="cdemi-recheck-"))
    clone = work / "clone"
    try:
        subprocess.run(["git", "clone", "--quiet", str(root), str(clone)], check=True)
        for d in data_dirs:
            if (root / d).exists():
                (clone / d).parent.mkdir(parents=True, exist_ok=True)
                os.symlink(root / d, clone / d)
        env = {**os.environ, "DVC_NO_ANALYTICS": "1", "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
        report: dict[str, list[str]] = {}
        for stage in stages:
            outputs = stage_outputs(clone, stage)
            done = subprocess.run(["dvc", "repro", "--force", "--single-item", stage], cwd=clone, env=env,
                                  capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(f"rerunning {stage} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
            report[stage] = [f"{out}: {d}" for out in outputs for d in compare(clone / out, root / out)]
        return report
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stages", nargs="+", help="DVC stages, e.g. distill@kd_dm10_mnv2_s0")
    parser.add_argument("--keep", action="store_true", help="keep the temporary clone")
    args = parser.parse_args(argv)
    report = recheck(args.stages, keep=args.keep)
    for stage, diffs in report.items():
        here = made_here(Path("."), stage)
        print(f"{stage}: " + ("reproduced exactly" if not diffs else f"{len(diffs)} difference(s)")
              + ("" if here else f" (committed on another kind of CPU than this {machine()}: "
                                 f"{len(beyond_rounding(diffs))} beyond rounding)"))
        for d in diffs[:20]:
            print(f"  {d}")
    return 0 if not any(report.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
