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
they ran.  A record names only the machine that finished its run; for runs carried between sittings,
``results/segments.json`` (written by :func:`cdemi.tools.carry.land`) says which machine ran which epochs, and
two records whose runs started from one saved state share those first epochs: such a pair repeats only the
epochs after them.
"""
from __future__ import annotations

import itertools
import json
from pathlib import Path

import pandas as pd

# the columns of :func:`same_config_pairs`, in order
COLUMNS = ["run", "record A", "CPU A", "record B", "CPU B", "same kind", "shared epochs", "test A", "test B", "|test A - test B|",
           "validation A", "validation B", "|validation A - validation B|", "converged"]


def machine_kind(machine: dict) -> str:
    """A short label of a record's ``machine``: processor, family / model and the instruction set torch
    dispatched to, e.g. ``"AMD EPYC (family 26 model 2), AVX512"``."""
    model = machine.get("cpu_model", "")
    model = " ".join(model.split()[:4]) if model else ""  # stepping left out: it rarely changes rounding
    name = machine.get("cpu", "?") + (f" ({model})" if model else "")
    return f"{name}, {machine.get('cpu_capability', '?')}"


def load_segments(path: str | Path) -> dict[str, list[dict]]:
    """The segments of the carried runs that have landed: ``{run: [{"machine", "from_epoch", "to_epoch",
    "marked"}, ...]}`` in epoch order, as :func:`cdemi.tools.carry.land` writes them; ``{}`` when the file does
    not exist (no carried run has landed).

    :raises ValueError: a file that is not such JSON, naming it and the fix.
    """
    path = Path(path)
    if not path.exists():
        return {}
    try:
        segments = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err}): restore it from git (git checkout -- {path})") from err
    if not isinstance(segments, dict) or not all(isinstance(v, list) for v in segments.values()):
        raise ValueError(f"{path} is not a mapping of run names to lists of segments: restore it from git "
                         f"(git checkout -- {path})")
    return segments


def record_segments(record: dict, segments: dict[str, list[dict]]) -> list[dict]:
    """The segments that made ``record``'s epochs: those of its run name when they end at its last epoch on the
    machine it names (a record of another run under that name, such as a rerun elsewhere, gets none), else
    one segment of its ``machine`` over all its epochs (without ``marked``)."""
    epochs = int(record["config"]["epochs"])
    own = segments.get(record["name"], [])
    if own and own[-1]["to_epoch"] == epochs and own[-1]["machine"] == record["machine"]:
        return own
    return [{"machine": record["machine"], "from_epoch": 0, "to_epoch": epochs}]


def machines_label(spans: list[dict]) -> str:
    """:func:`machine_kind` of the one machine of ``spans`` (:func:`record_segments`), or each machine with
    the epochs it ran, consecutive segments of one machine joined: ``"Intel Xeon (family 6 model 207), AVX512
    for epochs 0-131; AMD EPYC (family 25 model 17), AVX512 for epochs 131-320"``."""
    joined: list[list] = []
    for span in spans:
        if joined and joined[-1][0] == span["machine"]:
            joined[-1][2] = span["to_epoch"]
        else:
            joined.append([span["machine"], span["from_epoch"], span["to_epoch"]])
    if len(joined) == 1:
        return machine_kind(joined[0][0])
    return "; ".join(f"{machine_kind(m)} for epochs {a}-{b}" for m, a, b in joined)


def shared_epochs(a: list[dict], b: list[dict]) -> int:
    """How many first epochs two records' runs share: the epochs of the leading segments the two lists hold
    identically (same machine, epochs and time marked: one run resumed from the other's saved state); 0 for
    runs made apart."""
    shared = 0
    for x, y in zip(a, b):
        if "marked" not in x or x != y:
            break
        shared = x["to_epoch"]
    return shared


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


def same_config_pairs(records: dict[str, dict], segments: dict[str, list[dict]] | None = None) -> pd.DataFrame:
    """Every pair of records that share a configuration, each with its machines and distances.

    :param records: ``{key: run record}`` (:func:`load_run_records`); records without ``machine`` are
        skipped.
    :param segments: the landed carried runs' segments (:func:`load_segments`); default none.
    :returns: one row per pair (:data:`COLUMNS`), ordered by run and keys: ``run`` is the entry's name
        in the first record, ``CPU A`` / ``CPU B`` the machines that ran each (:func:`machines_label`), ``same
        kind`` whether one machine ran every epoch of both, ``shared epochs`` the first epochs both runs share
        (:func:`shared_epochs`), accuracies in %, ``converged`` is ``"both"``, ``"A"``, ``"B"`` or ``"neither"``
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
            sa, sb = record_segments(ra, segments or {}), record_segments(rb, segments or {})
            ca, cb = (r.get("convergence", {}).get("converged") for r in (ra, rb))
            test_a, test_b = ra["final_accuracy"], rb["final_accuracy"]
            val_a, val_b = ra.get("validation_accuracy"), rb.get("validation_accuracy")
            rows.append({
                "run": ra["name"], "record A": a, "CPU A": machines_label(sa), "record B": b,
                "CPU B": machines_label(sb), "same kind": all(s["machine"] == sa[0]["machine"] for s in sa + sb),
                "shared epochs": shared_epochs(sa, sb),
                "test A": test_a, "test B": test_b, "|test A - test B|": round(abs(test_a - test_b), 2),
                "validation A": val_a, "validation B": val_b,
                "|validation A - validation B|": None if val_a is None or val_b is None else round(abs(val_a - val_b), 2),
                "converged": {(True, True): "both", (True, False): "A", (False, True): "B"}.get((bool(ca), bool(cb)), "neither"),
            })
    return pd.DataFrame(rows, columns=COLUMNS).sort_values(["run", "record A", "record B"], ignore_index=True)


def findings(pairs: pd.DataFrame) -> str:
    """Sentences on :func:`same_config_pairs`: how many repeats within a kind of CPU ended identically,
    and across kinds how many did, the largest distances, and the largest between runs that both
    converged; pairs across kinds that share their first epochs are counted apart (they repeat only the
    rest), with the largest distance among them."""
    if pairs.empty:
        return "No configuration has been run twice yet."
    identical = (pairs["|test A - test B|"] == 0) & (pairs["|validation A - validation B|"].fillna(0) == 0)
    same = pairs["same kind"]
    resumed = ~same & (pairs["shared epochs"] > 0)
    out = []
    if same.any():
        out.append(f"On one kind of CPU, {int((identical & same).sum())} of {int(same.sum())} repeated "
                   "configurations ended at the same accuracies.")
    apart = ~same & ~resumed
    across = pairs[apart]
    if len(across):
        moved = across[~identical[apart]]
        text = f"Across kinds, {len(across)} pair(s) run apart, {len(across) - len(moved)} of them identical"
        if len(moved):
            worst = moved.loc[moved["|test A - test B|"].idxmax()]
            text += (f"; the others lie up to {worst['|test A - test B|']:.2f} test points apart ({worst['run']}) and "
                     f"{moved['|validation A - validation B|'].max():.2f} validation points")
            settled = moved[moved["converged"] == "both"]
            text += (f"; between runs that both converged, up to {settled['|test A - test B|'].max():.2f} test points"
                     if len(settled) else "; no such pair has both runs converged")
        out.append(text + ".")
    if resumed.any():
        shared = pairs[resumed]
        worst = shared.loc[shared["|test A - test B|"].idxmax()]
        out.append(f"{len(shared)} pair(s) across kinds share their first epochs (one run resumed from the other's "
                   f"saved state) and repeat only the rest: up to {worst['|test A - test B|']:.2f} test points apart "
                   f"({worst['run']}, after {int(worst['shared epochs'])} shared epochs).")
    return " ".join(out)
