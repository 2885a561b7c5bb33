"""Where the synthetic images lie in the teacher's feature space: the features figure.

For one slice of the grid (one student, one seed), the teacher of its guided run on the
``method`` IPC-``ipc`` set embeds, with its penultimate features, real test images, the condensed
set, and the newest images of each host's plain and guided runs (``<run>.samples.pt`` beside the
records); :func:`features_figure` draws one t-SNE panel per host (:func:`feature_map`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..data import load
from ..data.condensed import load_condensed
from ..data.spec import DatasetSpec
from ..data.subsets import real_subset
from ..guidance import FeatureTap
from ..models.checkpoint import load_classifier
from .grid import cell, select
from .grid_figures import load_samples
from .labels import HOST_NAMES, INVERSION_HOSTS


def teacher_features(tap: FeatureTap, spec: DatasetSpec, images: torch.Tensor) -> np.ndarray:
    """The tapped teacher's features, float32 (N, d), of float ``images`` (N, C, H, W) on the pixel
    scale [0, 1] (normalised by ``spec`` first), without gradients."""
    with torch.no_grad():
        return tap(spec.normalise(images)).numpy()


def features_figure(records: pd.DataFrame, records_dir: str | Path, project_root: str | Path, data_root: str | Path,
                    dataset: str, method: str = "dm", ipc: int = 10, real_per_class: int = 30, seed: int = 0):
    """One t-SNE panel per inversion host in ``records`` (hosts in the reports' order): real test images
    (``real_per_class`` per class, drawn with ``seed``), the condensed set and the host's plain and
    guided images (whichever runs exist), all as features of the teacher of the first guided run on
    the ``method`` IPC-``ipc`` set.

    :param records: the slice to show, already narrowed to one student and seed
        (:func:`cdemi.report.runs.load_records`); its guided run names the teacher and the set.
    :param records_dir: where the runs' ``<name>.samples.pt`` lie.
    :param project_root: the folder the records' teacher and set paths are relative to.
    :param data_root: the datasets' root folder (``data.root`` of the profile).
    :returns: the figure.
    :raises IndexError: no guided run on that set in ``records``.
    """
    import matplotlib.pyplot as plt

    guided = select(records, variant="guided", transfer_method=method, transfer_ipc=ipc)
    test = load(dataset, "test", data_root)
    model, _ = load_classifier(Path(project_root) / guided["teacher_path"].iloc[0], dataset=dataset,
                               num_classes=test.spec.num_classes)
    tap = FeatureTap(model.eval())
    real = real_subset(test, real_per_class, seed=seed)
    cs = load_condensed(Path(project_root) / guided["transfer_path"].iloc[0], dataset=dataset, shape=test.spec.shape)
    base = {"real (test)": (teacher_features(tap, test.spec, real.images), real.labels.numpy()),
            f"condensed ({cs.method.upper()} IPC {cs.ipc})": (teacher_features(tap, test.spec, cs.images),
                                                               cs.labels.numpy())}
    hosts = [h for h in INVERSION_HOSTS if h in set(records["host"])]
    fig, axes = plt.subplots(1, len(hosts), figsize=(4.2 * len(hosts), 4), squeeze=False)
    for ax, host in zip(axes[0], hosts):
        groups = dict(base)
        for variant in ("plain", "guided"):
            run = select(records, **cell(host, variant, cs.method, cs.ipc))
            if len(run):
                images, targets = load_samples(Path(records_dir) / f"{run['name'].iloc[0]}.samples.pt")
                groups[f"{variant} MI"] = (teacher_features(tap, test.spec, images), targets.numpy())
        feature_map(groups, HOST_NAMES[host], seed=seed, ax=ax)
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
