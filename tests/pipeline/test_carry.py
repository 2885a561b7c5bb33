"""Runs carried over between sittings (``cdemi.tools.carry``), end to end on a throw-away root.

A tiny Fast run on scikit-learn's digits is started through ``carry.run`` as the tool starts it (a
``python -m cdemi.distill`` process on ``results/carried/params.yaml``, state beside its record),
started again over its finished state (it resumes at the end, the record unchanged), and its segments
are marked as a sitting marks them before committing the state; a state older than its segments is
refused.  A convergence-study entry (under ``study``) is carried the same way.  A finished run lands: its
entry moves into ``params.yaml`` (text edits checked on small profiles), its stage writes the record from
the carried state and its segments move to the landed runs' file; a run short of its last epoch is refused
first.
"""
from __future__ import annotations

import copy
import json
import os
import subprocess
import sys

import pytest
import yaml

from cdemi import runtime
from cdemi.models.checkpoint import save_classifier
from cdemi.params import ParamsError
from cdemi.report.cross_cpu import machine_kind
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
                   "machines": "Intel Xeon (family 6 model 207), AVX512"}

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
    assert carry._entry(root, "s")[0] == "study" and carry.epochs_of(root, "s") == 10
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


PROFILE = """profile: smoke
distill:
  # the first entry
  a:
    seed: 0
  b:
    seed: 1
study:
  c:
    seed: 2
claims:
  tolerance: 1
"""


def test_a_landed_entry_replaces_the_profile_s_keys_and_keeps_its_comments():
    carried = PROFILE.replace("  b:\n    seed: 1\n", "  # carried\n  b:\n    seed: 1\n    epochs: 9\n")
    landed = carry.landed_profile(PROFILE, carried, "distill", "b")
    assert landed == PROFILE.replace("    seed: 1\n", "    seed: 1\n    epochs: 9\n")


def test_a_new_entry_lands_with_its_comments_after_the_entry_before_it():
    carried = PROFILE.replace("  c:\n    seed: 2\n", "  c:\n    seed: 2\n  # its check\n  d:\n    seed: 3\n")
    profile = PROFILE.replace("  c:\n    seed: 2\n", "  c:\n    seed: 2\n  e:\n    seed: 4\n")
    landed = carry.landed_profile(profile, carried, "study", "d")
    assert landed == profile.replace("    seed: 2\n", "    seed: 2\n  # its check\n  d:\n    seed: 3\n")
    first = carry.landed_profile(PROFILE, "distill:\n  n:\n    seed: 5\n", "distill", "n")
    assert first == PROFILE.replace("distill:\n", "distill:\n  n:\n    seed: 5\n")
    with pytest.raises(ParamsError, match="no entry '  x:' under 'distill:'"):
        carry.landed_profile(PROFILE, PROFILE, "distill", "x")


def _distill_stage(root, stage):
    """The ``distill`` stage's command for one entry, as DVC runs it (without its report notebook)."""
    section, name = stage.split("@")
    subprocess.run([sys.executable, "-m", "cdemi.distill", "params.yaml", name, f"results/{section}/{name}.json",
                    "--section", section, "--no-progress"], cwd=root, check=True,
                   env=dict(os.environ, OMP_NUM_THREADS="1"))


def test_a_finished_run_lands_in_params_yaml_and_its_record(root, tally):
    carried = yaml.safe_load((root / carry.CARRIED / "params.yaml").read_text())
    other = {**copy.deepcopy(carried["distill"]["r"]), "seed": 7}
    profile = {**carried, "distill": {"r": {**copy.deepcopy(carried["distill"]["r"]), "epochs": 20}, "k": other}}
    (root / "params.yaml").write_text(yaml.safe_dump(profile, sort_keys=False))
    assert carry.run(root, ["r"], poll=0.2) == 0
    finished = json.loads((root / carry.CARRIED / "r.json").read_text())

    # a run short of its last epoch is refused before anything is written
    _write_profile(root, {**carried, "distill": {"r": {**carried["distill"]["r"], "epochs": 12}}})
    before = (root / "params.yaml").read_bytes()
    tally.bad_input("carried run landed before its last epoch")
    with pytest.raises(ValueError, match=r"r has reached epoch 10 of 12: resume it"):
        carry.land(root, "r", repro=_distill_stage)
    assert tally.kept(root / "params.yaml", before) and not (root / "results" / "distill").exists()

    # an entry whose lines hold an anchor another entry refers to is left to be moved by hand
    _write_profile(root, carried)
    shared = copy.deepcopy(profile)
    shared["distill"]["k"]["student"] = shared["distill"]["r"]["student"]  # dumped as an anchor and an alias
    (root / "params.yaml").write_text(yaml.safe_dump(shared, sort_keys=False))
    before = (root / "params.yaml").read_bytes()
    tally.bad_input("carried entry that cannot land as carried")
    with pytest.raises(ParamsError, match="would not be valid YAML with r landed .*: move the entry by hand"):
        carry.land(root, "r", repro=_distill_stage)
    assert tally.kept(root / "params.yaml", before) and not (root / "results" / "distill").exists()
    (root / "params.yaml").write_text(yaml.safe_dump(profile, sort_keys=False))

    state = (root / carry.CARRIED / "r.state").read_bytes()
    staged = []

    def repro(where, stage):  # the stage starts from the carried state, copied beside its record
        staged.append((root / "results" / "distill" / "r.state").read_bytes() == state)
        _distill_stage(where, stage)

    record = carry.land(root, "r", repro=repro)
    assert staged == [True] and carry.progress(root / "results" / "distill" / "r.state")[0] == 10
    landed = yaml.safe_load((root / "params.yaml").read_text())
    assert landed["distill"] == {"r": carried["distill"]["r"], "k": profile["distill"]["k"]}
    result = json.loads(record.read_text())
    assert record == root / "results" / "distill" / "r.json" and len(result["curve"]) == 10
    assert result["final_accuracy"] == finished["final_accuracy"] and result["curve"] == finished["curve"]
    assert sorted(p.name for p in (root / carry.CARRIED).iterdir()) == ["params.yaml", "segments.json"]
    # its segments moved to the landed runs' file, which the cross-CPU table reads; status still lists it
    assert carry.read_segments(root) == {}
    landed_segments = json.loads((root / carry.LANDED_SEGMENTS).read_text())
    assert [(s["from_epoch"], s["to_epoch"]) for s in landed_segments["r"]] == [(0, 10)]
    assert [(row["run"], row["epoch"], row["machines"]) for row in carry.status(root)] == [
        ("r", None, machine_kind(runtime.machine()))]
    with pytest.raises(FileNotFoundError, match="nothing to land"):
        carry.land(root, "r", repro=_distill_stage)

