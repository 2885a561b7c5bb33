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
    text = "intro\n<!-- begin:t1 -->\nold\n<!-- end:t1 -->\nmiddle\n<!-- begin:claims -->\n<!-- end:claims -->\n"
    others = [name for name in readme.BLOCKS if name not in ("t1", "claims")]
    text += "".join(f"<!-- begin:{name} -->\n<!-- end:{name} -->\n" for name in others) + "end\n"
    out = readme.refreshed(text, tmp_path)
    assert out == ("intro\n<!-- begin:t1 -->\n| results/tables/t1_main.md |\n<!-- end:t1 -->\nmiddle\n"
                   "<!-- begin:claims -->\n| results/claims.md |\n<!-- end:claims -->\n"
                   + "".join(f"<!-- begin:{name} -->\n| {readme.BLOCKS[name]} |\n<!-- end:{name} -->\n" for name in others)
                   + "end\n")
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
    assert readme.stale(text, tmp_path, counts) == [*readme.BLOCKS, "reliability"]  # no counts file yet
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


def test_the_hosts_and_fast5_blocks_render_the_benchmark_figures(tmp_path):
    """Figures shaped as ``benchmarks/hosts.py --out`` and ``benchmarks/fast5.py`` write them."""
    cpu = {"cpu": "Some CPU", "cpu_capability": "AVX2"}
    row = {"run": "fast_plain_mnv2_s0", "host": "fast", "variant": "plain", "images_per_synthesis": 64,
           "steps_per_synthesis": 10, "step_over_teacher_pass": 2.5, "step_over_passes": 1.25, "kd_img_per_s": 200.0,
           "peak_memory_mb": 1000.0}
    hosts = {"machine": cpu, "torch_version": "2.14.1", "threads_per_process": 1, "syntheses": 2, "paths": {},
             "rows": [{**row, "path": "today", "synthesis_img_per_s": 10.0},
                      {**row, "path": "chosen", "synthesis_img_per_s": 15.0}],
             "synthesis_speedup": {"fast_plain_mnv2_s0": 1.5}}
    shown = readme.hosts_markdown(hosts)
    assert shown.startswith("`python benchmarks/hosts.py` on Some CPU (AVX2), torch 2.14.1, 1 thread(s): "
                            "`synthesis_speedup` (chosen over today) fast_plain_mnv2_s0 1.50.")
    assert shown.endswith("| fast_plain_mnv2_s0 | chosen | 15.00 | 2.50 | 1.25 | 200.0 |")
    epoch = {"synthesis_seconds": 10.0, "kd_seconds": 20.0, "evaluation_seconds": 5.0, "epoch_seconds": 35.0,
             "final_accuracy": 70.0, "final_accuracy_std": 1.5, "seeds": 3}
    fast5 = {"machine": cpu, "torch_version": "2.14.1", "threads_per_process": 1, "side_by_side": True,
             "configuration": {}, "runs": {},
             "per_epoch_after_warmup": {"bf16": {**epoch, "epoch_seconds": 17.5}, "today": epoch},  # today first
             "epoch_speedup": {"bf16": 2.0}}
    shown = readme.fast5_markdown(fast5)
    assert shown.startswith("`python benchmarks/fast5.py` on Some CPU (AVX2), torch 2.14.1, side by side, one thread "
                            "each:")
    assert shown.endswith("| today | 10.0 | 20.0 | 5.0 | 35.0 | 1.00 | 70.00 ± 1.50 | 3 |\n"
                          "| bf16 | 10.0 | 20.0 | 5.0 | 17.5 | 2.00 | 70.00 ± 1.50 | 3 |")
    for source in readme.BLOCKS.values():
        (tmp_path / source).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / source).write_text("x\n")
    (tmp_path / "results/benchmarks").mkdir(parents=True)
    (tmp_path / readme.BENCHMARKS["hosts"]).write_text(json.dumps(hosts))
    generated = readme.generated(tmp_path)
    assert generated["hosts"] == readme.hosts_markdown(hosts) + "\n" and "fast5" not in generated
