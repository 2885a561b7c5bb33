"""Where a profile runs a host away from its published settings, and why: the README's table
"Deviations from the public code".

Every host's constructor defaults are its published values (each host's docstring names them and
their source).  :func:`deviations` lists, for the hosts a profile's ``distill`` entries use, every
host parameter the profile sets to something else, with the public value, the profile's and the
reason of :data:`REASONS`.  A setting the table cannot justify by a measurement says so: it is a
probe still to run on the validation split (a cheaper setting is kept only when it reaches the
public setting's validation accuracy within 1 point).

Settings without a public counterpart (a part of the host that this project built differently and
documents in the host's docstring) are listed in :data:`OURS_ONLY` and shown as such.
"""
from __future__ import annotations

import inspect

from .base import HOSTS

IMPLEMENTATION = ("seed", "bn_statistics")  # how, not what: no published value to compare
NOT_PROBED = "not probed yet: no validation-split run of the public value at this budget"

# (host, setting) -> why the default profile departs from the published value (measurements where any)
REASONS: dict[tuple[str, str], str] = {
    ("fast", "bn"): "with the public weights (bn 10, oh 0.5) the teacher assigned 10-25% of the syntheses to their "
                    "target class within the grid's budget, in the public code as in this one; with bn 1, oh 1 about "
                    "60% (DeepInversion with bn 1: 95%)",
    ("fast", "oh"): "see bn",
    ("fast", "lr_g"): "chosen with bn / oh on the same probe; " + NOT_PROBED + " on its own",
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


def public_settings(host: str) -> dict:
    """The host's published settings: its constructor's keyword defaults (without ``seed``)."""
    params = inspect.signature(HOSTS.get(host).__init__).parameters
    return {k: p.default for k, p in params.items() if p.kind is p.KEYWORD_ONLY and k not in IMPLEMENTATION}


def deviations(profile) -> list[dict]:
    """One row per (host, setting) that the profile's ``distill`` entries run away from the published
    value: ``host, setting, public, ours`` (the distinct values the entries use, joined) and ``reason``.

    :param profile: a :class:`cdemi.params.Profile`.
    """
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
        ours = ", ".join(str(v) for v in different)
        if (host, setting) in REASONS:
            reason = REASONS[(host, setting)]
        elif (host, setting) in OURS_ONLY:
            reason = "no public counterpart (see the host's docstring)"
        elif setting in STEPS:
            reason = (f"two CPU cores: {public / different[0]:g}x fewer steps per synthesis than published; "
                      + NOT_PROBED)
        elif setting in BUDGET:
            reason = "two CPU cores; " + NOT_PROBED
        else:
            reason = NOT_PROBED
        rows.append({"host": host, "setting": setting, "public": public, "ours": ours, "reason": reason})
    return rows


def deviations_markdown(rows: list[dict]) -> str:
    """The README table of :func:`deviations`."""
    lines = ["| host | setting | public | ours | why |", "|---|---|---|---|---|"]
    lines += [f"| {r['host']} | `{r['setting']}` | {'see docstring' if r['public'] is None else r['public']} | "
              f"{r['ours']} | {r['reason']} |" for r in rows]
    return "\n".join(lines)
