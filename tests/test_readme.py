"""The README shows the pipeline's current results: its T1 and claims blocks equal the generated files."""
from pathlib import Path

import pytest

from cdemi.report import readme

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", sorted(readme.BLOCKS))
def test_readme_block_is_the_generated_file(name):
    shown = readme.block((ROOT / "README.md").read_text(), name)
    assert shown == (ROOT / readme.BLOCKS[name]).read_text(), "stale: run python -m cdemi.report.readme"


def test_refresh_replaces_only_the_blocks(tmp_path):
    for source in readme.BLOCKS.values():
        (tmp_path / source).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / source).write_text(f"| {source} |\n")
    text = "intro\n<!-- begin:t1 -->\nold\n<!-- end:t1 -->\nmiddle\n<!-- begin:claims -->\n<!-- end:claims -->\nend\n"
    out = readme.refreshed(text, tmp_path)
    assert out == ("intro\n<!-- begin:t1 -->\n| results/tables/t1_main.md |\n<!-- end:t1 -->\nmiddle\n"
                   "<!-- begin:claims -->\n| results/claims.md |\n<!-- end:claims -->\nend\n")
    with pytest.raises(KeyError, match="no block 't1'"):
        readme.refreshed("no blocks here\n", tmp_path)
