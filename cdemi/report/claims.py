"""The paper's eight claims, each checked against run records by one stated rule.

A claim compares two sets of cells: ``better`` (e.g. guided runs) and ``baseline`` (e.g. plain
runs), matched on the columns that must agree (host, teacher, student, ...).  Per matched group,
on the final test accuracy over seeds (:data:`RULE` says the same to a reader):

- ``d = mean(better) - mean(baseline)`` in points, with Welch's t-test: ``se = sqrt(s_b^2 / n_b +
  s_a^2 / n_a)`` (sample std), degrees of freedom by Welch-Satterthwaite, and the two-sided p-value
  of ``t = d / se``.  **holds** when ``p < level`` and ``d > 0``, **does not hold** when ``p < level``
  and ``d < 0``, **inconclusive** otherwise.  ``level`` is the profile's ``claims.level``
  (:class:`cdemi.params.ClaimsParams`), passed to every function here; no other value exists.
- A side with one seed has no spread, so the group gets no verdict: **too few seeds**.
- Both sides must have taken the same number of KD steps (a host's warm-up epochs take none);
  otherwise the group gets no verdict: **unequal KD steps**.  Where the baseline has runs at
  several budgets (KD alone at 8,000 KD steps and at 16,000), those at the better side's are taken.
- Every run on both sides must have converged (the ``converged`` column of
  :func:`cdemi.report.study_budget.mark_converged`, where the records have it); otherwise the group
  gets no verdict: **not converged**.  A difference taken while the students still climb measures
  the budget, not the method.
- A difference of two gains (claims 7 and 8) is tested the same way: its variance is the sum of
  its four sides', its degrees of freedom Welch-Satterthwaite's over the four.

Parts combine by conjunction, for the groups of a comparison as for the comparisons of a claim:
**does not hold** when any part does not hold, **holds** when every part holds, else
**inconclusive** if any part is, else **not converged**, **too few seeds**, **unequal KD steps** or **no
cells yet**.
A comparison marked ``counts=False`` is shown beside the verdict but does not enter it (claim 1's
two effects).  Nothing here knows the numbers it will be given: the verdicts follow from the records.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pandas as pd
from scipy import stats as scipy_stats

from ..artifacts import atomic_write_bytes, atomic_write_json
from .grid import select, stats
from .labels import REAL_SUBSETS

HOLDS, FAILS, UNSURE = "holds", "does not hold", "inconclusive"
TOO_FEW, UNEQUAL, NO_CELLS = "too few seeds", "unequal KD steps", "no cells yet"
NOT_CONVERGED = "not converged"
VERDICTS = (HOLDS, FAILS, UNSURE, NOT_CONVERGED, TOO_FEW, UNEQUAL, NO_CELLS)
TESTED = (HOLDS, FAILS, UNSURE)  # the verdicts a group's data gave; the others withhold one
PAIR = ("teacher", "student")
CLAIM7_METHODS = ("dsa", "dm", "mtt")  # the condensation methods claim 7 compares, whether or not they have cells


def rule(level: float) -> str:
    """The verdict rule in words, for the report's header."""
    return (f"Each comparison is a difference of mean final test accuracy (points) between matched cells, tested by "
            f"Welch's t-test (degrees of freedom by Welch–Satterthwaite; a difference of two gains sums the variances "
            f"of its four sides): it **holds** when the two-sided p-value is below {level:g} and the difference is "
            f"positive, **does not hold** when p < {level:g} and it is negative, and is **inconclusive** otherwise. "
            f"A side with one seed gives no verdict (**too few seeds**), nor do sides that took different numbers of "
            f"KD steps (**unequal KD steps**), nor does a side with a run that has not converged (**not converged**: "
            f"fewer KD steps than the convergence study settled for its host settings, or none settled yet). A claim, "
            f"like a comparison over its groups, holds only if every part holds and does not hold if any part does not.")


def welch(d: float, terms: list[tuple[float, int]], level: float) -> dict:
    """Welch's t-test of a difference ``d`` (points) whose variance is the sum of ``terms``, one
    ``(s^2 / n, n)`` per side (sample variance over seeds, seed count).

    :returns: ``se``, ``df`` (Welch-Satterthwaite), ``p`` (two-sided) and ``verdict``: holds /
        does not hold when ``p < level`` by the sign of ``d``, else inconclusive; with ``se`` 0 (every
        side constant) ``p`` is 0 unless ``d`` is 0.  A side with fewer than two seeds: NaNs and
        ``too few seeds``.
    """
    if any(n < 2 for _, n in terms):
        return {"se": math.nan, "df": math.nan, "p": math.nan, "verdict": TOO_FEW}
    var = sum(v for v, _ in terms)
    if var == 0:
        p, df = (1.0 if d == 0 else 0.0), math.nan
    else:
        df = var ** 2 / sum(v ** 2 / (n - 1) for v, n in terms if v > 0)
        p = float(2 * scipy_stats.t.sf(abs(d) / math.sqrt(var), df))
    verdict = UNSURE if p >= level else (HOLDS if d > 0 else FAILS)
    return {"se": math.sqrt(var), "df": df, "p": p, "verdict": verdict}


def combine(verdicts: list[str]) -> str:
    """The conjunction of the module docstring: any part fails -> does not hold; every part
    holds -> holds; else inconclusive, not converged, too few seeds, unequal KD steps, no cells yet (the first
    present)."""
    if FAILS in verdicts:
        return FAILS
    if verdicts and all(v == HOLDS for v in verdicts):
        return HOLDS
    for v in (UNSURE, NOT_CONVERGED, TOO_FEW, UNEQUAL):
        if v in verdicts:
            return v
    return NO_CELLS


@dataclass
class Evidence:
    """One comparison: the groups it matched and the verdict of each and of all.
    ``counts``: whether the verdict enters its claim's (False: shown beside it only)."""

    label: str
    groups: list[dict] = field(default_factory=list)  # match (the matched columns), d, se, df, p, n_*, kd_steps_*, verdict
    verdict: str = NO_CELLS
    counts: bool = True

    @property
    def difference(self) -> float:
        """The mean difference (points) over the groups the test judged (:data:`TESTED`); NaN when
        none was.  A group whose verdict is withheld keeps its own ``d`` in :attr:`groups`."""
        ds = [g["d"] for g in self.groups if g["verdict"] in TESTED]
        return sum(ds) / len(ds) if ds else float("nan")


def _budget(group: pd.DataFrame) -> int | None:
    """The KD steps every run of ``group`` took, or None when they differ (or are unknown)."""
    steps = set(group["kd_steps"]) if "kd_steps" in group else set()
    return int(steps.pop()) if len(steps) == 1 else None


def _converged(group: pd.DataFrame) -> bool:
    """Whether every run of ``group`` has converged (True where the records carry no ``converged`` column)."""
    return bool(group["converged"].all()) if "converged" in group else True


def _at_steps(group: pd.DataFrame, steps: int | None) -> pd.DataFrame:
    """The runs of ``group`` that took ``steps`` KD steps, where it has any; else all of it (and the
    comparison reads unequal KD steps).  ``steps`` None (:func:`_budget` of a side whose runs differ, or
    of records without ``kd_steps``): all of it."""
    if steps is None:
        return group
    matched = group[group["kd_steps"] == steps]
    return matched if len(matched) else group


def compare(records: pd.DataFrame, label: str, better: dict, baseline: dict, match: tuple[str, ...],
            level: float, split: tuple[str, ...] = (), counts: bool = True) -> Evidence:
    """``better`` minus ``baseline`` (column filters) per group of equal ``match`` columns, each
    group judged by :func:`welch` at ``level``; ``split`` columns divide the better side further
    without constraining the baseline (each host's guided runs against the one KD-only cell).  A
    baseline group with runs at the better group's KD steps keeps only those (:func:`_at_steps`)."""
    ev = Evidence(label, counts=counts)
    b, a = select(records, **better), select(records, **baseline)
    keys = list(match) + list(split)
    for key, b_group in b.groupby(keys, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        a_group = a
        for col, value in zip(match, key):
            a_group = a_group[a_group[col] == value]
        if a_group.empty:
            continue
        a_group = _at_steps(a_group, _budget(b_group))
        b_stats, a_stats = stats(b_group["final"]), stats(a_group["final"])
        nb, na = b_stats["n"], a_stats["n"]
        terms = [(b_stats["std"] ** 2 / nb, nb), (a_stats["std"] ** 2 / na, na)]
        d = b_stats["mean"] - a_stats["mean"]
        steps = (_budget(b_group), _budget(a_group))
        test = welch(d, terms, level)
        if steps[0] is None or steps[0] != steps[1]:
            test["verdict"] = UNEQUAL
        elif not (_converged(b_group) and _converged(a_group)):
            test["verdict"] = NOT_CONVERGED
        ev.groups.append({"match": dict(zip(keys, key)), "d": d, **test, "n_better": nb, "n_baseline": na,
                          "kd_steps_better": steps[0], "kd_steps_baseline": steps[1], "terms": terms})
    ev.verdict = combine([g["verdict"] for g in ev.groups])
    return ev


def compare_gains(records: pd.DataFrame, label: str, gain_a: tuple[dict, dict], gain_b: tuple[dict, dict],
                  match: tuple[str, ...], level: float) -> Evidence:
    """Whether gain A (better minus baseline, filters) exceeds gain B, per ``match`` group:
    ``d = gain_A - gain_B``, tested by :func:`welch` over the four sides.  A gain whose own sides
    took unequal KD steps leaves its group without a verdict."""
    ev = Evidence(label)
    first = compare(records, "A", *gain_a, match=match, level=level)
    second = compare(records, "B", *gain_b, match=match, level=level)
    index = {tuple(g["match"][m] for m in match): g for g in second.groups}
    for g in first.groups:
        other = index.get(tuple(g["match"][m] for m in match))
        if other is None:
            continue
        d, terms = g["d"] - other["d"], g["terms"] + other["terms"]
        test = welch(d, terms, level)
        if UNEQUAL in (g["verdict"], other["verdict"]):
            test["verdict"] = UNEQUAL
        elif NOT_CONVERGED in (g["verdict"], other["verdict"]):
            test["verdict"] = NOT_CONVERGED
        ev.groups.append({"match": {m: g["match"][m] for m in match}, "d": d, **test, "n_better": g["n_better"],
                          "n_baseline": other["n_better"], "kd_steps_better": g["kd_steps_better"],
                          "kd_steps_baseline": other["kd_steps_better"], "terms": terms})
    ev.verdict = combine([g["verdict"] for g in ev.groups])
    return ev


@dataclass(frozen=True)
class Claim:
    """:param number: 1-8 as in the paper summary; :param text: the claim;
    :param check: (records, headline, level) -> the comparisons that test it;
    :param note: what a reader needs to read the comparisons (empty: nothing)."""

    number: int
    text: str
    check: Callable[[pd.DataFrame, dict, float], list[Evidence]]
    note: str = ""


def _host_vs(variant: str, ipc: int | None = None):
    def check(records: pd.DataFrame, headline: dict, level: float) -> list[Evidence]:
        cs = dict(headline) if ipc is None else {"transfer_method": headline["transfer_method"], "transfer_ipc": ipc}
        base = {"variant": variant} if variant == "plain" else {"variant": variant, **cs}
        return [compare(records, f"guided − {variant}", {"variant": "guided", **cs}, base, ("host", *PAIR), level)]
    return check


def _beats_host(records: pd.DataFrame, headline: dict, level: float) -> list[Evidence]:
    """Guided against plain (the verdict), and its two effects beside it: the condensed set in KD
    (naive − plain) and guidance itself (guided − naive)."""
    naive, guided = {"variant": "naive", **headline}, {"variant": "guided", **headline}
    match = ("host", *PAIR)
    return [compare(records, "guided − plain", guided, {"variant": "plain"}, match, level),
            compare(records, "the condensed set in KD: naive − plain", naive, {"variant": "plain"}, match, level,
                    counts=False),
            compare(records, "guidance: guided − naive", guided, naive, match, level, counts=False)]


def _beats_kd_only(records: pd.DataFrame, headline: dict, level: float) -> list[Evidence]:
    return [compare(records, "guided − KD on C alone", {"variant": "guided", **headline},
                    {"variant": "kd-only", **headline}, PAIR, level, split=("host",))]


def _few_shot(records: pd.DataFrame, headline: dict, level: float) -> list[Evidence]:
    shot = {"transfer_method": "kshot"}
    return [compare(records, "guided (k-shot) − KD on the k-shot images", {"variant": "guided", **shot},
                    {"variant": "kd-only", **shot}, ("transfer_ipc", *PAIR), level, split=("host",)),
            compare(records, "guided (k-shot) − plain", {"variant": "guided", **shot}, {"variant": "plain"},
                    ("host", *PAIR), level, split=("transfer_ipc",))]


def _conditional(records: pd.DataFrame, headline: dict, level: float) -> list[Evidence]:
    return [compare(records, "conditional − unconditional D", {"variant": "guided"}, {"variant": "guided-uncond"},
                    ("host", "transfer_method", "transfer_ipc", *PAIR), level)]


def _condensers(records: pd.DataFrame, headline: dict, level: float) -> list[Evidence]:
    """Every condensation method at the headline IPC beats plain; MTT's gain beats each other's."""
    ipc = headline["transfer_ipc"]
    guided = records[(records["variant"] == "guided") & (records["transfer_ipc"] == ipc)]
    # every condenser with cells, and those without (which leave the claim open); real-image
    # subsets (random real, k-shot) are references, not condensation methods
    methods = sorted((set(guided["transfer_method"]) | set(CLAIM7_METHODS)) - {"", *REAL_SUBSETS})

    def with_(m):
        return {"variant": "guided", "transfer_method": m, "transfer_ipc": ipc}

    plain = {"variant": "plain"}
    out = [compare(records, f"guided ({m}) − plain", with_(m), plain, ("host", *PAIR), level) for m in methods]
    out += [compare_gains(records, f"gain with mtt − gain with {m}", (with_("mtt"), plain), (with_(m), plain),
                          ("host", *PAIR), level) for m in methods if m != "mtt"]
    return out


def _heterogeneous(records: pd.DataFrame, headline: dict, level: float,
                   hetero: tuple[str, str] = ("resnet34", "mobilenetv2"),
                   homo: tuple[str, str] = ("resnet34", "resnet18")) -> list[Evidence]:
    def gain(pair):
        where = dict(zip(PAIR, pair))
        return {"variant": "guided", **headline, **where}, {"variant": "plain", **where}

    label = f"gain {hetero[0]}→{hetero[1]} − gain {homo[0]}→{homo[1]}"
    return [compare_gains(records, label, gain(hetero), gain(homo), ("host",), level)]


CLAIMS = [
    Claim(1, "Guided MI beats its host MI method (up to +11.4 points).", _beats_host,
          note="The paper's headline gap is guided − plain: the condensed set in KD and guidance together. "
               "Its two effects are shown apart (not part of the verdict); guidance's own is claim 2's."),
    Claim(2, "Guided MI beats naive mixing (+CS).", _host_vs("naive")),
    Claim(3, "Guided MI + C beats KD on C alone.", _beats_kd_only),
    Claim(4, "It still helps at IPC = 1.", _host_vs("plain", ipc=1)),
    Claim(5, "It helps in the few-shot setting (k real images per class).", _few_shot),
    Claim(6, "A conditional discriminator beats an unconditional one.", _conditional),
    Claim(7, "All condensation methods help; MTT helps most.", _condensers),
    Claim(8, "Gains are largest for heterogeneous pairs.", _heterogeneous),
]


def evaluate_claims(records: pd.DataFrame, headline: dict, level: float) -> list[dict]:
    """One row per claim: number, text, note, verdict (:func:`combine` over the comparisons that
    count), and its comparisons (label, mean difference over the judged groups, verdict, ``counts``,
    groups: each its matched columns under ``match`` and its numbers).

    :param headline: the headline condensed set as column filters, e.g.
        ``{"transfer_method": "dm", "transfer_ipc": 10}``;
    :param level: the test's two-sided level, the profile's ``claims.level``."""
    out = []
    for claim in CLAIMS:
        evidence = claim.check(records, headline, level)
        verdict = combine([e.verdict for e in evidence if e.counts])
        out.append({"claim": claim.number, "text": claim.text, "note": claim.note, "verdict": verdict,
                    "evidence": [{"label": e.label, "difference": e.difference, "verdict": e.verdict,
                                  "counts": e.counts, "groups": e.groups} for e in evidence]})
    return out


def _evidence_text(e: dict) -> str:
    """One comparison in words: the mean difference (:attr:`Evidence.difference`) and largest p-value
    over the groups the test judged (:data:`TESTED`; a group whose verdict is withheld, e.g. for unequal
    KD steps or a side not converged, may have a difference and a p-value but enters neither), the
    verdict counts over all groups and the comparison's verdict."""
    groups = e["groups"]
    if not groups:
        return f"{e['label']}: no cells yet"
    tested = [g for g in groups if g["verdict"] in TESTED]
    counts = ", ".join(f"{sum(g['verdict'] == v for g in groups)} {v}" for v in VERDICTS
                       if any(g["verdict"] == v for g in groups))
    if tested:
        head = (f"mean {e['difference']:+.2f} over {len(tested)} tested group(s) of {len(groups)} "
                f"(p ≤ {max(g['p'] for g in tested):.3g}; {counts})")
    else:
        head = f"none of {len(groups)} group(s) tested ({counts})"
    aside = "" if e.get("counts", True) else " (beside the verdict)"
    return f"{e['label']}: {head} → {e['verdict']}{aside}"


def claims_table(rows: list[dict]) -> pd.DataFrame:
    """The claims report as a table: claim, verdict, and each comparison in words (mean
    difference in points, its groups, p-values and verdicts), then the claim's note."""
    table = []
    for r in rows:
        text = "; ".join(_evidence_text(e) for e in r["evidence"]) or NO_CELLS
        if r.get("note"):
            text += f". {r['note']}"
        table.append({"claim": r["claim"], "text": r["text"], "verdict": r["verdict"], "evidence": text})
    return pd.DataFrame(table).set_index("claim")


def _seeds(terms: list) -> str:
    """Seeds per side from a group's Welch ``terms``: ``3 / 2``; a difference of gains ``3, 3 / 3, 2``
    (gain A's better and baseline sides, then gain B's)."""
    n = [str(int(t[1])) for t in terms]
    half = len(n) // 2
    return f"{', '.join(n[:half])} / {', '.join(n[half:])}"


def tested_table(rows: list[dict]) -> pd.DataFrame:
    """Every group of every comparison that the test judged (verdict holds, does not hold or
    inconclusive), one row each: claim, comparison (``(beside the verdict)`` for one that does not
    count), the group's matched columns (host, teacher → student, ...), seeds on each side (a
    difference of gains: both sides of each gain, :func:`_seeds`), KD steps, the difference in points
    with its standard error, Welch's degrees of freedom and p-value, and the verdict.  Empty (with
    those columns) while no group has been judged.

    :param rows: :func:`evaluate_claims`."""
    table = []
    for r in rows:
        for e in r["evidence"]:
            for g in e["groups"]:
                if g["verdict"] not in TESTED:
                    continue
                matched = dict(g["match"])
                parts = [str(matched.pop("host"))] if "host" in matched else []
                if "teacher" in matched or "student" in matched:
                    parts.append(f"{matched.pop('teacher', '?')} → {matched.pop('student', '?')}")
                group = ", ".join(parts + [f"{k} {v}" for k, v in sorted(matched.items())])
                table.append({"claim": r["claim"],
                              "comparison": e["label"] + ("" if e.get("counts", True) else " (beside the verdict)"),
                              "group": group, "seeds (better / baseline)": _seeds(g["terms"]),
                              "KD steps": g["kd_steps_better"], "difference (points)": round(g["d"], 2),
                              "se": round(g["se"], 2), "df": round(g["df"], 1), "p": float(f"{g['p']:.3g}"),
                              "verdict": g["verdict"]})
    return pd.DataFrame(table, columns=["claim", "comparison", "group", "seeds (better / baseline)", "KD steps",
                                        "difference (points)", "se", "df", "p", "verdict"])


def tested_markdown(rows: list[dict]) -> str:
    """The report's second part: a sentence, then :func:`tested_table` as Markdown (or a sentence saying
    that no group has been judged yet).  :param rows: :func:`evaluate_claims`."""
    table = tested_table(rows)
    if table.empty:
        return "No group has carried a verdict yet: every one lacks seeds, equal KD steps or converged runs."
    return ("The groups the test judged (two or more seeds a side, equal KD steps, every run converged), one row "
            "each; the rest withheld a verdict as the evidence column says:\n\n" + table.to_markdown(index=False))


def save_claims(stem: str | Path, rows: list[dict], headline: dict, level: float, runs: int) -> list[Path]:
    """Write the claims report: ``<stem>.json`` (``headline`` as ``{"method", "ipc"}``, ``level``,
    the number of run records ``runs`` and the ``rows`` of :func:`evaluate_claims`) and
    ``<stem>.md`` (:func:`rule`, :func:`claims_table` as Markdown, then :func:`tested_markdown`), both atomically.

    :param headline: the column filters :func:`evaluate_claims` was given
        (``transfer_method``, ``transfer_ipc``).  :returns: the two paths written.
    """
    stem = Path(stem)
    paths = [stem.with_suffix(".json"), stem.with_suffix(".md")]
    atomic_write_json(paths[0], {"headline": {"method": headline["transfer_method"], "ipc": headline["transfer_ipc"]},
                                 "level": level, "runs": int(runs), "claims": rows})
    atomic_write_bytes(paths[1], (rule(level) + "\n\n" + claims_table(rows).reset_index().to_markdown(index=False)
                                  + "\n\n" + tested_markdown(rows) + "\n").encode())
    return paths


def guided_against(records: pd.DataFrame, level: float) -> dict[str, Evidence]:
    """Guided against ``plain`` and against ``naive`` per host on ``records`` (one student and one
    condensed set, as the guidance summary reads them): ``{"plain": Evidence, "naive": Evidence}``."""
    guided = records[records["variant"] == "guided"]
    return {other: compare(records, f"guided − {other}", {"variant": "guided"}, {"variant": other},
                           ("host",), level) for other in ("plain", "naive") if not guided.empty}
