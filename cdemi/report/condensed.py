"""Tables and the figure of condensed sets built from their records: accuracy beside published
numbers, and cost.

Inputs are the files the ``condense`` stages write: ``<sets_dir>/<name>.json`` (the set's
record: method, IPC, parameters, wall time, peak memory) and ``<metrics_dir>/<name>.json``
(the evaluation: ConvNet accuracies in percent, their mean and std, evaluation seconds).
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from . import published
from .labels import IMPORTED_SETS

# a method that falls short of its published number by more than this many points is flagged
SHORTFALL_POINTS = 3.0
METHOD_ORDER = ["random_real", "kshot", "dm", "dsa", "mtt", *IMPORTED_SETS]


def load_results(metrics_dir: str | Path, sets_dir: str | Path) -> pd.DataFrame:
    """One row per evaluated condensed set, joined from its metrics and its record.

    :returns: columns ``set, method, ipc, accuracy_mean, accuracy_std, runs, iterations,
        condense_seconds, peak_memory_mb, eval_seconds, source_reported`` (the accuracy an imported
        file's own code reported, NaN for the others), sorted by method then IPC.
    :raises FileNotFoundError: no metrics, or a metrics file without its set's record.
    """
    rows = []
    for path in sorted(Path(metrics_dir).glob("*.json")):
        record_path = Path(sets_dir) / path.name
        if not record_path.exists():
            raise FileNotFoundError(f"{path} has no condensed-set record at {record_path}: rerun its condense stage")
        metrics, record = json.loads(path.read_text()), json.loads(record_path.read_text())
        rows.append({"set": path.stem, "method": record["method"], "ipc": record["ipc"],
                     "accuracy_mean": metrics["accuracy_mean"], "accuracy_std": metrics["accuracy_std"],
                     "runs": len(metrics["accuracies"]), "iterations": record.get("params", {}).get("iterations"),
                     "condense_seconds": record.get("wall_seconds", float("nan")),
                     "peak_memory_mb": record.get("peak_memory_mb", float("nan")),
                     "eval_seconds": metrics.get("eval_seconds", float("nan")),
                     "source_reported": metrics.get("source_reported_accuracy", float("nan"))})
    if not rows:
        raise FileNotFoundError(f"no condensed-set metrics under {metrics_dir}: run the condense stages first")
    table = pd.DataFrame(rows)
    rank = {m: i for i, m in enumerate(METHOD_ORDER)}
    return table.sort_values(["method", "ipc"], key=lambda s: s.map(rank).fillna(len(rank)) if s.name == "method" else s,
                             ignore_index=True)


def accuracy_table(results: pd.DataFrame, dataset: str = "fashion_mnist") -> pd.DataFrame:
    """Ours beside the published ConvNet accuracies (DC, DSA) for the same IPC.

    ``vs published`` compares a method with its own published number where one exists
    (on Fashion-MNIST: DSA) and flags a shortfall of more than :data:`SHORTFALL_POINTS`; with an
    imported set, ``reported by its source`` gives the accuracy its file's own code reported.
    :returns: indexed by (method, IPC).
    """
    reference = published.CONDENSED_FASHION_MNIST if dataset == "fashion_mnist" else {}
    out = []
    for r in results.itertuples():
        row = {"method": r.method, "IPC": r.ipc, "ours (%)": f"{r.accuracy_mean:.2f} ± {r.accuracy_std:.2f}",
               "runs": r.runs}
        if results["source_reported"].notna().any():
            row["reported by its source"] = r.source_reported
        for name, table in reference.items():
            row[f"published {name.upper()}"] = table.get(r.ipc)
        own = reference.get(r.method, {}).get(r.ipc)
        if own is None:
            row["vs published"] = "no published number"
        else:
            gap = r.accuracy_mean - own
            row["vs published"] = f"{gap:+.1f}" + (f" (more than {SHORTFALL_POINTS:g} points short)"
                                                   if gap < -SHORTFALL_POINTS else "")
        out.append(row)
    return pd.DataFrame(out).set_index(["method", "IPC"])


def cost_table(results: pd.DataFrame) -> pd.DataFrame:
    """Condensation and evaluation cost per set: iterations, minutes, peak resident memory."""
    return pd.DataFrame({
        "method": results["method"], "IPC": results["ipc"], "iterations": results["iterations"],
        "condensation (min)": (results["condense_seconds"] / 60).round(2),
        "peak memory (MiB)": results["peak_memory_mb"].round(0),
        "evaluation (min)": (results["eval_seconds"] / 60).round(2),
    }).set_index(["method", "IPC"])


def shortfalls(results: pd.DataFrame, dataset: str = "fashion_mnist") -> list[str]:
    """Sentences naming every set that falls short of its own published number by more than the threshold."""
    reference = published.CONDENSED_FASHION_MNIST if dataset == "fashion_mnist" else {}
    notes = []
    for r in results.itertuples():
        own = reference.get(r.method, {}).get(r.ipc)
        if own is not None and r.accuracy_mean < own - SHORTFALL_POINTS:
            notes.append(f"{r.method.upper()} at IPC {r.ipc} reaches {r.accuracy_mean:.2f}%, "
                         f"{own - r.accuracy_mean:.1f} points below the published {own:.1f}%")
    return notes


def accuracy_figure(results: pd.DataFrame, dataset: str = "fashion_mnist"):
    """ConvNet test accuracy against IPC per method (:func:`load_results`), with the published
    numbers of :mod:`cdemi.report.published` as dotted grey lines where ``dataset`` has them."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    sns.lineplot(data=results, x="ipc", y="accuracy_mean", hue="method", marker="o", ax=ax)
    for name, table in (published.CONDENSED_FASHION_MNIST.items() if dataset == "fashion_mnist" else []):
        ax.plot(list(table), list(table.values()), ls=":", color="grey", lw=1)
        ax.annotate(f"published {name.upper()}", (max(table), table[max(table)]), fontsize=7, color="grey")
    ax.set(xscale="log", xlabel="images per class", ylabel="ConvNet test accuracy (%)", title=f"Condensed {dataset}")
    return fig
