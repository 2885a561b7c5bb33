"""The table of host settings that differ from the published ones (README, "Deviations from the public code")."""
from pathlib import Path

import pytest

from cdemi import params
from cdemi.invert import deviations as dev

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
    assert by_setting["adv"]["reason"] == dev.NOT_PROBED  # nothing measured: it says so
    assert dev.NOT_PROBED in by_setting["ngf"]["reason"]
    steps = dev.deviations(_profile({"g_steps": 20}, host="cmi"))
    assert steps[0]["reason"].startswith("two CPU cores: 10x fewer steps per synthesis")
    table = dev.deviations_markdown(rows)
    assert table.splitlines()[0] == "| host | setting | public | ours | why |" and len(table.splitlines()) == 5


def test_every_reason_explains_a_setting_the_default_profile_really_changes():
    rows = dev.deviations(params.load(ROOT / "params.yaml"))
    listed = {(r["host"], r["setting"]) for r in rows}
    assert set(dev.REASONS) <= listed, set(dev.REASONS) - listed
