"""Runs carried over between sittings (``cdemi.tools.carry``), end to end on a throw-away root.

A tiny Fast run on scikit-learn's digits is started through ``carry.run`` as the tool starts it (a
``python -m cdemi.distill`` process on ``results/carried/params.yaml``, state beside its record),
started again over its finished state (it resumes at the end, the record unchanged), and its segments
are marked as a sitting marks them before committing the state; a state older than its segments is
refused.  A convergence-study entry (under ``study``) is carried the same way.
"""
from __future__ import annotations

import json

import pytest
import yaml

from cdemi.models.checkpoint import save_classifier
from cdemi.params import ParamsError
from cdemi.tools import carry

INTEL = {"cpu": "Intel Xeon", "cpu_capability": "AVX512", "cpu_model": "family 6 model 207 stepping 2",
         "cpu_flags": "86d9ce9c09e4"}
AMD = {"cpu": "AMD EPYC", "cpu_capability": "AVX2", "cpu_model": "family 25 model 17 stepping 1",
       "cpu_flags": "fb86c92f4654"}


def _write_profile(root, profile):
    (root / carry.CARRIED / "params.yaml").write_text(yaml.safe_dump(profile))


@pytest.fixture
def root(tmp_path, digits_teacher):
    save_classifier(tmp_path / "teacher.pt", digits_teacher, "resnet18",
                    {"num_classes": 10, "in_channels": 1, "width": 0.25}, "digits", test_accuracy=96.0)
    entry = {"teacher": str(tmp_path / "teacher.pt"), "teacher_arch": "resnet18",
             "student": {"arch": "resnet18", "width": 0.0625}, "host": "fast",
             "host_params": {"batch_size": 16, "g_steps": 1, "nz": 8, "ngf": 4, "warmup": 0},
             "epochs": 10, "kd_steps": 1, "batch_size": 16, "temperature": 4.0,
             "validation_per_class": 5, "curve_test_per_class": None}
    (tmp_path / carry.CARRIED).mkdir(parents=True)
    _write_profile(tmp_path, {"profile": "smoke", "data": {"dataset": "digits"}, "distill": {"r": entry}})
    return tmp_path


def test_a_carried_run_is_resumed_and_its_machines_are_marked(root, tally):
    assert carry.run(root, ["r"], poll=0.2) == 0
    state = root / carry.CARRIED / "r.state"
    record = json.loads((root / carry.CARRIED / "r.json").read_text())
    epoch, accuracy = carry.progress(state)
    assert epoch == 10 and accuracy == record["curve"][-1]["validation_accuracy"]

    first = carry.mark(root, machine=INTEL)
    assert first["r"]["from_epoch"] == 0 and first["r"]["to_epoch"] == 10 and first["r"]["machine"] == INTEL
    assert carry.mark(root, machine=AMD) == {}  # nothing moved on: no segment for this machine
    assert carry.read_segments(root) == {"r": [first["r"]]}
    [row] = carry.status(root)
    assert row == {"run": "r", "epoch": 10, "epochs": 10, "validation": accuracy,
                   "machines": ["Intel Xeon (family 6 model 207), AVX512"]}

    # a second run over the finished state resumes at its end: the record is rewritten, the state kept
    assert carry.run(root, ["r"], poll=0.2) == 0
    assert json.loads((root / carry.CARRIED / "r.json").read_text())["final_accuracy"] == record["final_accuracy"]
    assert carry.progress(state)[0] == 10

    # a state older than its segments (replaced by an earlier one) is refused before anything is written
    segments = root / carry.CARRIED / carry.SEGMENTS
    claimed = {"r": [{"machine": AMD, "from_epoch": 0, "to_epoch": 12, "marked": "2026-01-01T00:00:00+00:00"}]}
    segments.write_text(json.dumps(claimed))
    before = segments.read_bytes()
    tally.bad_input("carried state older than its segments")
    with pytest.raises(ValueError, match=r"r.state ends at epoch 10 but segments.json says epoch 12 was reached: "
                                         r"restore the newer state"):
        carry.mark(root, machine=INTEL)
    assert tally.kept(segments, before)


def test_an_unknown_run_is_refused_before_any_run_starts(root, tally):
    tally.bad_input("parameter value of a wrong type, name or range")
    with pytest.raises(ParamsError, match="nope"):
        carry.run(root, ["r", "nope"], poll=0.2)
    assert not list((root / carry.CARRIED).glob("*.log"))


def test_a_missing_carried_profile_names_the_fix(tmp_path, tally):
    tally.bad_input("unreadable or missing profile file")
    with pytest.raises(FileNotFoundError, match="copy params.yaml there and add the entries to carry"):
        carry.run(tmp_path, ["r"])


def test_a_study_entry_is_carried_under_its_section(root):
    profile = yaml.safe_load((root / carry.CARRIED / "params.yaml").read_text())
    profile["study"] = {"s": profile["distill"].pop("r")}
    _write_profile(root, profile)
    assert carry.section_of(root, "s") == "study" and carry.epochs_of(root, "s") == 10
    assert carry.run(root, ["s"], poll=0.2) == 0
    record = json.loads((root / carry.CARRIED / "s.json").read_text())
    assert record["name"] == "s" and len(record["curve"]) == 10
    assert carry.progress(root / carry.CARRIED / "s.state")[0] == 10


def test_an_entry_in_both_sections_is_refused(root, tally):
    profile = yaml.safe_load((root / carry.CARRIED / "params.yaml").read_text())
    profile["study"] = {"r": profile["distill"]["r"]}
    _write_profile(root, profile)
    tally.bad_input("parameter value of a wrong type, name or range")
    with pytest.raises(ParamsError, match="'r' is an entry of both distill and study; rename one"):
        carry.run(root, ["r"], poll=0.2)
    assert not list((root / carry.CARRIED).glob("*.log"))
