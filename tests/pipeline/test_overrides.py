"""``dvc exp run -S`` on this project's own ``params.yaml``, in a fresh clone of the committed state.

An override of a key that an entry takes from a template (its student, a host parameter, its budget)
must reach the run record, and one that cannot take effect must stop with an error naming the key.
The run is the committed ``fast_plain_r18_s0`` entry shrunk by the same overrides to two epochs of two
KD steps, with a student architecture no committed entry uses.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
RUN = "fast_plain_r18_s0"
SHRINK = [f"++distill.{RUN}.{key}={value}" for key, value in
          (("epochs", 2), ("kd_steps", 2), ("curve_test_per_class", 10), ("real_reference_per_class", 5),
           ("host_params.batch_size", 16))]


@pytest.fixture
def clone(tmp_path, fmnist_root):
    path = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(path)], check=True)
    for key, value in (("user.name", "Override Test"), ("user.email", "override-test@example.invalid"),
                       ("commit.gpgsign", "false")):
        subprocess.run(["git", "config", key, value], cwd=path, check=True)
    (path / "data" / "fashion_mnist").symlink_to(fmnist_root / "fashion_mnist")
    return path


def _exp_run(clone: Path, *overrides: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, DVC_NO_ANALYTICS="1", OMP_NUM_THREADS="1", PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    args = [a for o in overrides for a in ("-S", o)]
    return subprocess.run([str(BIN / "dvc"), "exp", "run", *args, f"distill@{RUN}"], cwd=clone, env=env,
                          capture_output=True, text=True, timeout=1200)


def test_a_template_key_overridden_with_exp_run_reaches_the_record(clone):
    done = _exp_run(clone, f"++distill.{RUN}.student.arch=wrn16_2", f"++distill.{RUN}.host_params.g_steps=2", *SHRINK)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    record = json.loads((clone / "results" / "distill" / f"{RUN}.json").read_text())
    assert record["student"] == "wrn16_2" and record["config"]["student"] == {"arch": "wrn16_2", "width": 0.25}
    assert record["config"]["host_params"]["g_steps"] == 2 and record["config"]["epochs"] == 2
    assert len(record["curve"]) == 2


def test_an_override_that_cannot_take_effect_stops_naming_the_key(clone):
    before = (clone / "params.yaml").read_text()
    done = _exp_run(clone, f"distill.{RUN}.student.arch=wrn16_2")  # a template key, without ++
    assert done.returncode != 0
    assert f"distill.{RUN}.student.arch" in done.stdout + done.stderr
    assert (clone / "params.yaml").read_text() == before


def test_a_teacher_of_another_architecture_stops_the_run_before_any_work(clone):
    done = _exp_run(clone, f"++distill.{RUN}.teacher_arch=resnet18", *SHRINK)
    out = done.stdout + done.stderr
    assert done.returncode != 0, out[-3000:]
    assert "has architecture 'resnet34', expected 'resnet18'" in out and "teacher_arch" in out, out[-3000:]
    assert not (clone / "results" / "distill" / f"{RUN}.state").exists()
