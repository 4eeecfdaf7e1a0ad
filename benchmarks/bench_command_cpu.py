"""CPU seconds of the commands the test suite starts most: this tree against a git revision.

    python benchmarks/bench_command_cpu.py --base HEAD~1            # 5 interleaved rounds
    python benchmarks/bench_command_cpu.py --base 6ff49b2 --rounds 9

Each command is run as a process, alternately from the base revision's source (exported with
`git archive` and put first on PYTHONPATH) and from this tree. Its CPU seconds (user + sys) are
the whole machine's, from /proc/stat, where there is one: a sweep's trials fork from a server
the command never waits for, whose CPU `os.wait4` would miss. So run it on a quiet machine;
elsewhere the command's waited-for children (`os.wait4`). Its wall seconds beside them. CPU
matters more than wall: the suite's wall time on two cores is about half its CPU seconds.
Medians of the rounds; ratio: this tree / base.

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
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TINY = ["experiment=smoke", "plots=none"]
SWEEP = ["-m", "hydra/sweeper=linesweep", *TINY, "hydra.sweeper.sampler.seed=0",
         "hydra.sweeper.executor=process", "hydra.sweep.dir={d}/sweep"]  # fmt: skip
SPACE = "model.out_1=int(interval(1,4))"
SETTLE_S = 1.5
COMMANDS = {
    "run": [*TINY, "hydra.run.dir={d}/run"],
    "refusal": [*TINY, "seed=-1", "hydra.run.dir={d}/run"],
    "sweep-1": [*SWEEP, "hydra.sweeper.n_trials=1"],
    "sweep-4": [*SWEEP, "hydra.sweeper.n_trials=4", SPACE],
}


def export(revision: str, into: Path) -> Path:
    """The revision's linesweep/, hydra_plugins/ and conf/, the last as the package
    linesweep.conf (a link: the wheel maps conf/ there, pyproject.toml's package-dir)."""
    archive = into / "base.tar"
    subprocess.run(
        ["git", "archive", "-o", str(archive), revision, "linesweep", "hydra_plugins", "conf"],
        cwd=ROOT, check=True,
    )  # fmt: skip
    with tarfile.open(archive) as tar:
        tar.extractall(into / "base", filter="data")
    (into / "base" / "linesweep" / "conf").symlink_to("../conf")
    return into / "base"


def machine_cpu_seconds() -> float | None:
    """CPU seconds every process on the machine has spent (user, nice, system), or None."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:4]
    except OSError:
        return None
    return sum(int(f) for f in fields) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(arguments: list[str], pythonpath: str | None) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one command."""
    work = Path(tempfile.mkdtemp(prefix="bench-cpu-"))
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = pythonpath
    command = [sys.executable, "-m", "linesweep.train", *(a.format(d=work) for a in arguments)]
    machine, start = machine_cpu_seconds(), time.perf_counter()
    process = subprocess.Popen(
        command, cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    _, _, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    time.sleep(SETTLE_S)  # the trial server's own exit, after the command's: counted with it
    after = machine_cpu_seconds()
    shutil.rmtree(work, ignore_errors=True)
    if machine is None or after is None:
        return usage.ru_utime + usage.ru_stime, wall
    return after - machine, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="the git revision to compare with")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = str(export(args.base, Path(tmp)))
        times: dict[str, tuple[list, list]] = {k: ([], []) for k in COMMANDS}
        for _ in range(args.rounds):
            for name, arguments in COMMANDS.items():
                times[name][0].append(cpu_seconds(arguments, base))
                times[name][1].append(cpu_seconds(arguments, None))
    print(f"CPU seconds (user + sys) and wall seconds, medians of {args.rounds} interleaved rounds")
    for name, (old, new) in times.items():
        (a, wa), (b, wb) = (
            [statistics.median(x) for x in zip(*runs, strict=True)] for runs in (old, new)
        )
        print(
            f"  {name:8s} {args.base}: {a:5.2f} s ({wa:5.2f} s wall)   "
            f"this tree: {b:5.2f} s ({wb:5.2f} s wall)   ratio {b / a:.2f}"
        )


if __name__ == "__main__":
    main()
