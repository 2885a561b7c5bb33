"""The paper's tables T1-T5, built from run records only (``results/distill/*.json`` through
:func:`cdemi.report.runs.load_records`, and the model records ``data/models/*.json``).

Every cell is the final test accuracy (%) averaged over the seeds present, shown as
``mean ± std (n)`` (``mean (1)`` with one seed), marked ``†`` when a run of it has not converged
(:mod:`cdemi.report.study_budget`); the numeric CSV twin of each table keeps mean, std, n and
``converged`` apart (:func:`long_cells`).  A cell without records is left empty.
Rows, columns and names follow :mod:`cdemi.report.labels`.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from .labels import ARCH_NAMES, HOST_NAMES, IMPORTED_SETS, INVERSION_HOSTS, SET_NAMES, VARIANT_NAMES, pair_label
from .study_budget import MARK


def stats(values: pd.Series) -> dict:
    """``mean``, ``std`` (sample std, ddof 1; NaN with fewer than two values) and ``n`` of
    ``values`` (final accuracies in %, or any other per-run number); the mean is NaN without values."""
    n = int(len(values))
    return {"mean": float(values.mean()) if n else float("nan"),
            "std": float(values.std(ddof=1)) if n >= 2 else float("nan"), "n": n}


def run_stats(runs: pd.DataFrame, column: str = "final") -> dict:
    """:func:`stats` of the runs' ``column``, with ``converged`` (whether every run is) where
    ``runs`` has the ``converged`` column of :func:`cdemi.report.study_budget.mark_converged`."""
    s = stats(runs[column])
    if "converged" in runs:
        s["converged"] = bool(runs["converged"].all())
    return s


def difference(a: dict, b: dict) -> dict:
    """Cell ``a`` minus cell ``b`` (:func:`run_stats`): the difference of means in points, no spread,
    the smaller seed count, converged only where both are."""
    out = {"mean": a["mean"] - b["mean"], "std": float("nan"), "n": min(a["n"], b["n"])}
    if "converged" in a or "converged" in b:
        out["converged"] = a.get("converged", True) and b.get("converged", True)
    return out


def cell_text(s: dict) -> str:
    """``72.15 ± 1.20 (3)``, ``72.15 (1)``, or empty without runs; :data:`~cdemi.report.study_budget.MARK`
    appended where a run of the cell has not converged (``s["converged"]`` False)."""
    if not s["n"]:
        return ""
    spread = f" ± {s['std']:.2f}" if s["n"] >= 2 and s["std"] == s["std"] else ""  # NaN: no spread to show
    mark = f" {MARK}" if s.get("converged") is False else ""
    return f"{s['mean']:.2f}{spread} ({s['n']}){mark}"


def select(records: pd.DataFrame, **where) -> pd.DataFrame:
    """Rows whose columns equal the given values (a list/tuple value: any of them)."""
    mask = pd.Series(True, index=records.index)
    for key, value in where.items():
        mask &= records[key].isin(value) if isinstance(value, (list, tuple)) else records[key] == value
    return records[mask]


def cell(host: str, variant: str, method: str, ipc: int) -> dict:
    """Column filters of one host x variant cell: on the ``method`` IPC-``ipc`` set, except
    ``plain``, which uses no set."""
    where = {"host": host, "variant": variant}
    if variant != "plain":
        where.update(transfer_method=method, transfer_ipc=ipc)
    return where


def long_cells(cells: dict[tuple, dict], index_names: list[str]) -> pd.DataFrame:
    """The numeric twin of a text table: one row per cell key with mean, std, n and ``converged``
    (empty for cells that are no runs, such as the reference rows)."""
    rows = [{**dict(zip(index_names, key)), **s} for key, s in cells.items()]
    return pd.DataFrame(rows, columns=[*index_names, "mean", "std", "n", "converged"]).set_index(index_names)


def text_table(texts: dict[tuple, str]) -> pd.DataFrame:
    """(row, column) -> text as a row x column frame (empty without cells)."""
    if not texts:
        return pd.DataFrame()
    return pd.Series(texts).unstack(1)


def model_references(models_dir: str | Path, teacher_sha256: str) -> dict:
    """Accuracies of the reference rows from the model records: ``teacher`` (the model whose
    checksum is ``teacher_sha256``), and per student architecture ``scratch`` (trained from
    the labels) and ``kd_full`` (distilled from that teacher on the whole training set).

    :returns: ``{"teacher": (arch, acc), "scratch": {arch: acc}, "kd_full": {arch: acc}}``.
    :raises FileNotFoundError: no record holds the teacher's checksum.
    """
    out: dict = {"teacher": None, "scratch": {}, "kd_full": {}}
    for path in sorted(Path(models_dir).glob("*.json")):
        rec = json.loads(path.read_text())
        if "arch" not in rec or "sha256" not in rec:
            continue
        if rec["sha256"] == teacher_sha256:
            out["teacher"] = (rec["arch"], rec["test_accuracy"])
        elif rec.get("teacher_sha256") == teacher_sha256:
            out["kd_full"][rec["arch"]] = rec["test_accuracy"]
        elif rec.get("teacher_sha256") is None:
            out["scratch"][rec["arch"]] = rec["test_accuracy"]
    if out["teacher"] is None:
        raise FileNotFoundError(f"no model record under {models_dir} has the teacher's checksum {teacher_sha256[:12]}…")
    return out


def main_table(records: pd.DataFrame, references: dict, method: str = "dm", ipc: int = 10,
               real_method: str = "random_real") -> tuple[pd.DataFrame, pd.DataFrame]:
    """T1: rows are the reference rows (teacher, student from scratch, KD on full data, KD on
    the condensed set alone, KD on a random real subset of the same size) and every host
    plain / + CS (naive) / + guidance (default guidance, the ``method`` IPC-``ipc`` set);
    columns are the teacher → student pairs present.

    :returns: (text table, numeric long table).
    """
    pairs = sorted({(t, s) for t, s in zip(records["teacher"], records["student"])},
                   key=lambda p: (p[1] != "mobilenetv2", p))
    cells: dict[tuple, dict] = {}
    rows: list[str] = []

    def put(row: str, pair, s: dict):
        if row not in rows:
            rows.append(row)
        cells[(row, pair_label(*pair))] = s

    for pair in pairs:
        teacher_arch, teacher_acc = references["teacher"]
        put(f"teacher ({ARCH_NAMES.get(teacher_arch, teacher_arch)})", pair,
            {"mean": teacher_acc, "std": float("nan"), "n": 1})
        for key, label in (("scratch", "student from scratch"), ("kd_full", "KD on full data")):
            acc = references[key].get(pair[1])
            put(label, pair, {"mean": acc, "std": float("nan"), "n": 1} if acc is not None else stats(pd.Series([], dtype=float)))
        on_pair = select(records, teacher=pair[0], student=pair[1])
        put(f"KD on {SET_NAMES.get(method, method)} IPC {ipc} alone", pair,
            run_stats(select(on_pair, variant="kd-only", transfer_method=method, transfer_ipc=ipc)))
        put(f"KD on {SET_NAMES.get(real_method, real_method)} IPC {ipc} alone", pair,
            run_stats(select(on_pair, variant="kd-only", transfer_method=real_method, transfer_ipc=ipc)))
        for host in INVERSION_HOSTS:
            for variant in ("plain", "naive", "guided"):
                put(HOST_NAMES[host] + VARIANT_NAMES[variant], pair,
                    run_stats(select(on_pair, **cell(host, variant, method, ipc))))
    numbers = long_cells(cells, ["row", "pair"])
    text = text_table({k: cell_text(s) for k, s in cells.items()})
    text = text.reindex(index=rows, columns=[pair_label(*p) for p in pairs])
    text.index.name = "student top-1 (%)"
    return text, numbers


def ipc_table(records: pd.DataFrame, hosts=("fast", "cmi"), method: str = "dm", student: str = "mobilenetv2"
              ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """T2: rows are each host's plain (the same at every IPC), naive and guided runs and KD on
    the set alone; columns the IPCs of the ``method`` sets present.  :returns: (text, numeric)."""
    recs = select(records, student=student)
    ipcs = sorted(set(select(recs, transfer_method=method)["transfer_ipc"]))
    cells: dict[tuple, dict] = {}
    rows: list[str] = []
    for host in hosts:
        for variant in ("plain", "naive", "guided"):
            row = HOST_NAMES[host] + VARIANT_NAMES[variant]
            rows.append(row)
            for ipc in ipcs:
                cells[(row, ipc)] = run_stats(select(recs, **cell(host, variant, method, ipc)))
    rows.append(f"KD on {SET_NAMES.get(method, method)} alone")
    for ipc in ipcs:
        cells[(rows[-1], ipc)] = run_stats(select(recs, variant="kd-only", transfer_method=method, transfer_ipc=ipc))
    text = text_table({k: cell_text(s) for k, s in cells.items()}).reindex(index=rows, columns=ipcs)
    text.columns = [f"IPC {i}" for i in ipcs]
    text.index.name = "student top-1 (%)"
    return text, long_cells(cells, ["row", "ipc"])


# T3's rows: the paper's condensation methods, real images, then the sets imported from the methods' own code
T3_SETS = ("dsa", "dm", "mtt", "random_real", *IMPORTED_SETS)


def convnet_accuracies(condense_dir: str | Path, ipc: int, methods: tuple[str, ...] = T3_SETS) -> dict[str, float]:
    """The mean ConvNet accuracy (%) of each ``method``'s IPC-``ipc`` set, from the condense stages'
    metrics ``<condense_dir>/<method>_ipc<ipc>.json``; a method without that file is left out."""
    return {m: json.loads(p.read_text())["accuracy_mean"] for m in methods
            if (p := Path(condense_dir) / f"{m}_ipc{ipc}.json").exists()}


def condenser_table(records: pd.DataFrame, convnet: dict[str, float], host: str = "fast", ipc: int = 10,
                    student: str = "mobilenetv2") -> tuple[pd.DataFrame, pd.DataFrame]:
    """T3: per condensation method at ``ipc`` (rows, :data:`T3_SETS`), the set's own ConvNet accuracy
    (``convnet``: method -> accuracy, :func:`convnet_accuracies`), KD on the set alone,
    the host guided by the set, and the guided run's gain over the host's plain run (points).
    :returns: (text, numeric)."""
    recs = select(records, student=student)
    plain = run_stats(select(recs, host=host, variant="plain"))
    methods = [m for m in T3_SETS if m in set(recs["transfer_method"]) or m in convnet]
    cells: dict[tuple, dict] = {}
    guided_col = f"{HOST_NAMES[host]} + guidance"
    for m in methods:
        row = SET_NAMES.get(m, m)
        cells[(row, "ConvNet on the set")] = {"mean": convnet.get(m, float("nan")), "std": float("nan"),
                                              "n": int(m in convnet)}
        cells[(row, "KD on the set alone")] = run_stats(select(recs, variant="kd-only", transfer_method=m,
                                                               transfer_ipc=ipc))
        g = run_stats(select(recs, host=host, variant="guided", transfer_method=m, transfer_ipc=ipc))
        cells[(row, guided_col)] = g
        cells[(row, f"gain over {HOST_NAMES[host]} plain")] = difference(g, plain)
    text = text_table({k: cell_text(s) for k, s in cells.items()})
    text = text.reindex(index=[SET_NAMES.get(m, m) for m in methods],
                        columns=["ConvNet on the set", "KD on the set alone", guided_col,
                                 f"gain over {HOST_NAMES[host]} plain"])
    text.index.name = f"set (IPC {ipc})"
    return text, long_cells(cells, ["set", "column"])


def few_shot_table(records: pd.DataFrame, host: str = "fast", student: str = "mobilenetv2"
                   ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """T4: per k (rows), KD on the k real images per class alone, the host plain (no images),
    and the host guided by the k images.  :returns: (text, numeric)."""
    recs = select(records, student=student)
    ks = sorted(set(select(recs, transfer_method="kshot")["transfer_ipc"]))
    plain = run_stats(select(recs, host=host, variant="plain"))
    cells: dict[tuple, dict] = {}
    guided_col = f"{HOST_NAMES[host]} + guidance"
    for k in ks:
        cells[(k, "KD on the k-shot images alone")] = run_stats(select(recs, variant="kd-only",
                                                                       transfer_method="kshot", transfer_ipc=k))
        cells[(k, f"{HOST_NAMES[host]} plain")] = plain
        cells[(k, guided_col)] = run_stats(select(recs, host=host, variant="guided", transfer_method="kshot",
                                                  transfer_ipc=k))
    text = text_table({key: cell_text(s) for key, s in cells.items()})
    text = text.reindex(index=ks, columns=["KD on the k-shot images alone", f"{HOST_NAMES[host]} plain", guided_col])
    text.index.name = "k (real images per class)"
    return text, long_cells(cells, ["k", "column"])


ABLATIONS = {"guided": "default: conditional D, penultimate features, DiffAugment, λ_FA 1",
             "guided-uncond": "unconditional D"}


def ablation_table(records: pd.DataFrame, host: str = "fast", method: str = "dm", ipc: int = 10,
                   student: str = "mobilenetv2") -> tuple[pd.DataFrame, pd.DataFrame]:
    """T5: every guided variant of ``host`` on the ``method`` IPC-``ipc`` set (rows: the
    default, the unconditional D and each changed setting, by variant label), with the
    difference to the default in points and the discriminator's accuracy on both sides.
    :returns: (text, numeric)."""
    recs = select(records, host=host, transfer_method=method, transfer_ipc=ipc, student=student)
    recs = recs[recs["variant"].str.startswith("guided")]
    default = run_stats(select(recs, variant="guided"))
    labels = sorted(set(recs["variant"]), key=lambda v: (v != "guided", v != "guided-uncond", v))
    rows, cells = [], {}
    for label in labels:
        group = select(recs, variant=label)
        s = run_stats(group)
        row = ABLATIONS.get(label, label.split("[", 1)[-1].rstrip("]").replace("weight", "λ_FA"))
        rows.append(row)
        cells[(row, "top-1 (%)")] = s
        cells[(row, "− default (points)")] = difference(s, default)
        for col, name in (("d_acc_real", "D acc. condensed"), ("d_acc_fake", "D acc. synthetic")):
            if col in group:
                cells[(row, name)] = run_stats(group, col)
    text = text_table({k: (cell_text(s) if k[1] != "− default (points)" or k[0] != rows[0] else "")
                       for k, s in cells.items()})
    columns = [c for c in ("top-1 (%)", "− default (points)", "D acc. condensed", "D acc. synthetic") if c in text]
    text = text.reindex(index=rows, columns=columns)
    text.index.name = f"{HOST_NAMES[host]} + guidance, {SET_NAMES.get(method, method)} IPC {ipc}"
    return text, long_cells(cells, ["setting", "column"])


def headline_cells(records: pd.DataFrame, student: str = "mobilenetv2", method: str = "dm", ipc: int = 10
                   ) -> pd.DataFrame:
    """The runs of T1's headline column: the ``student``'s plain runs and its runs on the
    ``method`` IPC-``ipc`` set, default variants only (no ablation, other sets left out)."""
    recs = select(records, student=student, variant=["plain", "naive", "guided", "kd-only"])
    on_set = (recs["transfer_method"] == method) & (recs["transfer_ipc"] == ipc)
    return recs[on_set | (recs["variant"] == "plain")]
