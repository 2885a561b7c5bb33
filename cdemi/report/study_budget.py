"""Which grid runs took the budget the convergence study chose (``results/convergence.json``).

Under the cosine learning-rate schedule a run's own last-fifth verdict (:mod:`cdemi.convergence`) mostly
sees the learning rate decay, so a grid run is judged by the study instead: it counts as **converged**
when the study has chosen a budget (``chosen_kd_steps``), the run took at least that many KD steps,
and its host is one the budget was read from (``hosts``: a host with a full-length study cell at the
grid's settings, ``none`` for KD alone; :func:`cdemi.report.convergence.budget_hosts`).  The tables
mark every other cell with :data:`MARK` and the claims give no verdict on it
(:data:`cdemi.report.claims.NOT_CONVERGED`).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .labels import HOST_NAMES, KD_ONLY_HOST

MARK = "†"


@dataclass(frozen=True)
class StudyBudget:
    """:param kd_steps: the study's chosen KD steps for the grid (None: none chosen yet).
    :param hosts: the hosts whose study cells bound it (``none``: KD alone)."""

    kd_steps: int | None
    hosts: tuple[str, ...]

    def reached(self, host: str, kd_steps: int) -> bool:
        """Whether a run of ``host`` that took ``kd_steps`` KD steps in all counts as converged."""
        return self.kd_steps is not None and kd_steps >= self.kd_steps and host in self.hosts

    def footnote(self) -> str:
        """What :data:`MARK` means, in one sentence."""
        if self.kd_steps is None:
            return (f"{MARK} not converged: the convergence study has chosen no budget yet, so no run of the grid is "
                    f"known to have converged.")
        hosts = ", ".join(sorted("KD alone" if h == KD_ONLY_HOST else HOST_NAMES.get(h, h) for h in self.hosts))
        return (f"{MARK} not converged: fewer KD steps than the {self.kd_steps:,} the convergence study chose, or a "
                f"host whose budget it has not measured (measured: {hosts}).")


def read(path: str | Path) -> StudyBudget:
    """The chosen budget in ``path`` (the ``convergence`` stage's JSON).

    :raises FileNotFoundError: no such file (names the stage that writes it).
    :raises ValueError: not JSON, or without ``chosen_kd_steps`` (an int or null) and ``hosts`` (a list).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: it is the convergence study's budget; run "
                                f"`dvc repro convergence` first")
    try:
        raw = json.loads(path.read_text())
    except ValueError as e:
        raise ValueError(f"{path} is not valid JSON ({e}): restore it or rerun `dvc repro convergence`") from None
    steps, hosts = raw.get("chosen_kd_steps", "missing"), raw.get("hosts")
    if not (steps is None or (isinstance(steps, int) and not isinstance(steps, bool) and steps > 0)) \
            or not isinstance(hosts, list) or not all(isinstance(h, str) for h in hosts):
        raise ValueError(f"{path} holds no study budget (chosen_kd_steps {steps!r}, hosts {hosts!r}; expected a "
                         f"positive int or null and a list of host names): rerun `dvc repro convergence`")
    return StudyBudget(steps, tuple(hosts))


def mark_converged(records: pd.DataFrame, budget: StudyBudget) -> pd.DataFrame:
    """``records`` (:func:`cdemi.report.runs.load_records`) with a ``converged`` column by
    :meth:`StudyBudget.reached` on each run's host and ``kd_steps``."""
    flags = [budget.reached(h, int(k)) for h, k in zip(records["host"], records["kd_steps"])]
    return records.assign(converged=pd.Series(flags, index=records.index, dtype=bool))


def table_note(numbers: pd.DataFrame, budget: StudyBudget) -> str:
    """:meth:`StudyBudget.footnote` when a cell of a table's numeric twin (``converged`` column of
    :func:`cdemi.report.grid.long_cells`) is marked, else empty."""
    marked = numbers["converged"].eq(False).any() if "converged" in numbers else False
    return budget.footnote() if marked else ""
