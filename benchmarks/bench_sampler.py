"""What asking a population of trials at once costs the sampler, and what constant_liar buys.

    python benchmarks/bench_sampler.py                          # channels_lr, 3 TPE seeds
    python benchmarks/bench_sampler.py --seeds 0 1 2 3 4 --trials 30 --population 16

A population trains the trials asked together, so the sweeper asks up to
`n_jobs * population_size` trials before any of them ends: TPE proposes them all from what had
finished before (nothing, in a fresh study). Without `constant_liar` it proposes the same
region again and again; with it, Optuna counts each running trial as a poor result, so the
trials asked together spread out. For each seed this runs `hparams_search=channels_lr` (the
harder experiment) four ways, end to end as the user runs it: one trial at a time with the
process executor (TPE learns from every trial: the sampler's best case), and populations of
`--population` trials with constant_liar false and true. It prints each study's best and mean
final accuracy, the distinct configurations tried, and its wall time; then the medians.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna

from linesweep.core.storage import JOURNAL_NAME, open_storage

WAYS = {
    "one at a time (process)": ["hydra.sweeper.executor=process", "hydra.sweeper.n_jobs=1"],
    "populations, no liar": ["hydra.sweeper.sampler.constant_liar=false"],
    "populations, constant liar": ["hydra.sweeper.sampler.constant_liar=true"],
}


def study(folder: Path, seed: int, trials: int, population: int, way: list[str]) -> dict:
    command = [
        sys.executable, "-m", "linesweep.train", "-m", "hparams_search=channels_lr",
        "hydra/sweeper/pruner=none", f"hydra.sweeper.n_trials={trials}",
        f"hydra.sweeper.sampler.seed={seed}", f"hydra.sweeper.population_size={population}",
        "hydra.sweeper.study_name=bench", "plots=none", *way, f"hydra.sweep.dir={folder}",
    ]  # fmt: skip
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    done = optuna.load_study(study_name="bench", storage=open_storage(str(folder / JOURNAL_NAME)))
    values = [t.value for t in done.trials if t.value is not None]
    distinct = {tuple(sorted(t.params.items())) for t in done.trials}
    return {
        "best": max(values),
        "mean": statistics.mean(values),
        "distinct": len(distinct),
        "seconds": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--population", type=int, default=16)
    args = parser.parse_args()
    results: dict[str, list[dict]] = {name: [] for name in WAYS}
    with tempfile.TemporaryDirectory() as scratch:
        for seed in args.seeds:
            for k, (name, way) in enumerate(WAYS.items()):
                folder = Path(scratch) / f"seed{seed}-way{k}"
                row = study(folder, seed, args.trials, args.population, way)
                results[name].append(row)
                print(
                    f"seed {seed}  {name:28s} best {row['best']:.4f}  mean {row['mean']:.4f}  "
                    f"{row['distinct']:3d} distinct  {row['seconds']:6.1f} s",
                    flush=True,
                )
    print(f"medians over seeds {args.seeds}, {args.trials} trials each:")
    for name, rows in results.items():
        med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
        print(
            f"  {name:28s} best {med['best']:.4f}  mean {med['mean']:.4f}  "
            f"{med['distinct']:5.1f} distinct  {med['seconds']:6.1f} s"
        )


if __name__ == "__main__":
    main()
