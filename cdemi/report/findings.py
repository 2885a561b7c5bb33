"""The sentences each report page states under its table or figure, as Markdown.

Every function takes the frames the page has just shown (a table of :mod:`cdemi.report.grid`
with its numeric twin, the records of :func:`cdemi.report.runs.load_records`, ...) and returns the
paragraph; accuracies are in %, differences in points.  Nothing here computes a new result.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

import pandas as pd

from ..data.condensed import load_condensed
from . import condensed
from .claims import TESTED
from .grid import select
from .labels import HOST_NAMES, INVERSION_HOSTS, KD_ONLY_HOST, REAL_SUBSETS, SET_NAMES, VARIANT_NAMES


def main_table(table: pd.DataFrame, numbers: pd.DataFrame, method: str, ipc: int) -> str:
    """T1 per pair: each guided host minus the host alone and minus naive mixing, and KD on the set alone.

    :param table, numbers: :func:`cdemi.report.grid.main_table`'s text table and numeric twin.
    """
    def gain(pair: str, host: str, other: str) -> float:
        g, o = (numbers.loc[(HOST_NAMES[host] + VARIANT_NAMES[v], pair), "mean"] for v in ("guided", other))
        return g - o

    lines = []
    for pair in table.columns:
        hosts = [h for h in INVERSION_HOSTS if (HOST_NAMES[h] + " + guidance", pair) in numbers.index
                 and numbers.loc[(HOST_NAMES[h] + " + guidance", pair), "n"]]
        if not hosts:
            continue
        vs_plain = ", ".join(f"{HOST_NAMES[h]} {gain(pair, h, 'plain'):+.2f}" for h in hosts)
        vs_naive = ", ".join(f"{HOST_NAMES[h]} {gain(pair, h, 'naive'):+.2f}" for h in hosts)
        kd = numbers.loc[(f"KD on {SET_NAMES[method]} IPC {ipc} alone", pair), "mean"]
        lines.append(f"**{pair}**: guidance minus the host alone: {vs_plain} points; minus naive mixing: {vs_naive} "
                     f"points; KD on the condensed set alone reaches {kd:.2f}%.")
    return ("\n\n".join(lines) + "\n\nWhether a difference is a finding depends on its spread over seeds: "
            "the claims report (`results/claims.md`) applies the stated rule.")


def ipc_table(numbers: pd.DataFrame, hosts: list[str]) -> str:
    """T2: guided minus naive per host at every IPC.  :param numbers: :func:`cdemi.report.grid.ipc_table`'s twin."""
    parts = []
    for host in hosts:
        g = numbers.loc[HOST_NAMES[host] + " + guidance", "mean"]
        n = numbers.loc[HOST_NAMES[host] + " + CS (naive)", "mean"]
        gains = ", ".join(f"{g[i] - n[i]:+.2f} at IPC {i}" for i in g.index)
        parts.append(f"{HOST_NAMES[host]}: guided minus naive {gains}")
    return "; ".join(parts) + " (points, seed 0 unless the table says otherwise)."


def pixel_ranges(sets_dir: str | Path, methods: Iterable[str], ipc: int) -> dict[str, tuple[float, float]]:
    """Smallest and largest pixel value (the pixel scale: natural images lie in [0, 1]) of each
    ``<sets_dir>/<method>_ipc<ipc>.pt`` set, by display name."""
    ranges = {}
    for m in methods:
        cs = load_condensed(Path(sets_dir) / f"{m}_ipc{ipc}.pt")
        ranges[SET_NAMES.get(m, m)] = (cs.images.min().item(), cs.images.max().item())
    return ranges


def condenser_table(numbers: pd.DataFrame, host: str, ranges: dict[str, tuple[float, float]]) -> str:
    """T3: the guided host's gain over the host alone per set, which set gives the largest, and the
    sets' pixel ranges (:func:`pixel_ranges`).  :param numbers: :func:`cdemi.report.grid.condenser_table`'s twin."""
    gain = numbers.xs(f"gain over {HOST_NAMES[host]} plain", level="column")["mean"].dropna()
    best = gain.idxmax() if len(gain) else None
    premise = "" if best == "MTT" else (" The paper's premise that MTT helps most does not hold here (see the "
                                        "condensed-set table for how MTT fared on this profile's budget).")
    pixels = ", ".join(f"{m} [{lo:.2f}, {hi:.2f}]" for m, (lo, hi) in ranges.items())
    return (f"Guidance gains over {HOST_NAMES[host]} alone: " + ", ".join(f"{m} {v:+.2f}" for m, v in gain.items())
            + f" points; the largest with **{best}**." + premise
            + f" Pixel range of each set (natural images: 0 to 1): {pixels}. A set far outside the natural range gives "
            "the teacher inputs it never saw: its KD targets on them, and the features the discriminator takes as "
            "real, are off the data distribution.")


def few_shot_table(numbers: pd.DataFrame, host: str) -> str:
    """T4: per k, the guided host minus KD on the k images and minus the host alone.
    :param numbers: :func:`cdemi.report.grid.few_shot_table`'s twin."""
    if not len(numbers):
        return "No few-shot runs in the records yet."
    m = numbers["mean"].unstack("column")
    g = m[f"{HOST_NAMES[host]} + guidance"]
    return ", ".join(f"k = {k}: guided minus KD on the images {g[k] - m.loc[k, 'KD on the k-shot images alone']:+.2f}, "
                     f"minus {HOST_NAMES[host]} alone {g[k] - m.loc[k, HOST_NAMES[host] + ' plain']:+.2f}"
                     for k in m.index) + " (points)."


def ablation_table(numbers: pd.DataFrame) -> str:
    """T5: every changed setting against the default guidance.
    :param numbers: :func:`cdemi.report.grid.ablation_table`'s twin."""
    if not len(numbers):
        return "No guided runs of this host and set in the records yet."
    d = numbers.xs("− default (points)", level="column")["mean"].iloc[1:]
    return ("Change against the default guidance: " + "; ".join(f"{k}: {v:+.2f}" for k, v in d.items())
            + " points (one seed each: a single-seed difference carries no verdict; the claims report tests only cells with seeds on both sides).")


def _tested(group: dict | None) -> str:
    """A comparison group of :mod:`cdemi.report.claims` in words: its p-value and verdict, or why it has none."""
    if group is None:
        return "not compared"
    if group["verdict"] not in TESTED:
        return group["verdict"]
    return f"p = {group['p']:.3g}, {group['verdict']}"


def guidance_variants(variants: pd.DataFrame, seeds: pd.DataFrame, versus: dict) -> str:
    """Per host with all three variants: guided against plain and naive, each difference with its
    Welch test and verdict (:func:`cdemi.report.claims.guided_against`), and the seeds.

    :param variants, seeds: :func:`cdemi.report.variants.variant_table` and :func:`~cdemi.report.variants.seed_counts`.
    :param versus: ``{"plain": Evidence, "naive": Evidence}`` of :func:`~cdemi.report.claims.guided_against`.
    """
    by_host = {other: {g["match"]["host"]: g for g in ev.groups} for other, ev in versus.items()}
    lines = []
    for host, row in variants.iterrows():
        if "guided − plain" not in variants or row.isna()[["guided − plain", "guided − naive"]].any():
            continue
        vs_plain, vs_naive = (by_host.get(other, {}).get(host) for other in ("plain", "naive"))
        lines.append(f"- **{host}**: guided {row['guided']:.2f}% vs plain {row['plain']:.2f}% "
                     f"({row['guided − plain']:+.2f}, {_tested(vs_plain)}) and naive {row['naive']:.2f}% "
                     f"({row['guided − naive']:+.2f}, {_tested(vs_naive)}); seeds: {seeds.loc[host, 'guided']} guided, "
                     f"{seeds.loc[host, 'naive']} naive, {seeds.loc[host, 'plain']} plain.")
    kd = variants["kd-only"].dropna() if "kd-only" in variants else []
    if len(kd):
        lines.append(f"- KD on the condensed set alone reaches {kd.iloc[0]:.2f}%.")
    return "\n".join(lines) or "No host has all three variants yet."


def claims(table: pd.DataFrame, runs: int) -> str:
    """How many claims hold, fail or stay open, and each claim's verdict.
    :param table: :func:`cdemi.report.claims.claims_table`; :param runs: the number of run records read."""
    counts = table["verdict"].value_counts()
    return (f"From {runs} run records: " + ", ".join(f"{n} claim(s) {v}" for v, n in counts.items()) + ". "
            + " ".join(f"Claim {c} ({r['text'].rstrip('.')}): **{r['verdict']}**." for c, r in table.iterrows()))


def feature_distances(records: pd.DataFrame) -> str:
    """Per inversion host, the plain and guided runs' distance to the condensed set (epoch means)."""
    hosts = [h for h in INVERSION_HOSTS if h in set(records["host"])]
    d = records[records["host"].isin(hosts)].groupby(["host", "variant"])["distance_condensed"].mean().unstack()
    return ("Class-wise distance between mean teacher features of the synthetic batches and of the condensed set "
            "(epoch means, seed 0): " + "; ".join(f"{HOST_NAMES[h]} plain {d.loc[h, 'plain']:.2f}, guided "
                                                  f"{d.loc[h, 'guided']:.2f}"
                                                  for h in d.index if {'plain', 'guided'} <= set(d.columns))
            + ". A lower guided distance is what the alignment term aims at; the map shows whether it also covers "
            "the real classes.")


def teacher_on_inversions(records: pd.DataFrame) -> str:
    """The teacher's accuracy on its own inversions (epoch means, %) per host and variant, as a table."""
    runs = records[records["host"] != KD_ONLY_HOST]
    t = runs.groupby(["host", "variant"])["teacher_accuracy"].mean().unstack().round(1)
    return "The teacher's accuracy on its own inversions (epoch means, %) per host and variant:\n\n" + t.to_markdown()


def synthesis_minutes(records: pd.DataFrame, teacher: str, student: str) -> str:
    """Synthesis minutes per run of the pair (mean over seeds) per host and variant, as a table."""
    recs = select(records, teacher=teacher, student=student)
    cost = recs[recs["host"] != KD_ONLY_HOST].groupby(["host", "variant"])["synthesis_min"].mean().unstack()
    return "Synthesis minutes per run (mean over seeds):\n\n" + cost.round(2).to_markdown()


def best_to_last_gap(records: pd.DataFrame, teacher: str, student: str) -> str:
    """The mean gap (points) between a run's best and last epoch per variant, for the pair."""
    recs = select(records, teacher=teacher, student=student)
    last = recs.assign(gap=recs["best"] - recs["final"]).groupby("variant")["gap"].mean()
    gaps = ", ".join(f"{v} {g:.2f}" for v, g in last.items())
    return (f"Mean gap between the best epoch and the last (points): {gaps}. A large gap would mean the last epoch "
            "is not representative of the run.")


def condensed_sets(results: pd.DataFrame, dataset: str) -> str:
    """The most accurate condensed set, each method's gain over the random real subset of the same
    size, the shortfalls against published numbers and the total condensation time.
    :param results: :func:`cdemi.report.condensed.load_results`."""
    best = results.loc[results["accuracy_mean"].idxmax()]
    notes = condensed.shortfalls(results, dataset)
    by_ipc = results.pivot(index="method", columns="ipc", values="accuracy_mean")
    condensers = [m for m in by_ipc.index if m not in REAL_SUBSETS]
    gain = (by_ipc.loc[condensers] - by_ipc.loc["random_real"]) if "random_real" in by_ipc.index else None
    lines = [f"{len(results)} condensed sets; the most accurate is {best['method'].upper()} at IPC {best['ipc']} "
             f"({best['accuracy_mean']:.2f}%)."]
    if gain is not None:
        lines.append("Over the random real subset of the same size, the condensation methods gain "
                     + "; ".join(f"{m.upper()} " + ", ".join(f"{g:+.1f} (IPC {i})" for i, g in row.dropna().items())
                                 for m, row in gain.iterrows()) + " points.")
    lines.append(f"Short of the published numbers by more than {condensed.SHORTFALL_POINTS:g} points: "
                 + ("; ".join(notes) if notes else "none") + ".")
    lines.append(f"Condensation took {results['condense_seconds'].sum() / 60:.1f} min in all (MTT's shared expert "
                 "trajectories not counted).")
    return " ".join(lines)
