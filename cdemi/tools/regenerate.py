"""The full regeneration: every run of the chosen stages again, through DVC's experiment queue.

``python -m cdemi.tools.regenerate [--jobs N] [--prefix distill@ ...] [--copy-paths data/fashion_mnist]``
reruns, from the committed teacher and condensed sets, every stage whose name starts with a prefix
(default: every ``distill@`` stage).  Each stage becomes one queued experiment (``dvc exp run --queue
--force --single-item``, named ``regen-<group>-<key>``) and ``dvc queue start -j N`` runs them, N at a
time, each in its own temporary copy of the repository.  As each experiment lands, its stage's
outputs and its ``dvc.lock`` entry are copied from the experiment's commit into the workspace, so the
workspace ends as if ``dvc repro --force`` had run those stages here: commit it like any result.
One progress bar counts the stages landed.

Resumable: the round (the commit it started from, the stages landed so far) is kept in
``.dvc/tmp/regenerate.json``.  Run the same command again after an interruption: the landed stages are
skipped, experiments that finished meanwhile are landed, those still queued or running are awaited, and
the rest are queued again (a stage that was running when the workers were killed starts over).  A new
commit starts a new round.  Workers inherit one thread each (``OMP_NUM_THREADS=1``); the stages take
their thread count from the profile, which should be 1 for N > 1 workers on N cores (the README's
"Sweeps on a queue" measures why: a two-thread process beside another busy one slows down about
three times).  Exit status 0 when every stage landed, 1 when any failed (named, with its log command).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from tqdm.auto import tqdm

from ..artifacts import atomic_write_bytes, atomic_write_json

ROUND_FILE = Path(".dvc") / "tmp" / "regenerate.json"
PREFIX = "regen-"


def experiment_name(stage: str) -> str:
    """The queued experiment of ``stage`` (``distill@x`` -> ``regen-distill-x``)."""
    return PREFIX + stage.replace("@", "-")


def _run(args: list[str], cwd: Path, check: bool = True) -> str:
    """A command's stdout.  Output goes through files, not pipes: ``dvc queue start`` leaves workers
    behind that inherit its stdout, and a pipe would keep the call waiting until they exit."""
    env = dict(os.environ, DVC_NO_ANALYTICS="1", OMP_NUM_THREADS="1", PATH=f"{Path(sys.executable).parent}"
               f"{os.pathsep}{os.environ.get('PATH', '')}")
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        code = subprocess.run(args, cwd=cwd, env=env, stdout=out, stderr=err, text=True).returncode
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if check and code != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({code}):\n{stdout[-2000:]}\n{stderr[-2000:]}")
    return stdout


def stages(root: Path, prefixes: tuple[str, ...]) -> list[str]:
    """The stages of the project whose names start with one of ``prefixes``, in ``dvc.yaml`` order."""
    listed = _run(["dvc", "stage", "list", "--name-only"], root).split()
    return [s for s in listed if s.startswith(prefixes)]


def finished_experiments(root: Path, baseline: str) -> dict[str, str]:
    """Experiment name -> commit of every experiment of this tool on ``baseline``
    (refs ``refs/exps/<baseline[:2]>/<baseline[2:]>/regen-*``; those of other rounds are left alone)."""
    prefix = f"refs/exps/{baseline[:2]}/{baseline[2:]}/"
    refs = _run(["git", "for-each-ref", "--format=%(objectname) %(refname)", prefix], root)
    out = {}
    for line in refs.splitlines():
        sha, ref = line.split(" ", 1)
        name = ref.rsplit("/", 1)[-1]
        if name.startswith(PREFIX):
            out[name] = sha
    return out


def queue_status(root: Path) -> dict[str, str]:
    """Experiment name -> status (Queued, Running, Success, Failed) from ``dvc queue status``."""
    rows = {}
    for line in _run(["dvc", "queue", "status"], root).splitlines():
        cells = line.split()
        if len(cells) >= 4 and cells[0] != "Task" and all(c in "0123456789abcdef" for c in cells[0]):
            rows[cells[1]] = cells[-1]
    return rows


def land(root: Path, stage: str, commit: str) -> list[str]:
    """Copy ``stage``'s outputs and ``dvc.lock`` entry from an experiment's ``commit`` into the workspace.

    Every output of these stages is ``cache: false``, so the commit holds its bytes; each file is
    written atomically, then the lock entry is replaced through DVC's own YAML writer (the rest of
    ``dvc.lock`` keeps its bytes).  :returns: the paths written.
    :raises RuntimeError: the commit has no lock entry for ``stage`` (the experiment did not run it).
    """
    from dvc.utils.serialize import modify_yaml

    lock = yaml.safe_load(_run(["git", "show", f"{commit}:dvc.lock"], root))
    entry = (lock or {}).get("stages", {}).get(stage)
    if entry is None:
        raise RuntimeError(f"experiment {commit[:7]} has no dvc.lock entry for {stage}: it did not run the stage")
    written = []
    for out in entry.get("outs", []):
        files = [f for f in _run(["git", "ls-tree", "-r", "--name-only", commit, "--", out["path"]], root).split("\n") if f]
        if not files:
            raise RuntimeError(f"{stage}: output {out['path']} is not in experiment {commit[:7]}'s commit (an output "
                               f"DVC caches instead of git): this job lands stages whose outputs are cache: false")
        for path in files:
            blob = subprocess.run(["git", "show", f"{commit}:{path}"], cwd=root, capture_output=True, check=True).stdout
            atomic_write_bytes(root / path, blob)
            written.append(path)
    with modify_yaml(root / "dvc.lock") as data:
        data["stages"][stage] = entry
    return written


@dataclass
class Round:
    """One regeneration: the commit it started from and the stages landed (``ROUND_FILE``)."""

    baseline: str
    landed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    @classmethod
    def open(cls, root: Path) -> "Round":
        head = _run(["git", "rev-parse", "HEAD"], root).strip()
        path = root / ROUND_FILE
        if path.exists():
            saved = json.loads(path.read_text())
            if saved.get("baseline") == head:
                return cls(head, saved.get("landed", []), [])
        return cls(head)

    def save(self, root: Path) -> None:
        atomic_write_json(root / ROUND_FILE, {"baseline": self.baseline, "landed": self.landed})


def threads_of(root: Path, stage: str) -> int:
    """CPU threads a ``distill@`` / ``study@`` stage of the profile runs with (its entry's ``threads``,
    else ``runtime.threads``); 1 for other stages and projects without a profile."""
    from .. import params

    group, _, key = stage.partition("@")
    if group not in ("distill", "study") or not (root / "params.yaml").exists():
        return 1
    profile = params.load(root / "params.yaml")
    entry = getattr(profile, group).get(key)
    return max(1, (getattr(entry, "threads", None) or profile.runtime.threads or 1))


def regenerate(root: Path = Path("."), prefixes: tuple[str, ...] = ("distill@",), jobs: int | None = None,
               copy_paths: tuple[str, ...] = (), poll_seconds: float = 10.0, progress: bool = True) -> Round:
    """Rerun every stage of ``prefixes`` through the queue with ``jobs`` workers (default: the CPU
    count over the largest thread count of those runs, :func:`threads_of`) and land each as it
    finishes; see the module docstring.  :returns: the round."""
    root = root.resolve()
    wanted = stages(root, prefixes)
    if not wanted:
        raise ValueError(f"no stage of {root / 'dvc.yaml'} starts with {', '.join(prefixes)}")
    threads = max(threads_of(root, s) for s in wanted)
    jobs = jobs or max(1, (os.cpu_count() or 1) // threads)
    if jobs * threads > (os.cpu_count() or 1):
        print(f"regeneration: {jobs} workers x {threads} threads on {os.cpu_count()} cores: the runs will slow each "
              f"other down several times; give the runs threads: 1 or use --jobs {max(1, (os.cpu_count() or 1) // threads)}")
    state = Round.open(root)
    pending = [s for s in wanted if s not in state.landed]
    names = {experiment_name(s): s for s in pending}
    started = time.perf_counter()
    with tqdm(total=len(wanted), initial=len(wanted) - len(pending), desc="regeneration", unit="stage",
              disable=not progress) as bar:
        def land_finished() -> None:
            for name, commit in finished_experiments(root, state.baseline).items():
                stage = names.get(name)
                if stage is not None and stage not in state.landed:
                    land(root, stage, commit)
                    state.landed.append(stage)
                    state.save(root)
                    bar.update(1)
                    bar.set_postfix_str(stage)

        land_finished()  # what finished while no one was waiting
        status = queue_status(root)
        for name, stage in names.items():
            if stage in state.landed or status.get(name) in ("Queued", "Running"):
                continue
            args = ["dvc", "exp", "run", "--queue", "--force", "--single-item", "--name", name, stage]
            for path in copy_paths:
                args += ["--copy-paths", path]
            _run(args, root)
        _run(["dvc", "queue", "start", "--jobs", str(jobs)], root)
        polls = 0
        while len(state.landed) + len(state.failed) < len(wanted):
            time.sleep(poll_seconds)
            polls += 1
            land_finished()
            if polls % 6 == 0 or len(state.landed) + len(state.failed) >= len(wanted):
                status = queue_status(root)
                state.failed = [s for n, s in names.items() if status.get(n) == "Failed" and s not in state.landed]
                if not any(status.get(n) in ("Queued", "Running") for n, s in names.items() if s not in state.landed):
                    land_finished()
                    break
    _run(["dvc", "queue", "stop"], root, check=False)
    done = [experiment_name(s) for s in state.landed if experiment_name(s) in names]
    if done:
        _run(["dvc", "exp", "remove", *done], root, check=False)
    minutes = (time.perf_counter() - started) / 60
    print(f"regeneration: {len(state.landed)} of {len(wanted)} stage(s) landed with {jobs} worker(s) in "
          f"{minutes:.1f} min" + (f"; failed: {', '.join(state.failed)} (see dvc queue logs "
                                  f"{experiment_name(state.failed[0])})" if state.failed else ""))
    return state


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cdemi.tools.regenerate", description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=None,
                        help="workers (default: the CPU count over the runs' threads)")
    parser.add_argument("--prefix", action="append", default=None,
                        help="stages whose names start with this (repeatable; default: distill@)")
    parser.add_argument("--copy-paths", action="append", default=[],
                        help="git-ignored paths each experiment needs (e.g. data/fashion_mnist)")
    parser.add_argument("--poll", type=float, default=10.0, help="seconds between looks at the queue")
    args = parser.parse_args(argv)
    state = regenerate(Path("."), tuple(args.prefix or ("distill@",)), args.jobs, tuple(args.copy_paths), args.poll)
    return 1 if state.failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
