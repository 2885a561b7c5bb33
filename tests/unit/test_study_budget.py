"""The grid judged by the convergence study's budget: which runs count as converged, how the tables
mark the others and why the claims give them no verdict."""
import json

import pandas as pd
import pytest

from cdemi.report import claims, grid, study_budget
from cdemi.report.runs import budget_key
from cdemi.report.tables import save_table_with_numbers

LEVEL = 0.05


ENTRY = {"teacher": "data/models/teacher.pt", "student": {"arch": "mobilenetv2", "width": 0.25}, "kd_steps": 50,
         "batch_size": 64}
PUBLIC_FAST = {"host": "fast"}  # every Fast setting at its published default
PROFILE_FAST = {"host": "fast", "host_params": {"batch_size": 64, "g_steps": 10, "nz": 64, "ngf": 16, "warmup": 1}}


def _config(variant, epochs, host=PUBLIC_FAST, **extra):
    """A run record's ``config`` as the study or the grid writes it (a validated entry's fields)."""
    out = {**ENTRY, "epochs": epochs, **extra}
    if variant == "kd-only":
        return {**out, "transfer": "data/condensed/dm_ipc10.pt"}
    out.update(host)
    if variant != "plain":
        out["transfer"] = "data/condensed/dm_ipc10.pt"
    if variant == "guided":
        out.update(variant="guided", guidance={})
    return out


def _runs(host, variant, finals, kd_steps, method="dm", ipc=10, settings=PUBLIC_FAST):
    """Grid records of one cell, one per final accuracy, each taking ``kd_steps`` KD steps."""
    warmup = 0 if host == "none" else 20 if settings is PUBLIC_FAST else 1
    config = _config(variant, kd_steps // 50 + warmup, settings if host != "none" else None)
    return [{"name": f"{host}_{variant}_s{s}", "host": host, "variant": variant, "teacher": "resnet34",
             "student": "mobilenetv2", "transfer_method": "" if variant == "plain" else method,
             "transfer_ipc": 0 if variant == "plain" else ipc, "seed": s, "final": f, "kd_steps": kd_steps,
             "config": {**config, "seed": s}} for s, f in enumerate(finals)]


def _study(tmp_path, guided_check_gain: float):
    """Run the convergence report on a small study as its notebook does and write its budget file:
    Fast at the published settings, plain and guided to 400 KD steps with a check at 200 each (plain's
    lands 0.5 below, guided's ``guided_check_gain`` below), and KD alone flat from its 4th epoch (the
    plateau rule judges 10 epochs at the least: 500 KD steps)."""
    from cdemi import convergence as verdicts_of
    from cdemi.report import convergence

    def run(name, host, variant, accs, config):
        return {"name": name, "host": host, "variant": variant, "seed": 0, "final": accs[-1], "config": config,
                "curve": [{"epoch": e + 1, "validation_accuracy": a} for e, a in enumerate(accs)]}

    climbing = [50.0] * 20 + [60.0 + e for e in range(8)]  # warm-up, then still climbing at the end
    rows = [run("plain", "fast", "plain", climbing, _config("plain", 28)),
            run("plain_half", "fast", "plain", [50.0] * 20 + [60.0 + e for e in range(3)] + [66.5],
                _config("plain", 24)),
            run("guided", "fast", "guided", climbing, _config("guided", 28)),
            run("guided_half", "fast", "guided", [50.0] * 20 + [60.0] * 3 + [67.0 - guided_check_gain],
                _config("guided", 24)),
            run("kd", "none", "kd-only", [60.0 + min(e, 3) for e in range(10)], _config("kd-only", 10))]
    records = pd.DataFrame(rows)
    configs = dict(zip(records["name"], records["config"]))
    study_curves = convergence.curves(records, configs)
    verdicts = {n: verdicts_of.verdict([r["validation_accuracy"] for r in c])
                for n, c in zip(records["name"], records["curve"])}
    cells = convergence.summary(records, study_curves, verdicts)
    checks = convergence.budget_checks(cells)
    path = tmp_path / "convergence.json"
    path.write_text(json.dumps({"chosen_kd_steps": None, "kd_steps_per_epoch": 50,
                                "budgets": convergence.settled_budgets(study_curves, records, cells, checks, 50),
                                "budget_checks": checks.to_dict(orient="records")}, indent=2))
    return path


def test_a_grid_run_is_converged_at_the_budget_its_host_settings_settled_at(tmp_path):
    budget = study_budget.read(_study(tmp_path, guided_check_gain=0.4))
    assert sorted(budget.budgets.values()) == [200, 500]  # Fast at the public settings: 200; KD alone: its plateau
    grid = pd.DataFrame(_runs("fast", "plain", [90], 200) + _runs("fast", "guided", [91], 150)
                        + _runs("none", "kd-only", [75], 500) + _runs("none", "kd-only", [74], 450)
                        + _runs("fast", "naive", [89], 8000, settings=PROFILE_FAST) + _runs("cmi", "plain", [80], 9000))
    marked = study_budget.mark_converged(grid, budget)
    # at the budget, any variant of the host's settings; 50 short of it; KD alone at and below its own budget;
    # the same host at settings the study has not settled; a host the study has not run, however long
    assert marked["converged"].tolist() == [True, False, True, False, False, False]
    assert "converged" not in grid  # the frame given is left as it was
    assert ("settled so far: 200 KD steps for Fast, public settings and Fast + guidance, public settings; 500 KD "
            "steps for KD alone") in budget.footnote()


def test_a_host_settings_budget_waits_for_every_variant_the_study_ran(tmp_path):
    budget = study_budget.read(_study(tmp_path, guided_check_gain=3.0))  # guided's halved schedule falls short
    fast = [k for k in budget.budgets if json.loads(k)["host"] == "fast"]
    assert len(fast) == 1 and budget.budgets[fast[0]] is None
    marked = study_budget.mark_converged(pd.DataFrame(_runs("fast", "plain", [90, 91], 10 ** 6)), budget)
    assert not marked["converged"].any()
    assert "(settled so far: 500 KD steps for KD alone)" in budget.footnote()


@pytest.mark.parametrize("content,message", [
    ("{not json", "not valid JSON"),
    (json.dumps({"chosen_kd_steps": 8000}), "holds no study budgets"),             # written before budgets existed
    (json.dumps({"budgets": [{"host": "fast", "host_settings": {}, "kd_settings": {}, "cells": [],
                              "kd_steps": "8000"}]}), "holds no study budgets"),
    (json.dumps({"budgets": [{"host": "fast", "host_settings": {}, "kd_settings": {}, "cells": [],
                              "kd_steps": 0}]}), "holds no study budgets"),
    (json.dumps({"budgets": [{"host": "fast", "kd_settings": {}, "cells": [], "kd_steps": 100}]}),
     "holds no study budgets")])
def test_a_budget_file_that_is_not_one_is_refused_with_the_fix(tmp_path, content, message):
    path = tmp_path / "convergence.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=message) as err:
        study_budget.read(path)
    assert "dvc repro convergence" in str(err.value)
    with pytest.raises(FileNotFoundError, match="dvc repro convergence"):
        study_budget.read(tmp_path / "missing.json")
    (tmp_path / "empty.json").write_text(json.dumps({"budgets": []}))  # a study without cells: nothing settled
    assert study_budget.read(tmp_path / "empty.json") == study_budget.StudyBudget()


def _settled(kd_steps):
    """A study that settled Fast at the published settings and KD alone, both at ``kd_steps``."""
    cells = {budget_key("fast", _config("plain", 1)): ["Fast, public settings"],
             budget_key("none", _config("kd-only", 1)): ["KD alone"]}
    return study_budget.StudyBudget({k: kd_steps for k in cells}, cells)


def test_the_tables_mark_cells_with_a_run_that_has_not_converged(tmp_path):
    budget = _settled(8000)
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
    assert "8,000 KD steps for Fast, public settings; 8,000 KD steps for KD alone" in paths[2].read_text()  # caption
    # without the converged column (records not judged) nothing is marked
    plain_table, _ = grid.main_table(records.drop(columns="converged"), refs)
    assert "†" not in "".join(plain_table.fillna("").to_numpy().ravel())


def test_a_side_that_has_not_converged_gives_no_verdict():
    rows = _runs("fast", "guided", [80, 81, 82], 8000) + _runs("fast", "plain", [60, 61, 62], 8000)
    converged = study_budget.mark_converged(pd.DataFrame(rows), _settled(8000))
    match = ("host", "teacher", "student")
    guided = {"variant": "guided", "transfer_method": "dm", "transfer_ipc": 10}
    ev = claims.compare(converged, "x", guided, {"variant": "plain"}, match, LEVEL)
    assert ev.verdict == "holds"
    short = study_budget.mark_converged(pd.DataFrame(rows), _settled(16000))
    ev = claims.compare(short, "x", guided, {"variant": "plain"}, match, LEVEL)
    (group,) = ev.groups
    assert group["p"] < LEVEL and group["verdict"] == "not converged" and ev.verdict == "not converged"
    # before its seed count: more seeds at a budget too short would still give no verdict
    one = study_budget.mark_converged(pd.DataFrame(rows[:1] + rows[3:]), _settled(16000))
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


def test_a_cell_run_at_two_budgets_shows_one_in_the_tables():
    """KD alone at 8,000 KD steps (beside Fast) and at 16,000 (to face a host settled there): a table
    reads the fewest KD steps at which every run of the cell converged, else the most."""
    kd = _runs("none", "kd-only", [74, 75, 76], 8000) + _runs("none", "kd-only", [78, 79, 80], 16000)
    rows = pd.DataFrame(kd + _runs("fast", "guided", [90, 91, 92], 8000))
    refs = {"teacher": ("resnet34", 93.9), "scratch": {}, "kd_full": {}}
    row, col = "KD on DM IPC 10 alone", "ResNet-34 → MobileNetV2"
    for settled, expected in ((8000, "75.00 ± 1.00 (3)"), (16000, "79.00 ± 1.00 (3)"), (32000, "79.00 ± 1.00 (3) †")):
        records = study_budget.one_budget_per_cell(study_budget.mark_converged(rows, _settled(settled)))
        table, _ = grid.main_table(records, refs)
        assert table.loc[row, col] == expected, settled
        assert table.loc["Fast + guidance", col].startswith("91.00 ± 1.00 (3)")  # a cell at one budget keeps it
    kept = study_budget.one_budget_per_cell(study_budget.mark_converged(rows, _settled(8000)))
    assert sorted(kept["kd_steps"]) == [8000] * 6 and len(kept) == 6
    with pytest.raises(ValueError, match="converged.*mark_converged"):
        study_budget.one_budget_per_cell(rows)


def test_the_claims_face_each_side_with_the_baseline_at_its_own_kd_steps():
    """Claim 3 with KD alone at two budgets: Fast at 8,000 KD steps against KD alone at 8,000, a host at
    16,000 against KD alone at 16,000; a host at a budget KD alone has no runs at reads unequal KD steps."""
    kd = _runs("none", "kd-only", [74, 75, 76], 8000) + _runs("none", "kd-only", [78, 79, 80], 16000)
    longer = [{**r, "host": "deepinversion"} for r in _runs("fast", "guided", [95, 96, 97], 16000)]
    shorter = [{**r, "host": "cmi"} for r in _runs("fast", "guided", [85, 86, 87], 4000)]
    records = pd.DataFrame(kd + _runs("fast", "guided", [90, 91, 92], 8000) + longer + shorter).assign(converged=True)
    guided = {"variant": "guided", "transfer_method": "dm", "transfer_ipc": 10}
    kd_only = {"variant": "kd-only", "transfer_method": "dm", "transfer_ipc": 10}
    ev = claims.compare(records, "x", guided, kd_only, ("teacher", "student"), LEVEL, split=("host",))
    groups = {g["match"]["host"]: g for g in ev.groups}
    assert (groups["fast"]["kd_steps_baseline"], groups["fast"]["d"]) == (8000, pytest.approx(16))
    assert (groups["deepinversion"]["kd_steps_baseline"], groups["deepinversion"]["d"]) == (16000, pytest.approx(17))
    assert groups["fast"]["verdict"] == groups["deepinversion"]["verdict"] == "holds"
    assert groups["cmi"]["kd_steps_baseline"] is None and groups["cmi"]["verdict"] == "unequal KD steps"
