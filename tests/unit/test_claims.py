"""The claims report: the verdict rule and each claim's comparisons, on hand-made records."""
import json
import math
import re
from pathlib import Path

import nbformat
import pandas as pd
import pytest
import yaml

from cdemi.params import ClaimsParams
from cdemi.report import claims, findings

ROOT = Path(__file__).resolve().parents[2]

DM10 = {"transfer_method": "dm", "transfer_ipc": 10}
NOISE = 2.0  # the single-seed floor these cases are written for (a profile's claims.single_seed_noise)


def _rows(host, variant, finals, teacher="resnet34", student="mobilenetv2", method="", ipc=0):
    return [{"host": host, "variant": variant, "teacher": teacher, "student": student, "transfer_method": method,
             "transfer_ipc": ipc, "seed": s, "final": f} for s, f in enumerate(finals)]


@pytest.mark.parametrize("d,se,verdict", [(3.0, 1.0, "holds"), (1.5, 1.0, "inconclusive"), (-2.5, 1.0, "does not hold"),
                                          (1.9, math.nan, "inconclusive"), (2.0, math.nan, "holds"),
                                          (-4.0, math.nan, "does not hold")])
def test_the_verdict_rule(d, se, verdict):
    assert claims.group_verdict(d, se, NOISE) == verdict


def test_combining_groups():
    assert claims.combine(["holds", "holds"]) == "holds"
    assert claims.combine(["does not hold", "inconclusive"]) == "does not hold"
    assert claims.combine(["holds", "does not hold"]) == "inconclusive" and claims.combine([]) == "inconclusive"


def test_compare_matches_groups_and_uses_the_standard_error():
    records = pd.DataFrame(_rows("fast", "guided", [70, 71, 72], method="dm", ipc=10)
                           + _rows("fast", "plain", [60, 61, 62])
                           + _rows("cmi", "guided", [50], method="dm", ipc=10) + _rows("cmi", "plain", [50.5])
                           + _rows("predfkd", "guided", [40], method="dm", ipc=10))  # no plain: not matched
    ev = claims.compare(records, "x", {"variant": "guided", **DM10}, {"variant": "plain"},
                        ("host", "teacher", "student"), NOISE)
    by_host = {g["host"]: g for g in ev.groups}
    assert set(by_host) == {"fast", "cmi"}
    assert by_host["fast"]["d"] == pytest.approx(10) and by_host["fast"]["se"] == pytest.approx(math.sqrt(2 / 3))
    assert by_host["fast"]["verdict"] == "holds" and by_host["cmi"]["verdict"] == "inconclusive"
    assert ev.verdict == "inconclusive" and ev.difference == pytest.approx((10 - 0.5) / 2)


def test_claims_on_a_main_table_only():
    rows = []
    for host, plain, naive, guided in (("fast", 40, 60, 66), ("cmi", 60, 62, 70)):
        rows += _rows(host, "plain", [plain]) + _rows(host, "naive", [naive], method="dm", ipc=10)
        rows += _rows(host, "guided", [guided], method="dm", ipc=10)
        rows += _rows(host, "plain", [plain - 1], student="resnet18")
        rows += _rows(host, "guided", [plain + 2], student="resnet18", method="dm", ipc=10)
    rows += _rows("none", "kd-only", [69], method="dm", ipc=10)
    out = {r["claim"]: r for r in claims.evaluate_claims(pd.DataFrame(rows), DM10, NOISE)}
    assert out[1]["verdict"] == "holds" and out[2]["verdict"] == "holds"
    assert out[3]["verdict"] == "does not hold"  # fast 66 vs 69 (-3) does not hold, cmi +1 is below the noise
    assert {g["host"]: g["d"] for g in out[3]["evidence"][0]["groups"]} == {"fast": -3.0, "cmi": 1.0}
    assert out[8]["verdict"] == "holds"  # hetero gains 26 and 10 vs homo gains 3 and 3
    for number in (4, 5, 6):
        assert out[number]["verdict"] == "inconclusive"
        assert all(not e["groups"] for e in out[number]["evidence"])
    table = claims.claims_table(list(out.values()))
    assert table.loc[1, "verdict"] == "holds" and "no cells yet" in table.loc[6, "evidence"]


def test_mtt_must_give_the_largest_gain():
    rows = _rows("fast", "plain", [50, 51])
    for method, finals in (("mtt", [60, 61]), ("dm", [65, 66]), ("dsa", [66, 67])):
        rows += _rows("fast", "guided", finals, method=method, ipc=10)
    out = claims.evaluate_claims(pd.DataFrame(rows), DM10, NOISE)[6]
    labels = {e["label"]: e["verdict"] for e in out["evidence"]}
    assert labels["guided (dm) − plain"] == "holds" and labels["guided (mtt) − plain"] == "holds"
    assert labels["gain with mtt − gain with dm"] == "does not hold" and out["verdict"] == "inconclusive"


def test_a_condenser_without_cells_leaves_claim_7_open_and_the_noise_floor_is_honoured():
    rows = _rows("fast", "plain", [50]) + _rows("fast", "guided", [51.5], method="dm", ipc=10)
    out = claims.evaluate_claims(pd.DataFrame(rows), DM10, NOISE)
    assert out[6]["verdict"] == "inconclusive" and out[0]["verdict"] == "inconclusive"
    assert [e["groups"] for e in out[6]["evidence"] if e["label"] == "guided (mtt) − plain"] == [[]]
    assert claims.evaluate_claims(pd.DataFrame(rows), DM10, noise=1.0)[0]["verdict"] == "holds"


def test_the_claims_report_is_written_as_json_and_markdown(tmp_path):
    rows = claims.evaluate_claims(pd.DataFrame(_rows("fast", "plain", [50]) + _rows("fast", "guided", [60], method="dm",
                                                                                    ipc=10)), DM10, NOISE)
    paths = claims.save_claims(tmp_path / "claims", rows, DM10, NOISE, runs=2)
    assert [p.name for p in paths] == ["claims.json", "claims.md"]
    saved = json.loads(paths[0].read_text())
    assert saved["headline"] == {"method": "dm", "ipc": 10} and saved["noise"] == NOISE and saved["runs"] == 2
    assert saved["claims"][0]["verdict"] == "holds"
    assert paths[1].read_text() == claims.claims_table(rows).reset_index().to_markdown(index=False) + "\n"


def test_the_guidance_summary_reads_differences_against_the_floor_it_is_given():
    variants = pd.DataFrame({"plain": [60.0], "naive": [62.0], "guided": [63.5], "guided − plain": [3.5],
                             "guided − naive": [1.5]}, index=pd.Index(["fast"], name="host"))
    seeds = pd.DataFrame({"plain": [1], "naive": [1], "guided": [1]}, index=variants.index)
    assert "(+1.50, within the ±2-point single-seed noise)" in findings.guidance_variants(variants, seeds, 2.0)
    assert "(+1.50, better)" in findings.guidance_variants(variants, seeds, 1.0)


def test_the_single_seed_floor_comes_from_the_profile_alone():
    """Every notebook with a ``noise`` parameter gets the profile's ``claims.single_seed_noise`` from its stage
    (so the guidance summary and the claims report read the same floor), and its smoke default is the schema's."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    commands = {nb: (stage.get("do") or stage)["cmd"] for stage in stages.values()
                for nb in re.findall(r"papermill .*?(notebooks/\S+\.ipynb)", (stage.get("do") or stage)["cmd"])}
    with_noise = []
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        source = next(c.source for c in nb.cells if "parameters" in c.metadata.get("tags", []))
        default = re.search(r"^noise\s*=\s*([0-9.]+)", source, flags=re.M)
        if default is None:
            continue
        with_noise.append(path.name)
        assert float(default.group(1)) == ClaimsParams().single_seed_noise, path.name
        assert "-p noise ${claims.single_seed_noise}" in commands[f"notebooks/{path.name}"], path.name
    assert with_noise == ["claims.ipynb", "guidance_summary.ipynb"]
