"""Sweep figures, each measured in this one invocation against its own baseline.

    python benchmarks/bench_sweep.py                 # all five parts (about 30 minutes, 2 cores)
    python benchmarks/bench_sweep.py --part pruning  # or: parallel, whole, population, compose
    python benchmarks/bench_sweep.py --part pruning --seeds 0 1 2 \
        --settings preset n_warmup_steps=3,n_startup_trials=5 pruner=percentile,percentile=75
    python benchmarks/bench_sweep.py --part pruning --search kernels  # another preset's study

pruning   for each TPE seed, a 30-trial study of `hparams_search=channels_lr` (the harder
          experiment, 10 epochs a trial, one trial at a time) with `hydra/sweeper/pruner=none`,
          then the same study with each candidate pruner (`--settings`: `preset` is the preset's
          own). Every trial a candidate pruned is then trained to the end, in-process, from its
          folder's .hydra/config.yaml, to learn what pruning it cost. Per seed: epochs trained
          (pruned / unpruned), the epoch each pruned trial stopped at, best accuracy (pruned /
          unpruned: the gap, target <= 0.005) and the best final accuracy of a re-trained pruned
          trial against the study's best (the margin, target > 0.01).
parallel  8 identical trials of the notebook's experiment with n_jobs=2 and with n_jobs=1.
whole     20 trials of the notebook's experiment searching out_1, out_2 and lr, end to end:
          (a) the way Hydra's published Optuna plugin runs them, written out as a plain loop: TPE
              asks 2 trials, both train in parallel processes with the notebook's loop (DataLoader,
              default threads, no pruning), the batch waits for the slower one, then tells both;
          (b) `python -m linesweep.train -m` with linesweep's defaults (median pruner) and n_jobs=2.
population 32 trials of `experiment=hard` (one architecture) searching `optimizer.lr` alone, TPE
          seed 0, no pruning, end to end: the process executor at n_jobs=2 against the
          population executor, two processes of 16 members and one process of 32 on two
          threads, interleaved (`--rounds N` for medians): wall times, ratios, best accuracies.
compose   the configs of 32 trials of that lr-only sweep, composed in one process by Hydra's
          `load_sweep_config` and by linesweep's `SweepComposer` (which the executors use), the
          overrides as the sweeper writes them: median seconds of 5 repeats each, interleaved.
Every linesweep sweep runs as a real command in a fresh folder under a temporary directory
(`--keep DIR` leaves them in DIR, to read with `python -m linesweep.compare DIR`; run again with
the same DIR, the pruning part reuses the studies and re-trained trials already there).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import multiprocessing
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from linesweep.compare.runs import Run, find_runs, read_run

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))


def linesweep_sweep(folder: Path, *overrides: str) -> tuple[float, list[Run]]:
    """Run one sweep command; return its wall time and its trials."""
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
    return seconds, [read_run(trial) for trial in find_runs([folder])]


def best_accuracy(runs: list[Run]) -> float:
    """The best objective (validation accuracy at the last epoch) of the trials that completed."""
    return max(r.objective["val_accuracy"] for r in runs if r.state == "complete")


# ------------------------------------------------------------------ pruning
GAP_TARGET = 0.005  # the pruned study's best may be at most this far below the unpruned one's
MARGIN_TARGET = 0.01  # every pruned trial, trained to the end, must end more than this below


@dataclass(frozen=True)
class PrunerCandidate:
    """Pruner settings to measure, as given to --settings: `preset`, or `key=value,...`."""

    text: str
    overrides: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> PrunerCandidate:
        if text == "preset":
            return cls(text, ())
        overrides = []
        for item in text.split(","):
            key, sep, value = item.partition("=")
            if not (sep and key.strip() and value.strip()):
                raise SystemExit(
                    f"--settings {text!r}: {item!r} is not key=value; write e.g. "
                    "'n_warmup_steps=3,n_startup_trials=5' or 'pruner=percentile,percentile=75'"
                )
            key, value = key.strip(), value.strip()
            if key == "pruner":  # another config of hydra/sweeper/pruner, with its own defaults
                overrides.insert(0, f"hydra/sweeper/pruner={value}")
            else:
                overrides.append(f"hydra.sweeper.pruner.{key}={value}")
        return cls(text, tuple(overrides))


@dataclass
class PrunedStudy:
    """One sampler seed: a study with the candidate pruner, against the same study unpruned."""

    seed: int
    pruner: str  # `name k=v ...`, as composed for the study
    best: float
    epochs: int
    pruned_at: list[int]  # the epoch each pruned trial stopped at
    retrained: list[float]  # each pruned trial's final accuracy when trained to the end
    base_best: float
    base_epochs: int
    replay_mismatches: int  # re-trained pruned trials whose first epochs differ from the study's

    @property
    def gap(self) -> float:
        return self.base_best - self.best

    @property
    def margin(self) -> float:
        """How far below the study's best the best re-trained pruned trial ends (inf: none)."""
        return self.best - max(filter(math.isfinite, self.retrained), default=-math.inf)

    @property
    def meets_targets(self) -> bool:
        # Accuracies are multiples of 1/1000: the tolerance only absorbs float rounding.
        return self.gap <= GAP_TARGET + 1e-9 and self.margin > MARGIN_TARGET + 1e-9


def epochs_trained(runs: list[Run]) -> int:
    return sum(r.epochs_run or 0 for r in runs)  # an infeasible trial trains none


def full_training_key(cfg: DictConfig) -> str:
    """A trial's config as it trains: the same key means the same epochs (runs are seeded)."""
    plain = OmegaConf.to_container(cfg, resolve=True)
    plain.pop("plots", None)
    plain["trainer"].pop("progress_bar", None)
    return json.dumps(plain, sort_keys=True)


def trial_config(trial: Run) -> DictConfig:
    return OmegaConf.load(trial.folder / ".hydra" / "config.yaml")


def curve(trial: Run) -> list[float]:
    return [row["val_accuracy"] for row in trial.history]


def retrain(pruned: Run, folder: Path, curves: dict[str, list[float]]) -> tuple[float, bool]:
    """Train a pruned trial's config to the end: its final accuracy, and whether its first epochs
    replay the study's (they should: data, weights and shuffling all derive from the seed)."""
    from linesweep.core.errors import Diverged
    from linesweep.train import run as train_run

    cfg = trial_config(pruned)
    key = full_training_key(cfg)
    run_dir = folder / hashlib.sha256(key.encode()).hexdigest()[:16]
    if key not in curves and read_run(run_dir).state == "complete":  # an earlier --keep run's
        curves[key] = curve(read_run(run_dir))
    if key not in curves:  # else the unpruned study or an earlier candidate trained it to the end
        cfg.trainer.progress_bar = False
        with contextlib.suppress(Diverged):  # recorded in its folder: a NaN final accuracy
            train_run(cfg, run_dir)
        (run_dir / ".hydra").mkdir(exist_ok=True)  # the config where Hydra leaves it, for compare
        OmegaConf.save(cfg, run_dir / ".hydra" / "config.yaml")
        curves[key] = curve(read_run(run_dir))
    full = curves[key]
    return full[-1], full[: len(pruned.history)] == curve(pruned)


def composed_pruner(search: str, candidate: PrunerCandidate) -> str:
    """The pruner a candidate's study will run with, as `Class arg=value ...`: the preset's
    composed with the candidate's overrides (a typo fails here, before any study runs)."""
    from hydra import compose, initialize_config_module

    from hydra_plugins.linesweep_optuna_sweeper.config import MedianPrunerConfig
    from linesweep.run.config import register_configs
    from linesweep.sweep.study import make_pruner

    register_configs()
    with initialize_config_module("linesweep.conf", version_base="1.3"):
        overrides = [f"hparams_search={search}", *candidate.overrides]
        pruner = compose("train", overrides, return_hydra_config=True).hydra.sweeper.pruner
    if pruner is None:  # the sweeper's choice for a single objective
        pruner = OmegaConf.structured(MedianPrunerConfig)
    make_pruner(pruner)
    arguments = [f"{k}={v}" for k, v in pruner.items() if k != "_target_" and v is not None]
    return " ".join([pruner._target_.rsplit(".", 1)[-1], *arguments])


def warn_if_presets_elsewhere() -> None:
    """The presets come from the package linesweep.conf: an editable install of another checkout
    maps it to that checkout's conf/, even when this checkout's code comes first on sys.path."""
    import linesweep.conf

    found = [Path(path).resolve() for path in linesweep.conf.__path__]
    if (ROOT / "conf").resolve() not in found:
        print(
            f"  warning: the presets load from {found[0]}, not {ROOT / 'conf'}: the figures "
            "are for those (install this checkout, pip install -e ., to measure its own)",
            flush=True,
        )


def part_pruning(
    scratch: Path, search: str, seeds: list[int], candidates: list[PrunerCandidate]
) -> None:
    """Each candidate pruner on each sampler seed, against an unpruned study of the same seed."""
    warn_if_presets_elsewhere()
    pruners = [composed_pruner(search, candidate) for candidate in candidates]
    curves: dict[str, list[float]] = {}  # full-training key -> accuracy after each epoch
    baselines = {}
    for seed in seeds:
        common = [
            f"hparams_search={search}",
            "hydra.sweeper.n_trials=30",
            "hydra.sweeper.n_jobs=1",  # one at a time: every pruning decision sees all history
            "plots=none",  # training is the same without the learning-curve PNGs, and quicker
            f"hydra.sweeper.sampler.seed={seed}",
        ]
        seconds, runs = linesweep_sweep(
            scratch / f"seed{seed}_none", *common, "hydra/sweeper/pruner=none"
        )
        complete = [r for r in runs if r.state == "complete"]
        curves.update((full_training_key(trial_config(r)), curve(r)) for r in complete)
        baselines[seed] = (best_accuracy(runs), epochs_trained(runs), common)
        print(
            f"  seed {seed} unpruned: {seconds:5.1f} s, best {baselines[seed][0]:.3f}", flush=True
        )

    for candidate, pruner in zip(candidates, pruners, strict=True):
        studies = []
        for seed in seeds:
            base_best, base_epochs, common = baselines[seed]
            sweep = scratch / f"seed{seed}_{re.sub(r'[^A-Za-z0-9.]+', '_', pruner)}"
            seconds, runs = linesweep_sweep(sweep, *common, *candidate.overrides)
            start = time.perf_counter()
            pruned = [r for r in runs if r.state == "pruned"]
            replays = [retrain(r, scratch / "retrained", curves) for r in pruned]
            study = PrunedStudy(
                seed=seed,
                pruner=pruner,
                best=best_accuracy(runs),
                epochs=epochs_trained(runs),
                pruned_at=sorted(r.epochs_run for r in pruned),
                retrained=[final for final, _ in replays],
                base_best=base_best,
                base_epochs=base_epochs,
                replay_mismatches=sum(not same for _, same in replays),
            )
            studies.append(study)
            print(
                f"  seed {seed} {candidate.text}: study {seconds:5.1f} s, "
                f"re-training {time.perf_counter() - start:5.1f} s",
                flush=True,
            )
        print_pruning_table(candidate, studies)


def print_pruning_table(candidate: PrunerCandidate, studies: list[PrunedStudy]) -> None:
    columns = (
        "seed",
        "epochs pruned / unpruned",
        "share",
        "pruned",
        "stopped at epoch x trials",
        "best pruned / unpruned",
        "gap",
        "best pruned re-trained / study best",
        "margin",
        "targets",
    )
    rows = []
    for s in studies:
        finite = [v for v in s.retrained if math.isfinite(v)]
        rows.append(
            (
                str(s.seed),
                f"{s.epochs} / {s.base_epochs}",
                f"{s.epochs / s.base_epochs:.2f}",
                str(len(s.pruned_at)),
                " ".join(f"{e}x{n}" for e, n in sorted(Counter(s.pruned_at).items())) or "-",
                f"{s.best:.3f} / {s.base_best:.3f}",
                f"{s.gap:+.3f}",
                f"{max(finite):.3f} / {s.best:.3f}" if finite else "-",
                f"{s.margin:.3f}",
                ("met" if s.meets_targets else "MISSED")
                + (f" ({s.replay_mismatches} re-runs differ)" if s.replay_mismatches else ""),
            )
        )
    widths = [max(len(row[i]) for row in (columns, *rows)) for i in range(len(columns))]
    print(f"\n{candidate.text}: {studies[0].pruner}")
    for row in (columns, *rows):
        print("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    share = sum(s.epochs for s in studies) / sum(s.base_epochs for s in studies)
    verdict = (
        "meets both targets on every seed"
        if all(s.meets_targets for s in studies)
        else "misses a target on some seed"
    )
    print(
        f"  {verdict} (gap <= {GAP_TARGET}, margin > {MARGIN_TARGET}); "
        f"{share:.2f} of the epochs trained, {1 - share:.2f} saved\n",
        flush=True,
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
            seconds, runs = linesweep_sweep(folder, *common, f"hydra.sweeper.n_jobs={jobs}")
            assert len(runs) == 8 and all(r.state == "complete" for r in runs)
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
    seconds, runs = linesweep_sweep(
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
    pruned = sum(r.state == "pruned" for r in runs)
    best = best_accuracy(runs)
    print(f"  (b) {seconds:6.1f} s  best val_acc {best:.4f}  ({pruned} of 20 trials pruned)")
    print(
        f"whole sweep: linesweep {base_seconds / seconds:.1f}x faster (target >= 5), "
        f"best {best:.4f} vs {base_best:.4f}"
    )


# ------------------------------------------------------------------ population
POPULATION_SWEEP = [
    "hydra/sweeper=linesweep",
    "experiment=hard",  # one architecture (out_1=2, out_2=1), 2,000 images, 10 epochs
    "plots=light",  # as the presets
    "hydra/sweeper/pruner=none",  # every trial trains every epoch: equal work for both
    "hydra.sweeper.sampler.seed=0",
    "hydra.sweeper.n_trials=32",
    "optimizer.lr=tag(log,interval(1e-4,1e-1))",
]
POPULATION_EXECUTORS = {
    "process, n_jobs=2": ["hydra.sweeper.n_jobs=2"],
    # Two processes of 16 members, one thread each: the process executor's two cores, used the
    # same way (one thread is the fastest setting for these models, trainer.py).
    "population 2x16": [
        "hydra.sweeper.executor=population",
        "hydra.sweeper.n_jobs=2",
        "hydra.sweeper.population_size=16",
    ],
    # One process of 32 members on two threads: one population, torch splitting its matmuls.
    "population 1x32, 2 threads": [
        "hydra.sweeper.executor=population",
        "hydra.sweeper.n_jobs=1",
        "hydra.sweeper.population_size=32",
        "trainer.num_threads=2",
    ],
}


def part_population(scratch: Path, rounds: int) -> None:
    """The same 32-trial lr-only sweep with each executor, interleaved, `rounds` times."""
    seconds: dict[str, list[float]] = {name: [] for name in POPULATION_EXECUTORS}
    best: dict[str, list[float]] = {name: [] for name in POPULATION_EXECUTORS}
    for round_ in range(rounds):
        for i, (name, overrides) in enumerate(POPULATION_EXECUTORS.items()):
            folder = scratch / f"population-{round_}-{i}"
            took, runs = linesweep_sweep(folder, *POPULATION_SWEEP, *overrides)
            complete = sum(r.state == "complete" for r in runs)
            seconds[name].append(took)
            best[name].append(best_accuracy(runs))
            print(
                f"  round {round_}  {name:28s} {took:6.1f} s  best val_acc {best[name][-1]:.4f}"
                f"  ({complete} of {len(runs)} complete)",
                flush=True,
            )
    base = statistics.median(seconds["process, n_jobs=2"])
    for name in POPULATION_EXECUTORS:
        median = statistics.median(seconds[name])
        print(
            f"{name:28s} median {median:6.1f} s  {base / median:4.2f}x the process executor's "
            f"speed  best val_acc {statistics.median(best[name]):.4f}"
        )
    print("target: population >= 3x faster than process at n_jobs=2, same best accuracy")


# ------------------------------------------------------------------ compose
def part_compose(repeats: int = 5, trials: int = 32) -> None:
    """Composing every trial's config: Hydra's full composition against the composer's copies."""
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.types import RunMode

    from linesweep.core.trial_link import ENV_VAR, TrialContext
    from linesweep.run.config import register_configs
    from linesweep.sweep.composing import SweepComposer

    def overrides(number: int) -> list[str]:  # as the sweeper writes them (sweeper.py)
        context = TrialContext(storage="sqlite:///s.db", study_name="linesweep", number=number)
        return [
            "experiment=hard",
            "plots=light",
            f"optimizer.lr={1e-4 * 1.2**number!r}",
            f"hydra.sweep.subdir={number}",
            f"++hydra.job.env_set.{ENV_VAR}='{context.to_env()}'",
        ]

    register_configs()
    with initialize_config_module("linesweep.conf", version_base="1.3", job_name="train"):
        loader = GlobalHydra.instance().config_loader()
        master = loader.load_configuration(
            "train", [*POPULATION_SWEEP, "hydra.mode=MULTIRUN"], RunMode.MULTIRUN
        )
        ways = {
            "load_sweep_config": lambda: lambda o: loader.load_sweep_config(master, o),
            "SweepComposer": lambda: SweepComposer(loader, master).compose,  # a fresh cache
        }
        seconds: dict[str, list[float]] = {name: [] for name in ways}
        for _ in range(repeats):
            for name, make in ways.items():
                compose = make()
                start = time.perf_counter()
                for number in range(trials):
                    compose(overrides(number))
                seconds[name].append(time.perf_counter() - start)
    full, ours = (statistics.median(seconds[name]) for name in ways)
    print(
        f"{trials} trials' configs: load_sweep_config {full:.3f} s "
        f"({1000 * full / trials:.1f} ms each), SweepComposer {ours:.3f} s "
        f"({1000 * ours / trials:.1f} ms each, one full composition): {full / ours:.1f}x faster"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--part",
        choices=["pruning", "parallel", "whole", "population", "compose", "all"],
        default="all",
    )
    parser.add_argument(
        "--rounds", type=int, default=1, help="population: sweeps per executor (default 1)"
    )
    parser.add_argument(
        "--search",
        default="channels_lr",
        help="the hparams_search preset of the pruning studies (default channels_lr)",
    )
    parser.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=[0, 1, 2],
        help="TPE seeds of the pruning studies (default 0 1 2)",
    )
    parser.add_argument(
        "--settings",
        nargs="+",
        default=["preset"],
        metavar="SETTINGS",
        help="pruner candidates to measure, each `preset` (the preset's own pruner) or "
        "comma-separated key=value pruner arguments, `pruner=NAME` picking another pruner: "
        "'n_warmup_steps=3,n_startup_trials=5' 'pruner=percentile,percentile=75' "
        "(default: preset)",
    )
    parser.add_argument(
        "--keep",
        type=Path,
        metavar="DIR",
        help="leave the sweeps in DIR instead of a temporary folder; the pruning part reuses "
        "the studies and re-trained trials an earlier run left there",
    )
    args = parser.parse_args()
    candidates = [PrunerCandidate.parse(text) for text in args.settings]
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp) if args.keep is None else args.keep
        scratch.mkdir(parents=True, exist_ok=True)
        parts = {
            "pruning": lambda: part_pruning(scratch, args.search, args.seeds, candidates),
            "parallel": lambda: part_parallel(scratch),
            "whole": lambda: part_whole(scratch),
            "population": lambda: part_population(scratch, args.rounds),
            "compose": part_compose,
        }
        for name, part in parts.items():
            if args.part in (name, "all"):
                print(f"== {name}", flush=True)
                part()


if __name__ == "__main__":
    main()
