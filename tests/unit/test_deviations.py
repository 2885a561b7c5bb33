"""The table of host settings that differ from the published ones (README, "Deviations from the public code")."""
import json
from pathlib import Path

import pytest

from cdemi import params
from cdemi.report import deviations as dev

ROOT = Path(__file__).parents[2]

# published settings, as paper.md and the public scripts give them
PUBLISHED = {
    "fast": {"batch_size": 256, "g_steps": 5, "lr_g": 3e-3, "lr_z": 0.01, "bn": 10.0, "oh": 0.5, "adv": 1.33,
             "bn_momentum": 0.9, "warmup": 20, "nz": 256, "ngf": 64},
    "cmi": {"batch_size": 256, "g_steps": 200, "lr_g": 1e-3, "adv": 0.5, "bn": 1.0, "oh": 1.0, "cr": 0.8, "nz": 256,
            "ngf": 64},
    "deepinversion": {"batch_size": 256, "iterations": 2000, "lr": 0.05, "bn": 10.0, "tv": 2.5e-5},
    "predfkd": {"batch_size": 1024, "lr_g": 0.02, "oh": 1.0, "ie": 5.0, "a": 0.1, "nz": 1000},
}


@pytest.mark.parametrize("host", sorted(PUBLISHED))
def test_the_hosts_defaults_are_their_published_settings(host):
    public = dev.public_settings(host)
    assert {k: public[k] for k in PUBLISHED[host]} == PUBLISHED[host]
    assert "seed" not in public and "bn_statistics" not in public


def _profile(host_params: dict, host: str = "fast"):
    return params.validate({"profile": "smoke", "data": {"dataset": "digits"},
                            "distill": {"r": {"teacher": "t.pt", "student": {"arch": "resnet18"}, "host": host,
                                              "host_params": host_params, "seed": 0}}})


def test_only_settings_away_from_the_published_ones_are_listed_each_with_a_reason():
    rows = dev.deviations(_profile({"bn": 1.0, "g_steps": 5, "ngf": 16, "adv": 2.0, "bn_statistics": "two_pass"}))
    by_setting = {r["setting"]: r for r in rows}
    assert set(by_setting) == {"bn", "ngf", "adv"}  # g_steps 5 is published; bn_statistics is not a setting
    assert by_setting["bn"]["reason"] == dev.REASONS[("fast", "bn")] and by_setting["bn"]["public"] == 10.0
    assert by_setting["adv"]["reason"] == "not stated" and by_setting["ngf"]["reason"] == "two CPU cores"
    assert {r["probe"] for r in rows} == {dev.NOT_PROBED}  # no study records: nothing measured, and it says so
    steps = dev.deviations(_profile({"g_steps": 20}, host="cmi"))
    assert steps[0]["reason"] == "two CPU cores: 10x fewer steps per synthesis than published"
    table = dev.deviations_markdown(rows)
    assert table.splitlines()[0] == "| host | setting | public | ours | why | probe on the validation split |"
    assert len(table.splitlines()) == 5


def _record(name: str, host_params: dict, validation: float, epochs: int = 41, seed: int = 0, **loop) -> dict:
    """A study record shaped as cdemi.distill writes one: ``config`` is the run's ``model_dump()`` through
    JSON (only the fields a probe reads); ``loop``: further fields of the run (``synthesis_every``)."""
    config = {"teacher": "t.pt", "student": {"arch": "resnet18"}, "host": "fast", "host_params": host_params,
              "seed": seed, "epochs": epochs, "kd_steps": 50, "validation_per_class": 500, "validation_seed": 0, **loop}
    config = json.loads(json.dumps(params.StudyRun.model_validate(config).model_dump()))
    return {"format": "cdemi-run-v1", "name": name, "host": "fast", "variant": "plain", "seed": seed,
            "config": config, "validation_accuracy": validation, "final_accuracy": validation - 1}


def test_a_pair_of_study_runs_at_the_public_and_the_profiles_value_settles_the_row():
    ours = {"bn": 1.0, "oh": 1.0, "warmup": 1}
    public = {"bn": 10.0, "oh": 0.5, "warmup": 20}
    profile = _profile(ours)
    # the public side warms up 19 epochs longer, so 19 more epochs give it the same 2,000 KD steps
    records = [_record("ours_s0", ours, 88.0), _record("public_s0", public, 88.5, epochs=60),
               _record("ours_s1", ours, 87.0, seed=1), _record("public_s1", public, 86.9, epochs=60, seed=1),
               _record("ours_short", ours, 80.0, epochs=21)]  # another budget: no partner, no pair
    pairs = dev.probes(records)
    assert sorted((p["a"], p["b"]) for p in pairs) == [("ours_s0", "public_s0"), ("ours_s1", "public_s1")]
    assert {p["kd_steps"] for p in pairs} == {2000}
    rows = {r["setting"]: r for r in dev.deviations(profile, records)}
    assert set(rows) == {"bn", "oh", "warmup"}
    assert rows["bn"]["probe"] == ("validation after 2,000 KD steps, 2 pairs (plain s0 -0.50, plain s1 +0.10): "
                                   "public 87.70%, ours 87.50% (-0.20); kept: within 1 point of the public value or "
                                   "above it at every budget (probed together with oh, warmup)")
    behind = [_record("ours_s0", ours, 86.0), _record("public_s0", public, 88.5, epochs=60)]
    verdict = {r["setting"]: r["probe"] for r in dev.deviations(profile, behind)}["oh"]
    assert "not justified: at 2,000 KD steps the public value leads by 2.50 points, so the profile should run it" in verdict
    # the profile's side catches up at a longer budget but lags at the shorter one: a setting that needs more KD
    # steps to get there is not kept (the largest budget alone would have said "kept")
    two_budgets = [_record("ours_s0", ours, 86.0), _record("public_s0", public, 88.5, epochs=60),
                   _record("ours_long", ours, 90.1, epochs=81), _record("public_long", public, 90.0, epochs=100)]
    verdict = {r["setting"]: r["probe"] for r in dev.deviations(profile, two_budgets)}["bn"]
    assert verdict.startswith("validation after 2,000 KD steps, 1 pair (plain s0 -2.50): public 88.50%, ours 86.00% "
                              "(-2.50); 4,000 KD steps, 1 pair (plain s0 +0.10): public 90.00%, ours 90.10% (+0.10); "
                              "not justified: at 2,000 KD steps the public value leads by 2.50 points")
    # a pair that differs in anything but the host's settings, epochs and synthesis frequency is no probe (here: the seed)
    assert dev.probes([_record("ours_s0", ours, 88.0), _record("public_s1", public, 88.5, epochs=60, seed=1)]) == []
    # the public side synthesising as rarely as the public code does (every 8 epochs) is still the probe's other side;
    # the synthesis frequency alone, with the same host settings, is no probe of a host setting
    sparse = _record("public_sparse", public, 88.5, epochs=60, synthesis_every=8)
    assert "synthesis_every" not in _record("ours_s0", ours, 88.0)["config"]  # the record leaves out the default 1
    assert [(p["a"], p["b"]) for p in dev.probes([_record("ours_s0", ours, 88.0), sparse])] == [("ours_s0", "public_sparse")]
    assert dev.probes([_record("public_s0", public, 88.0, epochs=60), sparse]) == []


def test_study_records_are_read_as_the_study_writes_them_and_a_bad_file_is_named(tmp_path):
    study = ROOT / "results" / "study"
    records = dev.read_study_records(study)
    assert len(records) == len(list(study.glob("*.json"))) > 0
    assert dev.read_study_records(tmp_path / "absent") == []
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(ValueError, match="broken.json is not valid JSON"):
        dev.read_study_records(tmp_path)


def test_every_reason_explains_a_setting_the_default_profile_really_changes():
    rows = dev.deviations(params.load(ROOT / "params.yaml"))
    listed = {(r["host"], r["setting"]) for r in rows}
    assert set(dev.REASONS) <= listed, set(dev.REASONS) - listed
