"""The paper's eight claims, each checked against run records by one stated rule.

A claim compares two sets of cells: ``better`` (e.g. guided runs) and ``baseline`` (e.g.
plain runs), matched on the columns that must agree (host, teacher, student, ...).  Per
matched group the difference is ``d = mean(better) - mean(baseline)`` of the final test
accuracy over seeds, with standard error ``se = sqrt(s_b^2 / n_b + s_a^2 / n_a)`` (sample
std, both sides with at least 2 seeds).  The rule:

- with a standard error: **holds** when ``d > 2 se``, **does not hold** when ``d < -2 se``,
  otherwise **inconclusive**;
- with a single seed on either side there is no spread: **inconclusive** unless
  ``|d| >= noise``, then holds or does not hold by the sign of ``d``.  ``noise`` (points) is
  the profile's ``claims.single_seed_noise`` (:class:`cdemi.params.ClaimsParams`), passed to
  every function here; no other value exists.

A claim holds when every matched group holds, does not hold when no group holds and at
least one does not, and is inconclusive otherwise (including when no cell exists yet).
Nothing here knows the numbers it will be given: the verdicts follow from the records.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pandas as pd

from ..artifacts import atomic_write_bytes, atomic_write_json
from .grid import select, stats
from .labels import REAL_SUBSETS

HOLDS, FAILS, UNSURE = "holds", "does not hold", "inconclusive"
PAIR = ("teacher", "student")
CLAIM7_METHODS = ("dsa", "dm", "mtt")  # the condensation methods claim 7 compares, whether or not they have cells


@dataclass
class Evidence:
    """One comparison: the groups it matched and the verdict of each and of all."""

    label: str
    groups: list[dict] = field(default_factory=list)  # match keys + d, se, n_better, n_baseline, verdict
    verdict: str = UNSURE

    @property
    def difference(self) -> float:
        ds = [g["d"] for g in self.groups]
        return sum(ds) / len(ds) if ds else float("nan")


def group_verdict(d: float, se: float, noise: float) -> str:
    """The rule of the module docstring for one matched group: ``d`` and ``se`` in points
    (``se`` NaN without seeds on both sides), ``noise`` the single-seed floor in points."""
    if math.isnan(se):
        return UNSURE if abs(d) < noise else (HOLDS if d > 0 else FAILS)
    if d > 2 * se:
        return HOLDS
    return FAILS if d < -2 * se else UNSURE


def combine(verdicts: list[str]) -> str:
    """All groups hold: holds; none holds and one fails: does not hold; else inconclusive."""
    if verdicts and all(v == HOLDS for v in verdicts):
        return HOLDS
    if verdicts and HOLDS not in verdicts and FAILS in verdicts:
        return FAILS
    return UNSURE


def compare(records: pd.DataFrame, label: str, better: dict, baseline: dict, match: tuple[str, ...],
            noise: float, split: tuple[str, ...] = ()) -> Evidence:
    """``better`` minus ``baseline`` (column filters) per group of equal ``match`` columns;
    ``split`` columns divide the better side further without constraining the baseline
    (each host's guided runs against the one KD-only cell)."""
    ev = Evidence(label)
    b, a = select(records, **better), select(records, **baseline)
    keys = list(match) + list(split)
    for key, b_group in b.groupby(keys, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        a_group = a
        for col, value in zip(match, key):
            a_group = a_group[a_group[col] == value]
        if a_group.empty:
            continue
        b_stats, a_stats = stats(b_group["final"]), stats(a_group["final"])
        nb, na = b_stats["n"], a_stats["n"]
        se = math.sqrt(b_stats["std"] ** 2 / nb + a_stats["std"] ** 2 / na) if nb >= 2 and na >= 2 else float("nan")
        d = b_stats["mean"] - a_stats["mean"]
        ev.groups.append({**dict(zip(keys, key)), "d": d, "se": se, "n_better": nb, "n_baseline": na,
                          "verdict": group_verdict(d, se, noise)})
    ev.verdict = combine([g["verdict"] for g in ev.groups])
    return ev


def compare_gains(records: pd.DataFrame, label: str, gain_a: tuple[dict, dict], gain_b: tuple[dict, dict],
                  match: tuple[str, ...], noise: float) -> Evidence:
    """Whether gain A (better minus baseline, filters) exceeds gain B, per ``match`` group:
    ``d = gain_A - gain_B``, with the standard errors of both gains added in quadrature."""
    ev = Evidence(label)
    first = compare(records, "A", *gain_a, match=match, noise=noise)
    second = compare(records, "B", *gain_b, match=match, noise=noise)
    index = {tuple(g[m] for m in match): g for g in second.groups}
    for g in first.groups:
        other = index.get(tuple(g[m] for m in match))
        if other is None:
            continue
        d, se = g["d"] - other["d"], math.sqrt(g["se"] ** 2 + other["se"] ** 2)
        ev.groups.append({**{m: g[m] for m in match}, "d": d, "se": se, "n_better": g["n_better"],
                          "n_baseline": other["n_better"], "verdict": group_verdict(d, se, noise)})
    ev.verdict = combine([g["verdict"] for g in ev.groups])
    return ev


@dataclass(frozen=True)
class Claim:
    """:param number: 1-8 as in the paper summary; :param text: the claim;
    :param check: (records, headline, noise) -> the comparisons that test it (all must hold)."""

    number: int
    text: str
    check: Callable[[pd.DataFrame, dict, float], list[Evidence]]


def _host_vs(variant: str, ipc: int | None = None):
    def check(records: pd.DataFrame, headline: dict, noise: float) -> list[Evidence]:
        cs = dict(headline) if ipc is None else {"transfer_method": headline["transfer_method"], "transfer_ipc": ipc}
        base = {"variant": variant} if variant == "plain" else {"variant": variant, **cs}
        return [compare(records, f"guided − {variant}", {"variant": "guided", **cs}, base, ("host", *PAIR), noise)]
    return check


def _beats_kd_only(records: pd.DataFrame, headline: dict, noise: float) -> list[Evidence]:
    return [compare(records, "guided − KD on C alone", {"variant": "guided", **headline},
                    {"variant": "kd-only", **headline}, PAIR, noise, split=("host",))]


def _few_shot(records: pd.DataFrame, headline: dict, noise: float) -> list[Evidence]:
    shot = {"transfer_method": "kshot"}
    return [compare(records, "guided (k-shot) − KD on the k-shot images", {"variant": "guided", **shot},
                    {"variant": "kd-only", **shot}, ("transfer_ipc", *PAIR), noise, split=("host",)),
            compare(records, "guided (k-shot) − plain", {"variant": "guided", **shot}, {"variant": "plain"},
                    ("host", *PAIR), noise, split=("transfer_ipc",))]


def _conditional(records: pd.DataFrame, headline: dict, noise: float) -> list[Evidence]:
    return [compare(records, "conditional − unconditional D", {"variant": "guided"}, {"variant": "guided-uncond"},
                    ("host", "transfer_method", "transfer_ipc", *PAIR), noise)]


def _condensers(records: pd.DataFrame, headline: dict, noise: float) -> list[Evidence]:
    """Every condensation method at the headline IPC beats plain; MTT's gain beats each other's."""
    ipc = headline["transfer_ipc"]
    guided = records[(records["variant"] == "guided") & (records["transfer_ipc"] == ipc)]
    # every condenser with cells, and those without (which leave the claim open); real-image
    # subsets (random real, k-shot) are references, not condensation methods
    methods = sorted((set(guided["transfer_method"]) | set(CLAIM7_METHODS)) - {"", *REAL_SUBSETS})

    def with_(m):
        return {"variant": "guided", "transfer_method": m, "transfer_ipc": ipc}

    plain = {"variant": "plain"}
    out = [compare(records, f"guided ({m}) − plain", with_(m), plain, ("host", *PAIR), noise) for m in methods]
    out += [compare_gains(records, f"gain with mtt − gain with {m}", (with_("mtt"), plain), (with_(m), plain),
                          ("host", *PAIR), noise) for m in methods if m != "mtt"]
    return out


def _heterogeneous(records: pd.DataFrame, headline: dict, noise: float,
                   hetero: tuple[str, str] = ("resnet34", "mobilenetv2"),
                   homo: tuple[str, str] = ("resnet34", "resnet18")) -> list[Evidence]:
    def gain(pair):
        where = dict(zip(PAIR, pair))
        return {"variant": "guided", **headline, **where}, {"variant": "plain", **where}

    label = f"gain {hetero[0]}→{hetero[1]} − gain {homo[0]}→{homo[1]}"
    return [compare_gains(records, label, gain(hetero), gain(homo), ("host",), noise)]


CLAIMS = [
    Claim(1, "Guided MI beats its host MI method (up to +11.4 points).", _host_vs("plain")),
    Claim(2, "Guided MI beats naive mixing (+CS).", _host_vs("naive")),
    Claim(3, "Guided MI + C beats KD on C alone.", _beats_kd_only),
    Claim(4, "It still helps at IPC = 1.", _host_vs("plain", ipc=1)),
    Claim(5, "It helps in the few-shot setting (k real images per class).", _few_shot),
    Claim(6, "A conditional discriminator beats an unconditional one.", _conditional),
    Claim(7, "All condensation methods help; MTT helps most.", _condensers),
    Claim(8, "Gains are largest for heterogeneous pairs.", _heterogeneous),
]


def evaluate_claims(records: pd.DataFrame, headline: dict, noise: float) -> list[dict]:
    """One row per claim: number, text, verdict, and its comparisons (label, mean difference,
    groups with their numbers).  :param headline: the headline condensed set as column filters,
    e.g. ``{"transfer_method": "dm", "transfer_ipc": 10}``; :param noise: the single-seed floor in
    points, the profile's ``claims.single_seed_noise``."""
    out = []
    for claim in CLAIMS:
        evidence = claim.check(records, headline, noise)
        verdict = combine([e.verdict for e in evidence]) if evidence else UNSURE
        out.append({"claim": claim.number, "text": claim.text, "verdict": verdict,
                    "evidence": [{"label": e.label, "difference": e.difference, "verdict": e.verdict,
                                  "groups": e.groups} for e in evidence]})
    return out


def claims_table(rows: list[dict]) -> pd.DataFrame:
    """The claims report as a table: claim, verdict, and each comparison's mean difference
    (points), the spread of its groups and how many groups it matched."""
    table = []
    for r in rows:
        parts = []
        for e in r["evidence"]:
            if not e["groups"]:
                parts.append(f"{e['label']}: no cells yet")
                continue
            ses = [g["se"] for g in e["groups"] if not math.isnan(g["se"])]
            single = len(e["groups"]) - len(ses)
            spread = [f"se ≤ {max(ses):.2f} in {len(ses)} group(s) with seeds"] if ses else []
            spread += [f"{single} single-seed group(s)"] if single else []
            verdicts = ", ".join(f"{sum(g['verdict'] == v for g in e['groups'])} {v}" for v in (HOLDS, FAILS, UNSURE)
                                 if any(g["verdict"] == v for g in e["groups"]))
            parts.append(f"{e['label']}: mean {e['difference']:+.2f} over {len(e['groups'])} group(s) "
                         f"({'; '.join(spread)}; {verdicts}) → {e['verdict']}")
        table.append({"claim": r["claim"], "text": r["text"], "verdict": r["verdict"],
                      "evidence": "; ".join(parts) or "no cells yet"})
    return pd.DataFrame(table).set_index("claim")


def save_claims(stem: str | Path, rows: list[dict], headline: dict, noise: float, runs: int) -> list[Path]:
    """Write the claims report: ``<stem>.json`` (``headline`` as ``{"method", "ipc"}``, ``noise``,
    the number of run records ``runs`` and the ``rows`` of :func:`evaluate_claims`) and
    ``<stem>.md`` (:func:`claims_table` as Markdown), both atomically.

    :param headline: the column filters :func:`evaluate_claims` was given
        (``transfer_method``, ``transfer_ipc``).  :returns: the two paths written.
    """
    stem = Path(stem)
    paths = [stem.with_suffix(".json"), stem.with_suffix(".md")]
    atomic_write_json(paths[0], {"headline": {"method": headline["transfer_method"], "ipc": headline["transfer_ipc"]},
                                 "noise": noise, "runs": int(runs), "claims": rows})
    atomic_write_bytes(paths[1], (claims_table(rows).reset_index().to_markdown(index=False) + "\n").encode())
    return paths
