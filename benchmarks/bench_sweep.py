"""Sweep figures, each measured in this one invocation against its own baseline.

    python benchmarks/bench_sweep.py                 # all three parts (about 6 minutes on 2 cores)
    python benchmarks/bench_sweep.py --part pruning  # or: parallel, whole

pruning   30-trial TPE study of `hparams_search=channels_lr` (the harder experiment), with its
          median pruner and with `hydra/sweeper/pruner=none`: epochs trained, best accuracy.
parallel  8 identical trials of the notebook's experiment with n_jobs=2 and with n_jobs=1.
whole     20 trials of the notebook's experiment searching out_1, out_2 and lr, end to end:
          (a) the way Hydra's published Optuna plugin runs them, written out as a plain loop: TPE
              asks 2 trials, both train in parallel processes with the notebook's loop (DataLoader,
              default threads, no pruning), the batch waits for the slower one, then tells both;
          (b) `python -m linesweep.train -m` with linesweep's defaults (median pruner) and n_jobs=2.
Every linesweep sweep runs as a real command in a fresh folder under a temporary directory.
"""

from __future__ import annotations

import argparse
import csv
import json
import multiprocessing
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))


def linesweep_sweep(folder: Path, *overrides: str) -> tuple[float, list[dict]]:
    """Run one sweep command; return its wall time and the trials' summaries."""
    command = [
        sys.executable,
        "-m",
        "linesweep.train",
        "-m",
        *overrides,
        f"hydra.sweep.dir={folder}",
    ]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=folder.parent, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"sweep failed ({done.returncode}):\n{done.stderr[-3000:]}")
    rows = list(csv.DictReader((folder / "trials.csv").open()))
    summaries = [json.loads((folder / r["number"] / "summary.json").read_text()) for r in rows]
    return seconds, summaries


def best_accuracy(summaries: list[dict]) -> float:
    return max(s["objective"]["values"][0] for s in summaries if s["status"] == "complete")


def part_pruning(scratch: Path, seed: int = 0) -> None:
    common = [
        "hparams_search=channels_lr",
        "hydra.sweeper.n_trials=30",
        "hydra.sweeper.n_jobs=1",  # one at a time: every pruning decision sees the same history
        f"hydra.sweeper.sampler.seed={seed}",
    ]
    results = {}
    for name, extra in (("no pruning", ["hydra/sweeper/pruner=none"]), ("median pruner", [])):
        seconds, summaries = linesweep_sweep(scratch / name.replace(" ", "_"), *common, *extra)
        epochs = sum(s["epochs_run"] for s in summaries)
        pruned = sum(s["status"] == "pruned" for s in summaries)
        results[name] = (epochs, best_accuracy(summaries))
        print(
            f"  {name:14s} {seconds:6.1f} s  {epochs:4d} epochs trained  {pruned:2d} pruned  "
            f"best val_acc {results[name][1]:.4f}"
        )
    (base_epochs, base_best), (epochs, best) = results["no pruning"], results["median pruner"]
    print(
        f"pruning: {epochs / base_epochs:.2f} of the epochs (target <= 0.60), "
        f"best accuracy {100 * (best - base_best):+.1f} points (target within 1)"
    )


def trial_phase_seconds(folder: Path) -> float:
    """From the first trial's start to the last trial's end, as the study recorded them."""
    import optuna

    from linesweep.core.storage import JOURNAL_NAME, open_storage

    study = optuna.load_study(
        study_name="linesweep", storage=open_storage(str(folder / JOURNAL_NAME))
    )
    start = min(t.datetime_start for t in study.trials)
    end = max(t.datetime_complete for t in study.trials)
    return (end - start).total_seconds()


def part_parallel(scratch: Path) -> None:
    """8 identical trials of the notebook's experiment (about 4 s each) with n_jobs=2 and 1."""
    common = [
        "hydra/sweeper=linesweep",
        "plots=none",
        "hydra.sweeper.n_trials=8",
        "hydra/sweeper/pruner=none",
    ]
    times: dict[int, list[tuple[float, float]]] = {1: [], 2: []}
    for round_ in range(2):
        for jobs in (1, 2):
            folder = scratch / f"jobs{jobs}_{round_}"
            seconds, summaries = linesweep_sweep(folder, *common, f"hydra.sweeper.n_jobs={jobs}")
            assert len(summaries) == 8 and all(s["status"] == "complete" for s in summaries)
            times[jobs].append((seconds, trial_phase_seconds(folder)))
            print(
                f"  n_jobs={jobs}: {seconds:5.1f} s end to end, "
                f"{times[jobs][-1][1]:5.1f} s of trials",
                flush=True,
            )
    whole = statistics.median(t[0] for t in times[2]) / statistics.median(t[0] for t in times[1])
    trials = statistics.median(t[1] for t in times[2]) / statistics.median(t[1] for t in times[1])
    print(
        f"parallel: n_jobs=2 takes {whole:.2f}x the wall time of n_jobs=1 end to end, "
        f"{trials:.2f}x for the trials (target <= 0.60)"
    )


# ------------------------------------------------------------------ (a) the published plugin's way
SPACE = {"out_1": (1, 8), "out_2": (1, 8), "lr": (1e-4, 1e-1)}


def notebook_trial(params: dict) -> float:
    """One notebook-style training run (benchmarks/bench_train.py) with the trial's values."""
    import torch
    from bench_train import N_TRAIN, N_VAL, NotebookCNN, NotebookData
    from torch import nn
    from torch.utils.data import DataLoader

    torch.manual_seed(4)
    train = NotebookData(N_images=N_TRAIN, train=True)
    val = NotebookData(N_images=N_VAL)
    model = NotebookCNN(params["out_1"], params["out_2"])
    criterion, optimizer = (
        nn.CrossEntropyLoss(),
        torch.optim.Adam(model.parameters(), lr=params["lr"]),
    )
    accuracy = 0.0
    for _ in range(10):
        for x, y in DataLoader(train, batch_size=10):
            optimizer.zero_grad()
            loss = criterion(model(x), y)
            loss.backward()
            optimizer.step()
        correct = sum(
            (model(x).argmax(1) == y).sum().item() for x, y in DataLoader(val, batch_size=20)
        )
        accuracy = correct / len(val)
    return accuracy


def plugin_style_sweep(n_trials: int = 20, batch: int = 2) -> tuple[float, float]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=0))
    dists = {
        "out_1": optuna.distributions.IntDistribution(*SPACE["out_1"]),
        "out_2": optuna.distributions.IntDistribution(*SPACE["out_2"]),
        "lr": optuna.distributions.FloatDistribution(*SPACE["lr"], log=True),
    }
    start = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(batch) as pool:
        for _ in range(n_trials // batch):
            trials = [study.ask(dists) for _ in range(batch)]
            values = pool.map(notebook_trial, [t.params for t in trials])  # waits for the slowest
            for trial, value in zip(trials, values, strict=True):
                study.tell(trial, value)
            print(
                f"    batch done at {time.perf_counter() - start:6.1f} s, values {values}",
                flush=True,
            )
    return time.perf_counter() - start, study.best_value


def part_whole(scratch: Path) -> None:
    print("  (a) plugin-style baseline: 10 batches of 2 notebook-style trials")
    base_seconds, base_best = plugin_style_sweep()
    print(f"  (a) {base_seconds:6.1f} s  best val_acc {base_best:.4f}")
    seconds, summaries = linesweep_sweep(
        scratch / "notebook",
        "hydra/sweeper=linesweep",
        "hydra.sweeper.n_trials=20",
        "hydra.sweeper.n_jobs=2",
        "hydra.sweeper.sampler.seed=0",
        "plots=light",
        "model.out_1=int(interval(1,8))",
        "model.out_2=int(interval(1,8))",
        "optimizer.lr=tag(log,interval(1e-4,1e-1))",
    )
    pruned = sum(s["status"] == "pruned" for s in summaries)
    best = best_accuracy(summaries)
    print(f"  (b) {seconds:6.1f} s  best val_acc {best:.4f}  ({pruned} of 20 trials pruned)")
    print(
        f"whole sweep: linesweep {base_seconds / seconds:.1f}x faster (target >= 5), "
        f"best {best:.4f} vs {base_best:.4f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["pruning", "parallel", "whole", "all"], default="all")
    parser.add_argument(
        "--seed", type=int, default=0, help="TPE seed of the pruning study (default 0)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        parts = {
            "pruning": lambda: part_pruning(scratch, args.seed),
            "parallel": lambda: part_parallel(scratch),
            "whole": lambda: part_whole(scratch),
        }
        for name, part in parts.items():
            if args.part in (name, "all"):
                print(f"== {name}", flush=True)
                part()


if __name__ == "__main__":
    main()
