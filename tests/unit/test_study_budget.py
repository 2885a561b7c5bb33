"""The grid judged by the convergence study's budget: which runs count as converged, how the tables
mark the others and why the claims give them no verdict."""
import json

import pandas as pd
import pytest

from cdemi.report import claims, grid, study_budget
from cdemi.report.tables import save_table_with_numbers

LEVEL = 0.05


def _runs(host, variant, finals, kd_steps, method="dm", ipc=10):
    return [{"name": f"{host}_{variant}_s{s}", "host": host, "variant": variant, "teacher": "resnet34",
             "student": "mobilenetv2", "transfer_method": "" if variant == "plain" else method,
             "transfer_ipc": 0 if variant == "plain" else ipc, "seed": s, "final": f, "kd_steps": kd_steps}
            for s, f in enumerate(finals)]


def _budget_file(tmp_path, chosen, hosts):
    """A budget file shaped as the convergence notebook writes it (every key it writes)."""
    path = tmp_path / "convergence.json"
    path.write_text(json.dumps({"chosen_kd_steps": chosen, "kd_steps_per_epoch": 50, "hosts": hosts,
                                "budget_checks": [{"cell": "Fast", "difference": -0.84, "enough": True,
                                                   "full_kd_steps": 32000, "full_validation_final_mean": 93.22,
                                                   "kd_steps": 8000, "seeds": 1, "validation_final_mean": 92.38}],
                                "cells": {"Fast": {"plateau_kd_steps": None, "converged_seeds": 0, "seeds": 1,
                                                   "at_grid_settings": True}}}, indent=2))
    return path


def test_a_run_is_converged_at_the_studys_budget_for_a_host_it_measured(tmp_path):
    budget = study_budget.read(_budget_file(tmp_path, 8000, ["fast", "none"]))
    assert budget == study_budget.StudyBudget(8000, ("fast", "none"))
    records = pd.DataFrame(_runs("fast", "plain", [90], 8000) + _runs("fast", "guided", [91], 7950)
                           + _runs("none", "kd-only", [75], 8000) + _runs("cmi", "plain", [80], 9000))
    marked = study_budget.mark_converged(records, budget)
    # at the budget; 50 steps short of it; KD alone; a host the study has not measured, however long
    assert marked["converged"].tolist() == [True, False, True, False]
    assert "converged" not in records  # the frame given is left as it was
    text = budget.footnote()
    assert "8,000" in text and "Fast, KD alone" in text


def test_while_the_study_has_chosen_no_budget_no_run_is_converged(tmp_path):
    budget = study_budget.read(_budget_file(tmp_path, None, ["fast", "none"]))
    marked = study_budget.mark_converged(pd.DataFrame(_runs("fast", "plain", [90, 91], 10 ** 6)), budget)
    assert not marked["converged"].any()
    assert "chosen no budget yet" in budget.footnote()


@pytest.mark.parametrize("content,message", [
    ("{not json", "not valid JSON"),
    (json.dumps({"chosen_kd_steps": 8000}), "holds no study budget"),             # written before hosts existed
    (json.dumps({"chosen_kd_steps": "8000", "hosts": ["fast"]}), "holds no study budget"),
    (json.dumps({"chosen_kd_steps": 0, "hosts": ["fast"]}), "holds no study budget"),
    (json.dumps({"chosen_kd_steps": True, "hosts": ["fast"]}), "holds no study budget")])
def test_a_budget_file_that_is_not_one_is_refused_with_the_fix(tmp_path, content, message):
    path = tmp_path / "convergence.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=message) as err:
        study_budget.read(path)
    assert "dvc repro convergence" in str(err.value)
    with pytest.raises(FileNotFoundError, match="dvc repro convergence"):
        study_budget.read(tmp_path / "missing.json")


def test_the_tables_mark_cells_with_a_run_that_has_not_converged(tmp_path):
    budget = study_budget.StudyBudget(8000, ("fast", "none"))
    records = study_budget.mark_converged(pd.DataFrame(
        _runs("fast", "plain", [60, 62, 64], 8000) + _runs("fast", "guided", [72, 74], 8000)
        + _runs("fast", "guided", [76], 100) + _runs("none", "kd-only", [65], 8000)), budget)
    refs = {"teacher": ("resnet34", 93.9), "scratch": {"mobilenetv2": 89.8}, "kd_full": {}}
    table, numbers = grid.main_table(records, refs)
    col = "ResNet-34 → MobileNetV2"
    assert table.loc["Fast", col] == "62.00 ± 2.00 (3)"
    assert table.loc["Fast + guidance", col] == "74.00 ± 2.00 (3) †"  # one of its three runs took 100 KD steps
    assert table.loc["teacher (ResNet-34)", col] == "93.90 (1)"  # a reference row is no run: never marked
    assert numbers.loc[("Fast + guidance", col), "converged"] == False  # noqa: E712 (a cell of an object column)
    assert numbers.loc[("Fast", col), "converged"] == True  # noqa: E712
    assert pd.isna(numbers.loc[("teacher (ResNet-34)", col), "converged"])
    # a gain over plain is converged only where both of its cells are
    t3, n3 = grid.condenser_table(records, {"dm": 80.0})
    assert t3.loc["DM", "gain over Fast plain"].endswith("†") and not n3.loc[("DM", "gain over Fast plain"), "converged"]
    note = study_budget.table_note(numbers, budget)
    assert note == budget.footnote()
    assert study_budget.table_note(numbers[numbers["converged"].ne(False)], budget) == ""
    paths = save_table_with_numbers(table, numbers, tmp_path / "t1", caption="T1", note=note)
    md = paths[1].read_text()
    assert md.rstrip().endswith(note) and "74.00 ± 2.00 (3) †" in md
    assert "not converged: fewer KD steps than the 8,000" in paths[2].read_text()  # the LaTeX caption ends with it
    # without the converged column (records not judged) nothing is marked
    plain_table, _ = grid.main_table(records.drop(columns="converged"), refs)
    assert "†" not in "".join(plain_table.fillna("").to_numpy().ravel())


def test_a_side_that_has_not_converged_gives_no_verdict():
    rows = _runs("fast", "guided", [80, 81, 82], 8000) + _runs("fast", "plain", [60, 61, 62], 8000)
    converged = study_budget.mark_converged(pd.DataFrame(rows), study_budget.StudyBudget(8000, ("fast",)))
    match = ("host", "teacher", "student")
    guided = {"variant": "guided", "transfer_method": "dm", "transfer_ipc": 10}
    ev = claims.compare(converged, "x", guided, {"variant": "plain"}, match, LEVEL)
    assert ev.verdict == "holds"
    short = study_budget.mark_converged(pd.DataFrame(rows), study_budget.StudyBudget(16000, ("fast",)))
    ev = claims.compare(short, "x", guided, {"variant": "plain"}, match, LEVEL)
    (group,) = ev.groups
    assert group["p"] < LEVEL and group["verdict"] == "not converged" and ev.verdict == "not converged"
    # before its seed count: more seeds at a budget too short would still give no verdict
    one = study_budget.mark_converged(pd.DataFrame(rows[:1] + rows[3:]), study_budget.StudyBudget(16000, ("fast",)))
    assert claims.compare(one, "x", guided, {"variant": "plain"}, match, LEVEL).verdict == "not converged"
    # a gain difference over a side that has not converged carries no verdict either
    gains = claims.compare_gains(short, "g", (guided, {"variant": "plain"}), (guided, {"variant": "plain"}),
                                 match, LEVEL)
    assert gains.verdict == "not converged"


def test_not_converged_ranks_between_inconclusive_and_the_other_reasons():
    assert claims.combine(["holds", "not converged"]) == "not converged"
    assert claims.combine(["does not hold", "not converged"]) == "does not hold"
    assert claims.combine(["inconclusive", "not converged"]) == "inconclusive"
    assert claims.combine(["not converged", "too few seeds", "unequal KD steps"]) == "not converged"
