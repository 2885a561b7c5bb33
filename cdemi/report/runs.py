"""Run records (``results/distill/*.json``, format ``cdemi-run-v1``) read into one frame.

:func:`load_records` gives one row per distillation run, sorted by host and variant in the
reports' order (:data:`cdemi.report.labels.HOST_ORDER`, :data:`~cdemi.report.labels.VARIANT_ORDER`);
the grid's tables (:mod:`~cdemi.report.grid`), figures, claims and guidance summary start from that frame.
"""
from __future__ import annotations

import functools
import json
import math
from pathlib import Path

import pandas as pd

from ..params import GuidanceParams
from .labels import HOST_ORDER, VARIANT_ORDER


def variant_label(record: dict) -> str:
    """The record's variant, with every guidance setting that differs from the defaults in
    brackets (``guided[loss=hinge, weight=2.0]``), so ablation runs get their own column.
    ``held_out_per_class`` is left out: it holds images back to measure D, not to change the method."""
    guidance = (record.get("config") or {}).get("guidance")
    if not guidance:
        return record["variant"]
    defaults = GuidanceParams().model_dump()
    changed = [f"{k}={v}" for k, v in sorted(guidance.items())
               if k not in ("conditional", "held_out_per_class") and defaults.get(k) != v]
    return record["variant"] + (f"[{', '.join(changed)}]" if changed else "")


def epoch_accuracy(row: dict) -> float:
    """The student's accuracy in one row of a run record's ``curve`` (%): on the validation split for a
    run that has one (its test set is read at its end alone), else on the test set (or its per-epoch subset)."""
    return row["validation_accuracy"] if "validation_accuracy" in row else row["test_accuracy"]


@functools.cache
def _grid_entry_adapter():
    from pydantic import TypeAdapter

    from ..params import GridRun

    return TypeAdapter(GridRun)


def _entry(config: dict):
    """A run record's ``config`` validated as its entry (:data:`cdemi.params.GridRun`: a
    :class:`~cdemi.params.StudyRun` or a :class:`~cdemi.params.DistillRun`), defaults filled in."""
    return _grid_entry_adapter().validate_python(config)


def host_settings(config: dict) -> dict:
    """A run's host settings: the entry's ``host_params`` over the host's defaults (empty for KD
    alone).  :param config: a run record's ``config`` (a study or a grid entry)."""
    return _entry(config).host_settings


def warmup_epochs(config: dict) -> int:
    """Epochs without KD at the start of a run: its host's ``warmup`` (0 for KD alone).
    :param config: a run record's ``config``."""
    return host_settings(config).get("warmup", 0)


def synthesised_batches(config: dict) -> int | None:
    """How many batches a run that synthesises every ``synthesis_every``-th epoch (> 1) adds to its pool
    over the whole run: ``ceil(epochs / synthesis_every)``.  None for a run that synthesises every
    epoch (or has no host): its pool grows with its length, so the count is not a setting of its own.
    :param config: a run record's ``config``."""
    every = config.get("synthesis_every", 1)
    return None if every == 1 else math.ceil(config["epochs"] / every)


KD_SETTINGS = ("batch_size", "lr", "momentum", "weight_decay", "temperature", "mixing", "pool_max")


def encode_budget_key(host: str, host_settings: dict, kd_settings: dict) -> str:
    """The canonical JSON of a budget key (key-sorted): what :func:`budget_key` returns and what
    :func:`cdemi.report.study_budget.read` rebuilds from the study's JSON."""
    return json.dumps({"host": host, "host_settings": dict(host_settings), "kd_settings": dict(kd_settings)},
                      sort_keys=True)


def budget_key(host: str, config: dict) -> str:
    """What a KD budget measured in the convergence study carries over to: the host, its settings
    (:func:`host_settings`) and the KD loop's (:data:`KD_SETTINGS`; not its length, seed or curve), as
    canonical JSON (:func:`encode_budget_key`).  Runs with equal keys need the same KD steps whatever
    their variant, student or set.  A run that synthesises every n-th epoch also carries its number of
    batches (``batches`` among the KD settings, :func:`synthesised_batches`): its pool is fixed by that
    count, not by its length, and a budget measured on 10 batches says nothing of one with 20.
    :param config: a run record's ``config``."""
    entry = _entry(config)
    kd_settings = {k: getattr(entry, k) for k in KD_SETTINGS}
    batches = synthesised_batches(config)
    if batches is not None:
        kd_settings["batches"] = batches
    return encode_budget_key(host, entry.host_settings, kd_settings)


def kd_steps_taken(config: dict) -> int:
    """KD steps a run takes in all: ``kd_steps`` per epoch over the epochs after its warm-up."""
    return max(0, config["epochs"] - warmup_epochs(config)) * config["kd_steps"]


def locked_md5s(lock: str | Path) -> dict[Path, str]:
    """Every output and metric DVC recorded in ``lock`` (a ``dvc.lock``): resolved path -> MD5."""
    import yaml

    lock = Path(lock)
    stages = (yaml.safe_load(lock.read_text()) or {}).get("stages", {})
    return {(lock.parent / o["path"]).resolve(): o["md5"] for stage in stages.values()
            for o in stage.get("outs", []) if "md5" in o}


def parse_record(path: Path, raw: bytes) -> dict:
    """The run record in ``raw``, the bytes of ``path``.

    :raises ValueError: not valid JSON, or not format ``cdemi-run-v1`` (names the file and the fix).
    """
    try:
        rec = json.loads(raw)
    except ValueError as e:
        raise ValueError(f"{path} is not valid JSON ({e}): restore it or rerun its stage") from None
    if rec.get("format") != "cdemi-run-v1":
        raise ValueError(f"{path} is not a run record (format {rec.get('format')!r}, expected 'cdemi-run-v1')")
    return rec


def load_records(records_dir: str | Path, dataset: str | None = None, lock: str | Path | None = None) -> pd.DataFrame:
    """One row per run record: ``name, host, variant`` (:func:`variant_label`), ``dataset, teacher,
    student, transfer, transfer_method, transfer_ipc, teacher_path, transfer_path, teacher_sha256,
    seed, final, best, kd_steps`` (:func:`kd_steps_taken`), ``config`` (the record's), ``synthesis_min,
    kd_min, images, peak_memory_mb``, the epoch means of the diagnostics, and ``curve`` (the
    per-epoch rows).

    :param dataset: keep only the runs on this dataset (None: all).
    :param lock: a ``dvc.lock`` whose MD5 every record it lists must match (None: no check); a
        record changed since its stage ran (corrupt, truncated, edited) is refused.

    :raises FileNotFoundError: no record under ``records_dir``.
    :raises ValueError: a file that is not a run record, or one that no longer matches its
        ``lock`` checksum (names the file and the stage to rerun).
    """
    import hashlib

    md5s = locked_md5s(lock) if lock is not None else {}
    rows = []
    for path in sorted(Path(records_dir).glob("*.json")):
        raw = path.read_bytes()
        expected = md5s.get(path.resolve())
        if expected is not None and hashlib.md5(raw).hexdigest() != expected:
            raise ValueError(f"{path} does not match the checksum DVC recorded when its stage wrote it: the file was "
                             f"changed or corrupted since; restore it (git checkout {path}) or rerun its stage "
                             f"alone (dvc repro --force --single-item distill@{path.stem})")
        rec = parse_record(path, raw)
        transfer = rec.get("transfer") or {}
        if dataset is not None and rec.get("dataset") != dataset:
            continue
        config = rec.get("config") or {}
        rows.append({"name": rec["name"], "host": rec["host"], "variant": variant_label(rec),
                     "dataset": rec.get("dataset", ""), "teacher_path": config.get("teacher", ""),
                     "transfer_path": config.get("transfer") or "",
                     "teacher": rec.get("teacher", ""), "student": rec.get("student", ""),
                     "transfer": f"{transfer['method']} IPC {transfer['ipc']}" if transfer else "",
                     "transfer_method": transfer.get("method", ""), "transfer_ipc": transfer.get("ipc", 0),
                     "teacher_sha256": rec.get("teacher_sha256", ""), "seed": rec["seed"], "final": rec["final_accuracy"], "best": rec["best_accuracy"],
                     "kd_steps": kd_steps_taken(config), "config": config,
                     "synthesis_min": rec["synthesis_seconds"] / 60, "kd_min": rec["kd_seconds"] / 60,
                     "images": rec["images_synthesised"], "peak_memory_mb": rec["peak_memory_mb"],
                     **rec.get("diagnostics_mean", {}), "curve": rec["curve"]})
    if not rows:
        raise FileNotFoundError(f"no run records under {records_dir}" + (f" for {dataset}" if dataset else "")
                                + ": run the distill stages first")
    table = pd.DataFrame(rows)
    return table.sort_values(["host", "variant"], key=lambda s: s.map(
        {v: i for i, v in enumerate(HOST_ORDER if s.name == "host" else VARIANT_ORDER)}).fillna(99), ignore_index=True)
