"""The main job: ``dvc repro`` with one overall progress bar and its wall time.

``python -m cdemi.tools.repro [dvc repro arguments]`` asks DVC which stages would run
(``dvc repro --dry``), then runs ``dvc repro`` and advances a bar by one each time DVC
starts a stage; DVC's own output goes to ``--log`` (default ``dvc-repro.log``), so the
terminal shows the bar and the name of the stage at work.  The exit status is DVC's;
on failure the last lines of the log are printed.
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

from tqdm.auto import tqdm

STAGE_LINE = re.compile(r"^Running stage '([^']+)'")


def planned_stages(args: list[str]) -> list[str]:
    """Names of the stages ``dvc repro <args>`` would run now (from ``dvc repro --dry``; where
    a dry run cannot tell, because a stage's inputs do not exist yet, the stages ``dvc status``
    reports changed, a lower bound the bar grows past)."""
    dry = subprocess.run(["dvc", "repro", "--dry", *args], capture_output=True, text=True)
    if dry.returncode == 0:
        return [m.group(1) for line in dry.stdout.splitlines() if (m := STAGE_LINE.match(line))]
    status = subprocess.run(["dvc", "status", "--json"], capture_output=True, text=True)
    return sorted(json.loads(status.stdout or "{}")) if status.returncode == 0 else []


def run(args: list[str], log: Path, progress: bool = True) -> int:
    """Run ``dvc repro <args>`` with the bar; :returns: DVC's exit status."""
    planned = planned_stages(args)
    started = time.perf_counter()
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as out, tqdm(total=len(planned), desc="main job", unit="stage", disable=not progress) as bar:
        proc = subprocess.Popen(["dvc", "repro", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        done = -1
        for line in proc.stdout:
            out.write(line)
            out.flush()
            m = STAGE_LINE.match(line)
            if m:
                done += 1
                bar.total = max(bar.total, done + 1)
                bar.n = done
                bar.set_postfix_str(m.group(1))
                bar.refresh()
        code = proc.wait()
        if code == 0:
            bar.n = bar.total
            bar.refresh()
    minutes = (time.perf_counter() - started) / 60
    print(f"main job: {len(planned)} stage(s) planned, {'done' if code == 0 else 'FAILED'} in {minutes:.1f} min "
          f"(dvc output: {log})")
    if code != 0:
        print("".join(log.read_text().splitlines(keepends=True)[-30:]), file=sys.stderr)
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log", type=Path, default=Path("dvc-repro.log"), help="where DVC's output goes")
    known, rest = parser.parse_known_args(argv)
    return run(rest, known.log)


if __name__ == "__main__":
    sys.exit(main())
