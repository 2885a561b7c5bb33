"""The committed default-profile artifacts are what their records and metrics say."""
import hashlib
import json
from pathlib import Path

import pytest
import torch
import yaml

from cdemi import data, params
from cdemi.artifacts import safe_torch_load
from cdemi.models.checkpoint import load_classifier
from cdemi.train import evaluate

ROOT = Path(__file__).resolve().parents[2]
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


@pytest.mark.parametrize("name", sorted(PROFILE.condense))
def test_condensed_set_is_what_its_entry_and_metrics_say(name):
    from cdemi.data.condensed import load_condensed

    run = PROFILE.condense[name]
    cs = load_condensed(ROOT / "data/condensed" / f"{name}.pt", dataset=PROFILE.data.dataset, ipc=run.ipc,
                        shape=(1, 28, 28))  # verifies the SHA-256 of the file against its record
    recorded, expected = cs.meta["params"], run.model_dump()
    shared = set(recorded) & set(expected)  # the set was made with today's parameters
    assert "ipc" in shared and {k: recorded[k] for k in shared} == {k: expected[k] for k in shared}
    assert cs.method == run.method and cs.meta["seed"] == run.seed
    metrics = json.loads((ROOT / "results/condense" / f"{name}.json").read_text())
    assert metrics["sha256"] == cs.meta["sha256"] and len(metrics["accuracies"]) == PROFILE.evaluate_condensed.runs
    if run.method in ("dm", "dsa", "mtt"):
        assert cs.meta["wall_seconds"] > 0 and cs.meta["peak_memory_mb"] > 0
    lock = yaml.safe_load((ROOT / "dvc.lock").read_text())["stages"][f"condense@{name}"]
    outs = {o["path"]: o["md5"] for o in lock["outs"]}
    assert hashlib.md5((ROOT / "data/condensed" / f"{name}.pt").read_bytes()).hexdigest() == outs[f"data/condensed/{name}.pt"]


def test_dsa_at_ipc_10_reaches_the_profile_target():
    metrics = json.loads((ROOT / "results/condense/dsa_ipc10.json").read_text())
    assert metrics["accuracy_mean"] >= 80.0


@pytest.mark.parametrize("name", sorted(PROFILE.distill))
def test_distill_record_is_what_its_entry_says(name):
    from cdemi.distill.stage import config_hash

    run = PROFILE.distill[name]
    rec = json.loads((ROOT / "results/distill" / f"{name}.json").read_text())
    assert rec["format"] == "cdemi-run-v1" and rec["name"] == name and rec["variant"] == run.variant
    assert rec["config"] == run.model_dump() and rec["config_hash"] == config_hash(run)  # today's parameters
    teacher = json.loads((ROOT / run.teacher).with_suffix(".json").read_text())
    assert rec["teacher_sha256"] == teacher["sha256"]
    if run.transfer:
        assert rec["transfer"]["sha256"] == json.loads((ROOT / run.transfer).with_suffix(".json").read_text())["sha256"]
    assert len(rec["curve"]) == run.epochs
    if isinstance(run, params.StudyRun):  # its curve on the validation split, the test set read once
        assert all("validation_accuracy" in r for r in rec["curve"])
        assert [i for i, r in enumerate(rec["curve"]) if "test_accuracy" in r] == [run.epochs - 1]
    accs = [r["test_accuracy"] for r in rec["curve"] if "test_accuracy" in r]
    assert rec["final_accuracy"] == rec["curve"][-1]["test_accuracy"] and rec["best_accuracy"] == max(accs)
    assert rec["curve"][-1]["test_images"] == 10000  # the final accuracy is on the whole test set
    if run.host:  # every host run carries its diagnostics, and a guided one its discriminator numbers
        assert all("teacher_accuracy" in r["diagnostics"] for r in rec["curve"])
        assert all(("guidance" in r) == (run.guidance is not None) for r in rec["curve"])
    samples = safe_torch_load(ROOT / "results/distill" / f"{name}.samples.pt", "run samples")
    assert samples["config_hash"] == rec["config_hash"] and samples["images"].dtype == torch.uint8
    assert len(samples["images"]) == len(samples["targets"]) == (min(128, rec["images_synthesised"]) if run.host else 0)


def test_no_run_record_outlives_its_entry():
    assert {p.stem for p in (ROOT / "results/distill").glob("*.json")} == set(PROFILE.distill)
    assert {p.name.removesuffix(".samples.pt") for p in (ROOT / "results/distill").glob("*.samples.pt")} == set(PROFILE.distill)


def test_no_lock_entry_outlives_its_stage():
    """``dvc.lock`` holds only the stages ``dvc.yaml`` defines today, as DVC expands them (each ``foreach``
    stage once per entry of its section of ``params.yaml``), so a renamed or removed run leaves no entry behind."""
    from cdemi.tools.regenerate import stages

    defined = set(stages(ROOT, ("",)))
    locked = set(yaml.safe_load((ROOT / "dvc.lock").read_text())["stages"])
    assert not locked - defined, f"dvc.lock entries without a stage: {sorted(locked - defined)}"
