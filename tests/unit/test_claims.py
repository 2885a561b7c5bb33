"""The claims report: the verdict rule and each claim's comparisons, on hand-made records."""
import json
import math
import re
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats

from cdemi.params import ClaimsParams
from cdemi.report import claims, findings

ROOT = Path(__file__).resolve().parents[2]

DM10 = {"transfer_method": "dm", "transfer_ipc": 10}
LEVEL = 0.05  # the test's two-sided level these cases are written for (a profile's claims.level)


def _rows(host, variant, finals, teacher="resnet34", student="mobilenetv2", method="", ipc=0, kd_steps=4000):
    return [{"host": host, "variant": variant, "teacher": teacher, "student": student, "transfer_method": method,
             "transfer_ipc": ipc, "seed": s, "final": f, "kd_steps": kd_steps} for s, f in enumerate(finals)]


@pytest.mark.parametrize("better,baseline", [([70, 71, 72], [60, 61, 62]), ([70, 72, 71.5], [69, 70, 68.2]),
                                             ([70, 72, 71.5, 73.1], [69, 70])])
def test_welch_agrees_with_scipy(better, baseline):
    expected = stats.ttest_ind(better, baseline, equal_var=False)
    terms = [(float(np.var(x, ddof=1)) / len(x), len(x)) for x in (better, baseline)]
    got = claims.welch(float(np.mean(better) - np.mean(baseline)), terms, LEVEL)
    assert got["p"] == pytest.approx(expected.pvalue, rel=1e-9) and got["df"] == pytest.approx(expected.df, rel=1e-9)
    assert got["verdict"] == ("holds" if expected.pvalue < LEVEL else "inconclusive")


@pytest.mark.parametrize("d,terms,verdict", [
    (10.0, [(1 / 3, 3), (1 / 3, 3)], "holds"),             # p 0.0003
    (-10.0, [(1 / 3, 3), (1 / 3, 3)], "does not hold"),
    (2.0, [(1 / 3, 3), (1 / 3, 3)], "inconclusive"),        # t 2.45 on 4 df: p 0.07
    (30.0, [(1 / 3, 3), (0.0, 1)], "too few seeds"),        # one seed on a side: no verdict, however large d
    (1.0, [(0.0, 2), (0.0, 2)], "holds"),                   # both sides constant: no spread to doubt d
    (0.0, [(0.0, 2), (0.0, 2)], "inconclusive")])
def test_the_verdict_rule(d, terms, verdict):
    assert claims.welch(d, terms, LEVEL)["verdict"] == verdict


def test_the_level_decides():
    terms = [(1 / 3, 3), (1 / 3, 3)]  # t = d / 0.816 on 4 df
    assert claims.welch(2.0, terms, 0.05)["verdict"] == "inconclusive"
    assert claims.welch(2.0, terms, 0.1)["verdict"] == "holds"


def test_parts_combine_by_conjunction():
    assert claims.combine(["holds", "holds"]) == "holds"
    assert claims.combine(["holds", "does not hold"]) == "does not hold"  # any failing part fails the whole
    assert claims.combine(["does not hold", "inconclusive", "too few seeds"]) == "does not hold"
    assert claims.combine(["holds", "inconclusive", "too few seeds"]) == "inconclusive"
    assert claims.combine(["holds", "too few seeds"]) == "too few seeds"
    assert claims.combine(["holds", "unequal KD steps"]) == "unequal KD steps"
    assert claims.combine(["holds", "no cells yet"]) == "no cells yet" and claims.combine([]) == "no cells yet"


def test_compare_matches_groups_and_tests_each():
    records = pd.DataFrame(_rows("fast", "guided", [70, 71, 72], method="dm", ipc=10)
                           + _rows("fast", "plain", [60, 61, 62])
                           + _rows("cmi", "guided", [50], method="dm", ipc=10) + _rows("cmi", "plain", [50.5, 49])
                           + _rows("predfkd", "guided", [40], method="dm", ipc=10))  # no plain: not matched
    ev = claims.compare(records, "x", {"variant": "guided", **DM10}, {"variant": "plain"},
                        ("host", "teacher", "student"), LEVEL)
    by_host = {g["match"]["host"]: g for g in ev.groups}
    assert set(by_host) == {"fast", "cmi"}
    assert by_host["fast"]["d"] == pytest.approx(10) and by_host["fast"]["se"] == pytest.approx(math.sqrt(2 / 3))
    assert by_host["fast"]["df"] == pytest.approx(4) and by_host["fast"]["verdict"] == "holds"
    assert by_host["cmi"]["verdict"] == "too few seeds" and math.isnan(by_host["cmi"]["p"])
    assert ev.verdict == "too few seeds" and ev.difference == pytest.approx(10)  # the judged group only


def test_unequal_kd_steps_give_no_verdict():
    """A host with a warm-up epoch takes fewer KD steps than KD alone: the difference is not tested."""
    records = pd.DataFrame(_rows("fast", "guided", [80, 81, 82], method="dm", ipc=10, kd_steps=3950)
                           + _rows("none", "kd-only", [70, 71, 72], method="dm", ipc=10))
    ev = claims.compare(records, "x", {"variant": "guided", **DM10}, {"variant": "kd-only", **DM10},
                        ("teacher", "student"), LEVEL, split=("host",))
    (group,) = ev.groups
    assert group["verdict"] == "unequal KD steps" and (group["kd_steps_better"], group["kd_steps_baseline"]) == (3950, 4000)
    assert group["p"] < LEVEL  # the test is reported, but it carries no verdict
    mixed = records.copy()
    mixed.loc[0, "kd_steps"] = 4000  # one seed of the guided cell at another budget: still no verdict
    ev = claims.compare(mixed, "x", {"variant": "guided", **DM10}, {"variant": "kd-only", **DM10},
                        ("teacher", "student"), LEVEL, split=("host",))
    assert ev.groups[0]["kd_steps_better"] is None and ev.verdict == "unequal KD steps"


def test_the_evidence_counts_only_the_p_values_of_judged_groups():
    """A group at unequal KD steps has a difference and a p-value but no verdict: the words give the mean
    difference and the largest p of the judged groups only."""
    records = pd.DataFrame(_rows("fast", "guided", [80, 81, 82], method="dm", ipc=10, kd_steps=3950)
                           + _rows("cmi", "guided", [70, 73, 71], method="dm", ipc=10)
                           + _rows("none", "kd-only", [70, 71, 72], method="dm", ipc=10))
    ev = claims.compare(records, "x", {"variant": "guided", **DM10}, {"variant": "kd-only", **DM10},
                        ("teacher", "student"), LEVEL, split=("host",))
    groups = {g["match"]["host"]: g for g in ev.groups}
    assert groups["fast"]["verdict"] == "unequal KD steps" and groups["fast"]["p"] < LEVEL
    assert groups["cmi"]["verdict"] == "inconclusive" and groups["cmi"]["p"] > LEVEL
    text = claims._evidence_text({"label": ev.label, "difference": ev.difference, "verdict": ev.verdict,
                                  "groups": ev.groups})
    assert (f"x: mean {groups['cmi']['d']:+.2f} over 1 tested group(s) of 2 (p ≤ {groups['cmi']['p']:.3g}; "
            f"1 inconclusive, 1 unequal KD steps) → inconclusive") == text
    withheld = [g for g in ev.groups if g["verdict"] != "inconclusive"]
    assert claims._evidence_text({"label": "x", "verdict": "unequal KD steps", "groups": withheld}) == \
        "x: none of 1 group(s) tested (1 unequal KD steps) → unequal KD steps"


def test_a_gain_difference_is_tested_over_its_four_sides():
    rows = _rows("fast", "plain", [50, 51, 52]) + _rows("fast", "guided", [60, 61, 62], method="dm", ipc=10)
    rows += _rows("fast", "plain", [50, 52, 54], student="resnet18")
    rows += _rows("fast", "guided", [52, 53, 54], student="resnet18", method="dm", ipc=10)
    ev = claims._heterogeneous(pd.DataFrame(rows), DM10, LEVEL)[0]
    (g,) = ev.groups
    variances = [1 / 3, 1 / 3, 4 / 3, 1 / 3]  # s^2 / n of the four sides
    se2 = sum(variances)
    assert g["d"] == pytest.approx(10 - 1) and g["se"] == pytest.approx(math.sqrt(se2))
    assert g["df"] == pytest.approx(se2 ** 2 / sum(v ** 2 / 2 for v in variances))
    assert g["p"] == pytest.approx(2 * stats.t.sf(9 / math.sqrt(se2), g["df"])) and g["verdict"] == "holds"


def test_claims_on_a_main_table():
    rows = []
    for host, plain, naive, guided in (("fast", 40, 60, 66), ("cmi", 60, 62, 70)):
        rows += _rows(host, "plain", [plain, plain + 1, plain + 2])
        rows += _rows(host, "naive", [naive, naive + 1, naive + 2], method="dm", ipc=10)
        rows += _rows(host, "guided", [guided, guided + 1, guided + 2], method="dm", ipc=10)
        rows += _rows(host, "plain", [plain - 1, plain, plain + 1], student="resnet18")
        rows += _rows(host, "guided", [plain + 2, plain + 3, plain + 4], student="resnet18", method="dm", ipc=10)
    rows += _rows("none", "kd-only", [69, 70, 71], method="dm", ipc=10)
    out = {r["claim"]: r for r in claims.evaluate_claims(pd.DataFrame(rows), DM10, LEVEL)}
    assert out[1]["verdict"] == "holds" and out[2]["verdict"] == "holds"
    effects = {e["label"]: e for e in out[1]["evidence"]}
    assert effects["the condensed set in KD: naive − plain"]["counts"] is False
    assert {g["match"]["host"]: g["d"] for g in effects["the condensed set in KD: naive − plain"]["groups"]} == {"fast": 20, "cmi": 2}
    assert {g["match"]["host"]: g["d"] for g in effects["guidance: guided − naive"]["groups"]} == {"fast": 6, "cmi": 8}
    assert "headline gap is guided − plain" in out[1]["note"]
    # fast 66 vs KD alone 69 fails, cmi 70 vs 69 is inconclusive: one failing part fails the claim
    assert {g["match"]["host"]: g["verdict"] for g in out[3]["evidence"][0]["groups"]} == {"fast": "does not hold",
                                                                                "cmi": "inconclusive"}
    assert out[3]["verdict"] == "does not hold"
    assert out[8]["verdict"] == "holds"  # hetero gains 26 and 10 vs homo gains 3 and 3
    for number in (4, 5, 6):
        assert out[number]["verdict"] == "no cells yet"
        assert all(not e["groups"] for e in out[number]["evidence"])
    table = claims.claims_table(list(out.values()))
    assert table.loc[1, "verdict"] == "holds" and "no cells yet" in table.loc[6, "evidence"]
    assert "(beside the verdict)" in table.loc[1, "evidence"] and "(beside the verdict)" not in table.loc[2, "evidence"]


def test_claim_1_follows_guided_against_plain_whatever_its_effects_say():
    rows = _rows("fast", "plain", [40, 41, 42]) + _rows("fast", "naive", [60, 61, 62], method="dm", ipc=10)
    rows += _rows("fast", "guided", [59, 60, 61], method="dm", ipc=10)  # guidance itself does not help here
    out = claims.evaluate_claims(pd.DataFrame(rows), DM10, LEVEL)
    assert out[0]["verdict"] == "holds" and out[1]["verdict"] == "inconclusive"
    assert {e["label"]: e["verdict"] for e in out[0]["evidence"]}["guidance: guided − naive"] == "inconclusive"


def test_one_failing_condenser_fails_claim_7():
    """MTT's parts fail while DM's and DSA's hold: the claim does not hold (it used to read inconclusive)."""
    rows = _rows("fast", "plain", [50, 51, 52])
    for method, finals in (("mtt", [40, 41, 42]), ("dm", [65, 66, 67]), ("dsa", [66, 67, 68])):
        rows += _rows("fast", "guided", finals, method=method, ipc=10)
    out = claims.evaluate_claims(pd.DataFrame(rows), DM10, LEVEL)[6]
    labels = {e["label"]: e["verdict"] for e in out["evidence"]}
    assert labels["guided (dm) − plain"] == "holds" and labels["guided (dsa) − plain"] == "holds"
    assert labels["guided (mtt) − plain"] == "does not hold" and labels["gain with mtt − gain with dm"] == "does not hold"
    assert out["verdict"] == "does not hold"


def test_a_condenser_without_cells_and_single_seeds_leave_claims_open():
    rows = _rows("fast", "plain", [50]) + _rows("fast", "guided", [80], method="dm", ipc=10)
    out = claims.evaluate_claims(pd.DataFrame(rows), DM10, LEVEL)
    assert out[0]["verdict"] == "too few seeds"  # a 30-point difference of two single runs carries no verdict
    assert [e["groups"] for e in out[6]["evidence"] if e["label"] == "guided (mtt) − plain"] == [[]]
    assert out[6]["verdict"] == "too few seeds"


def test_the_claims_report_is_written_as_json_and_markdown(tmp_path):
    rows = claims.evaluate_claims(pd.DataFrame(_rows("fast", "plain", [50, 51]) + _rows("fast", "guided", [60, 61.5],
                                                                                        method="dm", ipc=10)),
                                  DM10, LEVEL)
    paths = claims.save_claims(tmp_path / "claims", rows, DM10, LEVEL, runs=4)
    assert [p.name for p in paths] == ["claims.json", "claims.md"]
    saved = json.loads(paths[0].read_text())
    assert saved["headline"] == {"method": "dm", "ipc": 10} and saved["level"] == LEVEL and saved["runs"] == 4
    assert saved["claims"][0]["verdict"] == "holds"
    text = paths[1].read_text()
    assert text.startswith(claims.rule(LEVEL)) and "Welch" in text and "below 0.05" in text
    assert claims.claims_table(rows).reset_index().to_markdown(index=False) + "\n\n" in text
    assert text.endswith(claims.tested_table(rows).to_markdown(index=False) + "\n")


def test_the_tested_table_lists_each_judged_group_and_leaves_out_the_withheld():
    rows = _rows("fast", "plain", [50, 51, 52]) + _rows("fast", "guided", [60, 61.5, 62], method="dm", ipc=10)
    rows += _rows("cmi", "plain", [40]) + _rows("cmi", "guided", [70], method="dm", ipc=10)  # one seed a side
    rows += _rows("predfkd", "plain", [40, 41], kd_steps=2000)  # against guided at 4,000: unequal KD steps
    rows += _rows("predfkd", "guided", [45, 47], method="dm", ipc=10)
    out = claims.evaluate_claims(pd.DataFrame(rows), DM10, LEVEL)
    table = claims.tested_table(out)
    first = table[(table["claim"] == 1) & (table["comparison"] == "guided − plain")]
    assert first["group"].tolist() == ["fast, resnet34 → mobilenetv2"]  # cmi: too few seeds, predfkd: unequal steps
    row = first.iloc[0]
    expected = stats.ttest_ind([60, 61.5, 62], [50, 51, 52], equal_var=False)
    assert row["seeds (better / baseline)"] == "3 / 3" and row["KD steps"] == 4000
    assert row["difference (points)"] == pytest.approx(10.17, abs=0.005) and row["verdict"] == "holds"
    assert row["p"] == pytest.approx(expected.pvalue, rel=1e-2) and row["df"] == pytest.approx(expected.df, abs=0.05)
    assert set(table["verdict"]) <= {"holds", "does not hold", "inconclusive"}
    assert "predfkd" not in " ".join(table["group"]) and "cmi" not in " ".join(table["group"])
    assert claims.tested_markdown(out).endswith(table.to_markdown(index=False))
    none = claims.evaluate_claims(pd.DataFrame(_rows("fast", "plain", [50]) + _rows("fast", "guided", [60], method="dm",
                                                                                    ipc=10)), DM10, LEVEL)
    assert claims.tested_table(none).empty and claims.tested_markdown(none).startswith("No group has carried a verdict")


def test_the_tested_table_counts_the_four_sides_of_a_difference_of_gains():
    rows = _rows("fast", "plain", [50, 51, 52])
    for method, finals in (("mtt", [40, 41]), ("dm", [65, 66, 67])):
        rows += _rows("fast", "guided", finals, method=method, ipc=10)
    table = claims.tested_table(claims.evaluate_claims(pd.DataFrame(rows), DM10, LEVEL))
    gains = table[table["comparison"] == "gain with mtt − gain with dm"]
    assert gains["seeds (better / baseline)"].tolist() == ["2, 3 / 3, 3"] and gains["verdict"].tolist() == ["does not hold"]


def test_the_guidance_summary_gives_each_difference_its_test():
    rows = _rows("fast", "plain", [60, 61, 62]) + _rows("fast", "naive", [62])
    rows += _rows("fast", "guided", [66, 67, 68], method="dm", ipc=10)
    records = pd.DataFrame(rows)
    records.loc[records["variant"] == "naive", ["transfer_method", "transfer_ipc"]] = ["dm", 10]
    variants = pd.DataFrame({"plain": [61.0], "naive": [62.0], "guided": [67.0], "guided − plain": [6.0],
                             "guided − naive": [5.0]}, index=pd.Index(["fast"], name="host"))
    seeds = pd.DataFrame({"plain": [3], "naive": [1], "guided": [3]}, index=variants.index)
    text = findings.guidance_variants(variants, seeds, claims.guided_against(records, LEVEL))
    assert "(+6.00, p = 0.00" in text and "holds)" in text and "(+5.00, too few seeds)" in text


def test_the_level_comes_from_the_profile_alone():
    """Every notebook with a ``level`` parameter gets the profile's ``claims.level`` from its stage
    (so the guidance summary and the claims report test at the same level), and its default is the schema's."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    commands = {nb: (stage.get("do") or stage)["cmd"] for stage in stages.values()
                for nb in re.findall(r"papermill .*?(notebooks/\S+\.ipynb)", (stage.get("do") or stage)["cmd"])}
    with_level = []
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        source = next(c.source for c in nb.cells if "parameters" in c.metadata.get("tags", []))
        default = re.search(r"^level\s*=\s*([0-9.]+)", source, flags=re.M)
        if default is None:
            continue
        with_level.append(path.name)
        assert float(default.group(1)) == ClaimsParams().level, path.name
        assert "-p level ${claims.level}" in commands[f"notebooks/{path.name}"], path.name
    assert with_level == ["claims.ipynb", "guidance_summary.ipynb"]
