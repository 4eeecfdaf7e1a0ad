"""How long `python -m linesweep.compare` takes on 1,000 run folders (target: under 10 s).

    python benchmarks/bench_compare.py                 # 1,000 runs of 3 replicates, medians of 3
    python benchmarks/bench_compare.py --runs 300 --keep /tmp/bench_outputs
    python benchmarks/bench_compare.py --replicates 1  # plain runs: the answer has no spread

Generates an outputs/ folder the way linesweep leaves one: an Optuna sweep (70% of the runs, with
a real journal-file study), a `-m` multirun (20%) and single runs (10%). Each run folder holds
.hydra/{config,overrides}.yaml, summary.json, metrics.csv (10 epochs, fewer when pruned) and
shapes.yaml, with states mixed as a real sweep has them (complete, pruned, infeasible, failed,
diverged). With `--replicates R` (default 3) each run that trained is a population of R, as
`replicates=R` leaves it: summary.json's members with their values and seeds (shared between
runs, as a sweep's are), metrics.csv's rows per replicate, and each trial's `linesweep.result`,
so that compare's answer tests every configuration and the importances read the seed noise. The
best run is a real tiny training run, with its model.pt, so the report draws its kernels and
feature maps. Then it times, as medians of `--repeats`:

  end to end   the command as a subprocess: answer, table, CSV/Markdown, every plot, report.html
  read         discovery and reading every folder (and building the table rows and the answer)
  answer       the answer alone, on the runs read (linesweep/compare/answer.py)
  table        the text table and table.csv/table.md
  plots        every PNG (in-process: imports already paid after the first repeat)
  report       report.html with every image embedded

What the cost scales with: reading is linear in the number of runs and their epochs (three small
files each, YAML parsed with libyaml: ~0.7 ms a run on a 2-core VM, 0.7 s for 1,000), and so are
the table, the scatter plots and the report's table (milliseconds). The learning curves plot a
fixed 8 runs; the Optuna plots replay the study's journal, linear in trials; the best run's
pictures are the ones it drew (compare draws none, imports no torch). So at 1,000 runs the fixed
costs (importing matplotlib and Optuna, drawing a few PNGs) still dominate.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from linesweep.compare.answer import answer_runs  # noqa: E402
from linesweep.compare.cli import write_tables  # noqa: E402
from linesweep.compare.runs import find_runs  # noqa: E402
from linesweep.compare.table import Selection, compare  # noqa: E402
from linesweep.compare.terminal import text_table  # noqa: E402
from linesweep.core.trial_link import RESULT  # noqa: E402

METRICS = ["epoch", "train_cost", "train_loss", "val_loss", "val_accuracy", "epoch_s", "elapsed_s"]


def base_config() -> dict:
    """The composed config of `experiment=smoke plots=none`, as .hydra/config.yaml holds it."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from linesweep.run.config import register_configs

    register_configs()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=["experiment=smoke", "plots=none"])
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]


def write_yaml(path: Path, data: object) -> None:
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def synthetic_run(
    folder: Path, config: dict, overrides: list[str], rng: random.Random, replicates: int = 1
) -> dict:
    """One run folder with believable files (a population of `replicates`); returns what a
    study needs to know of it."""
    from linesweep.run.config import ModelConfig, WindowConfig
    from linesweep.run.shapes import plan_cnn

    folder.mkdir(parents=True)
    (folder / ".hydra").mkdir()
    write_yaml(folder / ".hydra" / "config.yaml", config)
    write_yaml(folder / ".hydra" / "overrides.yaml", overrides)
    model = config["model"]
    windows = {k: WindowConfig(**model[k]) for k in ("conv1", "pool1", "conv2", "pool2")}
    plan = plan_cnn(ModelConfig(out_1=model["out_1"], out_2=model["out_2"], **windows), 11)
    roll = rng.random()
    state = (
        "complete" if roll < 0.7 else "pruned" if roll < 0.9 else
        "infeasible" if roll < 0.95 else "failed" if roll < 0.98 else "diverged"
    )  # fmt: skip
    summary: dict = {"status": state, "error": None, "host": "bench", "pid": 1}
    summary.update(overrides=overrides, trial=None, user="bench", reason=None)
    if state in ("infeasible", "failed"):
        summary["error"] = "conv2: input 1x1 is smaller than the kernel 2x2; use a smaller ..."
        (folder / "summary.json").write_text(json.dumps(summary, indent=2))
        return {"state": state, "value": None}
    epochs = 10 if state != "pruned" else rng.randint(1, 3)
    lr = config["optimizer"]["lr"]
    ceiling = min(0.985, 0.55 + 0.06 * math.log(plan.n_params) - 0.4 * abs(math.log10(lr) + 2.2))
    histories = []
    for _ in range(replicates):  # each replicate its own seed's noise (spread ~0.02)
        rows, elapsed, shift = [], 0.0, rng.gauss(0, 0.02)
        for epoch in range(1, epochs + 1):
            accuracy = ceiling * (1 - math.exp(-epoch / 3)) + shift + rng.gauss(0, 0.01)
            accuracy = min(1.0, max(0.5, accuracy))
            elapsed += 0.2
            loss = 0.7 * (1.0 - accuracy) + 0.05
            values = [epoch, 20 * loss, loss, loss, accuracy, 0.2, elapsed]
            rows.append(dict(zip(METRICS, values, strict=True)))
        histories.append(rows)
    rows = histories[0]
    finals = [h[-1]["val_accuracy"] for h in histories]
    if state == "diverged":
        finals[-1] = None  # the last replicate diverged (the whole run, without replicates)
    value = _mean(finals) if replicates > 1 else finals[0]
    columns = METRICS if replicates == 1 else ["replicate", *METRICS]
    lines = [
        ",".join(str(r[m]) for m in METRICS) if replicates == 1
        else ",".join([str(i), *(str(r[m]) for m in METRICS)])
        for i, h in enumerate(histories) for r in h
    ]  # fmt: skip
    (folder / "metrics.csv").write_text(",".join(columns) + "\n" + "".join(x + "\n" for x in lines))
    summary.update(
        objective={"metrics": ["val_accuracy"], "directions": ["maximize"], "epoch": "last",
                   "values": [value]},
        epochs_run=epochs, final=rows[-1], best=max(rows, key=lambda r: r["val_accuracy"]),
        n_params=plan.n_params, shape_check="agree", plots=[], wall_time_s=elapsed + 1.0,
        seeds=SEEDS[0],
    )  # fmt: skip
    if replicates > 1:
        summary["objective"]["statistic"] = "mean"
        summary["replicates"] = {
            "count": replicates, "statistic": "mean", "success_threshold": THRESHOLD,
            "diverged": sum(v is None for v in finals),
            "members": [
                {"replicate": r, "status": "diverged" if v is None else state, "reason": None,
                 "seeds": seeds(r), "epochs_run": epochs, "final": h[-1], "values": [v]}
                for r, (h, v) in enumerate(zip(histories, finals, strict=True))
            ],
        }  # fmt: skip
    (folder / "summary.json").write_text(json.dumps(summary, indent=2))
    shapes = {"agree": True, "input": [1, 11, 11], "flat_features": plan.flat_features}
    shapes.update(n_params=plan.n_params, plan=plan.to_records())
    write_yaml(folder / "shapes.yaml", shapes)
    result = {
        "metric": "val_accuracy", "direction": "maximize", "epoch_rule": "last",
        "values": finals, "seeds": [seeds(r) for r in range(replicates)],
        "n_params": plan.n_params, "epochs_run": epochs,
        "success_threshold": THRESHOLD if replicates > 1 else None,
    }  # fmt: skip
    return {"state": state, "value": value, "history": rows, "result": result}


def seeds(replicate: int) -> dict:
    """Replicate r's seeds: the same in every run, as a sweep's replicates share them."""
    return {"model_init": 1000 + replicate, "shuffle": 2000 + replicate}


SEEDS = [seeds(0)]
THRESHOLD = 0.9  # replicate.success_threshold


def _mean(values: list) -> float | None:
    finite = [v for v in values if v is not None]
    return statistics.mean(finite) if finite else None


def varied(base: dict, rng: random.Random, replicates: int = 1) -> tuple[dict, list[str], dict]:
    config = json.loads(json.dumps(base))
    if replicates > 1:
        config["replicates"] = replicates
        config.setdefault("replicate", {})["success_threshold"] = THRESHOLD
    params = {
        "model.out_1": rng.randint(1, 8),
        "model.out_2": rng.randint(1, 8),
        "optimizer.lr": 10 ** rng.uniform(-4, -1),
    }
    config["model"]["out_1"], config["model"]["out_2"] = (
        params["model.out_1"],
        params["model.out_2"],
    )
    config["optimizer"]["lr"] = params["optimizer.lr"]
    return config, [f"{k}={v}" for k, v in params.items()], params


def real_best_run(folder: Path, base: dict) -> None:
    """A real tiny training run, with val_accuracy forced to the top so that the report uses it."""
    from hydra import compose, initialize_config_dir

    from linesweep.run.task import run

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=["experiment=smoke", "plots=none"])
    run(cfg, folder, overrides=["experiment=smoke", "plots=none"])
    (folder / ".hydra").mkdir()
    write_yaml(folder / ".hydra" / "config.yaml", base)
    write_yaml(folder / ".hydra" / "overrides.yaml", ["experiment=smoke", "plots=none"])
    summary = json.loads((folder / "summary.json").read_text())
    summary["objective"]["values"] = [0.999]
    (folder / "summary.json").write_text(json.dumps(summary, indent=2))


def generate(outputs: Path, n_runs: int, seed: int = 0, replicates: int = 1) -> None:
    """An outputs/ folder with `n_runs` run folders: sweep 70%, multirun 20%, single runs 10%;
    each that trained a population of `replicates`."""
    import optuna
    from optuna.distributions import FloatDistribution, IntDistribution

    from linesweep.core.storage import open_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rng, base = random.Random(seed), base_config()
    n_sweep, n_multi = int(n_runs * 0.7), int(n_runs * 0.2)
    n_single = n_runs - n_sweep - n_multi

    sweep = outputs / "sweeps" / "bench"
    sweep.mkdir(parents=True)
    journal = sweep / "optuna_journal.log"
    study = optuna.create_study(
        study_name="bench", storage=open_storage(str(journal)), direction="maximize"
    )
    distributions = {
        "model.out_1": IntDistribution(1, 8),
        "model.out_2": IntDistribution(1, 8),
        "optimizer.lr": FloatDistribution(1e-4, 1e-1, log=True),
    }
    trials = []
    for number in range(n_sweep):
        config, overrides, params = varied(base, rng, replicates)
        overrides = ["hparams_search=channels_lr", *overrides]
        if replicates > 1:
            overrides.append(f"replicates={replicates}")
        made = synthetic_run(sweep / str(number), config, overrides, rng, replicates)
        state = {"complete": "COMPLETE", "pruned": "PRUNED"}.get(made["state"], "FAIL")
        history = made.get("history") or []
        trials.append(
            optuna.trial.create_trial(
                state=optuna.trial.TrialState[state],
                value=made["value"] if state == "COMPLETE" else None,
                params=params,
                distributions=distributions,
                intermediate_values={int(r["epoch"]): r["val_accuracy"] for r in history},
                user_attrs={
                    "linesweep.folder": str(sweep / str(number)),
                    "linesweep.state": made["state"],
                    **({RESULT: made["result"]} if "result" in made else {}),
                },
            )
        )
    study.add_trials(trials)
    write_yaml(sweep / "multirun.yaml", {"hydra": {"mode": "MULTIRUN"}, **base})
    results = {"name": "optuna", "study_name": "bench", "storage": str(journal)}
    write_yaml(sweep / "optimization_results.yaml", {**results, "directions": ["maximize"]})

    multirun = outputs / "multirun" / "2026-01-01" / "10-00-00-000000_1"
    multirun.mkdir(parents=True)
    write_yaml(multirun / "multirun.yaml", {"hydra": {"mode": "MULTIRUN"}, **base})
    typed = [f"replicates={replicates}"] if replicates > 1 else []
    for number in range(n_multi):
        config, overrides, _ = varied(base, rng, replicates)
        overrides = ["experiment=smoke", *overrides, *typed]
        synthetic_run(multirun / str(number), config, overrides, rng, replicates)

    for number in range(n_single - 1):
        config, overrides, _ = varied(base, rng, replicates)
        folder = outputs / "runs" / "2026-01-02" / f"10-00-{number:02d}-000000_{number}"
        synthetic_run(folder, config, ["experiment=smoke", *overrides, *typed], rng, replicates)
    real_best_run(outputs / "runs" / "2026-01-03" / "09-00-00-000000_1", base)


def median_time(action: Callable[[], object], repeats: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--replicates", type=int, default=3, help="per run (1: plain runs)")
    parser.add_argument("--keep", type=Path, help="generate here and keep it (must not exist)")
    args = parser.parse_args()

    scratch = args.keep or Path(tempfile.mkdtemp(prefix="bench_compare_"))
    outputs = scratch / "outputs"
    start = time.perf_counter()
    generate(outputs, args.runs, replicates=args.replicates)
    folders = find_runs([outputs])
    print(f"generated {len(folders)} run folders in {time.perf_counter() - start:.1f} s: {outputs}")
    assert len(folders) == args.runs, len(folders)

    def end_to_end(extra: tuple[str, ...] = ()) -> Callable[[], None]:
        def call() -> None:
            command = [sys.executable, "-m", "linesweep.compare", str(outputs)]
            out = scratch / "compare_cli"
            done = subprocess.run(
                [*command, "--out", str(out), *extra], capture_output=True, text=True
            )
            if done.returncode != 0:
                raise SystemExit(f"compare failed ({done.returncode}):\n{done.stderr[-2000:]}")

        return call

    results = {}
    results["end to end"] = median_time(end_to_end(), args.repeats)
    results["end to end, --no-plots"] = median_time(end_to_end(("--no-plots",)), args.repeats)
    results["read (all runs)"] = median_time(lambda: compare(find_runs([outputs])), args.repeats)
    quarter = folders[: len(folders) // 4]
    results[f"read ({len(quarter)} runs)"] = median_time(lambda: compare(quarter), args.repeats)
    comparison = compare(folders, Selection())
    shown = comparison.shown
    keys = comparison.searched
    results["answer"] = median_time(
        lambda: answer_runs(shown, comparison.questions, keys, comparison.best), args.repeats
    )
    out = scratch / "compare_parts"

    def table() -> None:
        text_table(comparison.rows, comparison.columns)
        write_tables(out, comparison)

    results["table"] = median_time(table, args.repeats)
    from linesweep.compare import plots as compare_plots
    from linesweep.compare import report

    drawn: dict = {}

    def plots() -> None:
        drawn["plots"], _ = compare_plots.save_comparison_plots(comparison, out / "plots")

    results["plots"] = median_time(plots, args.repeats)
    results["report"] = median_time(
        lambda: report.write_report(out / "report.html", comparison, drawn["plots"]),
        args.repeats,
    )
    a = comparison.answer.answer
    print(f"the answer: {a.ranked} configurations compared, {a.tested} tested")
    for line in a.lines()[:3]:
        print(f"  {line[:160]}")
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"{len(folders)} runs of {args.replicates} replicate(s), medians of {args.repeats} "
          f"(each run in brackets); uptime: {load}")  # fmt: skip
    for name, (median, times) in results.items():
        each = ", ".join(f"{t:.2f}" for t in times)
        print(f"  {name:24s} {median:6.2f} s   [{each}]")
    size = (out / "report.html").stat().st_size / 1e6
    print(f"report.html {size:.1f} MB, {len(drawn['plots'])} images")
    verdict = "meets" if results["end to end"][0] < 10 else "MISSES"
    print(f"end to end {results['end to end'][0]:.2f} s: {verdict} the 10 s target")
    if args.keep is None:
        shutil.rmtree(scratch)


if __name__ == "__main__":
    main()
