"""The paper's figures, drawn from run records (and, for the feature map and the sample
grids, the synthetic images each run keeps beside its record).

Every function returns a matplotlib figure; :func:`cdemi.report.figures.save_figure` writes it.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .distill import HOST_ORDER
from .grid import HOST_NAMES, cell, pair_label, select

VARIANT_COLOURS = {"plain": "tab:gray", "naive": "tab:blue", "guided": "tab:red", "kd-only": "black"}
VARIANT_LEGEND = {"plain": "host alone", "naive": "+ CS (naive)", "guided": "+ guidance", "kd-only": "KD on C alone"}


def _hosts(records: pd.DataFrame) -> list[str]:
    return [h for h in HOST_ORDER if h != "none" and h in set(records["host"])]


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
    """Test accuracy over epochs, one panel per host, mean over seeds per variant (the last
    epoch on the whole test set, earlier ones on the records' test subset)."""
    import matplotlib.pyplot as plt

    recs = select(records, teacher=teacher, student=student)
    hosts = _hosts(recs)
    fig, axes = plt.subplots(1, len(hosts), figsize=(3.3 * len(hosts), 3), squeeze=False, sharey=True)
    for ax, host in zip(axes[0], hosts):
        for variant in ("plain", "naive", "guided"):
            where = cell(host, variant, method, ipc)
            rows = [{"epoch": row["epoch"], "acc": row["test_accuracy"]}
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


def feature_map(groups: dict[str, tuple[np.ndarray, np.ndarray]], title: str = "", seed: int = 0, ax=None):
    """t-SNE of teacher features: ``groups`` maps a name (real, condensed, plain MI, guided MI)
    to (features (N, d), labels (N,)); one embedding of all points, markers by group and
    colours by class, drawn on ``ax`` (None: a new figure).  Deterministic for a given ``seed``.
    :returns: the figure."""
    import matplotlib.pyplot as plt
    from sklearn.manifold import TSNE

    names = list(groups)
    feats = np.concatenate([groups[n][0] for n in names])
    labels = np.concatenate([groups[n][1] for n in names])
    which = np.concatenate([np.full(len(groups[n][0]), i) for i, n in enumerate(names)])
    emb = TSNE(n_components=2, perplexity=min(30.0, (len(feats) - 1) / 3), init="pca", random_state=seed,
               max_iter=1000).fit_transform(feats.astype(np.float64))
    markers = ".o^s*"
    if ax is None:
        _, ax = plt.subplots(figsize=(5.2, 4.4))
    fig = ax.figure
    for i, name in enumerate(names):
        m = which == i
        ax.scatter(emb[m, 0], emb[m, 1], c=labels[m], cmap="tab10", vmin=0, vmax=9, marker=markers[i % len(markers)],
                   s=6 if i == 0 else 22, alpha=0.35 if i == 0 else 0.85,
                   edgecolors="none" if i == 0 else "black", linewidths=0.3, label=name)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=9)
    leg = ax.legend(fontsize=7, markerscale=1.2)
    for handle in leg.legend_handles:
        handle.set_color("gray")
    return fig
