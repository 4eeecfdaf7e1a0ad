"""CPU seconds of the commands the test suite starts most: this tree against a git revision.

    python benchmarks/bench_command_cpu.py --base HEAD~1            # 5 interleaved rounds
    python benchmarks/bench_command_cpu.py --base 6ff49b2 --rounds 9

Each command is run as a process, alternately from the base revision's source (exported with
`git archive` and put first on PYTHONPATH) and from this tree, and its CPU seconds (user + sys,
its waited-for children included: a sweep's trial processes) are read from `os.wait4`. CPU, not
wall time: the machine is shared, and the suite's wall time on two cores is about half its CPU
seconds. Medians of the rounds; ratio: this tree / base.

run      python -m linesweep.train experiment=smoke plots=none      (a test's typical run)
refusal  ... seed=-1                                                 (a one-line refusal, exit 2)
sweep-1  a linesweep sweep on a journal file, process executor, 1 trial
sweep-4  the same, 4 trials
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TINY = ["experiment=smoke", "plots=none"]
SWEEP = ["-m", "hydra/sweeper=linesweep", *TINY, "hydra.sweeper.sampler.seed=0",
         "hydra.sweeper.executor=process", "hydra.sweep.dir={d}/sweep"]  # fmt: skip
SPACE = "model.out_1=int(interval(1,4))"
COMMANDS = {
    "run": [*TINY, "hydra.run.dir={d}/run"],
    "refusal": [*TINY, "seed=-1", "hydra.run.dir={d}/run"],
    "sweep-1": [*SWEEP, "hydra.sweeper.n_trials=1"],
    "sweep-4": [*SWEEP, "hydra.sweeper.n_trials=4", SPACE],
}


def export(revision: str, into: Path) -> Path:
    """The revision's linesweep/ and hydra_plugins/ (conf/ comes from the installed package)."""
    archive = into / "base.tar"
    subprocess.run(
        ["git", "archive", "-o", str(archive), revision, "linesweep", "hydra_plugins"],
        cwd=ROOT, check=True,
    )  # fmt: skip
    with tarfile.open(archive) as tar:
        tar.extractall(into / "base", filter="data")
    return into / "base"


def cpu_seconds(arguments: list[str], pythonpath: str | None) -> float:
    work = Path(tempfile.mkdtemp(prefix="bench-cpu-"))
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = pythonpath
    command = [sys.executable, "-m", "linesweep.train", *(a.format(d=work) for a in arguments)]
    process = subprocess.Popen(
        command, cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    _, _, usage = os.wait4(process.pid, 0)
    shutil.rmtree(work, ignore_errors=True)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="the git revision to compare with")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = str(export(args.base, Path(tmp)))
        times: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in COMMANDS}
        for _ in range(args.rounds):
            for name, arguments in COMMANDS.items():
                times[name][0].append(cpu_seconds(arguments, base))
                times[name][1].append(cpu_seconds(arguments, None))
    print(f"CPU seconds (user + sys), medians of {args.rounds} interleaved rounds")
    for name, (old, new) in times.items():
        a, b = statistics.median(old), statistics.median(new)
        print(f"  {name:8s} {args.base}: {a:5.2f} s   this tree: {b:5.2f} s   ratio {b / a:.2f}")


if __name__ == "__main__":
    main()
