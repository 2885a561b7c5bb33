"""Which grid runs took a budget the convergence study showed to suffice (``results/convergence.json``).

Under the cosine learning-rate schedule a run's own last-fifth verdict (:mod:`cdemi.convergence`) mostly sees
the learning rate decay, so a grid run is judged by the study instead. The study settles a budget per host and
settings (``budgets``: :func:`cdemi.report.convergence.settled_budgets`, keyed by
:func:`cdemi.report.runs.budget_key`: the host, its settings and the KD loop's, with the number of batches of
a host that synthesises every n-th epoch, whatever the variant, student or set). A run counts as **converged**
when the study holds a settled budget for its key and the run took at least that many KD steps. So a host at
settings the study has not run, or whose cells there have not all settled, is not converged however long it
ran. The tables mark every other cell with :data:`MARK` and the claims give no verdict on it
(:data:`cdemi.report.claims.NOT_CONVERGED`). A cell run at several budgets (KD alone at 8,000 KD steps and at
16,000) is shown at one of them (:func:`one_budget_per_cell`).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .runs import budget_key, encode_budget_key, load_records

MARK = "†"


@dataclass(frozen=True)
class StudyBudget:
    """:param budgets: :func:`cdemi.report.runs.budget_key` -> the KD steps the study settled it at
        (None: measured but not settled yet).
    :param cells: the same keys -> the study cells that measured them (for the footnote)."""

    budgets: dict[str, int | None] = field(default_factory=dict)
    cells: dict[str, list[str]] = field(default_factory=dict)

    def reached(self, host: str, config: dict, kd_steps: int) -> bool:
        """Whether a run of ``host`` with ``config`` (its record's) that took ``kd_steps`` KD steps in
        all counts as converged."""
        settled = self.budgets.get(budget_key(host, config))
        return settled is not None and kd_steps >= settled

    def footnote(self) -> str:
        """What :data:`MARK` means, in one sentence, with the budgets the study has settled."""
        settled = sorted(f"{steps:,} KD steps for {' and '.join(self.cells.get(k, []))}"
                         for k, steps in self.budgets.items() if steps is not None)
        where = f" (settled so far: {'; '.join(settled)})" if settled else " (none settled yet)"
        return (f"{MARK} not converged: the convergence study has not settled a budget for this host at these "
                f"settings, or the run took fewer KD steps than it{where}.")


def read(path: str | Path) -> StudyBudget:
    """The budgets in ``path`` (the ``convergence`` stage's JSON).

    :raises FileNotFoundError: no such file (names the stage that writes it).
    :raises ValueError: not JSON, or without a ``budgets`` list of entries with ``host``,
        ``host_settings``, ``kd_settings``, ``cells`` and ``kd_steps`` (a positive int or null).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: it is the convergence study's budget; run "
                                f"`dvc repro convergence` first")
    try:
        raw = json.loads(path.read_text())
    except ValueError as e:
        raise ValueError(f"{path} is not valid JSON ({e}): restore it or rerun `dvc repro convergence`") from None
    entries = raw.get("budgets") if isinstance(raw, dict) else None
    budgets, cells = {}, {}
    for entry in entries if isinstance(entries, list) else [None]:
        try:
            steps = entry["kd_steps"]
            if not (steps is None or (type(steps) is int and steps > 0)):
                raise TypeError(steps)
            key = encode_budget_key(entry["host"], entry["host_settings"], entry["kd_settings"])
            budgets[key], cells[key] = steps, [str(c) for c in entry["cells"]]
        except (TypeError, KeyError, ValueError):
            raise ValueError(f"{path} holds no study budgets (entry {entry!r}; expected a list `budgets` of host, "
                             f"host_settings, kd_settings, cells and kd_steps, a positive int or null): rerun "
                             f"`dvc repro convergence`") from None
    return StudyBudget(budgets, cells)


def mark_converged(records: pd.DataFrame, budget: StudyBudget) -> pd.DataFrame:
    """``records`` (:func:`cdemi.report.runs.load_records`, with ``config``) with a ``converged``
    column by :meth:`StudyBudget.reached` on each run."""
    flags = [budget.reached(h, c, int(k)) for h, c, k in zip(records["host"], records["config"], records["kd_steps"])]
    return records.assign(converged=pd.Series(flags, index=records.index, dtype=bool))


RUN_FIELDS = ("epochs", "seed", "threads", "curve_test_per_class")  # what the runs of one cell may differ in


def _cell_key(config: dict) -> str:
    """What makes runs one cell: their ``config`` without :data:`RUN_FIELDS`, as canonical JSON."""
    return json.dumps({k: v for k, v in config.items() if k not in RUN_FIELDS}, sort_keys=True, default=str)


def one_budget_per_cell(records: pd.DataFrame) -> pd.DataFrame:
    """``records`` (:func:`mark_converged`'s) with every cell at one KD-step budget, as the tables,
    their figures and the summaries read them.

    A cell is the runs whose ``config`` agree but for their length, seed and bookkeeping
    (:data:`RUN_FIELDS`).  Where a cell's runs took several KD-step counts (KD alone at 8,000 KD steps
    beside Fast and CMI, and at 16,000 to face DeepInversion in claim 3), only those at the fewest KD
    steps at which every run converged stay; where no count has every run converged, those at the most.
    The claims read every budget (:func:`cdemi.report.claims.compare` pairs equal ones).

    :raises ValueError: ``records`` without ``config``, ``kd_steps`` or ``converged`` columns (names the
        missing ones and :func:`mark_converged`)."""
    missing = [c for c in ("config", "kd_steps", "converged") if c not in records]
    if missing:
        raise ValueError(f"records without {', '.join(missing)}: pass load_records' records through "
                         f"mark_converged first")
    keep = pd.Series(True, index=records.index)
    for _, cell in records.groupby(records["config"].map(_cell_key), sort=False):
        steps = sorted(set(cell["kd_steps"]))
        if len(steps) < 2:
            continue
        settled = [k for k in steps if cell.loc[cell["kd_steps"] == k, "converged"].all()]
        chosen = settled[0] if settled else steps[-1]
        keep[cell.index[cell["kd_steps"] != chosen]] = False
    return records[keep]


def table_records(records_dir: str | Path, budget: StudyBudget, dataset: str | None = None,
                  lock: str | Path | None = None) -> pd.DataFrame:
    """The run records as the tables, their figures and the summaries read them:
    :func:`cdemi.report.runs.load_records` (``dataset`` and ``lock`` as there), marked by
    :func:`mark_converged` against ``budget``, with :func:`one_budget_per_cell` applied.

    :raises FileNotFoundError, ValueError: as :func:`cdemi.report.runs.load_records`."""
    return one_budget_per_cell(mark_converged(load_records(records_dir, dataset, lock), budget))


def table_note(numbers: pd.DataFrame, budget: StudyBudget) -> str:
    """:meth:`StudyBudget.footnote` when a cell of a table's numeric twin (``converged`` column of
    :func:`cdemi.report.grid.long_cells`) is marked, else empty."""
    marked = numbers["converged"].eq(False).any() if "converged" in numbers else False
    return budget.footnote() if marked else ""
