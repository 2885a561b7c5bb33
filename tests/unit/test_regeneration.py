"""The full regeneration's cost from the run records (cdemi.report.regeneration)."""
import math

import pandas as pd
import pytest

from cdemi.report import regeneration


def _record(name, host, variant, student, kd_steps, synthesis_min, kd_min, converged):
    return {"name": name, "host": host, "variant": variant, "student": student, "kd_steps": kd_steps,
            "synthesis_min": synthesis_min, "kd_min": kd_min, "converged": converged}


RECORDS = pd.DataFrame([
    _record("fast_guided_mnv2_s0", "fast", "guided", "mobilenetv2", 8000, 40.0, 60.0, True),
    _record("fast_guided_mnv2_s1", "fast", "guided", "mobilenetv2", 8000, 50.0, 70.0, True),
    _record("fast_guided_mnv2_long", "fast", "guided", "mobilenetv2", 16000, 90.0, 130.0, True),
    _record("fast_guided_k1_mnv2", "fast", "guided", "mobilenetv2", 80, 1.0, 1.0, False),
    _record("fast_guided_w2_mnv2", "fast", "guided[weight=2.0]", "mobilenetv2", 80, 1.0, 1.0, False),
    _record("fast_guided_uncond_mnv2", "fast", "guided-uncond", "mobilenetv2", 80, 1.0, 1.0, False),
    _record("fast_guided_r18", "fast", "guided", "resnet18", 80, 1.0, 1.0, False),
    _record("predfkd_plain_mnv2", "predfkd", "plain", "mobilenetv2", 80, 1.0, 1.0, False),
])


def test_the_queue_starts_each_job_on_the_first_worker_to_come_free():
    assert regeneration.queue_wall_time([3, 1, 1, 1], 2) == 3
    assert regeneration.queue_wall_time([1, 1, 3], 2) == 4  # queue order, not longest first
    assert regeneration.queue_wall_time([1, 1, 3], 1) == 5
    assert regeneration.queue_wall_time([], 2) == 0
    for workers in (0, 1.5):
        with pytest.raises(ValueError, match="workers must be a whole number of at least 1"):
            regeneration.queue_wall_time([1], workers)
    with pytest.raises(ValueError, match="leave unknown entries out"):
        regeneration.queue_wall_time([float("nan"), 1.0], 1)


def test_guidance_ablations_cost_as_guided():
    for variant in ("guided", "guided[weight=2.0]", "guided-uncond", "guided-uncond[weight=2.0]"):
        assert regeneration.cost_variant(variant) == "guided"
    assert regeneration.cost_variant("naive") == "naive"


def test_each_entry_is_measured_estimated_or_unknown():
    order = [*RECORDS["name"], "never_run"]
    entries = regeneration.entry_minutes(RECORDS, order)
    assert list(entries.index) == order
    assert entries.loc["fast_guided_mnv2_s0", ["minutes", "basis"]].tolist() == [100.0, "measured"]
    assert entries.loc["fast_guided_mnv2_long", "minutes"] == 220.0
    # estimated from the same host, variant and student at their fewest KD steps: (100 + 120) / 2, not the 16,000-step run
    for name in ("fast_guided_k1_mnv2", "fast_guided_w2_mnv2", "fast_guided_uncond_mnv2"):
        assert entries.loc[name, ["minutes", "basis"]].tolist() == [110.0, "estimated"]
    assert entries.loc["fast_guided_w2_mnv2", "variant"] == "guided"
    # no converged ResNet-18 run: the same host and variant on any student, at each student's fewest KD steps
    assert entries.loc["fast_guided_r18", "minutes"] == 110.0
    assert entries.loc["fast_guided_r18", "basis"] == "estimated"
    for name in ("predfkd_plain_mnv2", "never_run"):
        assert entries.loc[name, "basis"] == "unknown" and math.isnan(entries.loc[name, "minutes"])
    assert regeneration.entry_minutes(RECORDS, []).empty
    # nothing converged: nothing to measure or estimate from
    assert set(regeneration.entry_minutes(RECORDS.assign(converged=False), order)["basis"]) == {"unknown"}


def test_the_any_student_estimate_is_the_mean_of_the_reference_runs():
    vgg = _record("fast_guided_vgg", "fast", "guided", "vgg11", 8000, 100.0, 200.0, True)
    entries = regeneration.entry_minutes(pd.concat([RECORDS, pd.DataFrame([vgg])]), ["fast_guided_r18"])
    assert entries.loc["fast_guided_r18", "minutes"] == pytest.approx((100 + 120 + 300) / 3)


def test_records_that_cannot_be_costed_are_refused():
    with pytest.raises(ValueError, match="records without converged: pass load_records' records through "
                                         "study_budget.mark_converged first"):
        regeneration.entry_minutes(RECORDS.drop(columns="converged"), ["x"])
    with pytest.raises(ValueError, match="records with the same name"):
        regeneration.entry_minutes(pd.concat([RECORDS, RECORDS.iloc[:1]]), ["x"])


def test_hours_per_host_and_the_wall_time_say_what_is_unknown():
    entries = regeneration.entry_minutes(RECORDS, list(RECORDS["name"]))
    table = regeneration.by_host(entries)
    assert table.loc["Fast"].tolist() == [3, 4, 0, 7.3, 7.3]  # 440 min measured, 4 * 110 estimated
    assert table.loc["PRE-DFKD", "unknown entries"] == 1
    assert list(table.index) == ["Fast", "PRE-DFKD", "total"]
    assert table.loc["total", "measured entries"] == 3 and table.loc["total", "unknown entries"] == 1
    text = regeneration.findings(entries, 2)
    known = entries[entries["basis"] != "unknown"]["minutes"].tolist()
    assert f"{regeneration.queue_wall_time(known, 2) / 60:.1f} hours" in text
    assert "7.3 CPU hours measured (3 entries)" in text and "a lower bound: 1 entry (PRE-DFKD)" in text
    with_missing = regeneration.by_host(regeneration.entry_minutes(RECORDS, ["fast_guided_mnv2_s0", "never_run"]))
    assert list(with_missing.index) == ["Fast", "no record", "total"]
    measured_only = regeneration.entry_minutes(RECORDS[RECORDS["converged"]], list(RECORDS["name"][:3]))
    assert regeneration.findings(measured_only, 2).endswith("hours of synthesis and KD.")
