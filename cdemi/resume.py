"""Resume after an interruption: one mechanism for training, condensation and distillation.

A loop saves its complete state (weights, optimisers, schedules, RNG, curve, ...) atomically at the
end of every epoch or every few iterations, tagged with a *key*: the digest of everything that
determines the run.  On restart the state is restored only when its key matches the run's;
otherwise it is set aside as ``<name>.stale`` (kept for inspection, never silently reused) and the
run starts over.

Under ``torchrun`` a state is either *shared* (one file: the ranks' weights and RNG are the same,
rank 0 alone writes it and sets a stale one aside before the others look) or *per rank* (each rank
keeps ``<stem>.rank<r><suffix>``; when the ranks' states hold different positions, killed between
two saves, every rank starts over).
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any, Optional

from . import distributed
from .artifacts import atomic_torch_save, safe_torch_load


def digest(payload: Any) -> str:
    """16 hex digits of the SHA-256 of ``payload`` as key-sorted JSON: the identity of a run's
    settings (resume keys, ``config_hash`` in run records)."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


class ResumeState:
    """The resume state of one run at ``path`` (None: the run keeps no state).

    :param key: identifies the run; a saved state with another key is set aside as ``*.stale``.
    :param what: names the state in load errors (``"training state"``).
    :param per_rank: under ``torchrun`` each rank keeps its own file and writes it (True), or the
        ranks share one file that rank 0 writes (False).
    """

    def __init__(self, path: str | Path | None, key: str, what: str, per_rank: bool = False):
        self.per_rank = per_rank
        self.path = (distributed.rank_path(path) if per_rank else Path(path)) if path else None
        self.key, self.what = key, what

    def load(self, limit: Optional[int] = None) -> tuple[int, Optional[dict]]:
        """The saved state of this run: ``(position, state)`` (``state``: the saved payload's keys plus
        ``resume_key`` and ``position``), or ``(0, None)`` when there is none.

        ``position`` is the epoch or iteration the state ends at.  A state with another key, or past
        ``limit`` (a run shortened below what was saved), is set aside as ``*.stale``.
        """
        if self.path is None:
            return 0, None
        if self.per_rank:
            state = self._read()
            held = state["position"] if state is not None and self._usable(state, limit) else -1
            if not distributed.same_everywhere(held):
                state = None if state is None else {}  # the ranks disagree: every rank starts over
            return self._settle(state, limit)
        with distributed.main_first():  # rank 0 sets a stale state aside before the others look
            return self._settle(self._read(), limit)

    def save(self, position: int, payload: dict) -> None:
        """Write ``payload`` as the state at ``position`` (atomically; rank 0 only for a shared state).
        The file holds ``payload``'s keys plus ``resume_key`` and ``position``."""
        if self.path is not None and (self.per_rank or distributed.is_main()):
            atomic_torch_save(self.path, {**payload, "resume_key": self.key, "position": int(position)})

    def _read(self) -> Optional[dict]:
        return safe_torch_load(self.path, self.what) if self.path.exists() else None

    def _usable(self, state: dict, limit: Optional[int]) -> bool:
        return state.get("resume_key") == self.key and (limit is None or int(state["position"]) <= limit)

    def _settle(self, state: Optional[dict], limit: Optional[int]) -> tuple[int, Optional[dict]]:
        if state is None:
            return 0, None
        if self._usable(state, limit):
            return int(state["position"]), state
        if self.per_rank or distributed.is_main():
            self.path.rename(self.path.with_suffix(".stale"))
        return 0, None


class Timer:
    """Wall time across resumed segments: ``seconds`` = the time already spent before this
    segment (``already``, from the resume state) plus the time since construction."""

    def __init__(self, already: float = 0.0):
        self.already = already
        self.start = time.perf_counter()

    @property
    def seconds(self) -> float:
        return self.already + time.perf_counter() - self.start
