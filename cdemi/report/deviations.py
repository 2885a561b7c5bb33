"""Where a profile runs a host away from its published settings, why, and what the probes measured:
the README's table "Deviations from the public code".

Every host's constructor defaults are its published values (each host's docstring names them and
their source).  :func:`deviations` lists, for the hosts a profile's ``distill`` entries use, every
host parameter the profile sets to something else: the public value, the profile's, why the profile
chose it (:data:`REASONS`, or the budget of two CPU cores for sizes and step counts) and the probe
that settles it (:func:`probes`).

A probe is a pair of convergence-study records (``results/study/*.json``) that differ in host
settings only: one side runs the setting at its public value, the other at the profile's, with the
same host, variant, transfer set, seed, teacher, student, KD loop and validation split, and the same
number of KD steps in all (the public side may synthesise less often, as its code does).  Its measure
is the final validation accuracy of each side (never the test set).  The profile's value is kept when
its side ends within :data:`TOLERANCE` points of the public one or above it at every budget the pairs
took (:func:`probe_verdict`); otherwise the row says the profile must take the public value.  A setting
no pair covers says so: it is a probe still to run.

Settings without a public counterpart (a part of the host that this project built differently and
documents in the host's docstring) are listed in :data:`OURS_ONLY` and shown as such.
"""
from __future__ import annotations

import inspect
import json
import statistics
from pathlib import Path

from ..convergence import TOLERANCE
from ..invert.base import HOSTS
from .runs import host_settings, kd_steps_taken, parse_record

IMPLEMENTATION = ("seed", "bn_statistics")  # how, not what: no published value to compare
NOT_PROBED = "not probed yet"

# (host, setting) -> why the default profile first departed from the published value
REASONS: dict[tuple[str, str], str] = {
    ("fast", "bn"): "with the public weights (bn 10, oh 0.5) the teacher assigned 10-25% of the syntheses to their "
                    "target class within the grid's budget, in the public code as in this one; with bn 1, oh 1 about "
                    "60% (DeepInversion with bn 1: 95%)",
    ("fast", "oh"): "see bn",
    ("fast", "lr_g"): "chosen with bn / oh on the same check",
    ("fast", "lr_z"): "see lr_g",
    ("fast", "g_steps"): "Fast-10's step count (a published configuration: g_steps 10, lr_g 2e-3, lr_z 0.01)",
    ("fast", "warmup"): "scaled with the run: 20 of 220 public epochs; one synthesis here",
    ("deepinversion", "bn"): "see fast.bn (95% of the syntheses assigned to their target with bn 1)",
}
# settings of a host that have no published counterpart
OURS_ONLY = {("predfkd", "vae_steps"), ("predfkd", "vae_nz"), ("predfkd", "vae_width"), ("predfkd", "lr_vae"),
             ("predfkd", "replay_fraction"), ("cmi", "head_hidden"), ("cmi", "lr_z")}
# sizes and step counts of every host give way to two CPU cores; the reason is the same for each
BUDGET = {"batch_size", "iterations", "g_steps", "nz", "ngf", "bank_size"}
STEPS = {"iterations", "g_steps"}  # a synthesis costs about proportionally to these
# record config keys that may differ within a probe pair: the host's settings, the epochs (a longer
# warm-up takes more epochs to the same number of KD steps, which the pair must share) and how often the host
# synthesises (the public side may synthesise as rarely as its code does, per KD steps seen)
PROBED_KEYS = {"host_params", "epochs", "synthesis_every"}


def public_settings(host: str) -> dict:
    """The host's published settings: its constructor's keyword defaults (without ``seed``)."""
    params = inspect.signature(HOSTS.get(host).__init__).parameters
    return {k: p.default for k, p in params.items() if p.kind is p.KEYWORD_ONLY and k not in IMPLEMENTATION}


def read_study_records(folder: str | Path) -> list[dict]:
    """Every run record under ``folder`` (:func:`cdemi.report.runs.parse_record`); none when the folder is absent.

    :raises ValueError: a file that is not valid JSON or not a run record (names the file).
    """
    return [parse_record(path, path.read_bytes()) for path in sorted(Path(folder).glob("*.json"))]


def probes(records: list[dict]) -> list[dict]:
    """The probe pairs among study ``records``: every two records of one host whose configs agree
    but for :data:`PROBED_KEYS` and that take the same number of KD steps, with different host settings.

    :returns: one dict per pair: ``host, variant, kd_steps, seed``, ``a`` and ``b`` (the two records' names,
        in name order), ``settings_a`` / ``settings_b`` (their host settings) and ``validation_a`` /
        ``validation_b`` (their final validation accuracy, percent).
    """
    keyed: dict[tuple, list[tuple[dict, dict]]] = {}
    for record in records:
        config = record.get("config") or {}
        if record.get("host") in (None, "none") or record.get("validation_accuracy") is None:
            continue
        key = json.dumps({k: v for k, v in config.items() if k not in PROBED_KEYS}, sort_keys=True)
        settings = host_settings(config)
        keyed.setdefault((key, kd_steps_taken(config)), []).append((record, settings))
    pairs = []
    for (_, steps), group in keyed.items():
        group = sorted(group, key=lambda rs: rs[0]["name"])
        for i, (a, sa) in enumerate(group):
            for b, sb in group[i + 1:]:
                if sa != sb:
                    pairs.append({"host": a["host"], "variant": a.get("variant"), "kd_steps": steps,
                                  "seed": a["seed"], "a": a["name"],
                                  "b": b["name"], "settings_a": sa, "settings_b": sb,
                                  "validation_a": a["validation_accuracy"], "validation_b": b["validation_accuracy"]})
    return pairs


def probe_verdict(host: str, setting: str, public, ours: set, pairs: list[dict]) -> str | None:
    """What the ``pairs`` (:func:`probes`) measured for one setting: the pairs of ``host`` with one side
    at the ``public`` value and the other at one of ``ours``, at every budget such pairs took (means over
    each budget's pairs: every variant and seed, as the host's settings serve all its variants; each
    pair's difference listed).  The profile's value is kept only where its side ends within
    :data:`TOLERANCE` points of the public one or above it at every budget: the grid may run any of
    them, and a setting that needs more KD steps to catch up is no cheaper.  None when no pair covers
    the setting."""
    found = []
    for p in pairs:
        if p["host"] != host:
            continue
        va, vb = p["settings_a"].get(setting), p["settings_b"].get(setting)
        if va == public and vb in ours:
            found.append((p, p["validation_a"], p["validation_b"], p["settings_a"], p["settings_b"]))
        elif vb == public and va in ours:
            found.append((p, p["validation_b"], p["validation_a"], p["settings_b"], p["settings_a"]))
    if not found:
        return None
    parts, gaps = [], {}
    for steps in sorted({f[0]["kd_steps"] for f in found}):
        here = sorted((f for f in found if f[0]["kd_steps"] == steps),
                      key=lambda f: (str(f[0]["variant"]), f[0]["seed"]))
        public_mean = statistics.fmean(f[1] for f in here)
        ours_mean = statistics.fmean(f[2] for f in here)
        gaps[steps] = ours_mean - public_mean
        each = ", ".join(f"{f[0]['variant']} s{f[0]['seed']} {f[2] - f[1]:+.2f}" for f in here)
        parts.append(f"{steps:,} KD steps, {len(here)} pair{'s' if len(here) > 1 else ''} ({each}): "
                     f"public {public_mean:.2f}%, ours {ours_mean:.2f}% ({gaps[steps]:+.2f})")
    worst = min(gaps, key=gaps.get)
    together = sorted({k for f in found for k in f[3] if f[3][k] != f[4].get(k) and k != setting})
    verdict = (f"kept: within {TOLERANCE:g} point of the public value or above it at every budget"
               if gaps[worst] >= -TOLERANCE else
               f"not justified: at {worst:,} KD steps the public value leads by {-gaps[worst]:.2f} points, "
               f"so the profile should run it")
    return ("validation after " + "; ".join(parts) + f"; {verdict}"
            + (f" (probed together with {', '.join(together)})" if together else ""))


def deviations(profile, records: list[dict] | None = None) -> list[dict]:
    """One row per (host, setting) that the profile's ``distill`` entries run away from the published
    value: ``host, setting, public, ours`` (the distinct values the entries use, joined), ``reason``
    (why the profile chose it) and ``probe`` (what the study's probe pairs measured, or that none has run).

    :param profile: a :class:`cdemi.params.Profile`.
    :param records: the convergence study's run records (:func:`read_study_records`; None: none).
    """
    pairs = probes(records or [])
    used: dict[tuple[str, str], set] = {}
    for run in profile.distill.values():
        if run.host is None:
            continue
        for setting, value in run.host_settings.items():
            used.setdefault((run.host, setting), set()).add(value)
    rows = []
    for (host, setting), values in sorted(used.items()):
        if setting in IMPLEMENTATION:
            continue
        public = public_settings(host).get(setting)
        different = sorted((v for v in values if v != public), key=str)
        if not different:
            continue
        if (host, setting) in REASONS:
            reason = REASONS[(host, setting)]
        elif (host, setting) in OURS_ONLY:
            reason = "no public counterpart (see the host's docstring)"
        elif setting in STEPS:
            reason = f"two CPU cores: {public / different[0]:g}x fewer steps per synthesis than published"
        elif setting in BUDGET:
            reason = "two CPU cores"
        else:
            reason = "not stated"
        probe = ("no public value to probe" if (host, setting) in OURS_ONLY else
                 probe_verdict(host, setting, public, set(different), pairs) or NOT_PROBED)
        rows.append({"host": host, "setting": setting, "public": public,
                     "ours": ", ".join(str(v) for v in different), "reason": reason, "probe": probe})
    return rows


def deviations_markdown(rows: list[dict]) -> str:
    """The README table of :func:`deviations`."""
    lines = ["| host | setting | public | ours | why | probe on the validation split |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['host']} | `{r['setting']}` | {'see docstring' if r['public'] is None else r['public']} | "
              f"{r['ours']} | {r['reason']} | {r['probe']} |" for r in rows]
    return "\n".join(lines)
