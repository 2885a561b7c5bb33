"""The reproduction check: a fresh clone reruns a slice of the grid and matches the committed results."""
import json

import pytest
import torch

from pathlib import Path

from cdemi.tools import recheck

ROOT = Path(__file__).resolve().parents[2]


def test_measured_fields_are_ignored_and_results_are_not():
    ours = {"final_accuracy": 61.2, "kd_seconds": 30.1, "curve": [{"test_accuracy": 50.0, "synthesis_seconds": 2.0}]}
    same = {"final_accuracy": 61.2, "kd_seconds": 99.0, "curve": [{"test_accuracy": 50.0, "synthesis_seconds": 7.5}]}
    assert recheck.json_differences(ours, same) == []
    moved = {"final_accuracy": 61.2, "kd_seconds": 30.1, "curve": [{"test_accuracy": 50.01, "synthesis_seconds": 2.0}]}
    assert recheck.json_differences(ours, moved) == [".curve[0].test_accuracy: 50.0 vs 50.01"]
    assert recheck.json_differences(ours, {**ours, "seed": 1}) == [".seed: present on one side only"]


def test_tensor_files_must_agree_bitwise(tmp_path):
    a = {"images": torch.zeros(2, 1, 4, 4, dtype=torch.uint8), "run": "x"}
    b = {"images": a["images"].clone(), "run": "x"}
    torch.save(a, tmp_path / "a.pt")
    torch.save(b, tmp_path / "b.pt")
    assert recheck.compare(tmp_path / "a.pt", tmp_path / "b.pt") == []
    b["images"][0, 0, 0, 0] = 1
    torch.save(b, tmp_path / "b.pt")
    assert recheck.compare(tmp_path / "a.pt", tmp_path / "b.pt") == [".images: tensors differ"]
    assert recheck.compare(tmp_path / "missing.pt", tmp_path / "b.pt") == ["not written by the rerun"]


def test_an_unknown_stage_is_refused_before_any_run(tmp_path):
    (tmp_path / "dvc.lock").write_text("schema: '2.0'\nstages: {}\n")
    with pytest.raises(KeyError, match="not in dvc.lock"):
        recheck.stage_outputs(tmp_path, "distill@nothing")


# one KD-only run and one model-inversion run of the committed grid, rerun from scratch in a fresh clone: two
# of the grid's short runs (a converged run takes from 30 min to over 2 hours, beyond the suite's budget; a
# cell of this slice that is rerun at its converged budget must be swapped for one still short)
SLICE = ["distill@kd_k10_mnv2_s0", "distill@predfkd_plain_mnv2_s0"]


def test_rounding_explains_numbers_and_nothing_else():
    diffs = [".curve[0].test_accuracy: 50.0 vs 50.01", ".final_accuracy: 48.58 vs 59.97", ".images: tensors differ",
             ".loss: 1e-05 vs -2.5E+03"]
    assert recheck.beyond_rounding(diffs) == []
    structural = [".seed: present on one side only", ".curve: 5 vs 4 items", ".host: 'fast' vs 'cmi'",
                  ".images: (2, 1, 4, 4) torch.uint8 vs (3, 1, 4, 4) torch.uint8"]
    assert recheck.beyond_rounding(diffs + structural) == structural


def test_the_slice_is_still_short():
    """A slice cell rerun at its converged budget would add half an hour or more to the suite."""
    for stage in SLICE:
        record = json.loads((ROOT / "results/distill" / f"{stage.split('@')[1]}.json").read_text())
        seconds = record["kd_seconds"] + record["synthesis_seconds"]
        assert seconds < 300, f"{stage} took {seconds:.0f} s when committed: swap it for a cell still at a short budget"


def test_a_fresh_clone_reproduces_a_slice_of_the_grid(fmnist_root):
    """Bitwise where the committed records were made on this kind of CPU; elsewhere everything but the
    numbers that rounding moves (configuration, hashes, shapes, which fields exist) must still agree."""
    report = recheck.recheck(SLICE, root=ROOT)
    assert set(report) == set(SLICE)
    for stage, diffs in report.items():
        if recheck.made_here(ROOT, stage):
            assert diffs == [], json.dumps(report, indent=1)
        else:
            assert recheck.beyond_rounding(diffs) == [], json.dumps(report, indent=1)
