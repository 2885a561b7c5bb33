"""The committed default-profile artifacts are what their records and metrics say."""
import hashlib
import json
from pathlib import Path

import pytest
import yaml

from cdemi import data, params
from cdemi.models.checkpoint import load_classifier
from cdemi.training import evaluate

ROOT = Path(__file__).resolve().parents[1]
PROFILE = params.load(ROOT / "params.yaml")
RUNS = {**PROFILE.train, **PROFILE.kd_full}


@pytest.mark.parametrize("name", sorted(RUNS))
def test_checkpoint_reproduces_its_recorded_accuracy(name, fmnist_root):
    run = RUNS[name]
    model, record = load_classifier(ROOT / "data/models" / f"{name}.pt", arch=run.arch, dataset=run.dataset,
                                    num_classes=10)
    assert record["params"] == run.model_dump()  # the checkpoint was trained with today's parameters
    acc = evaluate(model, data.load(run.dataset, "test", fmnist_root), channels_last=PROFILE.runtime.channels_last)
    assert acc == pytest.approx(record["test_accuracy"], abs=0.05)
    metrics = json.loads((ROOT / "results/train" / f"{name}.json").read_text())
    assert metrics["test_accuracy"] == round(record["test_accuracy"], 2)
    assert len(record["curve"]) == run.epochs


def test_teacher_reaches_the_profile_target():
    record = json.loads((ROOT / "data/models/teacher.json").read_text())
    assert record["test_accuracy"] >= 93.0


def test_every_stage_is_locked_with_the_committed_outputs():
    lock = yaml.safe_load((ROOT / "dvc.lock").read_text())["stages"]
    for name in RUNS:
        stage = lock[f"train@{name}" if name in PROFILE.train else f"kd_full@{name}"]
        outs = {o["path"]: o["md5"] for o in stage["outs"]}
        for path, md5 in outs.items():
            if path.endswith(".pt"):
                assert hashlib.md5((ROOT / path).read_bytes()).hexdigest() == md5, path
