"""Pairs of run records of one configuration made on different CPUs, on records shaped as the distill
stage writes them (a committed grid record, copied and changed where a rerun would differ), and the
segments of runs carried between sittings as the carry tool writes them."""
import copy
import json
from pathlib import Path

import pytest

from cdemi.report import cross_cpu

ROOT = Path(__file__).resolve().parents[2]
GRID_RECORD = ROOT / "results/distill/kd_dm10_mnv2_s0.json"
AVX2 = {"cpu": "AMD EPYC", "cpu_capability": "AVX2", "cpu_model": "family 25 model 17 stepping 1",
        "cpu_flags": "fb86c92f4654"}


@pytest.fixture
def record():
    return json.loads(GRID_RECORD.read_text())


def rerun(record, test, validation, converged=True, machine=AVX2):
    out = copy.deepcopy(record)
    out.update(final_accuracy=test, validation_accuracy=validation, machine=machine)
    out["convergence"] = {**out["convergence"], "converged": converged}
    return out


def test_machine_kind_names_processor_model_and_instruction_set():
    assert cross_cpu.machine_kind(AVX2) == "AMD EPYC (family 25 model 17), AVX2"
    assert cross_cpu.machine_kind({"cpu": "arm64", "cpu_capability": "DEFAULT"}) == "arm64, DEFAULT"


def test_a_rerun_elsewhere_is_paired_with_its_grid_record(record):
    other = rerun(record, record["final_accuracy"] - 1.25, record["validation_accuracy"] + 0.5)
    pairs = cross_cpu.same_config_pairs({"grid/kd": record, "rerun/kd.avx2": other})
    assert list(pairs.columns) == cross_cpu.COLUMNS and len(pairs) == 1
    row = pairs.iloc[0]
    assert row["run"] == record["name"] and row["record A"] == "grid/kd" and row["record B"] == "rerun/kd.avx2"
    assert not row["same kind"] and row["CPU B"].endswith("AVX2")
    assert row["|test A - test B|"] == 1.25 and row["|validation A - validation B|"] == 0.5
    assert row["converged"] == "both"
    text = cross_cpu.findings(pairs)
    assert "1 pair(s) run apart, 0 of them identical" in text and "up to 1.25 test points" in text
    assert "both converged, up to 1.25" in text


INTEL = {"cpu": "Intel(R) Xeon(R) Processor", "cpu_capability": "AVX512", "cpu_flags": "86d9ce9c09e4",
         "cpu_model": "family 6 model 207 stepping 2"}


def segment(machine, start, end, marked):
    return {"machine": machine, "from_epoch": start, "to_epoch": end, "marked": f"2026-12-06T0{marked}:00:00+00:00"}


def test_carried_runs_are_labelled_by_their_segments_and_a_resumed_pair_shares_its_first_epochs(record):
    epochs = record["config"]["epochs"]
    first = [segment(INTEL, 0, 40, 1), segment(INTEL, 40, 100, 2)]  # one run, saved at epoch 100
    finished_here = rerun(record, record["final_accuracy"] + 0.5, record["validation_accuracy"], machine=INTEL)
    finished_there = rerun(record, record["final_accuracy"], record["validation_accuracy"])  # on AVX2
    finished_there["name"] = "kd_twin"  # another entry of the same configuration
    segments = {record["name"]: [*first, segment(INTEL, 100, epochs, 3)],
                "kd_twin": [*first, segment(AVX2, 100, 120, 4), segment(AVX2, 120, epochs, 5)]}
    pairs = cross_cpu.same_config_pairs({"study/kd": finished_here, "grid/kd_twin": finished_there,
                                         "rerun/kd.avx2": rerun(record, 60.0, 61.0)}, segments)
    assert len(pairs) == 3
    resumed = pairs.set_index(["record A", "record B"]).loc[("grid/kd_twin", "study/kd")]
    assert resumed["shared epochs"] == 100 and not resumed["same kind"]
    assert resumed["CPU A"] == ("Intel(R) Xeon(R) Processor (family 6 model 207), AVX512 for epochs 0-100; "
                                f"AMD EPYC (family 25 model 17), AVX2 for epochs 100-{epochs}")
    assert resumed["CPU B"] == "Intel(R) Xeon(R) Processor (family 6 model 207), AVX512"
    # the rerun of the same name on another machine does not take that name's segments; it shares nothing
    assert (pairs.loc[pairs["record A"] == "rerun/kd.avx2", "shared epochs"] == 0).all()
    assert set(pairs.loc[pairs["record A"] == "rerun/kd.avx2", "CPU A"]) == {"AMD EPYC (family 25 model 17), AVX2"}
    text = cross_cpu.findings(pairs)
    assert "Across kinds, 2 pair(s) run apart" in text
    assert text.endswith("1 pair(s) across kinds share their first epochs (one run resumed from the other's saved "
                         "state) and repeat only the rest: up to 0.50 test points apart "
                         "(kd_twin, after 100 shared epochs).")


def test_load_segments_reads_the_landed_file_and_refuses_a_corrupt_one(tmp_path, tally):
    path = tmp_path / "segments.json"
    assert cross_cpu.load_segments(path) == {}  # no carried run has landed yet
    written = {"r": [segment(INTEL, 0, 10, 1)]}
    path.write_text(json.dumps(written, indent=2))
    assert cross_cpu.load_segments(path) == written
    path.write_text('{"r": ')
    tally.bad_input("corrupt segments file", 2)
    with pytest.raises(ValueError, match="segments.json is not valid JSON .*git checkout"):
        cross_cpu.load_segments(path)
    path.write_text('["r"]')
    with pytest.raises(ValueError, match="not a mapping of run names to lists of segments"):
        cross_cpu.load_segments(path)


def test_other_configurations_and_records_without_machine_are_not_paired(record):
    other = rerun(record, 70.0, 71.0)
    other["config_hash"] = "0" * 16  # another entry
    old = copy.deepcopy(record)
    del old["machine"]  # a record older than the machine field: nothing says where it ran
    assert cross_cpu.same_config_pairs({"grid/kd": record, "rerun/x": other, "study/old": old}).empty
    assert cross_cpu.findings(cross_cpu.same_config_pairs({})) == "No configuration has been run twice yet."


def test_identical_repeats_within_a_kind_and_an_unconverged_pair_across_kinds(record):
    same = copy.deepcopy(record)
    moved = rerun(record, 60.0, 61.0, converged=False)
    pairs = cross_cpu.same_config_pairs({"grid/kd": record, "study/kd": same, "rerun/kd.avx2": moved})
    assert len(pairs) == 3 and int(pairs["same kind"].sum()) == 1
    assert pairs.loc[pairs["same kind"], "|test A - test B|"].item() == 0
    assert set(pairs.loc[~pairs["same kind"], "converged"]) == {"A", "B"}
    text = cross_cpu.findings(pairs)
    assert text.startswith("On one kind of CPU, 1 of 1 repeated configurations ended at the same accuracies.")
    assert "no such pair has both runs converged" in text


def test_load_run_records_reads_folders_and_refuses_a_corrupt_record(tmp_path, record):
    (tmp_path / "grid").mkdir()
    (tmp_path / "grid" / "kd.json").write_text(json.dumps(record))
    (tmp_path / "grid" / "summary.json").write_text(json.dumps({"not": "a run record"}))
    loaded = cross_cpu.load_run_records({"grid": tmp_path / "grid", "rerun": tmp_path / "absent"})
    assert list(loaded) == ["grid/kd"]
    (tmp_path / "grid" / "bad.json").write_text('{"config_hash": ')
    with pytest.raises(ValueError, match="bad.json is not a valid run record.*rerun"):
        cross_cpu.load_run_records({"grid": tmp_path / "grid"})
