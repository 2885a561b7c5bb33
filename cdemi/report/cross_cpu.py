"""One configuration run on two kinds of CPU: how far rounding moves a finished run.

On the CPU a seed is bitwise reproducible within one kind of CPU only (:func:`cdemi.runtime.machine`):
another processor, or the same one dispatching to another instruction set, rounds differently, and a
run that has not settled turns rounding into points of accuracy.  This module pairs the run records
that share a configuration (:func:`cdemi.distill.stage.config_hash`: the validated entry, whatever its
name or section) and were made on different machines, or on one machine twice, and measures the
distance between their final accuracies.

Records come from the grid (``results/distill``), the convergence study (``results/study``) and
reruns made on purpose elsewhere (``results/rerun``: run records written by ``python -m cdemi.distill``
with the profile's own entry, on another CPU or with torch held to another instruction set, named
``<entry>.<kind>.json``).  Records older than the ``machine`` field are left out: nothing says where
they ran.
"""
from __future__ import annotations

import itertools
import json
from pathlib import Path

import pandas as pd

# the columns of :func:`same_config_pairs`, in order
COLUMNS = ["run", "record A", "CPU A", "record B", "CPU B", "same kind", "test A", "test B", "|test A - test B|",
           "validation A", "validation B", "|validation A - validation B|", "converged"]


def machine_kind(machine: dict) -> str:
    """A short label of a record's ``machine``: processor, family / model and the instruction set torch
    dispatched to, e.g. ``"AMD EPYC (family 26 model 2), AVX512"``."""
    model = machine.get("cpu_model", "")
    model = " ".join(model.split()[:4]) if model else ""  # stepping left out: it rarely changes rounding
    name = machine.get("cpu", "?") + (f" ({model})" if model else "")
    return f"{name}, {machine.get('cpu_capability', '?')}"


def load_run_records(folders: dict[str, str | Path]) -> dict[str, dict]:
    """Every run record (``*.json`` with a ``config_hash``) in each folder, keyed ``<label>/<stem>``.

    :param folders: label -> folder, e.g. ``{"grid": "results/distill", "study": "results/study"}``; a
        folder that does not exist contributes nothing (no reruns made yet).
    :raises ValueError: a file that is not JSON (a corrupt record), naming it.
    """
    records = {}
    for label, folder in folders.items():
        for path in sorted(Path(folder).glob("*.json")) if Path(folder).is_dir() else []:
            try:
                record = json.loads(path.read_text())
            except json.JSONDecodeError as err:
                raise ValueError(f"{path} is not a valid run record ({err}): rerun the run that writes it") from err
            if isinstance(record, dict) and "config_hash" in record:
                records[f"{label}/{path.stem}"] = record
    return records


def same_config_pairs(records: dict[str, dict]) -> pd.DataFrame:
    """Every pair of records that share a configuration, each with its two machines and distances.

    :param records: ``{key: run record}`` (:func:`load_run_records`); records without ``machine`` are
        skipped.
    :returns: one row per pair (:data:`COLUMNS`), ordered by run and keys: ``run`` is the entry's name
        in the first record, accuracies in %, ``converged`` is ``"both"``, ``"A"``, ``"B"`` or ``"neither"``
        by the records' convergence verdicts (a pair of runs still climbing measures the budget, not
        the machine).  Empty (with those columns) when no configuration was run twice.
    """
    by_config: dict[str, list[str]] = {}
    for key, record in records.items():
        if record.get("machine"):
            by_config.setdefault(record["config_hash"], []).append(key)
    rows = []
    for keys in by_config.values():
        for a, b in itertools.combinations(sorted(keys), 2):
            ra, rb = records[a], records[b]
            ca, cb = (r.get("convergence", {}).get("converged") for r in (ra, rb))
            test_a, test_b = ra["final_accuracy"], rb["final_accuracy"]
            val_a, val_b = ra.get("validation_accuracy"), rb.get("validation_accuracy")
            rows.append({
                "run": ra["name"], "record A": a, "CPU A": machine_kind(ra["machine"]), "record B": b,
                "CPU B": machine_kind(rb["machine"]), "same kind": ra["machine"] == rb["machine"],
                "test A": test_a, "test B": test_b, "|test A - test B|": round(abs(test_a - test_b), 2),
                "validation A": val_a, "validation B": val_b,
                "|validation A - validation B|": None if val_a is None or val_b is None else round(abs(val_a - val_b), 2),
                "converged": {(True, True): "both", (True, False): "A", (False, True): "B"}.get((bool(ca), bool(cb)), "neither"),
            })
    return pd.DataFrame(rows, columns=COLUMNS).sort_values(["run", "record A", "record B"], ignore_index=True)


def findings(pairs: pd.DataFrame) -> str:
    """Sentences on :func:`same_config_pairs`: how many repeats within a kind of CPU ended identically,
    and across kinds how many did, the largest distances, and the largest between runs that both
    converged."""
    if pairs.empty:
        return "No configuration has been run twice yet."
    identical = (pairs["|test A - test B|"] == 0) & (pairs["|validation A - validation B|"].fillna(0) == 0)
    same = pairs["same kind"]
    out = []
    if same.any():
        out.append(f"On one kind of CPU, {int((identical & same).sum())} of {int(same.sum())} repeated "
                   "configurations ended at the same accuracies.")
    across = pairs[~same]
    if len(across):
        moved = across[~identical[~same]]
        text = f"Across kinds, {len(across)} pair(s), {len(across) - len(moved)} of them identical"
        if len(moved):
            worst = moved.loc[moved["|test A - test B|"].idxmax()]
            text += (f"; the others lie up to {worst['|test A - test B|']:.2f} test points apart ({worst['run']}) and "
                     f"{moved['|validation A - validation B|'].max():.2f} validation points")
            settled = moved[moved["converged"] == "both"]
            text += (f"; between runs that both converged, up to {settled['|test A - test B|'].max():.2f} test points"
                     if len(settled) else "; no such pair has both runs converged")
        out.append(text + ".")
    return " ".join(out)
