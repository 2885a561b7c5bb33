"""What the reliability tests throw at the code, counted while the suite runs.

The README's reliability section reports three counts, and this module computes them:

- **bad inputs tried**: malformed parameter values, and corrupt or foreign files offered to a loader.
  Each one must be refused with a clear error. A hypothesis example counts once.
- **faults injected**: kills, write faults, non-finite losses and missing data.
- **files lost**: files that existed before a fault or a refusal and whose bytes changed after it.
  :meth:`Tally.kept` compares them, so the count is measured, not assumed; it must be 0.

A test takes the session-wide ``tally`` fixture (``tests/conftest.py``) and calls :meth:`Tally.bad_input`,
:meth:`Tally.fault` or :meth:`Tally.kept`.  ``make test`` sets ``CDEMI_RELIABILITY_COUNTS`` to a file git
ignores; when the whole suite passes, :meth:`Tally.write` puts the counts there.  No tracked file is
touched: ``make readme`` copies them into the README (:mod:`cdemi.tools.readme`), and the last step of
``make test`` fails while the README shows other counts.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from cdemi.artifacts import atomic_write_json


@dataclass
class Tally:
    """Counts per kind; the kinds are the README table's rows."""

    bad_inputs: Counter = field(default_factory=Counter)
    faults: Counter = field(default_factory=Counter)
    checked: int = 0
    lost: int = 0

    def bad_input(self, kind: str, n: int = 1) -> None:
        """``n`` bad inputs of ``kind`` (e.g. ``"parameter value"``) were offered to the code."""
        self.bad_inputs[kind] += n

    def fault(self, kind: str, n: int = 1) -> None:
        """``n`` faults of ``kind`` (e.g. ``"SIGKILL mid-stage"``) were injected."""
        self.faults[kind] += n

    def kept(self, path: Path, before: bytes) -> bool:
        """Whether ``path`` still holds exactly ``before`` (its bytes before the fault); counted either way."""
        self.checked += 1
        same = Path(path).is_file() and Path(path).read_bytes() == before
        self.lost += not same
        return same

    def counts(self) -> dict:
        """The counts as :func:`cdemi.tools.readme.reliability_markdown` reads them: ``bad_inputs`` and
        ``faults`` (kind -> n), ``checked`` and ``lost`` (files)."""
        return {"bad_inputs": dict(self.bad_inputs), "faults": dict(self.faults), "checked": self.checked,
                "lost": self.lost}

    def write(self, path: Path) -> None:
        """The counts as JSON at ``path`` (atomically; key-sorted, so equal counts give equal bytes)."""
        atomic_write_json(path, self.counts())


TALLY = Tally()
