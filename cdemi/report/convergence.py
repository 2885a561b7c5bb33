"""The convergence study's report: validation curves against KD steps, per-cell verdicts, the chosen budget.

Reads the ``study`` stage's run records (:func:`cdemi.report.runs.load_records`; each carries its
``validation`` split and ``convergence`` verdict).  A cell is a host and variant of one teacher ->
student pair at one kind of host settings: the grid's (:func:`grid_host_settings`), the host's published
ones (:func:`at_public_settings`) or others; its seeds are its runs.  The budget chosen for the grid
(:func:`chosen_budget`) is the largest, over the cells at the grid's settings, of the budget each settles
at: the plateau (:func:`cdemi.convergence.plateau_epoch`) of its mean validation curve, or a halved
schedule that ends within 1 point of the full one; it exists only when every such cell has settled.
Guided runs that hold condensed images out of the discriminator's training add D's held-out
accuracy per synthesis (:func:`discriminator_curves`); every cell gets its measured cost
(:func:`costs`).
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pandas as pd

from .. import convergence
from .labels import HOST_NAMES, KD_ONLY_HOST, VARIANT_NAMES
from .deviations import public_settings
from .runs import budget_key, host_settings, synthesised_batches, warmup_epochs


def curves(records: pd.DataFrame, configs: dict[str, dict], grid: dict[str, list[dict]] | None = None) -> pd.DataFrame:
    """One row per run and epoch: ``name, cell, seed, epoch, kd_steps`` (KD steps taken so far),
    ``validation_accuracy`` and ``at_grid_settings`` (:func:`at_grid_settings`).  A run of a cell that
    takes fewer KD steps in all than the cell's longest runs is a budget check: its cell is named with
    its total (``KD alone (2,000 KD steps)``).  A run at its host's published settings is in a cell of
    its own (``Fast, public settings``), as is one at neither those nor the grid's (``..., other settings``).
    A run that synthesises every n-th epoch names its number of batches (``..., 20 batches``,
    :func:`cdemi.report.runs.synthesised_batches`): runs with pools of different sizes are different cells,
    and a budget check of one keeps its count.

    :param records: :func:`cdemi.report.runs.load_records` of the study's records.
    :param configs: run name -> its record's ``config``.
    :param grid: :func:`grid_host_settings` of the profile (None: every run counts as at the grid's settings).
    """
    rows = []
    for rec in records.itertuples():
        config = configs[rec.name]
        warmup, per_epoch = warmup_epochs(config), config["kd_steps"]
        at_grid = grid is None or at_grid_settings(rec.host, config, grid)
        cell = cell_label(rec.host, rec.variant, config, grid)
        for r in rec.curve:
            rows.append({"name": rec.name, "cell": cell, "seed": rec.seed,
                         "epoch": r["epoch"], "kd_steps": max(0, r["epoch"] - warmup) * per_epoch,
                         "validation_accuracy": r["validation_accuracy"], "at_grid_settings": at_grid})
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    totals = out.groupby("name")["kd_steps"].transform("max")
    longest = out.assign(total=totals).groupby("cell")["total"].transform("max")
    shorter = totals < longest  # a budget check: the same cell run to fewer KD steps, its schedule ending sooner
    out.loc[shorter, "cell"] = out.loc[shorter, "cell"] + totals[shorter].map(lambda t: f" ({t:,} KD steps)")
    out["budget_check"] = shorter
    return out


PUBLIC_SUFFIX = ", public settings"
OTHER_SUFFIX = ", other settings"  # neither the published host settings nor the grid's


def cell_label(host: str, variant: str, config: dict, grid: dict[str, list[dict]] | None = None) -> str:
    """The study cell a run belongs to, its budget aside: :func:`cell_name`, then :data:`PUBLIC_SUFFIX` at
    its host's published settings or :data:`OTHER_SUFFIX` at neither those nor the grid's (``grid``:
    :func:`grid_host_settings`; None: every run is at the grid's), then ``, <n> batches`` for a run that
    synthesises every n-th epoch (:func:`cdemi.report.runs.synthesised_batches`).

    :param config: the run record's ``config``."""
    at_grid = grid is None or at_grid_settings(host, config, grid)
    cell = cell_name(host, variant) + (PUBLIC_SUFFIX if at_public_settings(host, config) else "" if at_grid
                                       else OTHER_SUFFIX)
    batches = synthesised_batches(config)
    return cell if batches is None else cell + f", {batches:,} batches"


def seed_budgets(records: dict[str, dict], grid: dict[str, list[dict]] | None = None) -> pd.DataFrame:
    """One configuration run to several budgets, seed by seed: the final validation accuracy (%) of every
    run whose configuration differs from another's only in its number of epochs, study and grid runs alike.

    Runs of one seed at different budgets share every setting but the length of their learning-rate
    schedule, so how far they land apart shows what a longer budget still gains against what a run's own
    scatter is (a cell whose runs climb steadily with the budget is still gaining; one whose runs go up and
    down is not).  One row per configuration and seed (index ``cell``: :func:`cell_label` with the student's
    architecture and the condensed set's file stem in brackets, and ``seed``), one column per total of KD
    steps (``4,000``...; warm-up epochs excluded), each entry the run's final validation accuracy with two
    decimals, several records of one budget joined by `` / `` (a grid entry that repeats a study run: run
    again, on another machine or from part of its saved state, or finished from its final state), empty
    where the seed was not run to that budget; then ``range (points)``: the highest entry of the row less
    the lowest (empty for a seed run to one budget only).  Runs without a validation split and
    configurations run to one budget only are left out.

    :param records: run records by key (:func:`cdemi.report.cross_cpu.load_run_records`, e.g. of
        ``results/study`` and ``results/distill``), keys in a fixed order;
    :param grid: :func:`grid_host_settings` of the profile (None: every run at the grid's settings).
    """
    groups: dict[str, dict] = {}
    for record in records.values():
        if record.get("validation_accuracy") is None:
            continue
        config = record["config"]
        rest = {k: v for k, v in config.items() if k not in ("epochs", "seed")}
        group = groups.setdefault(json.dumps(rest, sort_keys=True, default=str), {"runs": []})
        if "cell" not in group:
            where = [str(config["student"]["arch"])]
            if config.get("transfer"):
                where.append(Path(config["transfer"]).stem)
            group["cell"] = f"{cell_label(record['host'], record['variant'], config, grid)} ({', '.join(where)})"
        steps = (int(config["epochs"]) - warmup_epochs(config)) * int(config["kd_steps"])
        group["runs"].append((int(config["seed"]), steps, float(record["validation_accuracy"])))
    shown = [g for g in groups.values() if len({steps for _, steps, _ in g["runs"]}) > 1]
    budgets = sorted({steps for g in shown for _, steps, _ in g["runs"]})
    rows, index = [], []
    for group in sorted(shown, key=lambda g: g["cell"]):
        for seed in sorted({seed for seed, _, _ in group["runs"]}):
            mine = [(steps, acc) for s, steps, acc in group["runs"] if s == seed]
            row = {f"{b:,}": " / ".join(f"{acc:.2f}" for steps, acc in mine if steps == b) for b in budgets}
            accs = [acc for _, acc in mine]
            row["range (points)"] = f"{max(accs) - min(accs):.2f}" if len({steps for steps, _ in mine}) > 1 else ""
            rows.append(row)
            index.append((group["cell"], seed))
    columns = [f"{b:,}" for b in budgets] + ["range (points)"]
    if not rows:
        return pd.DataFrame(columns=columns, index=pd.MultiIndex.from_tuples([], names=["cell", "seed"]))
    return pd.DataFrame(rows, index=pd.MultiIndex.from_tuples(index, names=["cell", "seed"]), columns=columns)


def at_public_settings(host: str, config: dict) -> bool:
    """Whether a run's host settings are all its host's published values
    (:func:`cdemi.report.deviations.public_settings`); False for KD alone.  Such runs form cells of
    their own (``Fast, public settings``), apart from the profile's settings."""
    if host == KD_ONLY_HOST:
        return False
    settings = host_settings(config)
    return all(settings.get(k) == v for k, v in public_settings(host).items())


def grid_host_settings(profile) -> dict[str, list[dict]]:
    """Host -> the distinct host settings the profile's grid (its ``distill`` entries) runs it at
    (:attr:`cdemi.params.DistillRun.host_settings`); KD alone is ``none`` with empty settings.

    :param profile: a validated profile (:func:`cdemi.params.load`).
    """
    out: dict[str, list[dict]] = {}
    for entry in profile.distill.values():
        settings = out.setdefault(entry.host or KD_ONLY_HOST, [])
        if entry.host_settings not in settings:
            settings.append(entry.host_settings)
    return out


def at_grid_settings(host: str, config: dict, grid: dict[str, list[dict]]) -> bool:
    """Whether a study run's host settings are ones the grid runs its host at (``grid``:
    :func:`grid_host_settings`).  KD alone has no host settings and always is; a host the grid
    does not run never is."""
    if host == KD_ONLY_HOST:
        return True
    return host_settings(config) in grid.get(host, [])


def cell_name(host: str, variant: str) -> str:
    """``KD alone`` for a run without a host, else the host and variant as the tables name them
    (``Fast + guidance``)."""
    if host == KD_ONLY_HOST:
        return "KD alone"
    return HOST_NAMES.get(host, host) + VARIANT_NAMES.get(variant, f" {variant}")


def base_cell(cell: str) -> str:
    """The cell a budget check belongs to: ``Fast (8,000 KD steps)`` -> ``Fast``; any other name unchanged."""
    return re.sub(r" \([\d,]+ KD steps\)$", "", cell)


def summary(records: pd.DataFrame, study_curves: pd.DataFrame, verdicts: dict[str, dict]) -> pd.DataFrame:
    """Per cell: seeds; final validation and test accuracy (mean, std over seeds); how many seeds
    converged by the rule; the plateau of the mean validation curve in epochs and KD steps (None
    when that curve has not converged); ``at_grid_settings``: whether every run of the cell is at
    the grid's host settings (:func:`curves`).  A cell's budget checks come with it, shortest first.

    :param verdicts: run name -> its record's ``convergence``.
    """
    rows = []
    by_name = records.set_index("name")
    for cell, group in study_curves.groupby("cell", sort=False):
        names = sorted(group["name"].unique())
        mean = group.groupby("epoch")["validation_accuracy"].mean().sort_index()
        steps = group.groupby("epoch")["kd_steps"].first().sort_index()
        plateau = convergence.plateau_epoch(mean.tolist())
        finals = group.sort_values("epoch").groupby("name")["validation_accuracy"].last()
        tests = by_name.loc[names, "final"]
        rows.append({"cell": cell, "budget_check": bool(group["budget_check"].any()), "seeds": len(names),
                     "epochs": int(mean.index.max()),
                     "kd_steps": int(steps.iloc[-1]),
                     "validation_final_mean": finals.mean(), "validation_final_std": finals.std(ddof=1),
                     "test_final_mean": tests.mean(), "test_final_std": tests.std(ddof=1),
                     "converged_seeds": sum(bool(verdicts[n]["converged"]) for n in names),
                     "mean_curve_converged": plateau is not None,
                     "at_grid_settings": bool(group["at_grid_settings"].all()),
                     "plateau_epoch": plateau, "plateau_kd_steps": None if plateau is None else int(steps.loc[plateau])})
    out = pd.DataFrame(rows)
    base = out["cell"].map(base_cell)
    first = {b: i for i, b in enumerate(dict.fromkeys(base))}
    order = out.assign(_base=base.map(first)).sort_values(["_base", "kd_steps"], kind="stable").index
    return out.loc[order].set_index("cell")


def equal_budgets(cells: pd.DataFrame) -> pd.DataFrame:
    """Final validation accuracy of every cell at every budget it was run to, budget checks and
    full-length runs alike: one row per cell (as :func:`summary` orders them), one column per total
    of KD steps (``4,000``...), each entry the mean over its seeds in percent with the std and the
    seed count (``91.19 ± 0.25 (3)``, ``87.40 (1)``), empty where the cell was not run to that budget.
    Reading across a row shows what each doubling of the budget still gains; down a column, the
    variants at equal KD steps."""
    rows: dict[str, dict[int, str]] = {}
    for cell, r in cells.iterrows():
        n = int(r["seeds"])
        mean = f"{r['validation_final_mean']:.2f}"
        rows.setdefault(base_cell(cell), {})[int(r["kd_steps"])] = (
            f"{mean} ({n})" if n < 2 else f"{mean} ± {r['validation_final_std']:.2f} ({n})")
    steps = sorted({k for row in rows.values() for k in row})
    table = pd.DataFrame([[row.get(k, "") for k in steps] for row in rows.values()], index=list(rows),
                         columns=[f"{k:,}" for k in steps])
    table.index.name = "cell"
    return table


def budget_checks(cells: pd.DataFrame, tolerance: float = convergence.TOLERANCE) -> pd.DataFrame:
    """Each budget-check cell (``<cell> (<n> KD steps)``, see :func:`curves`) against its full-length
    cell: final validation accuracy (means over seeds) of both, the difference (check minus full) and
    ``enough``: whether the shorter budget, with its whole learning-rate schedule, ends within
    ``tolerance`` points of the full one.  Empty when there is no budget check."""
    rows = []
    for cell, r in cells[cells["budget_check"]].iterrows():
        base = base_cell(cell)
        if base not in cells.index:
            continue
        full = cells.loc[base]
        diff = r["validation_final_mean"] - full["validation_final_mean"]
        rows.append({"cell": base, "kd_steps": int(r["kd_steps"]), "seeds": int(r["seeds"]),
                     "validation_final_mean": r["validation_final_mean"], "full_kd_steps": int(full["kd_steps"]),
                     "full_validation_final_mean": full["validation_final_mean"], "difference": diff,
                     "enough": abs(diff) <= tolerance})
    return pd.DataFrame(rows, columns=["cell", "kd_steps", "seeds", "validation_final_mean", "full_kd_steps",
                                       "full_validation_final_mean", "difference", "enough"])


def settles_at(cells: pd.DataFrame, checks: pd.DataFrame | None = None) -> dict[str, float | None]:
    """Each full-length cell (budget checks aside) -> the KD steps it settles at, None while it has not.

    A cell settles at the plateau of its mean validation curve, or, when sooner, at the budget of a
    check (:func:`budget_checks`) that ends within the tolerance of the full runs while those run at
    least twice as long: under a cosine schedule the last epochs gain while the learning rate decays
    however long the run, so a halved schedule that lands where the full one does is the budget's
    evidence even where the plateau rule cannot see a flat curve."""
    if "budget_check" in cells:
        cells = cells[~cells["budget_check"]]
    out: dict[str, float | None] = {}
    for cell, r in cells.iterrows():
        options = [r["plateau_kd_steps"]] if r["mean_curve_converged"] else []
        if checks is not None and len(checks):
            mine = checks[(checks["cell"] == cell) & checks["enough"] & (checks["full_kd_steps"] >= 2 * checks["kd_steps"])]
            options += mine["kd_steps"].tolist()
        out[cell] = min(options) if options else None
    return out


def _whole_epochs(kd_steps: float, kd_steps_per_epoch: int) -> int:
    return int(math.ceil(kd_steps / kd_steps_per_epoch) * kd_steps_per_epoch)


def chosen_budget(cells: pd.DataFrame, kd_steps_per_epoch: int, checks: pd.DataFrame | None = None) -> int | None:
    """KD steps for the grid: the largest over the full-length cells run at the grid's host settings
    (``at_grid_settings``, where ``cells`` has it) of the budget each settles at (:func:`settles_at`),
    rounded up to whole epochs of ``kd_steps_per_epoch``; None while any of those cells has not
    settled.  Cells at other settings (probes, such as the published ones) do not bound it."""
    if "at_grid_settings" in cells:
        cells = cells[cells["at_grid_settings"]]
    settled = list(settles_at(cells, checks).values())
    if not settled or None in settled:
        return None
    return _whole_epochs(max(settled), kd_steps_per_epoch)


def settled_budgets(study_curves: pd.DataFrame, records: pd.DataFrame, cells: pd.DataFrame,
                    checks: pd.DataFrame | None, kd_steps_per_epoch: int) -> list[dict]:
    """The budget of every host and settings the study ran full-length cells at: one entry per
    :func:`cdemi.report.runs.budget_key` with its ``host``, ``host_settings``, ``kd_settings``, its
    ``cells`` and ``kd_steps``: the largest of its cells' :func:`settles_at`, in whole epochs; None
    while any of them (any variant) has not settled.  A grid run with the same key that takes at
    least that many KD steps has converged (:mod:`cdemi.report.study_budget`).

    :param study_curves: :func:`curves`; :param records: the study's :func:`cdemi.report.runs.load_records`
        (with ``config``); :param cells, checks: :func:`summary`, :func:`budget_checks`.
    """
    settled = settles_at(cells, checks)
    full = study_curves[~study_curves["budget_check"]].drop_duplicates("name")
    by_name = records.set_index("name")
    groups: dict[str, dict] = {}
    for name, cell in zip(full["name"], full["cell"]):
        key = budget_key(by_name.loc[name, "host"], by_name.loc[name, "config"])
        group = groups.setdefault(key, {**json.loads(key), "cells": []})
        if cell not in group["cells"]:
            group["cells"].append(cell)
    out = []
    for key, group in groups.items():
        steps = [settled.get(c) for c in group["cells"]]
        group["kd_steps"] = None if None in steps else _whole_epochs(max(steps), kd_steps_per_epoch)
        out.append(group)
    return sorted(out, key=lambda g: (g["host"], g["cells"]))


def figure(study_curves: pd.DataFrame, chosen: int | None):
    """Validation accuracy against KD steps: one panel per cell (Fast, Fast + guidance, ...), one line
    per budget it was run to (mean over seeds, band: lowest to highest seed; darker for longer runs),
    the chosen budget as a vertical line on every panel.  The panels share the y axis, which starts 5
    points below the 10th percentile of all plotted values, so the runs' early climb does not flatten
    the part where they differ."""
    import matplotlib.pyplot as plt
    import numpy as np

    bases = list(dict.fromkeys(study_curves["cell"].map(base_cell)))
    fig, axes = plt.subplots(1, len(bases), figsize=(3.2 * len(bases) + 0.6, 3.6), sharey=True, squeeze=False)
    totals = study_curves.groupby("cell")["kd_steps"].max()
    for ax, base in zip(axes[0], bases):
        cells = sorted((c for c in totals.index if base_cell(c) == base), key=lambda c: totals[c])
        shades = plt.cm.viridis(np.linspace(0.85, 0.1, len(cells)))
        for cell, colour in zip(cells, shades):
            group = study_curves[study_curves["cell"] == cell]
            by_step = group.groupby("kd_steps")["validation_accuracy"]
            ax.plot(by_step.mean().index, by_step.mean().values, color=colour, linewidth=1,
                    label=f"{totals[cell]:,} ({_seeds(group['seed'].nunique())})")
            ax.fill_between(by_step.min().index, by_step.min().values, by_step.max().values, color=colour, alpha=0.2)
        if chosen is not None:
            ax.axvline(chosen, color="k", linestyle="--", linewidth=1, label=f"chosen: {chosen:,}")
        ax.set_title(base, fontsize=10)
        ax.set_xlabel("KD steps")
        ax.legend(fontsize=7, loc="lower right", title="KD steps in all", title_fontsize=7)
        ax.grid(alpha=0.3)
    values = study_curves["validation_accuracy"]
    axes[0][0].set_ylim(max(0.0, float(np.percentile(values, 10)) - 5), min(100.0, float(values.max()) + 1))
    axes[0][0].set_ylabel("validation accuracy (%)")
    fig.tight_layout()
    return fig


def _seeds(n: int) -> str:
    """``n`` seeds in words: "1 seed", "3 seeds"."""
    return f"{int(n)} seed" + ("" if int(n) == 1 else "s")


def _final(mean: float, std: float, seeds: int) -> str:
    """A final accuracy in percent: ``mean ± std`` over several seeds, the mean alone for one."""
    return f"{mean:.2f}%" if int(seeds) < 2 else f"{mean:.2f} ± {std:.2f}%"


def findings(cells: pd.DataFrame, chosen: int | None, checks: pd.DataFrame | None = None) -> str:
    """A few sentences on the study: each cell's plateau and spread (a cell of one seed has none),
    the chosen budget (or why there is none yet) and what the budget checks (:func:`budget_checks`) say."""
    lines = []
    for cell, r in cells.iterrows():
        where = (f"flattens after {int(r['plateau_kd_steps']):,} KD steps" if r["mean_curve_converged"]
                 else f"has not flattened after {int(r['kd_steps']):,} KD steps")
        lines.append(f"- **{cell}** ({_seeds(r['seeds'])}): the mean validation curve {where}; at the end, validation "
                     f"{_final(r['validation_final_mean'], r['validation_final_std'], r['seeds'])}, test "
                     f"{_final(r['test_final_mean'], r['test_final_std'], r['seeds'])}; {r['converged_seeds']} of "
                     f"{_seeds(r['seeds'])} converged by the rule.")
    others = []
    if "at_grid_settings" in cells:
        others = list(cells.index[~cells["at_grid_settings"] & ~cells["budget_check"]])
    if others:
        lines.append(f"\nNot at the host settings the grid runs, so not bounding its budget (they probe other "
                     f"settings): {', '.join(f'**{c}**' for c in others)}.")
    if chosen is None:
        lines.append("\nNo budget is chosen: at least one cell at the grid's settings has neither a flat mean curve nor "
                     "a halved schedule that ends within 1 point of its full one, so its runs must go further.")
    else:
        lines.append(f"\nChosen budget for the grid: **{chosen:,} KD steps**, the largest over these cells of the budget "
                     f"each settles at (its plateau, or a halved schedule that ends within 1 point of the full one), "
                     f"rounded up to whole epochs.")
    for r in ([] if checks is None else checks.itertuples()):
        verdict = "is enough" if r.enough else "is not enough"
        lines.append(f"- Budget check: **{r.cell}** run to {r.kd_steps:,} KD steps, with its whole learning-rate "
                     f"schedule ({_seeds(r.seeds)}), ends at {r.validation_final_mean:.2f}% on validation against "
                     f"{r.full_validation_final_mean:.2f}% after {r.full_kd_steps:,} ({r.difference:+.2f} points): "
                     f"that budget {verdict} by the 1-point rule.")
    return "\n".join(lines)


def budgets_text(settled: list[dict]) -> str:
    """:func:`settled_budgets` in words: per host and settings, its cells and the KD steps it settled at."""
    if not settled:
        return ""
    lines = ["\n\nBudgets by host and settings (a grid run at the same host and KD settings has converged once it "
             "takes as many KD steps, whatever its variant, student or set):"]
    for b in settled:
        at = f"**{b['kd_steps']:,} KD steps**" if b["kd_steps"] is not None else "not settled yet"
        lines.append(f"- {' and '.join(f'**{c}**' for c in b['cells'])}: {at}")
    return "\n".join(lines)


D_COLUMNS = ("d_held_out", "d_held_out_real", "d_held_out_fake", "d_acc_real", "d_acc_fake")


def discriminator_curves(records: pd.DataFrame) -> pd.DataFrame:
    """One row per guided run and epoch whose guidance row holds D's held-out accuracy: ``name, cell,
    seed, epoch`` and :data:`D_COLUMNS` (fractions; ``d_held_out`` 0.5 is chance).  Empty (with those
    columns) when no run held images out."""
    rows = []
    for rec in records.itertuples():
        for r in rec.curve:
            g = r.get("guidance") or {}
            if "d_held_out" in g:
                rows.append({"name": rec.name, "cell": cell_name(rec.host, rec.variant), "seed": rec.seed,
                             "epoch": r["epoch"], **{k: g[k] for k in D_COLUMNS}})
    return pd.DataFrame(rows, columns=["name", "cell", "seed", "epoch", *D_COLUMNS])


def discriminator_figure(d_curves: pd.DataFrame):
    """D's accuracy per synthesis of every guided run: held-out (condensed images D never trained on
    and each synthesis's first images, before D's step) against its training batches; chance dashed."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5))
    for name, group in d_curves.groupby("name", sort=True):
        group = group.sort_values("epoch")
        line, = ax.plot(group["epoch"], group["d_held_out"], label=f"{name}: held out")
        ax.plot(group["epoch"], (group["d_acc_real"] + group["d_acc_fake"]) / 2, color=line.get_color(),
                alpha=0.5, linewidth=0.8, label=f"{name}: training batches")
    ax.axhline(0.5, color="k", linestyle="--", linewidth=1, label="chance")
    ax.set_xlabel("epoch (one synthesis each)")
    ax.set_ylabel("D accuracy")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def costs(records: pd.DataFrame, study_curves: pd.DataFrame, configs: dict[str, dict],
          chosen: int | None) -> pd.DataFrame:
    """Per cell, the measured cost of its runs (mean over seeds): minutes of synthesis and of KD per run,
    KD seconds per KD step, synthesis seconds per synthesis (the epochs that synthesised, every
    ``synthesis_every``-th), and the minutes one run would take at the ``chosen`` KD-step budget (its KD
    steps, plus a synthesis every ``synthesis_every`` of the epochs those steps and the warm-up take;
    None without a budget).  Evaluation time is not counted.

    :param study_curves: :func:`curves` (each run's cell); :param configs: run name -> its record's ``config``.
    """
    rows = []
    cell_of = study_curves.groupby("name")["cell"].first()
    for rec in records.itertuples():
        config = configs[rec.name]
        warmup, per_epoch = warmup_epochs(config), config["kd_steps"]
        epochs, every = len(rec.curve), config.get("synthesis_every", 1)
        kd_steps = max(0, epochs - warmup) * per_epoch
        per_synthesis = rec.synthesis_min * 60 / math.ceil(epochs / every)
        per_step = rec.kd_min * 60 / kd_steps
        at_budget = None
        if chosen is not None:
            syntheses = math.ceil((math.ceil(chosen / per_epoch) + warmup) / every) if per_synthesis > 0 else 0
            at_budget = (chosen * per_step + syntheses * per_synthesis) / 60
        rows.append({"cell": cell_of[rec.name], "synthesis_min": rec.synthesis_min,
                     "kd_min": rec.kd_min, "kd_s_per_step": per_step, "synthesis_s_per_synthesis": per_synthesis,
                     "minutes_at_chosen_budget": at_budget})
    runs = pd.DataFrame(rows)
    out = runs.groupby("cell", sort=False).mean(numeric_only=False)
    out.insert(0, "seeds", runs.groupby("cell", sort=False).size())
    return out
