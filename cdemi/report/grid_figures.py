"""The paper's figures, drawn from run records (and, for the sample grids, the synthetic images
each run keeps beside its record); the feature map is :mod:`cdemi.report.feature_map`.

Every drawing function returns a matplotlib figure (:func:`cdemi.report.figures.save_figure` writes it);
:func:`load_samples` and :func:`variant_samples` read the images the drawings show.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .grid import cell, select
from .labels import HOST_NAMES, HOST_ORDER, INVERSION_HOSTS, KD_ONLY_HOST, pair_label
from .runs import epoch_accuracy
from .variants import curves

VARIANT_COLOURS = {"plain": "tab:gray", "naive": "tab:blue", "guided": "tab:red", "kd-only": "black"}
VARIANT_LEGEND = {"plain": "host alone", "naive": "+ CS (naive)", "guided": "+ guidance", "kd-only": "KD on C alone"}


def _hosts(records: pd.DataFrame) -> list[str]:
    return [h for h in INVERSION_HOSTS if h in set(records["host"])]


def main_bars(records: pd.DataFrame, teacher: str, student: str, method: str = "dm", ipc: int = 10):
    """T1 as grouped bars: per host, plain / naive / guided mean final accuracy with the
    seeds' std as error bars and each seed as a dot; KD on the condensed set alone as a
    dashed line."""
    import matplotlib.pyplot as plt

    recs = select(records, teacher=teacher, student=student)
    hosts = _hosts(recs)
    fig, ax = plt.subplots(figsize=(1.9 * len(hosts) + 1.5, 3.4))
    width = 0.26
    for j, variant in enumerate(("plain", "naive", "guided")):
        for i, host in enumerate(hosts):
            where = cell(host, variant, method, ipc)
            values = select(recs, **where)["final"]
            if values.empty:
                continue
            x = i + (j - 1) * width
            ax.bar(x, values.mean(), width, yerr=values.std(ddof=1) if len(values) > 1 else 0,
                   color=VARIANT_COLOURS[variant], alpha=0.75, capsize=3,
                   label=VARIANT_LEGEND[variant] if i == 0 else None)
            ax.plot(np.full(len(values), x), values, "k.", ms=3)
    kd = select(recs, variant="kd-only", transfer_method=method, transfer_ipc=ipc)["final"]
    if not kd.empty:
        ax.axhline(kd.mean(), color="black", ls="--", lw=1, label=f"KD on {method.upper()} IPC {ipc} alone")
    ax.set_xticks(range(len(hosts)), [HOST_NAMES[h] for h in hosts])
    ax.set_ylabel("student top-1 (%)")
    ax.set_title(pair_label(teacher, student), fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def ipc_curve(records: pd.DataFrame, hosts=("fast", "cmi"), method: str = "dm", student: str = "mobilenetv2"):
    """Final accuracy against IPC for each host's naive and guided runs and for KD on the set
    alone; the host's plain run (no condensed data) as a horizontal line."""
    import matplotlib.pyplot as plt

    recs = select(records, student=student)
    fig, axes = plt.subplots(1, len(hosts), figsize=(4 * len(hosts), 3.2), squeeze=False, sharey=True)
    for ax, host in zip(axes[0], hosts):
        for variant in ("naive", "guided", "kd-only"):
            where = {"variant": variant, "transfer_method": method}
            if variant != "kd-only":
                where["host"] = host
            g = select(recs, **where).groupby("transfer_ipc")["final"].agg(["mean", "std"])
            if not g.empty:
                ax.errorbar(g.index, g["mean"], yerr=g["std"].fillna(0), marker="o", capsize=3,
                            color=VARIANT_COLOURS[variant], label=VARIANT_LEGEND[variant])
        plain = select(recs, host=host, variant="plain")["final"]
        if not plain.empty:
            ax.axhline(plain.mean(), color=VARIANT_COLOURS["plain"], ls="--", label=VARIANT_LEGEND["plain"])
        ax.set_xscale("log")
        ax.set(xlabel=f"images per class ({method.upper()})", title=HOST_NAMES[host])
    axes[0][0].set_ylabel("student top-1 (%)")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def cost_scatter(records: pd.DataFrame, teacher: str, student: str, method: str = "dm", ipc: int = 10):
    """Final accuracy against synthesis minutes per run (mean over seeds with std bars) for
    every host and variant of the pair; markers by host, colours by variant."""
    import matplotlib.pyplot as plt

    recs = select(records, teacher=teacher, student=student)
    markers = dict(zip(HOST_ORDER, "osD^v"))
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    for host in _hosts(recs):
        for variant in ("plain", "naive", "guided"):
            where = cell(host, variant, method, ipc)
            g = select(recs, **where)
            if g.empty:
                continue
            ax.errorbar(g["synthesis_min"].mean(), g["final"].mean(), xerr=g["synthesis_min"].std(ddof=1) if len(g) > 1 else 0,
                        yerr=g["final"].std(ddof=1) if len(g) > 1 else 0, marker=markers[host], ms=7, capsize=2,
                        color=VARIANT_COLOURS[variant], ls="none")
    for host in _hosts(recs):
        ax.plot([], [], markers[host], color="gray", label=HOST_NAMES[host])
    for variant in ("plain", "naive", "guided"):
        ax.plot([], [], "s", color=VARIANT_COLOURS[variant], label=VARIANT_LEGEND[variant])
    ax.set(xlabel="synthesis time per run (min, this machine)", ylabel="student top-1 (%)",
           title=pair_label(teacher, student))
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def curve_panels(records: pd.DataFrame, teacher: str, student: str, method: str = "dm", ipc: int = 10):
    """Student accuracy over epochs (:func:`cdemi.report.runs.epoch_accuracy`: on the validation split
    for runs with one, else on the test set, earlier epochs on the records' test subset), one panel per
    host, mean over seeds per variant."""
    import matplotlib.pyplot as plt

    recs = select(records, teacher=teacher, student=student)
    hosts = _hosts(recs)
    fig, axes = plt.subplots(1, len(hosts), figsize=(3.3 * len(hosts), 3), squeeze=False, sharey=True)
    for ax, host in zip(axes[0], hosts):
        for variant in ("plain", "naive", "guided"):
            where = cell(host, variant, method, ipc)
            rows = [{"epoch": row["epoch"], "acc": epoch_accuracy(row)}
                    for curve in select(recs, **where)["curve"] for row in curve]
            if rows:
                g = pd.DataFrame(rows).groupby("epoch")["acc"].agg(["mean", "std"])
                ax.plot(g.index, g["mean"], marker="o", ms=3, color=VARIANT_COLOURS[variant], label=VARIANT_LEGEND[variant])
                ax.fill_between(g.index, g["mean"] - g["std"].fillna(0), g["mean"] + g["std"].fillna(0),
                                color=VARIANT_COLOURS[variant], alpha=0.15)
        ax.set(title=HOST_NAMES[host], xlabel="epoch")
    axes[0][0].set_ylabel("student top-1 (%)")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def load_samples(path: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
    """The synthetic images a run kept (``<run>.samples.pt``): float (N, C, H, W) in [0, 1] and targets (N,)."""
    from ..artifacts import safe_torch_load

    blob = safe_torch_load(path, "run samples")
    return blob["images"].float() / 255, blob["targets"]


def variant_samples(records: pd.DataFrame, records_dir: str | Path, method: str = "dm", ipc: int = 10
                    ) -> dict[tuple[str, str], tuple[torch.Tensor, torch.Tensor]]:
    """The images each inversion run of ``records`` kept (:func:`load_samples` of
    ``<records_dir>/<run>.samples.pt``), per (host, variant): its plain runs, and its naive and guided
    runs on the ``method`` IPC-``ipc`` set; of several runs of one key the last in ``records`` counts."""
    samples = {}
    for run in records[records["host"] != KD_ONLY_HOST].itertuples():
        if run.variant in ("naive", "guided") and (run.transfer_method, run.transfer_ipc) != (method, ipc):
            continue
        if run.variant in ("plain", "naive", "guided"):
            samples[(run.host, run.variant)] = load_samples(Path(records_dir) / f"{run.name}.samples.pt")
    return samples


def sample_panels(samples: dict[tuple[str, str], tuple[torch.Tensor, torch.Tensor]], per_class: int = 4):
    """One image grid per (host, variant) key: rows hosts, columns variants; inside a grid
    one row per class with up to ``per_class`` of its synthetic images."""
    import matplotlib.pyplot as plt
    from torchvision.utils import make_grid

    hosts = [h for h in HOST_ORDER if any(k[0] == h for k in samples)]
    variants = [v for v in ("plain", "naive", "guided") if any(k[1] == v for k in samples)]
    fig, axes = plt.subplots(len(hosts), len(variants), figsize=(2.3 * len(variants), 2.5 * len(hosts)), squeeze=False)
    for i, host in enumerate(hosts):
        for j, variant in enumerate(variants):
            ax = axes[i][j]
            ax.axis("off")
            if (host, variant) not in samples:
                continue
            images, targets = samples[(host, variant)]
            classes = sorted(set(targets.tolist()))
            rows = []
            for c in classes:
                row = images[targets == c][:per_class]
                rows.append(torch.cat([row, torch.ones((per_class - len(row), *images.shape[1:]))]))
            grid = make_grid(torch.cat(rows), nrow=per_class, padding=1, pad_value=1.0)
            ax.imshow(grid.permute(1, 2, 0).numpy(), cmap="gray" if images.shape[1] == 1 else None,
                      interpolation="nearest")
            ax.set_title(f"{HOST_NAMES[host]} {VARIANT_LEGEND[variant]}", fontsize=8)
    fig.tight_layout()
    return fig


DIAGNOSTIC_PANELS = {"accuracy": "student accuracy (%)", "distance_condensed": "feature distance to condensed",
                     "d_acc_fake": "D accuracy on synthetic (guided)"}


def diagnostic_curves(records: pd.DataFrame):
    """The guidance summary's curves over epochs, one panel per number of :data:`DIAGNOSTIC_PANELS`
    the records hold: mean over seeds per host (colour) and variant (line style), band: std; one
    legend for all panels, right of them."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    long = curves(records)
    panels = [(col, label) for col, label in DIAGNOSTIC_PANELS.items() if col in long.columns]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.4), squeeze=False)
    for ax, (col, label) in zip(axes[0], panels):
        data = long.dropna(subset=[col])
        sns.lineplot(data=data, x="epoch", y=col, hue="host", style="variant", marker="o", errorbar="sd", ax=ax,
                     legend=ax is axes[0][0])
        ax.set(ylabel=label)
    handles, labels = axes[0][0].get_legend_handles_labels()  # the first panel has every host and variant
    axes[0][0].get_legend().remove()
    fig.tight_layout()
    fig.legend(handles, labels, loc="upper left", bbox_to_anchor=(1, 1), fontsize=8)
    return fig
