"""SIGKILL in the middle of a DVC stage (teacher training, condensation, distillation): the rerun of the same
stage resumes from the last checkpoint and ends with the outputs of an uninterrupted run; no partial file is
ever visible under its final name.

Two tiny DVC projects on scikit-learn's digits run the pipeline's own notebooks through the same commands as
``dvc.yaml``: one straight through (the reference), one killed in every stage and rerun.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from cdemi.artifacts import safe_torch_load
from cdemi.tools.recheck import compare

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

PROFILE = {
    "profile": "smoke",
    "data": {"dataset": "digits"},
    "runtime": {"threads": 1, "channels_last": False},
    "train": {"teacher": {"arch": "resnet18", "dataset": "digits", "width": 0.125, "epochs": 8, "batch_size": 64,
                          "lr": 0.05, "seed": 0}},
    "condense": {"dm_ipc2": {"method": "dm", "ipc": 2, "iterations": 400, "lr_img": 1.0, "batch_real": 32,
                             "width": 0.25, "seed": 0}},
    "evaluate_condensed": {"epochs": 3, "runs": 1, "width": 0.25},
    "distill": {"guided": {"teacher": "data/models/teacher.pt", "teacher_arch": "resnet18",
                           "student": {"arch": "resnet18", "width": 0.0625}, "host": "deepinversion",
                           "host_params": {"batch_size": 16, "iterations": 4}, "transfer": "data/condensed/dm_ipc2.pt",
                           "variant": "guided", "epochs": 8, "kd_steps": 4, "batch_size": 32, "temperature": 4.0,
                           "seed": 0}},
}
STAGES = {  # stage -> (command, the resume state it leaves while running, its final outputs)
    "train": ("papermill --log-output notebooks/train_classifier.ipynb reports/teacher.ipynb -p params_file params.yaml "
              "-p section train -p run teacher -p out data/models/teacher.pt -p metrics results/teacher.json",
              "data/models/teacher.state", ["data/models/teacher.pt", "data/models/teacher.json", "results/teacher.json"]),
    "condense": ("papermill --log-output notebooks/condense.ipynb reports/dm_ipc2.ipynb -p params_file params.yaml "
                 "-p run dm_ipc2 -p out data/condensed/dm_ipc2.pt -p metrics results/dm_ipc2.json",
                 "data/condensed/dm_ipc2.work/dm.state",
                 ["data/condensed/dm_ipc2.pt", "data/condensed/dm_ipc2.json", "results/dm_ipc2.json"]),
    "distill": ("papermill --log-output notebooks/distill.ipynb reports/guided.ipynb -p params_file params.yaml "
                "-p run guided -p record results/guided.json",
                "results/guided.state", ["results/guided.json", "results/guided.samples.pt"]),
}
ENV = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1"}


def _project(folder: Path) -> Path:
    folder.mkdir()
    for nb in ("train_classifier", "condense", "distill"):
        (folder / "notebooks").mkdir(exist_ok=True)
        shutil.copy(ROOT / "notebooks" / f"{nb}.ipynb", folder / "notebooks")
    for d in ("data/models", "data/condensed", "results", "reports"):
        (folder / d).mkdir(parents=True, exist_ok=True)
    (folder / "params.yaml").write_text(yaml.safe_dump(PROFILE))
    stages = {name: {"cmd": cmd, "params": [{"params.yaml": []}], "outs": [{o: {"cache": False}} for o in outs]}
              for name, (cmd, _, outs) in STAGES.items()}
    stages["condense"]["deps"] = ["data/models/teacher.pt"]  # run after training, as in the pipeline's order
    stages["distill"]["deps"] = ["data/models/teacher.pt", "data/condensed/dm_ipc2.pt"]
    (folder / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}, sort_keys=False))
    subprocess.run(["dvc", "init", "--no-scm", "-q"], cwd=folder, check=True, env=ENV)
    return folder


def _repro(folder: Path, stage: str) -> None:
    done = subprocess.run(["dvc", "repro", "--single-item", stage], cwd=folder, env=ENV, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


def _progress(state: Path) -> int:
    """Epochs (or iterations) the saved state holds; 0 without a readable state."""
    try:
        s = safe_torch_load(state, "state")
    except Exception:  # not written yet (the write itself is atomic)
        return 0
    return int(s["position"])


def _kill_midway(folder: Path, stage: str, at_least: int, tally, timeout: float = 240) -> dict:
    """Run the stage, SIGKILL its whole process group once the state holds ``at_least`` units of work;
    the outputs of the stages before it must come through byte for byte.
    :returns: the state as it was at the kill."""
    state = folder / STAGES[stage][1]
    earlier = {folder / out: (folder / out).read_bytes() for s in STAGES if s != stage for out in STAGES[s][2]
               if (folder / out).exists()}
    proc = subprocess.Popen(["dvc", "repro", "--single-item", stage], cwd=folder, env=ENV, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    start = time.monotonic()
    while _progress(state) < at_least:
        assert proc.poll() is None, f"{stage} finished before it could be interrupted"
        assert time.monotonic() - start < timeout, f"{stage} wrote no state within {timeout} s"
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    tally.fault("interruption mid-stage (SIGKILL, KeyboardInterrupt)")
    assert all([tally.kept(path, before) for path, before in earlier.items()]), "an earlier stage's output changed"
    for out in STAGES[stage][2]:  # nothing under its final name, and no temporary file left looking like one
        assert not (folder / out).exists(), f"{out} is visible after the kill"
    return safe_torch_load(state, "state")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    folder = _project(tmp_path_factory.mktemp("straight") / "p")
    for stage in STAGES:
        _repro(folder, stage)
    return folder


def _same_outputs(ours: Path, theirs: Path, outputs: list[str]):
    """Every output equal to the reference's: JSON but for measured times, tensors bitwise."""
    for out in outputs:
        assert compare(ours / out, theirs / out) == [], out


def test_killed_stages_resume_and_match_an_uninterrupted_run(reference, tmp_path, tally):
    folder = _project(tmp_path / "p")
    # teacher training: killed after 3 of 8 epochs
    state = _kill_midway(folder, "train", 3, tally)
    _repro(folder, "train")
    record = json.loads((folder / "data/models/teacher.json").read_text())
    killed_curve = state["curve"].tolist()
    assert [r["seconds"] for r in record["curve"][:len(killed_curve)]] == [row[3] for row in killed_curve], \
        "the finished epochs were recomputed instead of resumed"
    _same_outputs(folder, reference, STAGES["train"][2])

    # condensation: killed after its first saved state (100 of 400 iterations)
    state = _kill_midway(folder, "condense", 100, tally)
    _repro(folder, "condense")
    cs_record = json.loads((folder / "data/condensed/dm_ipc2.json").read_text())
    assert cs_record["wall_seconds"] >= state["seconds"]  # the saved seconds carried over
    _same_outputs(folder, reference, STAGES["condense"][2])

    # distillation: killed after 3 of 8 epochs
    state = _kill_midway(folder, "distill", 3, tally)
    _repro(folder, "distill")
    rec = json.loads((folder / "results/guided.json").read_text())
    killed = json.loads(state["curve"])
    assert [r["kd_seconds"] for r in rec["curve"][:len(killed)]] == [r["kd_seconds"] for r in killed], \
        "the finished epochs were recomputed instead of resumed"
    _same_outputs(folder, reference, STAGES["distill"][2])
