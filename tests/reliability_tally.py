"""What the reliability tests throw at the code, counted while the suite runs.

The README's reliability section reports three counts, and this module computes them:

- **bad inputs tried**: malformed parameter values, and corrupt or foreign files offered to a loader.
  Each one must be refused with a clear error. A hypothesis example counts once.
- **faults injected**: kills, write faults, non-finite losses and missing data.
- **files lost**: files that existed before a fault or a refusal and whose bytes changed after it.
  :meth:`Tally.kept` compares them, so the count is measured, not assumed; it must be 0.

A test takes the session-wide ``tally`` fixture (``tests/conftest.py``) and calls :meth:`Tally.bad_input`,
:meth:`Tally.fault` or :meth:`Tally.kept`.  ``make test`` sets ``CDEMI_RELIABILITY_README``.  When the
whole suite passes, :func:`publish` writes the counts into that file, between the two
``reliability-counts`` markers.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

BEGIN = "<!-- reliability-counts: written by `make test` from the suite's own counts; do not edit -->"
END = "<!-- /reliability-counts -->"


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

    def markdown(self) -> str:
        """The README block: one table of the counts per kind, with the totals."""
        rows = ["| what | kind | count |", "|---|---|---|"]
        rows += [f"| bad input | {k} | {n} |" for k, n in sorted(self.bad_inputs.items())]
        rows += [f"| fault injected | {k} | {n} |" for k, n in sorted(self.faults.items())]
        return "\n".join([
            f"The last full run of the suite offered **{sum(self.bad_inputs.values())} bad inputs** and injected "
            f"**{sum(self.faults.values())} faults**; every one ended in the expected clear error or in a resumed, "
            f"identical result. Of the {self.checked} files that existed before a fault or a refusal and were "
            f"compared byte for byte afterwards, **{self.lost} were lost or changed**.", "", *rows])


TALLY = Tally()


def publish(readme: Path, tally: Tally = TALLY) -> bool:
    """Write ``tally``'s block between the markers in ``readme``; :returns: whether the text changed.

    :raises ValueError: the markers are missing from ``readme``.
    """
    text = readme.read_text()
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        raise ValueError(f"{readme} has no block between {BEGIN!r} and {END!r} for the reliability counts")
    new = pattern.sub(lambda _: f"{BEGIN}\n{tally.markdown()}\n{END}", text)
    if new != text:
        readme.write_text(new)
    return new != text
