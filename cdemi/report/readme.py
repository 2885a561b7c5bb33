"""Keeping the README's result blocks equal to the pipeline's outputs.

A block is the text between ``<!-- begin:NAME -->`` and ``<!-- end:NAME -->``; :data:`BLOCKS`
maps each name to the generated file it shows.  ``python -m cdemi.report.readme [README.md]``
rewrites every block from its file (atomically); the test suite checks that none is stale.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

from ..artifacts import atomic_write_bytes

BLOCKS = {"t1": "results/tables/t1_main.md", "claims": "results/claims.md"}


def _pattern(name: str) -> re.Pattern:
    return re.compile(rf"(<!-- begin:{name} -->\n)(.*?)(<!-- end:{name} -->)", re.S)


def block(text: str, name: str) -> str:
    """The current content of block ``name``.  :raises KeyError: the README has no such block."""
    m = _pattern(name).search(text)
    if m is None:
        raise KeyError(f"the README has no block {name!r} (<!-- begin:{name} --> ... <!-- end:{name} -->)")
    return m.group(2)


def refreshed(text: str, root: Path = Path(".")) -> str:
    """``text`` with every block of :data:`BLOCKS` replaced by its file's content."""
    for name, source in BLOCKS.items():
        content = (root / source).read_text()
        block(text, name)  # raises when absent
        text = _pattern(name).sub(lambda m: m.group(1) + content + m.group(3), text)
    return text


def main(argv: list[str] | None = None) -> int:
    path = Path((argv or sys.argv[1:] or ["README.md"])[0])
    atomic_write_bytes(path, refreshed(path.read_text(), path.parent).encode())
    print(f"{path}: blocks {', '.join(BLOCKS)} refreshed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
