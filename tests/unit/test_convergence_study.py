"""The convergence study's pieces: the validation split, the verdict rule, the loop reading the test set
once, and a study entry's record."""
import json

import pytest
import torch

from cdemi.data.subsets import validation_split
from cdemi.distill import DistillSettings, distill_student
from cdemi.convergence import plateau_epoch, verdict

from ..conftest import tiny_model


def test_the_validation_split_is_class_balanced_and_the_same_in_every_draw(digits_train):
    val, record = validation_split(digits_train, 20, seed=0)
    assert len(val) == record["images"] == 200
    assert torch.bincount(val.labels, minlength=10).tolist() == [20] * 10
    again, record_again = validation_split(digits_train, 20, seed=0)
    assert record_again == record and torch.equal(again.images, val.images)
    other, other_record = validation_split(digits_train, 20, seed=1)
    assert other_record["indices_sha256"] != record["indices_sha256"] and len(record["indices_sha256"]) == 64


def test_the_verdict_rule_on_flat_climbing_falling_and_short_curves():
    flat = [60.0] * 5 + [70.0, 72.0, 74.0, 75.0, 75.5] + [76.0, 76.4, 75.8, 76.1, 76.2, 76.0, 75.9, 76.3, 76.1, 76.0]
    got = verdict(flat)
    assert got["converged"] and got["window_epochs"] == 4 and abs(got["change"]) <= 1
    assert got["last_mean"] == pytest.approx((75.9 + 76.3 + 76.1 + 76.0) / 4)
    assert got["previous_mean"] == pytest.approx((75.8 + 76.1 + 76.2 + 76.0) / 4)
    climbing = [50.0 + 2 * i for i in range(20)]  # +2 points per epoch: the last window is 8 points higher
    assert not verdict(climbing)["converged"] and verdict(climbing)["change"] == pytest.approx(8.0)
    falling = [80.0 - 2 * i for i in range(20)]
    assert not verdict(falling)["converged"]
    with pytest.raises(ValueError, match=r"a curve of 9 epochs is too short for windows of 20%.*at least 10 epochs"):
        verdict([70.0] * 9)
    with pytest.raises(ValueError, match=r"window must lie in \(0, 0.5\]"):
        verdict(flat, window=0.6)
    assert plateau_epoch(climbing) is None
    first = plateau_epoch(flat)
    assert first is not None and 10 <= first <= len(flat)
    assert verdict(flat[:first])["converged"]


def test_with_a_validation_split_the_test_set_is_read_once_at_the_end(digits_teacher, digits_train, digits_test,
                                                                         monkeypatch):
    import cdemi.distill.loop as loop

    val, _ = validation_split(digits_train, 10, seed=0)
    read = []
    real_evaluate = loop.evaluate

    def spy(model, data, *args, **kwargs):
        read.append("test" if data is digits_test else "validation" if data is val else "other")
        return real_evaluate(model, data, *args, **kwargs)

    monkeypatch.setattr(loop, "evaluate", spy)
    settings = DistillSettings(epochs=3, kd_steps=2, batch_size=16, lr=0.05, temperature=4.0, seed=0)
    from cdemi.data.subsets import real_subset

    out = distill_student(digits_teacher, tiny_model(width=0.125), digits_test, settings,
                          transfer=real_subset(digits_train, 2, seed=0).images, validation=val, progress=False)
    assert read == ["validation", "validation", "validation", "test"]
    assert [("validation_accuracy" in r, "test_accuracy" in r) for r in out["curve"]] == \
        [(True, False), (True, False), (True, True)]
    assert out["validation_accuracy"] == out["curve"][-1]["validation_accuracy"]
    assert out["final_accuracy"] == out["curve"][-1]["test_accuracy"]
    with pytest.raises(ValueError, match=r"curve_test_per_class is 5 but a validation split was given"):
        distill_student(digits_teacher, tiny_model(width=0.125), digits_test,
                        settings.model_copy(update={"curve_test_per_class": 5}),
                        transfer=real_subset(digits_train, 2, seed=0).images, validation=val, progress=False)


@pytest.fixture(scope="module")
def study_records(digits_teacher, digits_train, tmp_path_factory):
    """Two seeds of one study entry on digits (10 epochs of 1 KD step), written by the real stage."""
    from cdemi import params
    from cdemi.data.condensed import save_condensed
    from cdemi.data.subsets import real_subset
    from cdemi.distill import distill_entry
    from cdemi.models.checkpoint import save_classifier

    root = tmp_path_factory.mktemp("study")
    save_classifier(root / "teacher.pt", digits_teacher, "resnet18",
                    {"num_classes": 10, "in_channels": 1, "width": 0.25}, "digits", test_accuracy=96.0)
    save_condensed(root / "cs.pt", real_subset(digits_train, 2, seed=0))
    run = {"teacher": str(root / "teacher.pt"), "student": {"arch": "resnet18", "width": 0.0625},
           "transfer": str(root / "cs.pt"), "epochs": 10, "kd_steps": 1, "batch_size": 16, "temperature": 4.0,
           "validation_per_class": 5, "threads": 1}
    guided = {**run, "host": "fast", "variant": "guided", "epochs": 11, "seed": 0,
              "host_params": {"batch_size": 16, "g_steps": 2, "nz": 8, "ngf": 4, "warmup": 1},
              "guidance": {"held_out_per_class": 1}}
    prof = params.validate({"profile": "smoke", "data": {"dataset": "digits"},
                            "study": {**{f"kd_s{s}": {**run, "seed": s} for s in (0, 1)}, "fast_guided_s0": guided}})
    (root / "records").mkdir()
    before = torch.get_num_threads()
    try:
        for name, entry in prof.study.items():
            distill_entry(name, entry, prof.data, prof.runtime, root / "records" / f"{name}.json", progress=False)
    finally:
        torch.set_num_threads(before)
    return root, prof, run


def test_a_study_entry_records_its_split_threads_and_verdict(study_records):
    from cdemi import params

    root, prof, run = study_records
    rec = json.loads((root / "records" / "kd_s0.json").read_text())
    assert rec["threads"] == 1 and rec["validation"]["images"] == 50 and rec["validation"]["per_class"] == 5
    assert set(rec["convergence"]) >= {"converged", "last_mean", "previous_mean", "change"}
    assert rec["convergence"] == verdict([r["validation_accuracy"] for r in rec["curve"]])
    other = json.loads((root / "records" / "kd_s1.json").read_text())
    assert other["validation"] == rec["validation"]  # the same split in every run
    with pytest.raises(params.ParamsError, match=r"study.s: .*curve_test_per_class is 50: a study run measures its"):
        params.validate({"profile": "smoke", "data": {"dataset": "digits"},
                         "study": {"s": {**run, "curve_test_per_class": 50}}})
    with pytest.raises(params.ParamsError, match=r"study.s: .*epochs is 9: .*at least 10 epochs"):
        params.validate({"profile": "smoke", "data": {"dataset": "digits"}, "study": {"s": {**run, "epochs": 9}}})


def test_the_study_report_counts_kd_steps_verdicts_and_the_budget(study_records):
    from cdemi.report import convergence
    from cdemi.report.runs import load_records

    root, _, _ = study_records
    records = load_records(root / "records")
    raw = {p.stem: json.loads(p.read_text()) for p in (root / "records").glob("*.json")}
    configs = {n: r["config"] for n, r in raw.items()}
    curves = convergence.curves(records, configs)
    assert len(curves) == 31 and set(curves["cell"]) == {"KD alone", "Fast + guidance"}
    assert curves[curves["name"] == "kd_s0"]["kd_steps"].tolist() == list(range(1, 11))  # 1 KD step per epoch
    assert curves[curves["name"] == "fast_guided_s0"]["kd_steps"].tolist() == list(range(11))  # a warm-up epoch
    cells = convergence.summary(records, curves, {n: r["convergence"] for n, r in raw.items()})
    row = cells.loc["KD alone"]
    kd = [r for n, r in raw.items() if n.startswith("kd_")]
    assert row["seeds"] == 2 and row["kd_steps"] == 10
    assert row["converged_seeds"] == sum(r["convergence"]["converged"] for r in kd)
    assert row["test_final_mean"] == pytest.approx(sum(r["final_accuracy"] for r in kd) / 2)
    cells = cells.loc[["KD alone"]]
    chosen = convergence.chosen_budget(cells, kd_steps_per_epoch=4)
    if row["mean_curve_converged"]:
        assert chosen % 4 == 0 and chosen >= row["plateau_kd_steps"]
    else:
        assert chosen is None and "No budget is chosen" in convergence.findings(cells, chosen)
    fig = convergence.figure(curves, chosen)
    assert [ax.get_title() for ax in fig.axes] == list(dict.fromkeys(curves["cell"].map(convergence.base_cell)))
    assert fig.axes[0].get_xlabel() == "KD steps"


def test_the_study_report_draws_the_discriminators_held_out_accuracy_and_prices_each_cell(study_records):
    from cdemi.report import convergence
    from cdemi.report.runs import load_records

    root, _, _ = study_records
    records = load_records(root / "records")
    raw = {p.stem: json.loads(p.read_text()) for p in (root / "records").glob("*.json")}
    d = convergence.discriminator_curves(records)
    guided = raw["fast_guided_s0"]["curve"]
    assert d["name"].unique().tolist() == ["fast_guided_s0"] and d["epoch"].tolist() == [r["epoch"] for r in guided]
    assert d["d_held_out"].tolist() == [r["guidance"]["d_held_out"] for r in guided]
    assert d["d_held_out"].between(0, 1).all()
    assert convergence.discriminator_figure(d).axes[0].get_ylabel() == "D accuracy"
    configs = {n: r["config"] for n, r in raw.items()}
    curves = convergence.curves(records, configs)
    costs = convergence.costs(records, curves, configs, chosen=8)
    kd = costs.loc["KD alone"]
    assert kd["seeds"] == 2 and kd["synthesis_min"] == 0
    assert kd["kd_s_per_step"] == pytest.approx(sum(raw[f"kd_s{s}"]["kd_seconds"] / 10 for s in (0, 1)) / 2)
    assert kd["minutes_at_chosen_budget"] == pytest.approx(8 * kd["kd_s_per_step"] / 60)
    fast = costs.loc["Fast + guidance"]  # 8 KD steps of 1 per epoch: 8 syntheses, plus the warm-up's
    assert fast["minutes_at_chosen_budget"] == pytest.approx((8 * fast["kd_s_per_step"] +
                                                              9 * fast["synthesis_s_per_synthesis"]) / 60)
    assert convergence.costs(records, curves, configs, None)[
        "minutes_at_chosen_budget"].isna().all()


def test_the_budget_is_the_largest_plateau_in_whole_epochs_and_none_while_a_cell_climbs():
    import pandas as pd

    from cdemi.report.convergence import chosen_budget

    cells = pd.DataFrame({"mean_curve_converged": [True, True], "plateau_kd_steps": [1000, 1730]})
    assert chosen_budget(cells, 50) == 1750
    climbing = pd.DataFrame({"mean_curve_converged": [True, False], "plateau_kd_steps": [1000, None]},
                            index=["KD alone", "Fast"])
    assert chosen_budget(climbing, 50) is None


def test_a_halved_schedule_that_lands_where_the_full_one_does_settles_a_climbing_cell():
    import pandas as pd

    from cdemi.report.convergence import chosen_budget

    cells = pd.DataFrame({"mean_curve_converged": [True, False], "plateau_kd_steps": [3050, None]},
                         index=["KD alone", "Fast"])

    def checks(*rows):
        return pd.DataFrame([{"cell": c, "kd_steps": k, "full_kd_steps": f, "enough": e} for c, k, f, e in rows])

    assert chosen_budget(cells, 50, checks(("Fast", 8000, 16000, True))) == 8000
    assert chosen_budget(cells, 50, checks(("Fast", 4000, 8000, False))) is None  # gained more than 1 point
    assert chosen_budget(cells, 50, checks(("Fast", 6000, 8000, True))) is None  # not half the full schedule
    assert chosen_budget(cells, 50, checks(("KD alone", 2000, 4000, True))) is None  # Fast still climbs
    # both settle: KD alone at the sooner of its plateau and its check, the grid at the larger of the two cells
    both = checks(("KD alone", 2000, 4000, True), ("Fast", 1000, 2000, True))
    assert chosen_budget(cells, 50, both) == 2000
    assert chosen_budget(cells, 50, checks(("KD alone", 1000, 4000, True), ("Fast", 4010, 8020, True))) == 4050


def test_a_shorter_run_of_a_cell_is_a_budget_check_judged_against_the_full_runs():
    import pandas as pd

    from cdemi.report import convergence

    def config(epochs):
        return {"teacher": "t.pt", "student": {"arch": "resnet18"}, "transfer": "c.pt", "epochs": epochs,
                "kd_steps": 50, "seed": 0}

    def run(name, accs):
        return {"name": name, "host": "none", "variant": "kd-only", "seed": 0, "final": accs[-1],
                "curve": [{"epoch": e + 1, "validation_accuracy": a} for e, a in enumerate(accs)]}

    full = [50 + min(e, 10) for e in range(20)]  # flat at 60 from epoch 11
    short_ok, short_low = [50 + min(e, 9) for e in range(10)], [40 + e for e in range(10)]
    records = pd.DataFrame([run("full", full), run("ok", short_ok), run("low", short_low)])
    configs = {"full": config(20), "ok": config(10), "low": config(10)}
    curves = convergence.curves(records, configs)
    assert set(curves["cell"]) == {"KD alone", "KD alone (500 KD steps)"}
    assert curves.groupby("cell")["budget_check"].all().to_dict() == {"KD alone": False,
                                                                       "KD alone (500 KD steps)": True}
    verdicts = {n: convergence.convergence.verdict([r["validation_accuracy"] for r in c])
                for n, c in zip(records["name"], records["curve"])}
    cells = convergence.summary(records, curves, verdicts)
    checks = convergence.budget_checks(cells)
    row = checks.iloc[0]
    assert (row["cell"], row["kd_steps"], row["seeds"], row["full_kd_steps"]) == ("KD alone", 500, 2, 1000)
    assert row["difference"] == pytest.approx((59 + 49) / 2 - 60) and not row["enough"]
    text = convergence.findings(cells, None, checks)
    assert "that budget is not enough" in text
    # one seed has no spread: its cell reads "(1 seed)" and a bare mean, never "± nan"
    assert "**KD alone** (1 seed)" in text and "(2 seeds)" in text and "nan" not in text
    only_full = convergence.summary(records.iloc[:1], curves[curves["name"] == "full"], verdicts)
    assert convergence.budget_checks(only_full).empty
    assert convergence.chosen_budget(cells, 50) == convergence.chosen_budget(only_full, 50)  # checks aside


def test_a_cells_runs_are_listed_by_their_kd_steps_and_tabulated_budget_by_budget():
    import pandas as pd

    from cdemi.report import convergence

    def run(name, epochs, seed=0):
        accs = [50 + min(e, 5) + epochs / 10 + seed for e in range(epochs)]  # flat end, higher for longer runs
        return {"name": name, "host": "none", "variant": "kd-only", "seed": seed, "final": accs[-1],
                "curve": [{"epoch": e + 1, "validation_accuracy": a} for e, a in enumerate(accs)]}

    def study(runs):
        records = pd.DataFrame([run(*r) for r in runs])
        configs = {r[0]: {"teacher": "t.pt", "student": {"arch": "resnet18"}, "transfer": "c.pt", "epochs": r[1],
                          "kd_steps": 50, "seed": r[2] if len(r) > 2 else 0} for r in runs}
        verdicts = {n: convergence.convergence.verdict([r["validation_accuracy"] for r in c])
                    for n, c in zip(records["name"], records["curve"])}
        curves = convergence.curves(records, configs)
        return curves, convergence.summary(records, curves, verdicts)

    def cells_of(runs):
        return study(runs)[1]

    # "(1,000 KD steps)" sorts before "(500 KD steps)" as text
    curves, cells = study([("a_full", 40), ("b_1000", 20), ("c_500", 10)])
    assert list(cells.index) == ["KD alone (500 KD steps)", "KD alone (1,000 KD steps)", "KD alone"]
    assert list(cells["kd_steps"]) == [500, 1000, 2000]
    # the figure: a panel per cell, a line per budget, shortest first
    fig = convergence.figure(curves, None)
    assert [ax.get_title() for ax in fig.axes] == ["KD alone"]
    assert [line.get_label() for line in fig.axes[0].get_lines()] == ["500 (1 seed)", "1,000 (1 seed)",
                                                                     "2,000 (1 seed)"]
    # one row per cell, one column per budget, each entry with its spread where it has one and its seed count
    budgets = convergence.equal_budgets(cells)
    assert list(budgets.index) == ["KD alone"] and list(budgets.columns) == ["500", "1,000", "2,000"]
    assert budgets.loc["KD alone"].tolist() == ["56.00 (1)", "57.00 (1)", "59.00 (1)"]
    two_seeds = convergence.equal_budgets(cells_of([("a_full", 40), ("a_full_s1", 40, 1), ("c_500", 10)]))
    assert two_seeds.loc["KD alone"].tolist() == ["56.00 (1)", "59.50 ± 0.71 (2)"]


def test_runs_at_the_hosts_published_settings_form_a_cell_of_their_own_with_each_runs_last_epoch_as_its_final():
    import pandas as pd

    from cdemi.report import convergence
    from cdemi.report.deviations import public_settings

    public = {k: v for k, v in public_settings("fast").items() if k in ("batch_size", "g_steps", "nz", "ngf", "warmup")}
    profile = {"batch_size": 64, "g_steps": 10, "nz": 64, "ngf": 16, "warmup": 1}

    def run(name, epochs, final):
        accs = [50.0] * (epochs - 1) + [final]
        return {"name": name, "host": "fast", "variant": "plain", "seed": 0, "final": final,
                "curve": [{"epoch": e + 1, "validation_accuracy": a} for e, a in enumerate(accs)]}

    def config(host_params, epochs):
        return {"teacher": "t.pt", "student": {"arch": "resnet18"}, "host": "fast", "host_params": host_params,
                "epochs": epochs, "kd_steps": 50, "seed": 0}

    # the same 1,000 KD steps: 21 epochs after one of warm-up, 40 after the public code's 20
    records = pd.DataFrame([run("ours", 21, 60.0), run("theirs", 20 + public["warmup"], 70.0)])
    configs = {"ours": config(profile, 21), "theirs": config(public, 20 + public["warmup"])}
    assert not convergence.at_public_settings("fast", configs["ours"])
    assert convergence.at_public_settings("fast", configs["theirs"])
    assert not convergence.at_public_settings("none", {})
    curves = convergence.curves(records, configs)
    assert set(curves["cell"]) == {"Fast", "Fast, public settings"} and not curves["budget_check"].any()
    verdicts = {n: convergence.convergence.verdict([r["validation_accuracy"] for r in c])
                for n, c in zip(records["name"], records["curve"])}
    cells = convergence.summary(records, curves, verdicts)
    assert cells.loc["Fast", "validation_final_mean"] == 60.0 and cells.loc["Fast", "seeds"] == 1
    assert cells.loc["Fast, public settings", "validation_final_mean"] == 70.0
    assert (cells["kd_steps"] == 1000).all()
    # two seeds of one cell whose curves end at different epochs: each run's own last epoch is its final
    mixed = pd.DataFrame([run("a", 21, 60.0), run("b", 22, 64.0)])
    mixed_curves = convergence.curves(mixed, {"a": config(profile, 21), "b": config({**profile, "warmup": 2}, 22)})
    mixed_cells = convergence.summary(mixed, mixed_curves, {"a": verdicts["ours"], "b": verdicts["ours"]})
    assert mixed_cells.loc["Fast", "validation_final_mean"] == 62.0 and mixed_cells.loc["Fast", "seeds"] == 2


def test_only_cells_at_the_grids_host_settings_bound_the_budget():
    import pandas as pd

    from cdemi import params
    from cdemi.report import convergence
    from cdemi.report.deviations import public_settings

    grid_fast = {"batch_size": 64, "g_steps": 10, "nz": 64, "ngf": 16, "warmup": 1}
    entry = {"teacher": "t.pt", "student": {"arch": "resnet18"}, "epochs": 3, "kd_steps": 50}
    profile = params.validate({"profile": "smoke", "data": {"dataset": "digits"}, "distill": {
        "fast_plain": {**entry, "host": "fast", "host_params": grid_fast},
        "kd_alone": {**entry, "transfer": "c.pt"}}})
    grid = convergence.grid_host_settings(profile)
    assert set(grid) == {"fast", "none"} and len(grid["fast"]) == 1 and grid["none"] == [{}]

    def run(name, host, accs):
        return {"name": name, "host": host, "variant": "plain" if host == "fast" else "kd-only", "seed": 0,
                "final": accs[-1], "curve": [{"epoch": e + 1, "validation_accuracy": a} for e, a in enumerate(accs)]}

    def config(host_params, epochs, host="fast"):
        out = {"teacher": "t.pt", "student": {"arch": "resnet18"}, "epochs": epochs, "kd_steps": 50, "seed": 0}
        return {**out, "host": host, "host_params": host_params} if host else {**out, "transfer": "c.pt"}

    public = dict(public_settings("fast"))
    flat, climbing = [50.0 + min(e, 4) for e in range(21)], [50.0 + e for e in range(21)]
    records = pd.DataFrame([run("kd", "none", flat), run("ours", "fast", flat),
                            run("theirs", "fast", [50.0] * public["warmup"] + climbing),
                            run("odd", "fast", climbing)])
    configs = {"kd": config({}, 21, host=None), "ours": config(grid_fast, 21),
               "theirs": config(public, 21 + public["warmup"]), "odd": config({**grid_fast, "g_steps": 3}, 21)}
    assert convergence.at_grid_settings("fast", configs["ours"], grid)
    assert not convergence.at_grid_settings("fast", configs["theirs"], grid)
    assert not convergence.at_grid_settings("cmi", {**configs["ours"], "host": "cmi", "host_params": {}}, grid)
    assert convergence.at_grid_settings("none", configs["kd"], grid)
    verdicts = {n: convergence.convergence.verdict([r["validation_accuracy"] for r in c])
                for n, c in zip(records["name"], records["curve"])}
    study_curves = convergence.curves(records, configs, grid)
    cells = convergence.summary(records, study_curves, verdicts)
    # a budget per host and settings, the grid's or not, each of the three Fast settings its own (the grid's: its
    # plateau, 10 epochs, one of them warm-up)
    budgets = convergence.settled_budgets(study_curves, records.assign(config=records["name"].map(configs)), cells,
                                          None, 50)
    assert sorted((b["host"], b["cells"], b["kd_steps"]) for b in budgets) == [
        ("fast", ["Fast"], 450), ("fast", ["Fast, other settings"], None), ("fast", ["Fast, public settings"], None),
        ("none", ["KD alone"], 500)]
    text = convergence.budgets_text(budgets)
    assert "- **Fast**: **450 KD steps**" in text and "- **Fast, public settings**: not settled yet" in text
    assert convergence.budgets_text([]) == ""
    # a run at neither the published nor the grid's settings is a cell of its own too
    assert cells["at_grid_settings"].to_dict() == {"KD alone": True, "Fast": True, "Fast, public settings": False,
                                                   "Fast, other settings": False}
    # the climbing public-settings probe is shown but does not hold the budget back; counted, it would
    assert convergence.chosen_budget(cells, 50) == 500  # KD alone: the rule judges 10 epochs at the least
    everything = convergence.summary(records, convergence.curves(records, configs), verdicts)
    assert everything["at_grid_settings"].all() and convergence.chosen_budget(everything, 50) is None
    text = convergence.findings(cells, 500)
    assert "not bounding its budget" in text and "**Fast, public settings**, **Fast, other settings**" in text
    assert "not bounding" not in convergence.findings(everything, None)


def test_a_host_that_synthesises_every_few_epochs_is_priced_per_synthesis_it_made():
    import pandas as pd

    from cdemi.report import convergence

    # 10 epochs, a synthesis at the start of epochs 1, 5 and 9: 3 syntheses of 60 s, 500 KD steps of 0.3 s
    curve = [{"epoch": e + 1, "validation_accuracy": 50.0} for e in range(10)]
    records = pd.DataFrame([{"name": "di", "host": "deepinversion", "variant": "plain", "seed": 0, "final": 50.0,
                             "curve": curve, "synthesis_min": 3.0, "kd_min": 2.5}])
    configs = {"di": {"teacher": "t.pt", "student": {"arch": "resnet18"}, "host": "deepinversion",
                      "host_params": {"batch_size": 64, "iterations": 1000}, "synthesis_every": 4, "epochs": 10,
                      "kd_steps": 50, "seed": 0}}
    costs = convergence.costs(records, convergence.curves(records, configs), configs, chosen=1000)
    row = costs.iloc[0]
    assert row["synthesis_s_per_synthesis"] == pytest.approx(60.0) and row["kd_s_per_step"] == pytest.approx(0.3)
    # 1,000 KD steps take 20 epochs, so 5 syntheses: 300 s of KD and 300 s of synthesis
    assert row["minutes_at_chosen_budget"] == pytest.approx(10.0)


def test_runs_that_synthesise_every_few_epochs_are_cells_by_their_number_of_batches():
    import pandas as pd

    from cdemi.report import convergence
    from cdemi.report.runs import budget_key

    def config(epochs, every):
        return {"teacher": "t.pt", "student": {"arch": "resnet18"}, "host": "deepinversion",
                "host_params": {"batch_size": 64, "iterations": 1000}, "synthesis_every": every, "epochs": epochs,
                "kd_steps": 50, "seed": 0}

    def run(name, epochs):
        return {"name": name, "host": "deepinversion", "variant": "plain", "seed": 0, "final": 50.0,
                "curve": [{"epoch": e + 1, "validation_accuracy": 50.0 + e} for e in range(epochs)]}

    # 8 batches over 32 epochs and over 16 (its halving check), 20 batches over 80 epochs (a cell of its own),
    # and 20 epochs that synthesise every epoch (no count: such a pool grows with the run's length)
    configs = {"b8": config(32, 4), "b8_half": config(16, 2), "b20": config(80, 4), "every_epoch": config(20, 1)}
    records = pd.DataFrame([run(n, c["epochs"]) for n, c in configs.items()])
    grid = {"deepinversion": []}  # neither the grid's settings nor the published ones: "other settings"
    cells = convergence.curves(records, configs, grid).groupby("name")["cell"].first().to_dict()
    assert cells == {"b8": "DeepInversion, other settings, 8 batches",
                     "b8_half": "DeepInversion, other settings, 8 batches (800 KD steps)",
                     "b20": "DeepInversion, other settings, 20 batches",
                     "every_epoch": "DeepInversion, other settings"}
    keys = {n: json.loads(budget_key("deepinversion", c)) for n, c in configs.items()}
    assert keys["b8"] == keys["b8_half"] and keys["b8"]["kd_settings"]["batches"] == 8
    assert keys["b20"]["kd_settings"]["batches"] == 20 and "batches" not in keys["every_epoch"]["kd_settings"]
    assert keys["b8"] != keys["b20"] != keys["every_epoch"] != keys["b8"]


def test_a_grid_entry_with_a_validation_split_is_the_study_run_and_resumes_from_its_state(study_records):
    """A ``distill`` entry that gives ``validation_per_class`` is validated as a study run: a copy of a
    study entry has its configuration hash, finishes from that run's final state without training, and
    the grid's per-epoch tables read its curve on the validation split."""
    import shutil

    from cdemi import params
    from cdemi.distill import distill_entry
    from cdemi.distill.stage import config_hash
    from cdemi.report import variants
    from cdemi.report.runs import epoch_accuracy, load_records

    root, prof, run = study_records
    grid = params.validate({"profile": "smoke", "data": {"dataset": "digits"}, "distill": {"kd_s0": {**run, "seed": 0}}})
    entry = grid.distill["kd_s0"]
    assert isinstance(entry, params.StudyRun) and config_hash(entry) == config_hash(prof.study["kd_s0"])
    with pytest.raises(params.ParamsError, match=r"  distill\.s\.epochs: Input should be greater"):
        params.validate({"profile": "smoke", "data": {"dataset": "digits"}, "distill": {"s": {**run, "epochs": 0}}})
    plain = {k: v for k, v in run.items() if k not in ("validation_per_class", "threads")}
    assert type(params.validate({"profile": "smoke", "data": {"dataset": "digits"},
                                 "distill": {"s": plain}}).distill["s"]) is params.DistillRun
    out = root / "grid"
    out.mkdir()
    shutil.copy(root / "records" / "kd_s0.state", out / "kd_s0.state")
    rec = distill_entry("kd_s0", entry, grid.data, grid.runtime, out / "kd_s0.json", progress=False)
    study = json.loads((root / "records" / "kd_s0.json").read_text())
    assert rec["curve"] == study["curve"] and rec["final_accuracy"] == study["final_accuracy"]
    assert rec["kd_seconds"] == study["kd_seconds"]  # the finished state's own: no KD step was taken again
    assert rec["convergence"] == study["convergence"] and rec["validation"] == study["validation"]
    long = variants.curves(load_records(out))
    assert long["accuracy"].tolist() == [r["validation_accuracy"] for r in study["curve"]]
    assert epoch_accuracy({"test_accuracy": 50.0}) == 50.0


def test_one_configuration_at_several_budgets_is_tabulated_seed_by_seed():
    from cdemi.report import convergence

    def record(host, variant, epochs, seed, validation, **config):
        base = {"teacher": "t.pt", "student": {"arch": "resnet18"}, "transfer": "data/condensed/dm_ipc10.pt",
                "epochs": epochs, "kd_steps": 50, "seed": seed}
        if host != "none":
            base["host"] = host
        return {"host": host, "variant": variant, "validation_accuracy": validation, "config": {**base, **config}}

    fast = {"host_params": {"warmup": 2}}
    records = {
        "study/kd_s0_short": record("none", "kd-only", 40, 0, 75.5),
        "study/kd_s0": record("none", "kd-only", 80, 0, 78.7),
        "grid/kd_s0_long": record("none", "kd-only", 160, 0, 76.72),
        "study/kd_s1": record("none", "kd-only", 80, 1, 76.0),
        "grid/kd_s0_earlier": record("none", "kd-only", 5, 0, None),  # no validation split: left out
        "study/kd_lr": record("none", "kd-only", 80, 0, 70.0, lr=0.05),  # one budget only: left out
        "study/fast_s0": record("fast", "plain", 42, 0, 85.0, **fast),  # 40 KD epochs after 2 of warm-up
        "grid/fast_s0": record("fast", "plain", 82, 0, 88.0, **fast),
        "rerun/fast_s0": record("fast", "plain", 82, 0, 87.5, **fast),  # the same run on another machine
    }
    table = convergence.seed_budgets(records)
    assert list(table.columns) == ["2,000", "4,000", "8,000", "range (points)"]
    assert list(table.index) == [("Fast (resnet18, dm_ipc10)", 0), ("KD alone (resnet18, dm_ipc10)", 0),
                                 ("KD alone (resnet18, dm_ipc10)", 1)]
    assert table.loc[("KD alone (resnet18, dm_ipc10)", 0)].tolist() == ["75.50", "78.70", "76.72", "3.20"]
    assert table.loc[("KD alone (resnet18, dm_ipc10)", 1)].tolist() == ["", "76.00", "", ""]
    assert table.loc[("Fast (resnet18, dm_ipc10)", 0)].tolist() == ["85.00", "88.00 / 87.50", "", "3.00"]
    assert convergence.seed_budgets({"study/kd_s0": records["study/kd_s0"]}).empty
