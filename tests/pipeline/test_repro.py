"""The main job's runner: one progress bar over the stages DVC runs, DVC's exit status kept."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


@pytest.fixture()
def project(tmp_path):
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1"}
    subprocess.run(["dvc", "init", "--no-scm", "-q"], cwd=tmp_path, check=True, env=env)
    (tmp_path / "dvc.yaml").write_text(
        "stages:\n"
        "  first:\n    cmd: echo one > one.txt\n    outs: [one.txt]\n"
        "  second:\n    cmd: cat one.txt > two.txt\n    deps: [one.txt]\n    outs: [two.txt]\n")
    return tmp_path, env


def _repro(project, *args):
    path, env = project
    return subprocess.run([sys.executable, "-m", "cdemi.tools.repro", "--log", "repro.log", *args], cwd=path, env=env,
                          capture_output=True, text=True)


def test_runs_every_planned_stage_and_reports_them(project):
    done = _repro(project)
    assert done.returncode == 0, done.stderr
    assert "2 stage(s) planned, done" in done.stdout
    assert (project[0] / "two.txt").read_text().strip() == "one"
    assert "Running stage 'second'" in (project[0] / "repro.log").read_text()
    again = _repro(project)  # everything up to date: nothing planned, nothing run
    assert again.returncode == 0 and "0 stage(s) planned, done" in again.stdout


def test_a_failing_stage_fails_the_job_with_dvcs_message(project):
    path, _ = project
    (path / "dvc.yaml").write_text("stages:\n  broken:\n    cmd: exit 3\n")
    done = _repro(project)
    assert done.returncode != 0
    assert "FAILED" in done.stdout and "broken" in done.stderr
