"""Sweeps on DVC's experiment queue, end to end on a throw-away project (README, "Sweeps on a queue").

The project mirrors this repository's layout in miniature: a dataset stage whose output is git-ignored
and not cached (like ``data/fashion_mnist``), a training stage that reads one parameter and writes a
``cache: false`` metrics file (like the run records), plus one cached output. Two experiments are queued
with ``dvc exp run --queue -S``, run by ``dvc queue start -j 2`` and read back with ``dvc exp show``; then
they travel the way a cluster shares them: ``dvc exp push`` to a git remote and a DVC remote, ``dvc exp
pull`` / ``dvc exp apply`` / ``dvc pull`` in another clone.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from cdemi.tools import regenerate

BIN = Path(sys.executable).parent
DVC = str(BIN / "dvc")
POLL_SECONDS = 120  # bound on waiting for the queue

# The experiment's code. `accuracy` is also called by the test itself, so the expected metric is the
# direct computation; one BLAS thread makes the solver's arithmetic identical in both processes.
FIT_PY = '''\
import json
import sys

import numpy as np
import yaml
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits


def load(data):
    return np.load(f"{data}/x.npy") / 16.0, np.load(f"{data}/y.npy")


def fit(data, C):
    """Logistic regression on the first 1200 digits; its accuracy on the other 597."""
    x, y = load(data)
    with threadpool_limits(1):
        model = LogisticRegression(C=C, max_iter=300).fit(x[:1200], y[:1200])
        return model, float((model.predict(x[1200:]) == y[1200:]).mean())


def accuracy(data, C):
    return fit(data, C)[1]


if __name__ == "__main__":
    data, metrics, coef = sys.argv[1:]
    C = yaml.safe_load(open("params.yaml"))["fit"]["C"]
    model, acc = fit(data, C)
    np.save(coef, model.coef_)
    with open(metrics, "w") as f:
        json.dump({"C": C, "accuracy": acc}, f)
'''

EXPORT_PY = '''\
import os
import sys

import numpy as np
from sklearn.datasets import load_digits

digits = load_digits()
os.makedirs(sys.argv[1], exist_ok=True)
np.save(os.path.join(sys.argv[1], "x.npy"), digits.data)
np.save(os.path.join(sys.argv[1], "y.npy"), digits.target)
'''

DVC_YAML = '''\
stages:
  export:
    cmd: python export.py data/digits
    deps: [export.py]
    outs:
      - data/digits:
          cache: false
  fit:
    cmd: python fit.py data/digits metrics.json coef.npy
    deps: [fit.py, data/digits]
    params: [fit]
    outs: [coef.npy]
    metrics:
      - metrics.json:
          cache: false
'''

SWEEP = {"c-weak": 0.001, "c-strong": 1.0}  # experiment name -> fit.C; the baseline has 1e-4


def environment() -> dict[str, str]:
    env = dict(os.environ, DVC_NO_ANALYTICS="1", OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               MKL_NUM_THREADS="1", PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    env.pop("DVC_NO_SCM", None)
    return env


def sh(cwd: Path, *args: str, timeout: float = 120) -> str:
    """Run a command, return its stdout. Output goes through files, not pipes: `dvc queue start` leaves
    workers behind that inherit its stdout, and a pipe would keep the call waiting until they exit."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        code = subprocess.run(args, cwd=cwd, env=environment(), stdout=out, stderr=err, text=True,
                              timeout=timeout).returncode
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    assert code == 0, f"{' '.join(args)} failed ({code}):\n{stdout}\n{stderr}"
    return stdout


def dvc(cwd: Path, *args: str, timeout: float = 120) -> str:
    return sh(cwd, DVC, *args, timeout=timeout)


def queue_status(repo: Path) -> dict[str, str]:
    """{experiment name: status} from `dvc queue status`, read as the regeneration job reads it."""
    return regenerate.queue_status(repo)


def processes_in(folder: Path) -> list[int]:
    """Ids of processes whose working directory lies in `folder`: the queue workers and their runs."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                cwd = Path(os.readlink(entry / "cwd"))
            except OSError:
                continue
            if cwd == folder or folder in cwd.parents:
                found.append(int(entry.name))
    return found


def init_repo(path: Path) -> None:
    sh(path, "git", "init", "--quiet", "-b", "main")
    sh(path, "git", "config", "user.name", "Queue Test")
    sh(path, "git", "config", "user.email", "queue-test@example.invalid")
    sh(path, "git", "config", "commit.gpgsign", "false")


@pytest.fixture
def project(tmp_path):
    """A committed DVC project with its baseline reproduced; yields its path, then stops its queue."""
    repo = tmp_path / "project"
    repo.mkdir()
    init_repo(repo)
    dvc(repo, "init", "--quiet")
    (repo / ".gitignore").write_text("/data/digits/\n")
    (repo / "params.yaml").write_text("fit:\n  C: 0.0001\n")
    (repo / "export.py").write_text(EXPORT_PY)
    (repo / "fit.py").write_text(FIT_PY)
    (repo / "dvc.yaml").write_text(DVC_YAML)
    dvc(repo, "remote", "add", "--default", "store", str(tmp_path / "dvc-store"))
    dvc(repo, "repro", "--quiet")
    sh(repo, "git", "add", "--all")
    sh(repo, "git", "commit", "--quiet", "-m", "baseline")
    try:
        yield repo
    finally:
        try:
            subprocess.run([DVC, "queue", "stop", "--kill"], cwd=repo, env=environment(),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
        except subprocess.TimeoutExpired:
            pass
        deadline = time.monotonic() + 20
        while processes_in(tmp_path) and time.monotonic() < deadline:
            time.sleep(1)
        for pid in processes_in(tmp_path):  # only ours: nothing else runs in this temporary folder
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_a_queued_sweep_runs_in_the_background_and_travels_through_the_remotes(project, tmp_path):
    fit = importlib.util.spec_from_file_location("queued_fit", project / "fit.py")
    module = importlib.util.module_from_spec(fit)
    fit.loader.exec_module(module)
    expected = {name: module.accuracy(str(project / "data/digits"), c) for name, c in SWEEP.items()}
    assert expected["c-weak"] != expected["c-strong"]

    # queue the sweep: the git-ignored dataset is copied into each run's temporary workspace (-C)
    for name, c in SWEEP.items():
        dvc(project, "exp", "run", "--queue", "--name", name, "--set-param", f"fit.C={c}",
            "--copy-paths", "data/digits")
    assert queue_status(project) == {name: "Queued" for name in SWEEP}

    dvc(project, "queue", "start", "--jobs", "2")
    # wait (bounded) until the queue has no queued or running task. `dvc queue status` costs a DVC
    # start-up, which competes with the workers on a small machine; the experiments' git refs are
    # free to list, so they are checked every 2 s and the queue itself every ~10 s
    deadline, polls = time.monotonic() + POLL_SECONDS, 0
    while time.monotonic() < deadline:
        time.sleep(2)
        polls += 1
        refs = sh(project, "git", "for-each-ref", "--format=%(refname)", "refs/exps/")
        if all(f"/{name}\n" in refs for name in SWEEP) or polls % 5 == 0:
            status = queue_status(project)
            if not any(s in ("Queued", "Running") for s in status.values()):
                break
    status = queue_status(project)
    if status != {name: "Success" for name in SWEEP}:
        logs = {name: dvc(project, "queue", "logs", name) for name in SWEEP}
        pytest.fail(f"queue status after {POLL_SECONDS} s at most: {status}\n{logs}")
    log = dvc(project, "queue", "logs", "c-weak")
    assert "Stage 'export' didn't change, skipping" in log, log  # -C: the copied data is the committed one
    assert "Running stage 'fit'" in log, log

    # idle workers exit on `dvc queue stop`; nothing of the queue stays behind
    dvc(project, "queue", "stop")
    deadline = time.monotonic() + 30
    while processes_in(project) and time.monotonic() < deadline:
        time.sleep(1)
    assert processes_in(project) == []

    # each experiment recorded the metric of its own parameter value, on the committed baseline
    def by_name(repo: Path) -> dict[str, dict]:
        rows = json.loads(dvc(repo, "exp", "show", "--json"))
        return {rev["name"]: rev["data"] for row in rows for exp in (row.get("experiments") or [])
                for rev in exp["revs"]}

    shown = by_name(project)
    assert set(shown) == set(SWEEP)
    for name, c in SWEEP.items():
        assert shown[name]["params"]["params.yaml"]["data"]["fit"]["C"] == c
        assert shown[name]["metrics"]["metrics.json"]["data"] == {"C": c, "accuracy": expected[name]}
    assert yaml.safe_load((project / "params.yaml").read_text()) == {"fit": {"C": 0.0001}}  # workspace untouched

    # the cluster's exchange: push to a shared git remote (+ the DVC remote for cached outputs) ...
    origin = tmp_path / "origin.git"
    origin.mkdir()
    sh(origin, "git", "init", "--quiet", "--bare", "-b", "main")
    sh(project, "git", "remote", "add", "origin", str(origin))
    sh(project, "git", "push", "--quiet", "origin", "main")
    dvc(project, "exp", "push", "origin", *SWEEP)

    # ... and collect in another clone: the same experiments, the same metrics, the cached outputs
    collector = tmp_path / "collector"
    sh(tmp_path, "git", "clone", "--quiet", "-b", "main", str(origin), str(collector))
    dvc(collector, "exp", "pull", "origin", *SWEEP)
    pulled = by_name(collector)
    assert {n: d["metrics"]["metrics.json"]["data"] for n, d in pulled.items()} == \
        {n: shown[n]["metrics"]["metrics.json"]["data"] for n in SWEEP}
    dvc(collector, "exp", "apply", "c-strong")
    assert json.loads((collector / "metrics.json").read_text()) == {"C": 1.0, "accuracy": expected["c-strong"]}
    dvc(collector, "pull", "fit")
    lock = yaml.safe_load((collector / "dvc.lock").read_text())
    coef_md5 = next(o["md5"] for o in lock["stages"]["fit"]["outs"] if o["path"] == "coef.npy")
    assert hashlib.md5((collector / "coef.npy").read_bytes()).hexdigest() == coef_md5
