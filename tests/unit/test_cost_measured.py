"""Step figures measured on a GPU in the paper profile's cost estimate: the committed file that
``benchmarks/gpu_steps.py`` wrote on a CUDA machine, the script itself run on the CPU at a tiny batch,
and every refusal of the loader."""
import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest

from cdemi.params import load
from cdemi.report import cost

ROOT = Path(__file__).resolve().parents[2]
MEASURED = ROOT / "results/benchmarks/gpu_steps.json"


@pytest.fixture
def figures():
    return json.loads(MEASURED.read_text())


def test_the_committed_figures_replace_the_measured_steps_and_keep_the_condensation_ones(figures):
    times = cost.load_step_times(MEASURED)
    assert times.synthesis == figures["synthesis"] and times.guidance == figures["guidance"]
    assert (times.kd, times.train) == (figures["kd"], figures["train"])
    assert times.condense == cost.REFERENCE.condense and times.expert_epoch == cost.REFERENCE.expert_epoch
    assert figures["device"] in times.source


def test_faster_steps_shrink_the_distillation_estimate_in_proportion(figures):
    profile = load(ROOT / "profiles/paper.yaml")
    reference = cost.estimate(profile).set_index("name")
    halved = copy.deepcopy(figures)
    halved["synthesis"] = {h: v / 2 for h, v in figures["synthesis"].items()}
    halved["kd"] = figures["kd"] / 2
    full, half = (cost.estimate(profile, cost.measured_step_times(f)).set_index("name") for f in (figures, halved))
    distill = full["stage"] == "distill"
    assert half.loc[distill, "synthesis_hours"].to_numpy() == pytest.approx(
        full.loc[distill, "synthesis_hours"].to_numpy() / 2)
    assert half.loc[distill, "kd_hours"].to_numpy() == pytest.approx(full.loc[distill, "kd_hours"].to_numpy() / 2)
    condense = full["stage"] == "condense"
    assert full.loc[condense, "hours"].to_numpy() == pytest.approx(reference.loc[condense, "hours"].to_numpy())


def test_the_readme_block_shows_both_figures_and_blanks_what_was_not_measured(figures):
    text = cost.measured_markdown(load(ROOT / "profiles/paper.yaml"), cost.measured_step_times(figures))
    assert figures["device"] in text and "GPU hours with the measured figures" in text
    dm_row = next(line for line in text.splitlines() if line.startswith("| condensation iteration, dm"))
    assert [c.strip() for c in dm_row.strip("|").split("|")][2:] == ["", ""]
    assert "nan" not in text


@pytest.mark.parametrize("change, message", [
    (lambda f: f.pop("kd"), "lack kd"),
    (lambda f: f.update(reference=False, batch=8), "batch 8, not at the reference"),
    (lambda f: f["synthesis"].pop("cmi"), "lack the synthesis of cmi"),
    (lambda f: f["guidance"].pop("fast"), "lack the guidance of fast"),
    (lambda f: f.update(train=0.0), "positive, finite"),
    (lambda f: f["synthesis"].update(fast=float("nan")), "positive, finite"),
])
def test_bad_figures_are_refused_with_the_fix(figures, change, message):
    change(figures)
    with pytest.raises(ValueError, match=message):
        cost.measured_step_times(figures)


def test_a_missing_or_corrupt_file_is_refused_naming_the_script(tmp_path):
    with pytest.raises(FileNotFoundError, match="benchmarks/gpu_steps.py --out"):
        cost.load_step_times(tmp_path / "absent.json")
    (tmp_path / "cut.json").write_text(MEASURED.read_text()[:100])
    with pytest.raises(ValueError, match="not valid JSON"):
        cost.load_step_times(tmp_path / "cut.json")
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="no step figures"):
        cost.load_step_times(tmp_path / "list.json")


def test_the_command_line_refuses_bad_figures_before_reading_the_profile(tmp_path, capsys):
    (tmp_path / "cut.json").write_text("{")
    with pytest.raises(ValueError, match="cut.json is not valid JSON"):
        cost.main([str(tmp_path / "no_such_profile.yaml"), "--times", str(tmp_path / "cut.json")])
    cost.main([str(ROOT / "profiles/paper.yaml"), "--times", str(MEASURED)])
    assert "measured on NVIDIA" in capsys.readouterr().out


def test_the_script_writes_what_the_loader_reads_and_marks_a_small_batch(tmp_path):
    """The producer itself, on the CPU at batch 2 and one host: its file has every field the loader
    reads, and the loader refuses it because batch 2 is not the reference setting."""
    out = tmp_path / "steps.json"
    subprocess.run([sys.executable, str(ROOT / "benchmarks/gpu_steps.py"), "--device", "cpu", "--batch", "2",
                    "--steps", "1", "--repeat", "1", "--hosts", "fast", "--amp", "off", "--out", str(out)],
                   check=True, capture_output=True, env={"OMP_NUM_THREADS": "1", "PATH": ""}, cwd=tmp_path)
    written = json.loads(out.read_text())
    assert set(cost.MEASURED_KEYS) <= set(written) and written["reference"] is False and written["batch"] == 2
    assert written["synthesis"]["fast"] > 0 and written["guidance"]["fast"] > 0 and written["kd"] > 0
    with pytest.raises(ValueError, match="batch 2, not at the reference"):
        cost.load_step_times(out)
