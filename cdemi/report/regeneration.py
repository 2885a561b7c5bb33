"""What rerunning every distillation entry of a profile as its converged runs were run costs, from the run records.

The grid reruns its cells one by one, moving each entry to the settings and KD steps that T1's converged runs
of its host took (Fast at its published settings, KD alone at 8,000 KD steps beside the hosts...).  So each
entry of the profile's ``distill`` section is costed in CPU minutes of one thread, its record's
``synthesis_seconds`` + ``kd_seconds``:

- **measured** where its record has converged (it took the study's settled budget for its settings,
  :func:`cdemi.report.study_budget.mark_converged`), at the KD steps it took;
- **estimated** where its record predates that: as its host and variant's converged runs were run, the mean
  minutes of the converged records of the same host, variant and student at their fewest KD steps, else of
  the same host and variant on any student (a guidance ablation, ``guided[weight=2.0]`` or
  ``guided-uncond``, costs as ``guided``).  Their settings, not the entry's as ``params.yaml`` holds them
  now, set that cost: the rerun takes their settings;
- **unknown** where no converged record of its host and variant exists (a host whose budget the study has
  not settled), or the entry has no record.

This is not what ``make regenerate`` costs today, which reruns ``params.yaml`` as it stands (entries not
yet rerun at their earlier budgets); it is what it costs once every entry has been rerun.  The wall time
is the queue's: the entries in the profile's order, each started on the first of ``workers`` one-thread
workers to come free (list scheduling, as ``dvc queue start -j N`` takes experiments in the order they were
queued), over the measured and estimated minutes; while an entry is unknown it is a lower bound.  Each
epoch's validation pass, the saving of its resume state and each run's start come on top (the records do
not time them).
"""
from __future__ import annotations

import heapq
import math
from collections.abc import Sequence

import pandas as pd

from .labels import HOST_NAMES, HOST_ORDER

MEASURED, ESTIMATED, UNKNOWN = "measured", "estimated", "unknown"


def queue_wall_time(minutes: Sequence[float], workers: int) -> float:
    """Minutes until the last of ``minutes`` (jobs in queue order) ends when each starts on the first of
    ``workers`` workers to come free.  :raises ValueError: ``workers`` < 1."""
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a whole number of at least 1, got {workers!r}")
    bad = [m for m in minutes if not math.isfinite(m) or m < 0]
    if bad:
        raise ValueError(f"every job takes a finite, non-negative number of minutes; got {bad[:3]}: leave unknown "
                         f"entries out")
    free = [0.0] * workers
    end = 0.0
    for m in minutes:
        start = heapq.heappop(free)
        end = max(end, start + m)
        heapq.heappush(free, start + m)
    return end


def cost_variant(variant: str) -> str:
    """The variant whose runs cost what ``variant``'s do: guidance ablations (``guided[...]``,
    ``guided-uncond``) are ``guided``."""
    return variant.split("[")[0].removesuffix("-uncond")


def _reference(converged: pd.DataFrame) -> pd.DataFrame:
    """The converged records at the fewest KD steps of their host, variant and student."""
    fewest = converged.groupby(["host", "variant", "student"])["kd_steps"].transform("min")
    return converged[converged["kd_steps"] == fewest]


def entry_minutes(records: pd.DataFrame, order: Sequence[str]) -> pd.DataFrame:
    """Each entry of ``order`` (the profile's ``distill`` names, in queue order) with its cost.

    :param records: :func:`cdemi.report.runs.load_records` with :func:`cdemi.report.study_budget.mark_converged`'s
        ``converged`` column; records not named in ``order`` are ignored.
    :returns: one row per entry, indexed by name: ``host``, ``variant`` (:func:`cost_variant`), ``student`` (empty without a
        record), ``kd_steps`` of its record, ``minutes`` (CPU minutes of one thread; NaN when unknown) and
        ``basis`` (:data:`MEASURED`, :data:`ESTIMATED` or :data:`UNKNOWN`).
    """
    missing = [c for c in ("name", "host", "variant", "student", "kd_steps", "synthesis_min", "kd_min", "converged")
               if c not in records]
    if missing:
        raise ValueError(f"records without {', '.join(missing)}: pass load_records' records through "
                         f"study_budget.mark_converged first")
    if records["name"].duplicated().any():
        raise ValueError(f"records with the same name: {sorted(set(records['name'][records['name'].duplicated()]))}")
    records = records.assign(variant=records["variant"].map(cost_variant),
                             minutes=records["synthesis_min"] + records["kd_min"])
    by_name = records.set_index("name")
    converged = records[records["converged"]]
    reference = _reference(converged) if len(converged) else converged
    same_student = reference.groupby(["host", "variant", "student"])["minutes"].mean()
    any_student = reference.groupby(["host", "variant"])["minutes"].mean()
    rows = []
    for name in order:
        if name not in by_name.index:
            rows.append({"name": name, "host": "", "variant": "", "student": "", "kd_steps": float("nan"),
                         "minutes": float("nan"), "basis": UNKNOWN})
            continue
        rec = by_name.loc[name]
        key = (rec["host"], rec["variant"], rec["student"])
        if rec["converged"]:
            minutes, basis = rec["minutes"], MEASURED
        elif key in same_student.index:
            minutes, basis = same_student[key], ESTIMATED
        elif key[:2] in any_student.index:
            minutes, basis = any_student[key[:2]], ESTIMATED
        else:
            minutes, basis = float("nan"), UNKNOWN
        rows.append({"name": name, "host": rec["host"], "variant": rec["variant"], "student": rec["student"],
                     "kd_steps": rec["kd_steps"], "minutes": minutes, "basis": basis})
    return pd.DataFrame(rows, columns=["name", "host", "variant", "student", "kd_steps", "minutes",
                                       "basis"]).set_index("name")


def _host_rank(host: str) -> int:
    return (HOST_ORDER + (host,)).index(host)


def _host_name(host: str) -> str:
    return HOST_NAMES.get(host, host or "no record")


def _entries(n: int) -> str:
    return f"{n} {'entry' if n == 1 else 'entries'}"


def by_host(entries: pd.DataFrame) -> pd.DataFrame:
    """:func:`entry_minutes` summed per host (named and ordered as :mod:`cdemi.report.labels` does; ``KD``:
    KD on a fixed set alone): the entries of each basis and the CPU hours measured and estimated, with a
    ``total`` row."""
    counts = entries.groupby(["host", "basis"]).size().unstack(fill_value=0)
    hours = entries.groupby(["host", "basis"])["minutes"].sum().unstack(fill_value=0.0) / 60
    table = pd.DataFrame(index=counts.index)
    for basis in (MEASURED, ESTIMATED, UNKNOWN):
        table[f"{basis} entries"] = counts.get(basis, pd.Series(0, index=counts.index)).astype(int)
    for basis in (MEASURED, ESTIMATED):
        table[f"{basis} CPU hours"] = hours.get(basis, pd.Series(0.0, index=counts.index))
    table = table.loc[sorted(table.index, key=_host_rank)]
    table.index = [_host_name(h) for h in table.index]
    table.loc["total"] = table.sum()
    table.index.name = "host"
    return table.astype({c: int for c in table.columns if c.endswith("entries")}).round(1)


def findings(entries: pd.DataFrame, workers: int) -> str:
    """One sentence: the profile's CPU hours by basis and the queue's wall time on ``workers`` workers
    (:func:`queue_wall_time` over the entries that are not unknown)."""
    known = entries[entries["basis"] != UNKNOWN]
    wall = queue_wall_time(known["minutes"].tolist(), workers) / 60
    basis = entries["basis"].value_counts()
    hours = known.groupby("basis")["minutes"].sum() / 60
    unknown = entries[entries["basis"] == UNKNOWN]
    hosts = ", ".join(_host_name(h) for h in sorted(set(unknown["host"]), key=_host_rank))
    text = (f"Rerunning the profile's {_entries(len(entries))} as their hosts' converged runs were run takes "
            f"{hours.get(MEASURED, 0.0):.1f} CPU hours measured ({_entries(basis.get(MEASURED, 0))}) and "
            f"{hours.get(ESTIMATED, 0.0):.1f} estimated ({_entries(basis.get(ESTIMATED, 0))}), one thread each; "
            f"on {workers} one-thread workers in queue order that is {wall:.1f} hours of synthesis and KD")
    if len(unknown):
        return (text + f", a lower bound: {_entries(len(unknown))} ({hosts}) have no converged record of their "
                f"host and variant to estimate them from.")
    return text + "."
