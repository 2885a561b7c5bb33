"""The README shows the pipeline's current results: its T1 and claims blocks equal the generated files,
and its reliability block is written (``make readme``) and checked (the last step of ``make test``) from
the counts file of the last whole test run."""
import json
from pathlib import Path

import pytest

from cdemi.tools import readme

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", sorted(readme.BLOCKS))
def test_readme_block_is_the_generated_file(name):
    shown = readme.block((ROOT / "README.md").read_text(), name)
    assert shown == (ROOT / readme.BLOCKS[name]).read_text(), "stale: run make readme"


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


COUNTS = {"bad_inputs": {"unknown parameter name": 3, "corrupt checkpoint (bit flip, truncation)": 2},
          "faults": {"non-finite loss": 1}, "checked": 4, "lost": 0}


def test_the_reliability_block_is_written_and_checked_from_the_counts_file(tmp_path):
    for source in readme.BLOCKS.values():
        (tmp_path / source).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / source).write_text(f"| {source} |\n")
    text = "".join(f"<!-- begin:{name} -->\nold\n<!-- end:{name} -->\n" for name in [*readme.BLOCKS, "reliability"])
    (tmp_path / "README.md").write_text(text)
    counts = tmp_path / "counts.json"
    args = [str(tmp_path / "README.md"), "--reliability", str(counts)]
    assert readme.stale(text, tmp_path, counts) == ["t1", "claims", "reliability"]  # no counts file yet
    assert readme.main([*args, "--check"]) == 1 and (tmp_path / "README.md").read_text() == text
    assert readme.main(args) == 0  # without counts: the result blocks only
    assert readme.block((tmp_path / "README.md").read_text(), "reliability") == "old\n"
    counts.write_text(json.dumps(COUNTS))
    assert readme.main([*args, "--check"]) == 1
    assert readme.main(args) == 0 and readme.main([*args, "--check"]) == 0
    shown = readme.block((tmp_path / "README.md").read_text(), "reliability")
    assert shown.startswith("The last full run of the suite offered **5 bad inputs** and injected **1 faults**")
    assert "Of the 4 files" in shown and "**0 were lost or changed**" in shown
    assert shown.endswith("| bad input | unknown parameter name | 3 |\n| fault injected | non-finite loss | 1 |\n")


def test_the_readme_shows_reliability_counts():
    assert readme.block((ROOT / "README.md").read_text(), "reliability").startswith("The last full run of the suite")


def test_the_kd_paths_block_renders_the_benchmark_figures(tmp_path):
    figures = {"machine": {"cpu": "Some CPU", "cpu_capability": "AVX2"}, "torch_version": "2.14.1",
               "img_per_s": {"bf16-all": 300.0, "today": 200.0}, "kd_speedup": 1.5, "kd_fastest_path": "bf16-all",
               "sharing_img_per_s": {"alone, 1 thread": 200.0}, "parallel_speedup": 1.25}
    shown = readme.kd_paths_markdown(figures)
    assert shown.startswith("`python benchmarks/kd_paths.py` on Some CPU (AVX2), torch 2.14.1: `kd_speedup` 1.50 "
                            "(bf16-all), `parallel_speedup` 1.25")
    assert "| today | 200.0 | 1.00 |\n| bf16-all | 300.0 | 1.50 |" in shown  # today's path first
    assert shown.endswith("| alone, 1 thread | 200.0 |")
    for source in readme.BLOCKS.values():
        (tmp_path / source).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / source).write_text("x\n")
    assert "kd_paths" not in readme.generated(tmp_path)  # no figures yet: the block is left alone
    (tmp_path / readme.BENCHMARKS["kd_paths"]).parent.mkdir(parents=True)
    (tmp_path / readme.BENCHMARKS["kd_paths"]).write_text(json.dumps(figures))
    assert readme.generated(tmp_path)["kd_paths"] == shown + "\n"
