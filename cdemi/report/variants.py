"""The guidance summary's tables: each host's ``plain``, ``naive`` and ``guided`` runs side by side.

The variant table puts a host's runs in one row, with the differences the paper's claims 1 and
2 are about; the diagnostics table shows what explains them (the teacher on its own inversions,
feature distances to the condensed and real images, the discriminator's accuracy).  All of them
take the frame of :func:`cdemi.report.runs.load_records`.
"""
from __future__ import annotations

import pandas as pd

from .labels import HOST_ORDER, VARIANT_ORDER
from .runs import epoch_accuracy
from .tables import as_written

DIAGNOSTICS = {"teacher_accuracy": "teacher on own images (%)", "distance_condensed": "distance to condensed",
               "distance_real": "distance to real", "d_acc_real": "D acc. condensed", "d_acc_fake": "D acc. synthetic",
               "l_fa": "L_FA"}


def _host_by_variant(records: pd.DataFrame, values: str, aggfunc: str) -> pd.DataFrame:
    """``values`` aggregated per host (rows, :data:`HOST_ORDER`) and variant label (columns, by
    :data:`VARIANT_ORDER`, ablation settings after their base variant)."""
    table = records.pivot_table(index="host", columns="variant", values=values, aggfunc=aggfunc)
    rank = {v: i for i, v in enumerate(VARIANT_ORDER)}
    return table.reindex(index=[h for h in HOST_ORDER if h in table.index],
                         columns=sorted(table.columns, key=lambda v: (rank.get(v.split("[")[0], 99), v)))


def variant_table(records: pd.DataFrame) -> pd.DataFrame:
    """Final test accuracy (%) per host (rows) and variant (columns, ablation settings apart),
    with ``guided - plain`` and ``guided - naive`` in points (default guidance), and the
    KD-only reference as its own row.  A variant a host lacks is left empty; several seeds
    are averaged."""
    acc = _host_by_variant(records, "final", "mean")
    for other in ("plain", "naive"):
        if "guided" in acc and other in acc:
            acc[f"guided − {other}"] = acc["guided"] - acc[other]
    acc.index.name = "host"
    return as_written(acc, 2)


def seed_counts(records: pd.DataFrame) -> pd.DataFrame:
    """How many seeds each cell of :func:`variant_table` averages (host x variant)."""
    return _host_by_variant(records, "seed", "count").fillna(0).astype(int)


def diagnostics_table(records: pd.DataFrame) -> pd.DataFrame:
    """Epoch means of the diagnostics per run (host, variant, seed), with the final accuracy
    and the synthesis minutes; runs without synthesis (KD only) are left out."""
    cols = [c for c in DIAGNOSTICS if c in records.columns]
    hosts = records[records["host"] != "none"]
    table = hosts.set_index(["host", "variant", "seed"])[["final", "synthesis_min", *cols]]
    return table.rename(columns={"final": "final (%)", "synthesis_min": "synthesis (min)", **DIAGNOSTICS}).round(3)


def curves(records: pd.DataFrame) -> pd.DataFrame:
    """Long table of the per-epoch numbers: ``host, variant, epoch, accuracy``
    (:func:`cdemi.report.runs.epoch_accuracy`) and every diagnostics and discriminator number present."""
    rows = []
    for r in records.itertuples():
        for row in r.curve:
            rows.append({"host": r.host, "variant": r.variant, "epoch": row["epoch"],
                         "accuracy": epoch_accuracy(row), **row.get("guidance", {}),
                         **row.get("diagnostics", {})})
    return pd.DataFrame(rows)
