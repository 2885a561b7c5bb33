"""Distillation runs longer than one sitting at a machine, carried over to the next through the repository.

A run at a converged budget can outlast the time one sitting has for computing (CMI + guidance at 8,000 KD
steps takes hours on one core).  Everywhere else a run's resume state (``<record>.state``, written after
every epoch) is git-ignored and stays on the machine that made it; the runs carried here instead
commit it, so the next sitting resumes the run from its last saved epoch on whatever machine it has::

    results/carried/params.yaml      the profile the carried runs are resolved from: ``params.yaml`` with
                                     each carried entry as it will enter ``params.yaml`` when it lands
    results/carried/NAME.state       the run's resume state (tracked by git here, and only here)
    results/carried/segments.json    which machine ran which epochs of each carried run
    results/segments.json            the same for every carried run that has landed (moved there by ``land``:
                                     the run record names only the machine that finished it; the
                                     convergence stage's cross-CPU table reads it)

``python -m cdemi.tools.carry run NAME...`` starts or resumes each named run, one process with one thread
per run, side by side, with one progress bar over their epochs; an interruption loses at most the epoch
each run was in.  ``mark`` appends this machine's segment for every state that moved on since its last segment
(run it before committing the states); ``status`` prints each run's epoch, latest validation accuracy
and machines.  A run that has reached its last epoch lands as any run does, and ``land`` does the steps
(:func:`land`): its entry enters ``params.yaml``, its state is copied to ``results/distill/NAME.state``,
``dvc repro -s distill@NAME`` writes its record, report and samples from it, its segments move to
``results/segments.json`` and the carried state is removed (README, "Runs carried over between sittings").
A convergence-study run is carried the same way: its entry sits under ``study``, and it lands under
``results/study/`` through ``dvc repro -s study@NAME``.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import yaml
from tqdm.auto import tqdm

from .. import params, runtime
from ..artifacts import atomic_write_bytes, atomic_write_json, safe_torch_load
from ..params import ParamsError
from ..report.cross_cpu import load_segments, machine_kind, machines_label

CARRIED = Path("results") / "carried"
SEGMENTS = "segments.json"
LANDED_SEGMENTS = Path("results") / "segments.json"  # the segments of the runs that have landed
SECTIONS = ("distill", "study")  # the profile's sections whose entries are distillation runs


def _profile(root: Path) -> Path:
    path = root / CARRIED / "params.yaml"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: copy params.yaml there and add the entries to carry under "
                                f"distill (README, 'Runs carried over between sittings')")
    return path


def _entry(root: Path, name: str, profile: params.Profile | None = None) -> tuple[str, params.DistillRun]:
    """``(section, validated entry)`` of carried run ``name`` in ``results/carried/params.yaml`` (or in
    ``profile``, that file already loaded); the section is ``distill`` (a grid run) or ``study`` (a
    convergence-study run).

    :raises ParamsError: the entry is invalid, in neither section, or in both (the message lists the known
        entries)."""
    path = _profile(root)
    profile = profile or params.load(str(path))
    found = [section for section in SECTIONS if name in getattr(profile, section)]
    if len(found) == 1:
        return found[0], getattr(profile, found[0])[name]
    if found:
        raise ParamsError(f"{path}: {name!r} is an entry of both distill and study; rename one of them")
    known = ", ".join(sorted(set().union(*(getattr(profile, s) for s in SECTIONS)))) or "none"
    raise ParamsError(f"{path}: no entry {name!r} under distill or study; known: {known}")


def epochs_of(root: Path, name: str) -> int:
    """The epochs of carried run ``name`` as its entry in ``results/carried/params.yaml`` sets them
    (:func:`_entry`)."""
    return int(_entry(root, name)[1].epochs)


def progress(state_file: Path) -> tuple[int, float | None]:
    """``(epochs completed, latest validation accuracy in %)`` of a distillation resume state (the
    accuracy is None before the first validated epoch)."""
    state = safe_torch_load(state_file, "distillation state",
                            fix="Restore it from git (git checkout -- FILE) or delete it to start the run over.")
    curve = json.loads(state["curve"])
    accuracy = next((row["validation_accuracy"] for row in reversed(curve)
                     if row.get("validation_accuracy") is not None), None)
    return int(state["position"]), accuracy


def read_segments(root: Path) -> dict[str, list[dict]]:
    """The carried runs' segments, ``{run: [{"machine", "from_epoch", "to_epoch", "marked"}, ...]}`` (empty
    when no file yet); those of landed runs are in ``results/segments.json`` (:func:`move_segments`).

    :raises ValueError: the file is not such JSON (:func:`cdemi.report.cross_cpu.load_segments`)."""
    return load_segments(root / CARRIED / SEGMENTS)


def move_segments(root: Path, name: str) -> None:
    """Move landed run ``name``'s segments from ``results/carried/segments.json`` to ``results/segments.json``
    (the landed file is written first, so an interruption between the two writes loses nothing)."""
    carried = read_segments(root)
    if name not in carried:
        return
    landed = load_segments(root / LANDED_SEGMENTS)
    landed[name] = carried.pop(name)
    atomic_write_json(root / LANDED_SEGMENTS, dict(sorted(landed.items())))
    atomic_write_json(root / CARRIED / SEGMENTS, carried)


def mark(root: Path, machine: dict | None = None, now: datetime | None = None) -> dict[str, dict]:
    """Append a segment (``machine``, default this one) to every carried run whose state reached a later
    epoch than its last segment; returns the new segments by run.

    :raises ValueError: a state is at an earlier epoch than its last segment says (it was replaced by an
        older one), before anything is written."""
    segments = read_segments(root)
    added: dict[str, dict] = {}
    for state_file in sorted((root / CARRIED).glob("*.state")):
        name = state_file.stem
        reached, _ = progress(state_file)
        done = segments[name][-1]["to_epoch"] if segments.get(name) else 0
        if reached < done:
            raise ValueError(f"{state_file} ends at epoch {reached} but segments.json says epoch {done} was reached: "
                             f"restore the newer state (git checkout -- {state_file}) before marking")
        if reached > done:
            added[name] = {"machine": machine or runtime.machine(), "from_epoch": done, "to_epoch": reached,
                           "marked": (now or datetime.now(timezone.utc)).isoformat(timespec="seconds")}
    for name, segment in added.items():
        segments.setdefault(name, []).append(segment)
    if added:
        atomic_write_json(root / CARRIED / SEGMENTS, segments)
    return added


def status(root: Path) -> list[dict]:
    """One row per carried run (a state, or segments of a run that has landed): ``run``, ``epoch``,
    ``epochs``, ``validation`` (latest, %), ``machines`` (which machine ran which epochs,
    :func:`cdemi.report.cross_cpu.machines_label`; ``""`` before the first mark)."""
    segments = {**load_segments(root / LANDED_SEGMENTS), **read_segments(root)}
    names = sorted({p.stem for p in (root / CARRIED).glob("*.state")} | set(segments))
    rows = []
    for name in names:
        state_file = root / CARRIED / f"{name}.state"
        epoch, accuracy, epochs = (*progress(state_file), epochs_of(root, name)) if state_file.exists() else (None,) * 3
        machines = machines_label(segments[name]) if segments.get(name) else ""
        rows.append({"run": name, "epoch": epoch, "epochs": epochs, "validation": accuracy, "machines": machines})
    return rows


def _entry_lines(lines: list[str], section: str, name: str) -> tuple[int, int, int] | None:
    """``(first comment line, header line, end)`` of entry ``name`` under top-level ``section`` of a profile's
    lines, as ``params.yaml`` writes entries: a header ``  NAME:`` at two spaces, its keys at four or more, the
    comment lines at two spaces right above it belonging to it; None when the section has no such entry.

    :raises ParamsError: the profile has no top-level ``section``."""
    try:
        start = lines.index(f"{section}:")
    except ValueError:
        raise ParamsError(f"the profile has no top-level '{section}:' section to land an entry in") from None
    for header in range(start + 1, len(lines)):
        line = lines[header]
        if line and not line.startswith((" ", "#")):
            return None  # the next top-level section
        if line == f"  {name}:":
            first = header
            while first > start + 1 and lines[first - 1].startswith("  #"):
                first -= 1
            end = header + 1
            while end < len(lines) and lines[end].startswith("    "):
                end += 1
            return first, header, end
    return None


def landed_profile(profile_text: str, carried_text: str, section: str, name: str) -> str:
    """``params.yaml``'s text with entry ``name`` of ``section`` as the carried profile writes it: an entry
    the profile has gets the carried keys (its comments stay); a new one enters with its comments right
    after the entry that precedes it in the carried profile (or first in the section).  Every other line is
    kept as it is.

    :raises ParamsError: the carried profile has no such entry in the layout :func:`_entry_lines` reads."""
    profile, carried = profile_text.splitlines(), carried_text.splitlines()
    found = _entry_lines(carried, section, name)
    if found is None:
        raise ParamsError(f"results/carried/params.yaml has no entry '  {name}:' under '{section}:'")
    c_first, c_header, c_end = found
    have = _entry_lines(profile, section, name)
    if have is not None:
        _, p_header, p_end = have
        lines = profile[:p_header] + carried[c_header:c_end] + profile[p_end:]
    else:
        at = profile.index(f"{section}:") + 1
        for line in reversed(carried[carried.index(f"{section}:") + 1:c_first]):
            header = re.fullmatch(r"  ([^\s#:][^:]*):", line)
            placed = header and _entry_lines(profile, section, header.group(1))
            if placed:
                at = placed[2]
                break
        lines = profile[:at] + carried[c_first:c_end] + profile[at:]
    return "\n".join(lines) + "\n"


def _dvc_repro(root: Path, stage: str) -> None:
    subprocess.run(["dvc", "repro", "--single-item", stage], cwd=root, check=True)


def land(root: Path, name: str, repro: Callable[[Path, str], None] = _dvc_repro) -> Path:
    """Land finished carried run ``name``: its entry enters ``params.yaml`` as the carried profile writes
    it, its state is copied beside the stage's record (``results/<section>/NAME.state``), ``repro(root,
    "<section>@NAME")`` (default ``dvc repro --single-item``) writes the record, report and samples from it,
    resuming at its last epoch; then its segments move to ``results/segments.json`` (:func:`move_segments`)
    and the carried state and its record, samples and log are removed.  This machine's segments are marked
    first (:func:`mark`), so the segments name every machine that ran the run.
    Returns the record's path.

    Everything is checked before anything is written: the state has reached the entry's last epoch, and the
    new ``params.yaml`` validates with the entry resolving exactly as the carried one and every other entry
    unchanged.  A failed ``repro`` leaves the carried state in place (run ``land`` again).

    :raises ValueError: the run has not finished; :raises ParamsError: the entry would not land as carried.
    """
    section, entry = _entry(root, name)
    state = root / CARRIED / f"{name}.state"
    if not state.exists():
        raise FileNotFoundError(f"{state} is missing: nothing to land (has {name} landed already?)")
    reached, _ = progress(state)
    if reached != entry.epochs:
        raise ValueError(f"{name} has reached epoch {reached} of {entry.epochs}: resume it "
                         f"(python -m cdemi.tools.carry run {name}) before landing it")
    target = root / "params.yaml"
    text = landed_profile(target.read_text(), _profile(root).read_text(), section, name)
    before = params.load(target)
    try:
        after = params.validate(yaml.safe_load(text), f"{target} with {name} landed")
    except yaml.YAMLError as e:  # e.g. an alias to an anchor the replaced lines held
        reason = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ParamsError(f"{target} would not be valid YAML with {name} landed ({reason}): move the entry by "
                          f"hand") from None
    changed = sorted(n for s in SECTIONS for n in set(getattr(before, s)) | set(getattr(after, s))
                     if (s, n) != (section, name) and getattr(before, s).get(n) != getattr(after, s).get(n))
    if getattr(after, section).get(name) != entry or changed:
        raise ParamsError(f"landing {name} would change {', '.join(changed) or name} in {target} otherwise than "
                          f"the carried profile says: move the entry by hand")
    record = root / "results" / section / f"{name}.json"
    mark(root)
    atomic_write_bytes(target, text.encode())
    atomic_write_bytes(record.with_suffix(".state"), state.read_bytes())
    repro(root, f"{section}@{name}")
    move_segments(root, name)
    for leftover in (state, *(root / CARRIED / f"{name}{suffix}" for suffix in (".json", ".samples.pt", ".log"))):
        leftover.unlink(missing_ok=True)
    return record


def run(root: Path, names: list[str], poll: float = 30.0) -> int:
    """Start or resume carried runs ``names`` side by side (one process, one thread each) and wait for
    them; every entry is resolved before any starts.  Returns 0 when every run finished, else 1 (the
    failed runs and their logs, ``results/carried/NAME.log``, are named)."""
    profile = params.load(str(_profile(root)))
    entries = {name: _entry(root, name, profile) for name in names}
    totals = {name: int(entry.epochs) for name, (_, entry) in entries.items()}
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    procs = {}
    for name in names:
        log = open(root / CARRIED / f"{name}.log", "a")
        procs[name] = subprocess.Popen(
            [sys.executable, "-m", "cdemi.distill", str(CARRIED / "params.yaml"), name,
             str(CARRIED / f"{name}.json"), "--section", entries[name][0], "--no-progress"],
            cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
        log.close()

    def reached() -> int:
        files = [root / CARRIED / f"{n}.state" for n in names]
        return sum(progress(f)[0] if f.exists() else 0 for f in files)

    try:
        with tqdm(total=sum(totals.values()), initial=reached(), unit="epoch", desc="carried runs") as bar:
            while any(p.poll() is None for p in procs.values()):
                time.sleep(poll)
                try:
                    bar.n = reached()
                except ValueError:  # a state being replaced between two reads: read it next time
                    continue
                bar.refresh()
            bar.n = reached()
    except KeyboardInterrupt:
        for proc in procs.values():
            proc.terminate()
        raise
    failed = [n for n, p in procs.items() if p.returncode != 0]
    for name in failed:
        print(f"{name} failed: see {CARRIED / (name + '.log')}", file=sys.stderr)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cdemi.tools.carry", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser("run", help="start or resume carried runs side by side")
    start.add_argument("names", nargs="+")
    sub.add_parser("mark", help="record this machine's segment of every run whose state moved on")
    finish = sub.add_parser("land", help="move finished runs into params.yaml and write their records through DVC")
    finish.add_argument("names", nargs="+")
    sub.add_parser("status", help="each carried run's epoch, latest validation accuracy and machines")
    args = parser.parse_args(argv)
    root = Path(".")
    if args.command == "run":
        return run(root, args.names)
    if args.command == "land":
        for name in args.names:
            print(f"{name}: landed in {land(root, name)}")
        return 0
    if args.command == "mark":
        for name, seg in mark(root).items():
            print(f"{name}: epochs {seg['from_epoch']}-{seg['to_epoch']} on {machine_kind(seg['machine'])}")
        return 0
    for row in status(root):
        where = "landed" if row["epoch"] is None else f"epoch {row['epoch']} of {row['epochs']}"
        accuracy = "" if row["validation"] is None else f", validation {row['validation']:.2f}%"
        print(f"{row['run']}: {where}{accuracy}; machines: {row['machines'] or 'none marked'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
