"""Tables T1-T5 from hand-made records: which runs land in which cell, mean ± std (n), gains."""
import json

import pandas as pd
import pytest

from cdemi.report import grid, labels


def _rows(host, variant, finals, student="mobilenetv2", method="", ipc=0, **extra):
    return [{"name": f"{host}_{variant}_{method}{ipc}_{student}_s{s}", "host": host, "variant": variant,
             "teacher": "resnet34", "student": student, "transfer_method": method, "transfer_ipc": ipc, "seed": s,
             "final": f, **extra} for s, f in enumerate(finals)]


@pytest.fixture()
def records():
    return pd.DataFrame(
        _rows("fast", "plain", [60, 62, 64]) + _rows("fast", "naive", [70, 70, 70], method="dm", ipc=10)
        + _rows("fast", "guided", [72, 74, 76], method="dm", ipc=10) + _rows("none", "kd-only", [65], method="dm", ipc=10)
        + _rows("none", "kd-only", [66], method="random_real", ipc=10)
        + _rows("fast", "guided", [55], student="resnet18", method="dm", ipc=10)
        + _rows("fast", "guided", [50], method="dm", ipc=1) + _rows("fast", "naive", [49], method="dm", ipc=1)
        + _rows("fast", "guided", [80], method="mtt", ipc=10) + _rows("none", "kd-only", [67], method="mtt", ipc=10)
        + _rows("fast", "guided", [71], method="kshot", ipc=5) + _rows("none", "kd-only", [58], method="kshot", ipc=5)
        + _rows("fast", "guided-uncond", [73], method="dm", ipc=10, d_acc_real=0.6, d_acc_fake=0.7)
        + _rows("fast", "guided[weight=2.0]", [71], method="dm", ipc=10, d_acc_real=0.8, d_acc_fake=0.9))


REFS = {"teacher": ("resnet34", 93.9), "scratch": {"mobilenetv2": 89.8}, "kd_full": {"mobilenetv2": 91.4}}


def test_main_table_cells_and_reference_rows(records):
    table, numbers = grid.main_table(records, REFS)
    mnv2, r18 = "ResNet-34 → MobileNetV2", "ResNet-34 → ResNet-18"
    assert list(table.columns) == [mnv2, r18]  # the headline (heterogeneous) pair first
    assert table.loc["Fast", mnv2] == "62.00 ± 2.00 (3)" and table.loc["Fast + guidance", mnv2] == "74.00 ± 2.00 (3)"
    assert table.loc["Fast + CS (naive)", mnv2] == "70.00 ± 0.00 (3)"  # the IPC-1 naive run is not T1's
    assert table.loc["KD on DM IPC 10 alone", mnv2] == "65.00 (1)"
    assert table.loc["KD on random real IPC 10 alone", mnv2] == "66.00 (1)"
    assert table.loc["teacher (ResNet-34)", mnv2] == "93.90 (1)" and table.loc["student from scratch", r18] == ""
    assert table.loc["Fast + guidance", r18] == "55.00 (1)" and table.loc["CMI", mnv2] == ""
    assert numbers.loc[("Fast + guidance", mnv2), "n"] == 3


def test_ipc_table_repeats_plain_and_keeps_ipcs_apart(records):
    table, _ = grid.ipc_table(records, hosts=("fast",))
    assert list(table.columns) == ["IPC 1", "IPC 10"]
    assert table.loc["Fast", "IPC 1"] == table.loc["Fast", "IPC 10"] == "62.00 ± 2.00 (3)"
    assert table.loc["Fast + guidance", "IPC 1"] == "50.00 (1)" and table.loc["KD on DM alone", "IPC 1"] == ""


def test_condenser_table_gain_over_plain(records):
    table, numbers = grid.condenser_table(records, {"mtt": 77.7, "dm": 80.0})
    assert list(table.index) == ["DM", "MTT", "random real"]  # the real subset of the same size as reference
    assert numbers.loc[("MTT", "gain over Fast plain"), "mean"] == pytest.approx(18.0)
    assert table.loc["MTT", "ConvNet on the set"] == "77.70 (1)" and table.loc["MTT", "KD on the set alone"] == "67.00 (1)"


def test_few_shot_and_ablation_tables(records):
    few, _ = grid.few_shot_table(records)
    assert list(few.index) == [5] and few.loc[5, "Fast + guidance"] == "71.00 (1)"
    assert few.loc[5, "KD on the k-shot images alone"] == "58.00 (1)"
    abl, numbers = grid.ablation_table(records)
    assert list(abl.index)[:2] == [grid.ABLATIONS["guided"], "unconditional D"] and "λ_FA=2.0" in abl.index
    assert numbers.loc[("unconditional D", "− default (points)"), "mean"] == pytest.approx(-1.0)
    assert abl.loc["λ_FA=2.0", "D acc. synthetic"] == "0.90 (1)" and abl.iloc[0]["− default (points)"] == ""


def test_empty_records_give_empty_tables():
    empty = pd.DataFrame(columns=["host", "variant", "teacher", "student", "transfer_method", "transfer_ipc", "seed",
                                  "final"])
    table, numbers = grid.few_shot_table(empty)
    assert table.empty and numbers.empty


def test_model_references_classify_teacher_scratch_and_kd(tmp_path):
    for name, rec in {"teacher": {"arch": "resnet34", "sha256": "t" * 64, "test_accuracy": 93.0},
                      "m_scratch": {"arch": "mobilenetv2", "sha256": "a" * 64, "test_accuracy": 88.0},
                      "m_kd": {"arch": "mobilenetv2", "sha256": "b" * 64, "test_accuracy": 90.0, "teacher_sha256": "t" * 64},
                      "other_kd": {"arch": "resnet18", "sha256": "c" * 64, "test_accuracy": 1.0, "teacher_sha256": "x" * 64}
                      }.items():
        (tmp_path / f"{name}.json").write_text(json.dumps(rec))
    refs = grid.model_references(tmp_path, "t" * 64)
    assert refs == {"teacher": ("resnet34", 93.0), "scratch": {"mobilenetv2": 88.0}, "kd_full": {"mobilenetv2": 90.0}}
    with pytest.raises(FileNotFoundError, match="teacher's checksum"):
        grid.model_references(tmp_path, "z" * 64)


def test_the_reports_order_every_registered_host_and_variant():
    from cdemi.invert import HOSTS
    from cdemi.params import VARIANTS

    assert sorted(labels.INVERSION_HOSTS) == HOSTS.names() and labels.HOST_ORDER[-1] == labels.KD_ONLY_HOST
    assert labels.VARIANT_ORDER == tuple(VARIANTS)


def test_convnet_accuracies_of_the_sets_that_were_evaluated(tmp_path):
    for name, acc in (("dm_ipc10", 80.5), ("mtt_ipc10", 70.0), ("dm_ipc1", 60.0)):
        (tmp_path / f"{name}.json").write_text(json.dumps({"accuracy_mean": acc}))
    assert grid.convnet_accuracies(tmp_path, 10) == {"dm": 80.5, "mtt": 70.0}
