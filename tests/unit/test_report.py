"""Tables built from run records: condensed-set accuracy beside published numbers, cost, file formats."""
import json
from pathlib import Path

import pandas as pd
import pytest

from cdemi.report import condensed, runs, variants
from cdemi.report.grid import cell_text, stats
from cdemi.report.tables import as_written, markdown, save_table, save_table_with_numbers

ROOT = Path(__file__).resolve().parents[2]


def _write(folder, name, blob):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps(blob))


@pytest.fixture()
def records(tmp_path):
    metrics, sets = tmp_path / "metrics", tmp_path / "sets"
    for name, method, ipc, accs, seconds in (("dsa_ipc10", "dsa", 10, [80.0, 81.0, 82.0], 600.0),
                                              ("dsa_ipc1", "dsa", 1, [67.0, 68.0, 66.0], 60.0),
                                              ("random_real_ipc10", "random_real", 10, [75.0, 76.0, 74.0], None)):
        mean = sum(accs) / 3
        _write(metrics, name, {"accuracies": accs, "accuracy_mean": mean, "accuracy_std": 0.82, "eval_seconds": 30.0})
        record = {"method": method, "ipc": ipc, "params": {"iterations": 100}}
        if seconds is not None:
            record.update(wall_seconds=seconds, peak_memory_mb=512.0)
        _write(sets, name, record)
    return metrics, sets


def test_accuracy_table_flags_only_shortfalls_beyond_three_points(records):
    results = condensed.load_results(*records)
    assert list(results["set"]) == ["random_real_ipc10", "dsa_ipc1", "dsa_ipc10"]
    table = condensed.accuracy_table(results)
    # DSA IPC 10: 81.0 vs published 84.6 -> -3.6, flagged; IPC 1: 67.0 vs 70.6 -> -3.6, flagged
    assert table.loc[("dsa", 10), "vs published"] == "-3.6 (more than 3 points short)"
    assert table.loc[("dsa", 10), "ours (%)"] == "81.00 ± 0.82"
    assert table.loc[("random_real", 10), "vs published"] == "no published number"
    assert table.loc[("random_real", 10), "published DSA"] == 84.6
    notes = condensed.shortfalls(results)
    assert len(notes) == 2 and "3.6 points below the published 84.6%" in notes[1]


def test_a_set_within_three_points_is_not_flagged(records):
    metrics, sets = records
    _write(metrics, "dsa_ipc10", {"accuracies": [82.0] * 3, "accuracy_mean": 82.0, "accuracy_std": 0.0})
    table = condensed.accuracy_table(condensed.load_results(metrics, sets))
    assert table.loc[("dsa", 10), "vs published"] == "-2.6"


def test_cost_table_in_minutes_with_no_cost_for_real_subsets(records):
    cost = condensed.cost_table(condensed.load_results(*records))
    assert cost.loc[("dsa", 10), "condensation (min)"] == 10.0
    assert cost.loc[("dsa", 10), "peak memory (MiB)"] == 512.0
    assert pd.isna(cost.loc[("random_real", 10), "peak memory (MiB)"])
    assert cost.loc[("dsa", 1), "evaluation (min)"] == 0.5


def test_metrics_without_their_set_record_are_refused(records, tmp_path):
    metrics, sets = records
    (sets / "dsa_ipc1.json").unlink()
    with pytest.raises(FileNotFoundError, match="no condensed-set record"):
        condensed.load_results(metrics, sets)
    with pytest.raises(FileNotFoundError, match="run the condense stages first"):
        condensed.load_results(tmp_path / "empty", sets)


def test_save_table_writes_csv_markdown_and_latex(tmp_path):
    table = pd.DataFrame({"accuracy (%)": [81.5, 75.25]}, index=pd.Index(["dsa_10", "real_10"], name="set"))
    paths = save_table(table, tmp_path / "t", caption="A caption")
    assert [p.name for p in paths] == ["t.csv", "t.md", "t.tex"]
    assert pd.read_csv(paths[0], index_col=0).equals(table)
    md = paths[1].read_text().splitlines()
    assert md[0].split("|")[1].strip() == "set" and "| dsa_10  |          81.50 |" in md[2]
    two_levels = save_table(table.set_index(pd.Index([1, 10], name="IPC"), append=True), tmp_path / "u")
    assert two_levels[1].read_text().splitlines()[0].replace(" ", "") == "|set|IPC|accuracy(%)|"
    tex = paths[2].read_text()
    assert "\\caption{A caption}" in tex and "dsa\\_10" in tex and "81.5" in tex


def test_markdown_keeps_each_cell_as_written():
    table = pd.DataFrame({"val": [75.5, 76.12, float("nan")], "text": ["87.40", "", "75.18"],
                          "label": ["a", "b", None], "n": [3, 1, 2]}, index=pd.Index([0, 1, 2], name="seed"))
    rows = [[c.strip() for c in line.split("|")[1:-1]] for line in markdown(table).splitlines()]
    assert rows[0] == ["seed", "val", "text", "label", "n"]
    assert ["right" if c.endswith(":") else "left" for c in rows[1]] == ["right", "right", "right", "left", "right"]
    assert rows[2:] == [["0", "75.50", "87.40", "a", "3"], ["1", "76.12", "", "b", "1"], ["2", "", "75.18", "", "2"]]
    infinite = markdown(pd.DataFrame({"x": [float("inf"), 0.25]})).splitlines()
    assert [line.split("|")[2].strip() for line in infinite[2:]] == ["inf", "0.25"]
    nullable = markdown(pd.DataFrame({"n": pd.array([1, None], dtype="Int64"), "s": pd.array(["x", None], dtype="string")}))
    assert [[c.strip() for c in line.split("|")[2:4]] for line in nullable.splitlines()[2:]] == [["1", "x"], ["", ""]]
    with pytest.raises(ValueError, match="distinct column names; repeated: \\['a'\\]"):
        markdown(pd.DataFrame([[1.5, 2.25]], columns=["a", "a"]))


def test_a_grid_table_is_saved_with_its_numbers(tmp_path):
    text = pd.DataFrame({"IPC 10": ["72.00 ± 2.00 (3)"]}, index=pd.Index(["Fast"], name="row"))
    numbers = pd.DataFrame({"mean": [72.0], "std": [2.0], "n": [3]},
                           index=pd.MultiIndex.from_tuples([("Fast", 10)], names=["row", "ipc"]))
    paths = save_table_with_numbers(text, numbers, tmp_path / "t2", caption="T2")
    assert [p.name for p in paths] == ["t2.csv", "t2.md", "t2.tex", "t2_numbers.csv"]
    assert paths[3].read_text() == "row,ipc,mean,std,n\nFast,10,72.0,2.0,3\n"
    assert paths[0].read_bytes() == save_table(text, tmp_path / "alone")[0].read_bytes()


def _config(host, variant, guidance):
    """A committed record's config (Fast's guided run, or KD alone for host ``none``) made this variant's."""
    base = json.loads((ROOT / "results/distill" / ("kd_dm10_mnv2_s0.json" if host == "none" else
                                                   "fast_guided_dm10_mnv2_s0.json")).read_text())["config"]
    return {**base, "variant": variant, "guidance": guidance, "transfer": None if variant == "plain" else base["transfer"]}


def _run_record(name, host, variant, final, guidance=None, diagnostics=None):
    curve = [{"epoch": 1, "test_accuracy": final - 1, "guidance": {"d_acc_real": 0.6} if guidance is not None else {},
              "diagnostics": diagnostics or {}},
             {"epoch": 2, "test_accuracy": final, "diagnostics": diagnostics or {}}]
    return {"format": "cdemi-run-v1", "name": name, "host": host, "variant": variant, "seed": 0,
            "config": _config(host, variant, guidance), "transfer": {"method": "dm", "ipc": 10} if variant != "plain" else None,
            "final_accuracy": final, "best_accuracy": final, "synthesis_seconds": 60.0, "kd_seconds": 120.0,
            "images_synthesised": 256, "peak_memory_mb": 900.0, "curve": curve,
            "diagnostics_mean": {"teacher_accuracy": 90.0, **({"d_acc_real": 0.6} if guidance is not None else {})}}


def test_variant_table_compares_guided_with_plain_and_naive(tmp_path):
    from cdemi.params import GuidanceParams

    default = GuidanceParams().model_dump()
    for rec in (_run_record("fast_plain", "fast", "plain", 40.0), _run_record("fast_naive", "fast", "naive", 60.0),
                _run_record("fast_guided", "fast", "guided", 65.5, default),
                _run_record("fast_guided_hinge", "fast", "guided", 50.0, {**default, "loss": "hinge"}),
                _run_record("kd", "none", "kd-only", 58.0)):
        _write(tmp_path, rec["name"], rec)
    records = runs.load_records(tmp_path)
    table = variants.variant_table(records)
    assert list(table.columns) == ["plain", "naive", "guided", "guided[loss=hinge]", "kd-only", "guided − plain",
                                   "guided − naive"]
    assert table.loc["fast", "guided − plain"] == 25.5 and table.loc["fast", "guided − naive"] == 5.5
    assert table.loc["none", "kd-only"] == 58.0 and pd.isna(table.loc["none", "guided"])
    diag = variants.diagnostics_table(records)
    assert "none" not in diag.index.get_level_values("host") and diag.loc[("fast", "guided", 0), "D acc. condensed"] == 0.6
    assert variants.seed_counts(records).loc["fast", "guided"] == 1
    assert set(variants.curves(records)["epoch"]) == {1, 2}


def test_variant_means_read_as_the_grid_cells_do(tmp_path):
    seeds = pd.Series([89.46, 89.15])  # mean 89.305: NumPy's round gives 89.30, the grid's cell 89.31
    assert cell_text(stats(seeds)).startswith("89.31 ")
    rounded = as_written(pd.DataFrame({"guided": [seeds.mean(), float("nan")]}), 2)
    assert rounded["guided"].iloc[0] == 89.31 and pd.isna(rounded["guided"].iloc[1])
    for i, final in enumerate(seeds):
        _write(tmp_path, f"fast_guided_s{i}", _run_record(f"fast_guided_s{i}", "fast", "guided", final, {}))
    assert variants.variant_table(runs.load_records(tmp_path)).loc["fast", "guided"] == 89.31


def test_run_records_refuse_other_files(tmp_path, tally):
    tally.bad_input("run record missing, foreign, damaged or not JSON")

    with pytest.raises(FileNotFoundError, match="no run records under"):
        runs.load_records(tmp_path)
    _write(tmp_path, "x", {"format": "something-else"})
    with pytest.raises(ValueError, match="x.json is not a run record"):
        runs.load_records(tmp_path)


def _locked_copy(tmp_path, names=("kd_dm10_mnv2_s0", "fast_guided_dm10_mnv2_s0")):
    import hashlib
    import shutil

    import yaml

    records = tmp_path / "results" / "distill"
    records.mkdir(parents=True)
    outs = []
    for name in names:
        shutil.copy(ROOT / "results/distill" / f"{name}.json", records)
        outs.append({"path": f"results/distill/{name}.json",
                     "md5": hashlib.md5((records / f"{name}.json").read_bytes()).hexdigest()})
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump({"schema": "2.0", "stages": {"distill": {"outs": outs}}}))
    return records


@pytest.mark.parametrize("damage", ["bit flip", "truncation", "edit"])
def test_a_record_that_no_longer_matches_its_lock_is_refused(tmp_path, damage, tally):
    records = _locked_copy(tmp_path)
    assert len(runs.load_records(records, lock=tmp_path / "dvc.lock")) == 2
    target = records / "fast_guided_dm10_mnv2_s0.json"
    raw = bytearray(target.read_bytes())
    if damage == "bit flip":
        raw[len(raw) // 2] ^= 0x01
    elif damage == "truncation":
        raw = raw[: len(raw) // 2]
    else:
        raw = raw.replace(b'"final_accuracy": ', b'"final_accuracy": 9')
    target.write_bytes(bytes(raw))
    tally.bad_input("run record missing, foreign, damaged or not JSON")
    with pytest.raises(ValueError, match="does not match the checksum DVC recorded.*distill@fast_guided_dm10_mnv2_s0"):
        runs.load_records(records, lock=tmp_path / "dvc.lock")
    assert tally.kept(target, bytes(raw))


def test_a_record_that_is_not_json_is_named(tmp_path, tally):
    tally.bad_input("run record missing, foreign, damaged or not JSON")
    records = _locked_copy(tmp_path, names=("kd_dm10_mnv2_s0",))
    (records / "kd_dm10_mnv2_s0.json").write_text('{"format": "cdemi-run-v1", ')
    with pytest.raises(ValueError, match="kd_dm10_mnv2_s0.json is not valid JSON"):
        runs.load_records(records)  # without a lock: the parse error, with the file's name
