"""The hand-written step at large populations: µs per member-step, and memory, for each R.

    python benchmarks/bench_step.py                         # notebook model, R = 1 .. 1024
    python benchmarks/bench_step.py --widths 8,4 --members 32,64,128,256   # widest sweep model
    python benchmarks/bench_step.py --ab --members 1,8,256  # against the step of commit 4bd23a9
    python benchmarks/bench_step.py --engines --members 1,8,64,256   # C against torch's layers

curve   each R in a process of its own, for members with their own images (each its own order
        of the notebook experiment's training images) and members sharing images (one batch
        expanded over R with stride 0: the `shared` columns path): microseconds per step
        divided by R, wall clock and the process's CPU time, medians (and the wall minimum)
        over rounds of `HandStep.epoch`; and the peak resident memory the population added
        (ru_maxrss after the rounds minus ru_maxrss before the models were built; the images
        are made before).
ab      the step as it was at --base (`git show BASE:linesweep/run/step.py`, imported under
        another name) against this one, interleaved round by round in one process, same
        models, same images: medians of each and their ratio, and how far apart their
        parameters end (float rounding only).
engines the C forward and backward (`linesweep.run.native`, the default where it compiled)
        against torch's layers (`HandStep(..., compiled=False)`), the same way: interleaved,
        same models, same images, their ratio.

One thread (`torch.set_num_threads(1)`), as the trainer runs. The machine is shared: quote
`uptime` with the figures.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

import torch

ROOT = Path(__file__).resolve().parents[1]
MEMBERS = (1, 2, 8, 32, 64, 128, 256, 512, 1024)
BATCH = 10


def images_for(
    r: int, steps: int, shared: bool, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (R, N, 1, 11, 11) and labels (R, N) for `steps` batches: the notebook
    experiment's training images, each member in its own random order, or one order expanded."""
    from linesweep.run.config import DataConfig
    from linesweep.run.data import make_split
    from linesweep.run.seeds import derive_seeds

    train = make_split(DataConfig(), 10_000, derive_seeds(4).train_data)
    n, generator = steps * BATCH, torch.Generator().manual_seed(seed)
    if shared:
        order = torch.randperm(len(train.labels), generator=generator)[:n]
        return (
            train.images[order].expand(r, -1, -1, -1, -1),
            train.labels[order].expand(r, -1),
        )
    orders = torch.stack(
        [torch.randperm(len(train.labels), generator=generator)[:n] for _ in range(r)]
    )
    return train.images[orders], train.labels[orders]


def build(step_module: ModuleType, r: int, widths: tuple[int, int], **how):
    """A step over R models of the notebook's architecture with `widths` (out_1, out_2), Adam;
    `how`: HandStep's keywords (compiled=False: torch's layers)."""
    from linesweep.run.config import ModelConfig
    from linesweep.run.model import build_model
    from linesweep.run.shapes import plan_cnn

    cfg = ModelConfig(out_1=widths[0], out_2=widths[1])
    plan = plan_cnn(cfg, 11)
    models = [build_model(cfg, plan, seed) for seed in range(r)]
    return step_module.HandStep.for_models(models, step_module.UpdateRule("adam", 0.001), **how)


def steps_for(r: int) -> int:
    """Batches per round: about 20,000 member-steps, at least 10 steps, at most 1,000."""
    return max(10, min(1000, 20_000 // r))


def median_us(call, calls: int, rounds: int, warmup: int = 5) -> float:
    """Median over `rounds` of the µs one call of `call()` takes, `calls` calls a round, after
    `warmup` calls: for operations of a few µs, where one call is below the clock's noise."""
    for _ in range(warmup):
        call()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(calls):
            call()
        times.append((time.perf_counter() - start) / calls * 1e6)
    return statistics.median(times)


def timed_round(step, images: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    """(wall s, CPU s) of one pass of `step.epoch` over the images."""
    wall, cpu = time.perf_counter(), time.thread_time()
    for _ in step.epoch(images, labels, BATCH):
        pass
    return time.perf_counter() - wall, time.thread_time() - cpu


# ---------------------------------------------------------------- the curve, one R per process
def measure(r: int, shared: bool, widths: tuple[int, int], rounds: int) -> dict:
    """One R, one case, in this process: µs per member-step and the memory the population added."""
    from linesweep.run import step as hand

    torch.set_num_threads(1)
    steps = steps_for(r)
    images, labels = images_for(r, steps, shared)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    step = build(hand, r, widths)
    timed_round(step, images, labels)  # warm-up: buffers, sizes
    walls, cpus = zip(*(timed_round(step, images, labels) for _ in range(rounds)), strict=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    per = steps * r / 1e6  # member-steps per round, in millions: seconds / per = µs
    return {
        "R": r,
        "shared": shared,
        "wall_us": statistics.median(walls) / per,
        "wall_min_us": min(walls) / per,
        "cpu_us": statistics.median(cpus) / per,
        "memory_mib": (peak - before) / 1024,
    }


def curve(members: list[int], widths: tuple[int, int], rounds: int) -> None:
    print(f"µs per member-step, model out_1={widths[0]} out_2={widths[1]}, batch {BATCH}, Adam,")
    print(f"one thread, medians of {rounds} rounds; memory: peak RSS the population added")
    print(f"{'R':>5} | {'own images: wall':>16} {'(min)':>7} {'cpu':>7} {'MiB':>7} | "
          f"{'shared: wall':>12} {'(min)':>7} {'cpu':>7} {'MiB':>7}")  # fmt: skip
    for r in members:
        found = []
        for shared in (False, True):
            if shared and r == 1:  # one member shares with no one
                continue
            command = [sys.executable, __file__, "--one", str(r), "--rounds", str(rounds),
                       "--widths", ",".join(map(str, widths))] + ["--shared"] * shared  # fmt: skip
            done = subprocess.run(command, capture_output=True, text=True, check=True, cwd=ROOT)
            found.append(json.loads(done.stdout.strip().splitlines()[-1]))
        keys = ("wall_us", "wall_min_us", "cpu_us", "memory_mib")
        cells = [f"{f[keys[0]]:16.2f} " + " ".join(f"{f[k]:7.2f}" for k in keys[1:]) for f in found]
        print(f"{r:>5} | " + " | ".join(cells), flush=True)


# ---------------------------------------------------------------- A/B against an earlier step
def earlier_step(base: str) -> ModuleType:
    """linesweep/run/step.py as it was at commit `base`, imported as module `step_at_base`."""
    source = subprocess.run(
        ["git", "show", f"{base}:linesweep/run/step.py"], capture_output=True, text=True,
        check=True, cwd=ROOT,
    ).stdout  # fmt: skip
    path = Path(tempfile.mkdtemp()) / "step_at_base.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("step_at_base", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["step_at_base"] = module  # dataclasses look their module up while defined
    spec.loader.exec_module(module)
    return module


def ab(members: list[int], widths: tuple[int, int], rounds: int, base: str | None) -> None:
    """The step at `base` ("before") against this one ("now"); with base None, this step with
    torch's layers ("before") against it with the C forward and backward ("now")."""
    from linesweep.run import step as hand

    torch.set_num_threads(1)
    if base is None:
        old, how = hand, {"compiled": False}
        print("µs per member-step, torch's layers (before) against the C step (now), interleaved,")
        if not build(hand, 1, widths).compiled:
            raise SystemExit("the C step did not compile here: nothing to compare")
    else:
        old, how = earlier_step(base), {}
        print(f"µs per member-step, the step at {base} against this one, interleaved in one "
              "process,")  # fmt: skip
    print(f"model out_1={widths[0]} out_2={widths[1]}, batch {BATCH}, Adam, one thread, "
          f"medians of {rounds} rounds (wall | CPU time)")  # fmt: skip
    print(f"{'R':>5} {'images':>7} | {'before':>8} {'now':>8} {'ratio':>6} | "
          f"{'before':>8} {'now':>8} {'ratio':>6} | params apart")  # fmt: skip
    for r in members:
        for shared in (False, True):
            if shared and r == 1:
                continue
            steps = steps_for(r)
            images, labels = images_for(r, steps, shared)
            pair = {"before": build(old, r, widths, **how), "now": build(hand, r, widths)}
            for step in pair.values():
                timed_round(step, images, labels)  # warm-up
            found: dict[str, list[tuple[float, float]]] = {k: [] for k in pair}
            for _ in range(rounds):
                for name, step in pair.items():
                    found[name].append(timed_round(step, images, labels))
            per = steps * r / 1e6
            wall = {k: statistics.median(w for w, _ in v) / per for k, v in found.items()}
            cpu = {k: statistics.median(c for _, c in v) / per for k, v in found.items()}
            apart = float((pair["before"].params - pair["now"].params).abs().max())
            case = "shared" if shared else "own"
            print(f"{r:>5} {case:>7} | {wall['before']:8.2f} {wall['now']:8.2f} "
                  f"{wall['before'] / wall['now']:5.2f}x | {cpu['before']:8.2f} {cpu['now']:8.2f} "
                  f"{cpu['before'] / cpu['now']:5.2f}x | {apart:.1e}", flush=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--members", default=",".join(map(str, MEMBERS)), help="R values, comma-separated"
    )
    parser.add_argument("--widths", default="2,1", help="out_1,out_2 (default the notebook's 2,1)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--ab", action="store_true", help="time the step at --base against this one"
    )
    parser.add_argument("--base", default="4bd23a9", help="the commit to compare with (--ab)")
    parser.add_argument(
        "--engines", action="store_true", help="time the C step against torch's layers"
    )
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # a subprocess of the curve
    parser.add_argument("--shared", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    widths = tuple(int(w) for w in args.widths.split(","))
    members = [int(r) for r in args.members.split(",")]
    if args.one is not None:
        print(json.dumps(measure(args.one, args.shared, widths, args.rounds)))
    elif args.ab or args.engines:
        ab(members, widths, args.rounds, None if args.engines else args.base)
    else:
        curve(members, widths, args.rounds)


if __name__ == "__main__":
    main()
