"""The full-regeneration job (``cdemi.tools.regenerate``) end to end on a throw-away DVC project.

The project has one ``foreach`` stage of three runs, each writing a ``cache: false`` record, like the
distill stages.  Its code changes after the baseline was reproduced and committed, so every run is
stale: the job must rerun them through the experiment queue with two workers and land each run's
record and ``dvc.lock`` entry in the workspace, leaving ``dvc status`` clean.  A second round that
finds one run landed already (an interrupted job) queues only the others.
"""
from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from cdemi.tools import regenerate

from .test_queue import environment, init_repo, processes_in, sh

RUN_PY = '''\
import json
import sys

key, value = sys.argv[1], float(sys.argv[2])
with open(f"out/{key}.json", "w") as f:
    json.dump({"key": key, "value": value * FACTOR}, f)
'''

DVC_YAML = '''\
stages:
  run:
    foreach: ${runs}
    do:
      cmd: mkdir -p out && python run.py ${key} ${item.v}
      deps:
        - run.py
      params:
        - runs.${key}
      outs:
        - out/${key}.json:
            cache: false
'''


def _dvc(repo: Path, *args: str) -> str:
    return sh(repo, str(Path(regenerate.sys.executable).parent / "dvc"), *args, timeout=300)


@pytest.fixture
def project(tmp_path, monkeypatch):
    repo = tmp_path / "project"
    repo.mkdir()
    init_repo(repo)
    _dvc(repo, "init", "--quiet")
    (repo / "params.yaml").write_text("runs:\n  a:\n    v: 1\n  b:\n    v: 2\n  c:\n    v: 3\n")
    (repo / "run.py").write_text(RUN_PY.replace("FACTOR", "2"))
    (repo / "dvc.yaml").write_text(DVC_YAML)
    _dvc(repo, "repro", "--quiet")
    sh(repo, "git", "add", "--all")
    sh(repo, "git", "commit", "--quiet", "-m", "baseline")
    (repo / "run.py").write_text(RUN_PY.replace("FACTOR", "3"))  # every run is stale now
    sh(repo, "git", "commit", "--quiet", "-am", "new code")
    for key, value in environment().items():
        monkeypatch.setenv(key, value)
    try:
        yield repo
    finally:
        subprocess.run([str(Path(regenerate.sys.executable).parent / "dvc"), "queue", "stop", "--kill"], cwd=repo,
                       env=environment(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
        deadline = time.monotonic() + 20
        while processes_in(tmp_path) and time.monotonic() < deadline:
            time.sleep(1)


def _values(repo: Path) -> dict[str, float]:
    return {p.stem: json.loads(p.read_text())["value"] for p in sorted((repo / "out").glob("*.json"))}


def test_the_job_reruns_every_stage_through_the_queue_and_lands_it(project):
    assert "changed deps" in _dvc(project, "status")
    assert _values(project) == {"a": 2.0, "b": 4.0, "c": 6.0}
    state = regenerate.regenerate(project, ("run@",), jobs=2, poll_seconds=1, progress=False)
    assert sorted(state.landed) == ["run@a", "run@b", "run@c"] and state.failed == []
    assert _values(project) == {"a": 3.0, "b": 6.0, "c": 9.0}
    assert "up to date" in _dvc(project, "status")  # outputs and dvc.lock as if dvc repro had run here
    assert regenerate.finished_experiments(project, state.baseline) == {}  # its experiments are removed
    assert json.loads((project / regenerate.ROUND_FILE).read_text())["landed"] == state.landed


def test_an_interrupted_job_resumes_with_the_stages_it_had_not_landed(project):
    head = sh(project, "git", "rev-parse", "HEAD").strip()
    (project / regenerate.ROUND_FILE).write_text(json.dumps({"baseline": head, "landed": ["run@a"]}))
    state = regenerate.regenerate(project, ("run@",), jobs=2, poll_seconds=1, progress=False)
    assert state.landed[0] == "run@a" and sorted(state.landed) == ["run@a", "run@b", "run@c"]
    assert _values(project) == {"a": 2.0, "b": 6.0, "c": 9.0}  # run@a counted as landed, not run again
