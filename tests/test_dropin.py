"""linesweep's sweeper as a drop-in for Hydra's Optuna sweeper (hydra-optuna-sweeper).

The apps under tests/apps/ are that plugin's published examples, rewritten; their configs are the
published ones with only the defaults line changed (`override hydra/sweeper: linesweep`). Each
test checks what the plugin's own tests check of that example, in linesweep's terms, plus the
ways apps return their objective and what a foreign app's sweep must not cost.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import yaml
from hydra.errors import HydraException
from omegaconf import OmegaConf
from optuna.exceptions import ExperimentalWarning
from optuna.samplers import TPESampler

from linesweep.core.storage import JOURNAL_NAME
from linesweep.sweep import trial_server
from linesweep.sweep.space import parse_search_space
from linesweep.sweep.study import make_sampler
from linesweep.sweep.sweeper import SweepSettings
from tests.conftest import ROOT, load_study

APPS = ROOT / "tests" / "apps"


def run_app(script: str, *overrides: str, cwd: Path) -> subprocess.CompletedProcess:
    """`python tests/apps/<script> -m <overrides>`, with this tree's sweeper plugin first."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, str(APPS / script), "-m", *overrides],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": path, "HYDRA_FULL_ERROR": "0"},
        capture_output=True,
        text=True,
        timeout=300,
    )


def results(folder: Path) -> dict:
    return yaml.safe_load((folder / "optimization_results.yaml").read_text())


def dominates(a: list[float], b: list[float]) -> bool:
    """Whether a is at least as small as b everywhere and smaller somewhere (minimizing)."""
    return all(x <= y for x, y in zip(a, b, strict=True)) and a != b


def run_counts(found: dict) -> dict[str, int]:
    """Trials by state, without the proposals replaced as duplicates (they never ran)."""
    return {state: n for state, n in found["counts"].items() if state != "duplicate"}


# ------------------------------------------------------------------ the published examples


@pytest.mark.slow
@pytest.mark.parametrize("with_command_line", [True, False])
def test_the_sphere_example_minimizes_with_tpe(tmp_path, with_command_line):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    extra = ["x=choice(0, 1, 2)", "y=0"] if with_command_line else []  # y fixed, not sampled
    done = run_app(
        "sphere.py",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        "hydra.job.chdir=True",
        f"hydra.sweeper.n_trials={8 if with_command_line else 20}",  # 3 values need fewer
        f"hydra.sweeper.storage={storage}",
        "hydra.sweeper.study_name=sphere-test",
        "hydra/sweeper/sampler=tpe",
        "hydra.sweeper.sampler.seed=123",
        "~z",  # deleted from every trial's config
        *extra,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    found = results(tmp_path / "sweep")
    best = load_study(None, "sphere-test", storage).best_trial
    assert found["name"] == "optuna" and found["directions"] == ["minimize"]
    assert found["best_params"] == best.params and found["best_value"] == best.value
    assert ("y" in found["best_params"]) is not with_command_line
    # The plugin's bound: the 95th percentile of TPE's best value over 1000 seeds.
    assert found["best_value"] <= 2.27
    config = yaml.safe_load((tmp_path / "sweep" / "0" / ".hydra" / "config.yaml").read_text())
    assert "z" not in config


@pytest.mark.slow
@pytest.mark.parametrize("n_trials", [10, 1])
def test_the_grid_example_runs_each_point_once(tmp_path, n_trials):
    done = run_app(
        "sphere.py",
        "--config-name=test_grid",
        f"hydra.sweep.dir={tmp_path}",
        f"hydra.sweeper.n_trials={n_trials}",
        f"hydra.sweeper.storage=sqlite:///{tmp_path / 'study.db'}",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    found = results(tmp_path)
    # x: choice(-1, 1); y: range(-1.0, 1.0, step=1) is -1.0 and 0.0 (the stop excluded); z: 2.
    assert run_counts(found) == {"complete": min(n_trials, 8)}
    best = found["best_params"]
    assert best["x"] in (-1, 1) and best["y"] in (-1.0, 0.0) and best["z"] in ("foo", "bar")
    if n_trials >= 8:  # the whole grid ran: the best point is known
        assert found["best_value"] == 1.0 and best["y"] == 0.0


@pytest.mark.slow
@pytest.mark.parametrize("with_command_line", [True, False])
def test_the_multi_objective_example_runs_unpruned_and_finds_a_pareto_set(
    tmp_path, with_command_line
):
    extra = ["x=range(0, 5)", "y=range(0, 3)"] if with_command_line else []
    done = run_app(
        "multi-objective.py",
        f"hydra.sweep.dir={tmp_path}",
        "hydra.job.chdir=True",
        "hydra.sweeper.n_trials=10",  # the plugin's test runs 20; the checks need no more
        "hydra/sweeper/sampler=random",
        "hydra.sweeper.sampler.seed=123",
        *extra,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]  # no pruner was named: none is used
    found = results(tmp_path)
    assert found["directions"] == ["minimize", "minimize"] and run_counts(found) == {"complete": 10}
    solutions = found["solutions"]
    assert solutions
    for a in solutions:
        steps = {0.0} if with_command_line else {0.0, 0.5}
        assert a["params"]["x"] % 1 in steps and a["params"]["y"] % 1 in steps
        assert not any(dominates(b["values"], a["values"]) for b in solutions)
    study = load_study(tmp_path, "multi-objective")
    front = {t.number for t in study.best_trials}
    assert {s["number"] for s in solutions} == front


@pytest.mark.slow
def test_the_custom_search_space_example_adds_a_dependent_and_a_new_parameter(tmp_path):
    done = run_app(
        "custom-search-space-objective.py",
        f"hydra.sweep.dir={tmp_path}",
        "hydra.job.chdir=True",
        "hydra.sweeper.n_trials=10",
        "hydra/sweeper/sampler=random",
        "hydra.sweeper.sampler.seed=123",
        "max_z_difference_from_x=0.3",  # the function reads it from the sweep's config
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert results(tmp_path)["counts"] == {"complete": 10}
    for trial in load_study(tmp_path, "custom-search-space").trials:
        params = trial.params
        assert abs(params["x"] - params["z"]) <= 0.3 and 0 <= params["+w"] <= 1
    overrides = OmegaConf.load(tmp_path / "0" / ".hydra" / "overrides.yaml")
    assert [o.split("=")[0] for o in overrides][-2:] == ["z", "+w"]  # they reached the job


@pytest.mark.slow
@pytest.mark.parametrize("max_failure_rate", [0.5, 1.0])
def test_an_app_that_always_raises_stops_past_the_failure_rate(tmp_path, max_failure_rate):
    n_trials = 10 if max_failure_rate < 1.0 else 4  # 1.0: every trial runs; their count is moot
    done = run_app(
        "sphere.py",
        f"hydra.sweep.dir={tmp_path}",
        f"hydra.sweeper.n_trials={n_trials}",
        "hydra.sweeper.n_jobs=2",
        "hydra/sweeper/sampler=random",
        "hydra.sweeper.sampler.seed=123",
        f"hydra.sweeper.max_failure_rate={max_failure_rate}",
        "+error=true",  # the published config (1.2) has no `error` key
        cwd=tmp_path,
    )
    found = results(tmp_path)
    if max_failure_rate < 1.0:
        assert done.returncode == 2
        assert "sweep stopped" in done.stdout and "RuntimeError: cfg.error is True" in done.stdout
        assert 5 < found["counts"]["failed"] < 10  # stopped once more than 5 had failed
    else:  # every trial ran, and every one failed: a sweep without a result is no success
        assert done.returncode == 2, done.stderr[-3000:]
        assert "sweep ended without a result: all 4 of its trials failed" in done.stdout
        assert run_counts(found) == {"failed": 4}


def test_the_example_configs_use_only_keys_hydra_optuna_sweeper_knows():
    published = {
        "sampler", "direction", "storage", "study_name", "n_trials", "n_jobs", "search_space",
        "params", "custom_search_space", "max_failure_rate",
    }  # fmt: skip
    for name in ["conf/config.yaml", "conf/test_grid.yaml", "multi-objective-conf/config.yaml",
                 "custom-search-space/config.yaml"]:  # fmt: skip
        config = yaml.safe_load((APPS / name).read_text())
        assert config["defaults"][0] == {"override hydra/sweeper": "linesweep"}, name
        assert set(config["hydra"]["sweeper"]) <= published, name
        assert "pruner" not in str(config["defaults"]), name


# ------------------------------------------------------------------ what foreign apps return


@pytest.mark.slow
def test_numpy_and_torch_scalars_reach_the_study_as_floats_through_the_process_executor(
    tmp_path,
):
    done = run_app(
        "returns.py",
        "kind=choice(float32,array0d,tensor)",
        "hydra/sweeper/sampler=grid",
        "hydra.sweeper.n_trials=3",
        f"hydra.sweep.dir={tmp_path}",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    study = load_study(tmp_path)
    assert {t.params["kind"]: t.value for t in study.trials} == {
        "float32": 1.5,
        "array0d": 1.5,
        "tensor": 1.5,
    }


@pytest.mark.slow
def test_arrays_and_omegaconf_lists_are_multi_objective_values(tmp_path):
    done = run_app(
        "returns.py",
        "kind=choice(ndarray,listconfig)",
        "hydra/sweeper/sampler=grid",
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.direction=[minimize,minimize]",
        f"hydra.sweep.dir={tmp_path}",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    study = load_study(tmp_path)
    assert [t.values for t in study.trials] == [[1.5, 3.0], [1.5, 3.0]]


@pytest.mark.slow
def test_a_foreign_app_sweeps_without_torch_unless_told_to_preload_it(tmp_path):
    plain = run_app(
        "returns.py", "kind=torch_loaded", f"hydra.sweep.dir={tmp_path / 'a'}", cwd=tmp_path
    )
    told = run_app(
        "returns.py",
        "kind=torch_loaded",
        "hydra.sweeper.preload=[torch]",
        f"hydra.sweep.dir={tmp_path / 'b'}",
        cwd=tmp_path,
    )
    assert plain.returncode == 0 and told.returncode == 0, plain.stderr[-2000:] + told.stderr
    # Each trial forks from the sweep process: it has imported what the sweeper imported.
    assert results(tmp_path / "a")["best_value"] == 0.0
    assert results(tmp_path / "b")["best_value"] == 1.0


@pytest.mark.slow
def test_study_name_and_direction_null_mean_the_apps_name_and_minimize(tmp_path):
    done = run_app(
        "sphere.py",
        "hydra.sweeper.study_name=null",
        "hydra.sweeper.direction=null",
        "hydra.sweeper.n_trials=2",
        f"hydra.sweep.dir={tmp_path}",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    found = results(tmp_path)
    assert found["study_name"] == "sphere" and found["directions"] == ["minimize"]


# ------------------------------------------------------------------ config shapes


def test_a_sampler_spelled_as_hydra_optuna_sweeper_spells_it_builds(compose_config):
    cfg = compose_config(
        "hydra/sweeper=linesweep",
        "hydra.sweeper.sampler._target_=optuna.samplers.TPESampler",
        "hydra.sweeper.sampler.n_startup_trials=5",
        "hydra.sweeper.sampler.seed=3",
        with_hydra=True,
    )
    sampler = make_sampler(cfg.hydra.sweeper.sampler, parse_search_space({}, []))
    assert isinstance(sampler, TPESampler) and sampler._n_startup_trials == 5
    with pytest.raises(HydraException, match="n_startup_trails"):  # a typo fails at compose time
        compose_config("hydra/sweeper=linesweep", "hydra.sweeper.sampler.n_startup_trails=5")


# Each sampler's arguments as hydra-optuna-sweeper's config classes list them, with their values
# there: a config that spells them out still composes, and builds with the installed Optuna.
PUBLISHED_SAMPLER_ARGUMENTS = {
    "tpe": "consider_prior=true prior_weight=1.0 consider_magic_clip=true consider_endpoints=false "
    "n_startup_trials=10 n_ei_candidates=24 multivariate=false warn_independent_sampling=true",
    "random": "seed=1",
    "grid": "seed=1",
    "cmaes": "sigma0=null warn_independent_sampling=true consider_pruned_trials=false "
    "use_separable_cma=false",
    "nsgaii": "population_size=50 mutation_prob=null crossover_prob=0.9 swapping_prob=0.5",
    "gp": "n_startup_trials=10 deterministic_objective=false",  # its warn_...: Optuna 4.4+
    "qmc": "qmc_type=sobol scramble=false warn_asynchronous_seeding=true "
    "warn_independent_sampling=true",
}


@pytest.mark.parametrize("name", sorted(PUBLISHED_SAMPLER_ARGUMENTS))
def test_every_published_sampler_option_takes_its_published_arguments(compose_config, name):
    arguments = [f"hydra.sweeper.sampler.{a}" for a in PUBLISHED_SAMPLER_ARGUMENTS[name].split()]
    cfg = compose_config(
        "hydra/sweeper=linesweep", f"hydra/sweeper/sampler={name}", *arguments, with_hydra=True
    )
    space = parse_search_space({}, ["a=range(1,4)"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)  # GP and QMC are, in Optuna 4
        warnings.simplefilter("ignore", FutureWarning)  # TPE's prior arguments, since 4.9
        sampler = make_sampler(cfg.hydra.sweeper.sampler, space)
    assert type(sampler).__name__ == cfg.hydra.sweeper.sampler._target_.rsplit(".", 1)[1]


# ------------------------------------------------------------------ linesweep's own app


def test_the_direction_follows_objective_metrics_for_linesweeps_app(sweep_in_process, tmp_path):
    sweep_in_process(tmp_path / "loss", "hydra.sweeper.n_trials=1", "objective.metrics=[val_loss]")
    study = load_study(tmp_path / "loss")
    assert [d.name for d in study.directions] == ["MINIMIZE"]
    sweep_in_process(
        tmp_path / "pareto",
        "hydra.sweeper.n_trials=2",
        "objective.metrics=[val_accuracy,n_params]",  # no direction, no pruner named
        "model.out_1=choice(1,2)",
    )
    found = results(tmp_path / "pareto")
    assert found["directions"] == ["maximize", "minimize"] and found["counts"]["complete"] == 2


def test_the_sweepers_nulls_resolve_against_linesweeps_app(compose_config):
    cfg = compose_config(
        "hydra/sweeper=linesweep",
        "hydra.sweeper.study_name=null",
        "objective.metrics=[val_accuracy,n_params]",
        with_hydra=True,
    )
    conf = {k: v for k, v in cfg.hydra.sweeper.items() if not k.startswith("_")}
    importlib.import_module("linesweep.run.task")  # torch imported: another app would get _dynamo
    settings = SweepSettings.from_config(conf, cfg)
    assert settings.directions == ["maximize", "minimize"]
    assert settings.pruner == {"_target_": "optuna.pruners.NopPruner"}  # two objectives
    assert settings.study_name == cfg.hydra.job.name  # and its folder is named alike
    assert cfg.hydra.sweep.dir == f"outputs/sweeps/{settings.study_name}"
    # linesweep's training and pictures, not torch._dynamo: its hand-written step needs none
    assert settings.preload == list(trial_server.LINESWEEP_APP)
    assert "torch._dynamo" not in settings.preload
    amsgrad = compose_config("hydra/sweeper=linesweep", "optimizer.amsgrad=true", with_hydra=True)
    conf = {k: v for k, v in amsgrad.hydra.sweeper.items() if not k.startswith("_")}
    amsgrad_preload = SweepSettings.from_config(conf, amsgrad).preload
    assert amsgrad_preload == list(trial_server.LINESWEEP_APP)  # its trials import _dynamo
    one = compose_config("hydra/sweeper=linesweep", with_hydra=True)
    conf = {k: v for k, v in one.hydra.sweeper.items() if not k.startswith("_")}
    pruner = SweepSettings.from_config(conf, one).pruner
    assert pruner["_target_"] == "optuna.pruners.MedianPruner"
    assert pruner["n_warmup_steps"] == 5  # linesweep's measured default (benchmarks/README.md)


def test_a_custom_search_space_adds_a_conditional_parameter_to_linesweeps_app(
    sweep_in_process, tmp_path
):
    sweep_in_process(
        tmp_path,
        "hydra.sweeper.n_trials=3",
        "hydra.sweeper.custom_search_space=tests.apps.search_spaces.lr_follows_width",
        "model.out_1=int(interval(1,4))",
    )
    study = load_study(tmp_path)
    for trial in study.trials:
        lr, wide = trial.params["optimizer.lr"], trial.params["model.out_1"] >= 3
        assert (1e-3 <= lr <= 1e-2) if wide else (1e-2 <= lr <= 1e-1)
        config = OmegaConf.load(tmp_path / str(trial.number) / ".hydra" / "config.yaml")
        assert config.optimizer.lr == lr


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            "hydra.sweeper.custom_search_space=tests.apps.search_spaces.raises",
            "hydra.sweeper.custom_search_space=tests.apps.search_spaces.raises is not allowed: a "
            "function(cfg, trial) that runs; it raised RuntimeError: no idea what to suggest",
        ),
        (
            "hydra.sweeper.custom_search_space=tests.apps.search_spaces.suggests_a_fixed_key "
            "model.out_2=2",
            "is not allowed: a function that suggests no key an override fixes, but it suggests "
            "['model.out_2']",
        ),
        (
            "hydra.sweeper.custom_search_space=tests.apps.nowhere.configure",
            "hydra.sweeper.custom_search_space=tests.apps.nowhere.configure is not allowed: an "
            "importable module.function",
        ),
        (
            "hydra.sweeper.search_space={x:{type:float,low:0,high:1}}",
            "hydra.sweeper.search_space={'x': {'type': 'float', 'low': 0, 'high': 1}} is not "
            "allowed: hydra.sweeper.params (search_space was deprecated by hydra-optuna-sweeper "
            "1.2); write each parameter under hydra.sweeper.params as key: sweep expression",
        ),
    ],
)
def test_a_broken_custom_search_space_stops_the_sweep_with_one_line(
    sweep_in_process, tmp_path, caplog, overrides, message
):
    with pytest.raises(SystemExit) as stop:
        sweep_in_process(tmp_path, "hydra.sweeper.n_trials=2", *overrides.split())
    assert stop.value.code == 2
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and message in errors[0] and "\n" not in errors[0]
    assert not list(tmp_path.glob("[0-9]*"))  # no trial ran
    if (tmp_path / JOURNAL_NAME).exists():  # the trial it broke is recorded as failed
        assert [t.state.name for t in load_study(tmp_path).trials] == ["FAIL"]


# ------------------------------------------------------------------ apps whose schedule is known


@pytest.mark.slow
def test_the_process_executor_overlaps_two_trials_and_refills_a_slot_at_once(tmp_path):
    """n_jobs=2: two trials run at the same time, and a third starts when one of them ends.

    The app's trials wait on one another's events (tests/apps/relay.py), so the order of the
    events is the evidence, whatever the machine's load: trial 0 ends only after trial 1 has
    ended and trial 2 has started in its freed slot. Under a batch barrier, or with trials run
    one after another in the sweep process (Hydra's basic launcher), trial 0 would fail.
    """
    done = run_app(
        "relay.py",
        "hydra/sweeper=linesweep",
        "hydra.sweeper.n_trials=3",
        "hydra.sweeper.n_jobs=2",
        f"hydra.sweep.dir={tmp_path}",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    events = (tmp_path / "events.log").read_text().splitlines()
    at = {event: events.index(event) for event in events}
    assert sorted(events) == sorted(f"{e} {n}" for e in ("start", "end") for n in range(3))
    assert max(at["start 0"], at["start 1"]) < min(at["end 0"], at["end 1"])  # they overlapped
    assert at["end 1"] < at["start 2"] < at["end 0"]  # trial 1's slot refilled while 0 ran
    assert results(tmp_path)["counts"] == {"complete": 3}


@pytest.mark.slow
def test_the_percentile_pruner_stops_a_trial_in_the_bottom_quarter_only(tmp_path):
    """hydra/sweeper/pruner=percentile (75): the bottom quarter stops, the bottom half runs on.

    tests/apps/reports.py reports known values: trials 0-3 complete with 0, 1, 2, 3 (their
    75th percentile is 2.25); trial 4 reports 100 and is stopped at the first epoch the pruner
    judges (n_warmup_steps: 2); trial 5 reports 2, worse than their median (which would stop
    it) but better than their 75th percentile, and completes.
    """
    done = run_app(
        "reports.py",
        "hydra/sweeper=linesweep",
        "hydra/sweeper/pruner=percentile",
        "hydra.sweeper.pruner.n_startup_trials=4",
        "hydra.sweeper.n_trials=6",
        f"hydra.sweep.dir={tmp_path}",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    states = {t.number: t.state.name for t in load_study(tmp_path).trials}
    assert states == {0: "COMPLETE", 1: "COMPLETE", 2: "COMPLETE", 3: "COMPLETE",
                      4: "PRUNED", 5: "COMPLETE"}  # fmt: skip
    pruned = load_study(tmp_path).trials[4]
    assert pruned.last_step == 2 and pruned.intermediate_values == {1: 100.0, 2: 100.0}
