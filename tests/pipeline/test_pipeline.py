"""The harness: README commands, pins, DVC stages and their notebooks agree with each other."""
import re
import tomllib
from pathlib import Path

import nbformat
import pytest
import yaml

from cdemi import params
from cdemi.train import train_run

ROOT = Path(__file__).resolve().parents[2]


def _pins(lines):
    return {m.group(1).lower(): m.group(2) for line in lines if (m := re.match(r"^\s*-?\s*([A-Za-z0-9_.\-]+)==([^\s;]+)", line))}


def test_pyproject_environment_and_lock_name_the_same_pins():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = _pins(project["dependencies"] + [d for group in project["optional-dependencies"].values() for d in group])
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda_pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert _pins(conda_pip) == declared
    lock = _pins((ROOT / "requirements.lock").read_text().splitlines())
    assert {k: lock.get(k) for k in declared} == declared


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    assert "make repro" in readme and "make test" in readme
    ci = [line for line in (ROOT / ".ci/run").read_text().splitlines() if line and not line.startswith("#")]
    assert "make test" in ci


def _parameters_cell(nb_path: Path) -> set[str]:
    nb = nbformat.read(nb_path, as_version=4)
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, f"{nb_path} needs exactly one cell tagged 'parameters'"
    return set(re.findall(r"^(\w+)\s*=", cells[0].source, flags=re.M))


def test_every_stage_passes_only_parameters_its_notebook_declares():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    seen = 0
    for name, stage in stages.items():
        cmd = (stage.get("do") or stage)["cmd"]
        for nb, args in re.findall(r"papermill .*?(notebooks/\S+\.ipynb) \S+ (.*)", cmd):
            declared = _parameters_cell(ROOT / nb)
            passed = set(re.findall(r"-p (\w+) ", args + " "))
            assert passed <= declared, f"stage {name} passes {passed - declared} unknown to {nb}"
            seen += 1
    assert seen >= 2


def test_every_notebook_is_a_parameterised_page():
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    assert notebooks
    for nb_path in notebooks:
        nb = nbformat.read(nb_path, as_version=4)
        assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
        _parameters_cell(nb_path)
        assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), f"{nb_path} has stored outputs"


def test_paper_profile_trains_and_distils_on_fake_cifar(fake_cifar, tmp_path):
    """The paper profile's teacher and KD entries, shrunk, run end to end on CIFAR files in the real format."""
    root, _ = fake_cifar
    prof = params.load(ROOT / "profiles/paper.yaml")
    data = prof.data.model_copy(update={"root": str(root)})
    runtime = prof.runtime.model_copy(update={"threads": 2, "device": "cpu"})
    shrink = {"width": 0.0625, "epochs": 1, "batch_size": 8}
    teacher = prof.train["cifar10_resnet34"].model_copy(update=shrink)
    rec = train_run(teacher, data, runtime, tmp_path / "t.pt", progress=False)
    assert rec["dataset"] == "cifar10" and rec["arch_kwargs"] == {"num_classes": 10, "in_channels": 3, "width": 0.0625}
    student = prof.kd_full["cifar100_mobilenetv2_kd_full"].model_copy(
        update={**shrink, "dataset": "cifar10", "teacher": str(tmp_path / "t.pt")})
    rec2 = train_run(student, data, runtime, tmp_path / "s.pt", progress=False)
    assert rec2["teacher_sha256"] == rec["sha256"] and len(rec2["curve"]) == 1
    # a teacher of another class count is refused before training starts
    wrong = student.model_copy(update={"dataset": "cifar100"})
    with pytest.raises(ValueError, match="dataset 'cifar10', expected 'cifar100'"):
        train_run(wrong, data, runtime, tmp_path / "w.pt", progress=False)
    assert not (tmp_path / "w.pt").exists()
