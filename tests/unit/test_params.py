from pathlib import Path

import pytest
import yaml

from cdemi import params

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("path", ["params.yaml", "profiles/paper.yaml"])
def test_profiles_validate(path):
    p = params.load(ROOT / path)
    assert p.train and p.kd_full
    for run in p.kd_full.values():
        assert run.teacher.startswith("data/models/")


def _default() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


@pytest.mark.parametrize("edit,key,allowed", [
    (lambda d: d["train"]["teacher"].update(epochs=0), "train.teacher.epochs", "greater than or equal to 1"),
    (lambda d: d["train"]["teacher"].update(lr="0.1"), "train.teacher.lr", "valid number"),
    (lambda d: d["train"]["teacher"].update(arch="resnet50"), "train.teacher.arch", "allowed: convnet"),
    (lambda d: d["train"]["teacher"].update(dataset="mnist"), "train.teacher.dataset", "allowed: cifar10"),
    (lambda d: d["train"]["teacher"].update(learning_rate=0.1), "train.teacher.learning_rate", "Extra inputs"),
    (lambda d: d["runtime"].update(device="tpu"), "runtime.device", "should match pattern"),
    (lambda d: d["distill"]["fast_plain_mnv2_s0"].update(host="fsat"), "distill.fast_plain_mnv2_s0", "allowed: cmi, deepinversion"),
    (lambda d: d["distill"]["fast_plain_mnv2_s0"].update(host_params={"gsteps": 2}), "distill.fast_plain_mnv2_s0",
     "host_params ['gsteps'] are not parameters of host 'fast'; allowed: adv, batch_size"),
    (lambda d: d["distill"]["cmi_guided_dm1_mnv2_s0"].update(host_params={"head_hidden": "wide"}),
     "distill.cmi_guided_dm1_mnv2_s0", "host_params.head_hidden of host 'cmi' must be an integer (got 'wide')"),
    (lambda d: d["distill"]["cmi_guided_dm1_mnv2_s0"].update(host_params={"bn_momentum": [0.9]}),
     "distill.cmi_guided_dm1_mnv2_s0", "host_params.bn_momentum"),
    (lambda d: d["distill"]["kd_dm10_mnv2_s0"].update(transfer=None), "distill.kd_dm10_mnv2_s0", "a run needs an inversion host"),
    (lambda d: d["distill"]["fast_plain_mnv2_s0"].update(mixing="sum"), "distill.fast_plain_mnv2_s0.mixing", "'two_term' or 'concat'"),
    (lambda d: d["distill"]["fast_plain_mnv2_s0"].update(student={"arch": "vit"}), "distill.fast_plain_mnv2_s0.student.arch", "allowed: convnet"),
    (lambda d: d["condense"]["dm_ipc10"].update(method="kip"), "condense.dm_ipc10", "dm"),
    (lambda d: d["runtime"].update(threads=-1), "runtime.threads", "greater than or equal to 0"),
    (lambda d: d.update(profile="huge"), "profile", "'default', 'paper' or 'smoke'"),
    (lambda d: d["kd_full"]["resnet18_kd_full"].update(teacher=None), "kd_full.resnet18_kd_full.teacher", "required"),
    (lambda d: d["distill"]["kd_dm10_mnv2_s0"].update(transfer="data/condensed/dm_ipc7.pt"),
     "distill.kd_dm10_mnv2_s0.transfer", "not produced by any condense or imports entry of this profile; entries: dm_ipc1, "),
    (lambda d: d["kd_full"]["resnet18_kd_full"].update(teacher="data/models/teachr.pt"),
     "kd_full.resnet18_kd_full.teacher", "not produced by any train or kd_full entry"),
    (lambda d: d.setdefault("claims", {}).update(headline_ipc=7), "claims.headline_method/headline_ipc",
     "no condense entry makes a dm set at IPC 7; the profile condenses dm at IPC 1, dm at IPC 10, dm at IPC 50"),
])
def test_bad_values_name_the_key_and_what_is_allowed(edit, key, allowed, tally):
    d = _default()
    tally.bad_input("parameter value of a wrong type, name or range")
    edit(d)
    with pytest.raises(params.ParamsError) as e:
        params.validate(d, "params.yaml")
    assert key in str(e.value) and allowed in str(e.value)


def test_broken_yaml_and_missing_file(tmp_path, tally):
    tally.bad_input("unreadable or missing profile file", 2)
    bad = tmp_path / "p.yaml"
    bad.write_text("train: [unclosed")
    with pytest.raises(params.ParamsError, match="not valid YAML"):
        params.load(bad)
    with pytest.raises(params.ParamsError, match="does not exist"):
        params.load(tmp_path / "none.yaml")


def test_resolve_uses_smoke_values_or_the_named_entry():
    smoke = {"run": {"arch": "resnet18", "width": 0.125, "epochs": 1}, "data": {"dataset": "digits"}}
    run, prof = params.resolve("", "smoke", "train", smoke)
    assert run.epochs == 1 and prof.data.dataset == "digits" and prof.profile == "smoke"
    run, prof = params.resolve(str(ROOT / "params.yaml"), "teacher", "train", smoke)
    assert run.arch == "resnet34" and prof.profile == "default"
    with pytest.raises(params.ParamsError, match="no entry 'nope' under 'train'; known: mobilenetv2_scratch"):
        params.resolve(str(ROOT / "params.yaml"), "nope", "train", smoke)


def test_templates_merge_in_order_and_entries_override_key_by_key():
    raw = {"templates": {"a": {"epochs": 5, "student": {"arch": "resnet18", "width": 0.25}},
                         "b": {"use": "a", "epochs": 7, "lr": 0.1}},
           "distill": {"x": {"use": "b, a", "seed": 0}, "y": {"use": ["b"], "student": {"arch": "mobilenetv2"}},
                       "z": {"seed": 1}}}
    out = params.expand_templates(raw)
    assert out["distill"]["x"] == {"epochs": 5, "student": {"arch": "resnet18", "width": 0.25}, "lr": 0.1, "seed": 0}
    assert out["distill"]["y"] == {"epochs": 7, "student": {"arch": "mobilenetv2", "width": 0.25}, "lr": 0.1}
    assert out["distill"]["z"] == {"seed": 1} and raw["distill"]["y"] == {"use": ["b"], "student": {"arch": "mobilenetv2"}}


@pytest.mark.parametrize("raw,message", [
    ({"templates": {"a": {}}, "distill": {"x": {"use": "a, loop"}}}, "distill.x.use names template 'loop'"),
    ({"templates": {"a": {"use": "b"}, "b": {"use": "a"}}, "study": {"x": {"use": "a"}}}, "template 'a' uses itself"),
    ({"templates": {"a": {}}, "distill": {"x": {"use": 3}}}, "distill.x.use must name templates"),
])
def test_bad_template_uses_are_named(raw, message):
    with pytest.raises(params.ParamsError, match=message):
        params.expand_templates(raw, "p.yaml")


def test_only_distill_and_study_entries_take_templates():
    raw = _default()
    raw["train"]["teacher"]["use"] = "loop"
    with pytest.raises(params.ParamsError, match="train.teacher.use"):
        params.validate(raw)


@pytest.mark.parametrize("path", ["params.yaml", "profiles/paper.yaml"])
def test_dvcs_set_param_rewrite_keeps_the_profile_byte_for_byte(tmp_path, path):
    """``dvc exp run -S`` rewrites the whole file through ruamel: with no anchors, block lists or long
    flow lines, a no-op override leaves every byte (comments included) where it was."""
    from dvc.utils.hydra import apply_overrides

    copy = tmp_path / "params.yaml"
    copy.write_text((ROOT / path).read_text())
    run, entry = next(iter(params.load(copy).distill.items()))
    apply_overrides(copy, [f"distill.{run}.seed={entry.seed}"])
    assert copy.read_text() == (ROOT / path).read_text()


def test_an_override_of_a_template_key_takes_effect_or_fails_naming_the_key(tmp_path):
    """A key that comes from a template is written into the entry with ``++`` and wins there; without
    ``++`` DVC refuses the override, naming the key, instead of dropping it."""
    from dvc.exceptions import InvalidArgumentError
    from dvc.utils.hydra import apply_overrides

    copy = tmp_path / "params.yaml"
    copy.write_text((ROOT / "params.yaml").read_text())
    run = "fast_guided_dm10_r18_s0"
    with pytest.raises(InvalidArgumentError) as err:
        apply_overrides(copy, [f"distill.{run}.student.arch=wrn16_2"])
    assert f"distill.{run}.student.arch" in str(err.value.__cause__)
    assert copy.read_text() == (ROOT / "params.yaml").read_text()
    apply_overrides(copy, [f"++distill.{run}.student.arch=wrn16_2", f"++distill.{run}.host_params.g_steps=3"])
    entry, _ = params.resolve(str(copy), run, "distill", {})
    before, _ = params.resolve(str(ROOT / "params.yaml"), run, "distill", {})
    assert (entry.student.arch, entry.student.width) == ("wrn16_2", before.student.width)
    assert entry.host_settings == {**before.host_settings, "g_steps": 3}


def test_an_imported_set_is_a_transfer_set_and_its_name_is_its_own():
    raw = _default()
    raw["imports"] = {"dm_vico_ipc10": {"format": "vico", "source": "data/public/res_DM_FashionMNIST_ConvNet_10ipc.pt",
                                        "sha256": "a" * 64, "ipc": 10}}
    raw["distill"]["kd_dm10_mnv2_s0"]["transfer"] = "data/condensed/dm_vico_ipc10.pt"
    assert params.validate(raw).distill["kd_dm10_mnv2_s0"].transfer == "data/condensed/dm_vico_ipc10.pt"
    raw["imports"]["dm_ipc10"] = raw["imports"]["dm_vico_ipc10"]
    with pytest.raises(params.ParamsError, match="condense and imports both name dm_ipc10"):
        params.validate(raw)
