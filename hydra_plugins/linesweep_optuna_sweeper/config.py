"""The sweeper's config schema, stored in Hydra's ConfigStore as hydra/sweeper=linesweep.

The keys are those of Hydra's Optuna sweeper (hydra-optuna-sweeper): a config written for it
works with only its defaults line changed to `override hydra/sweeper: linesweep`. linesweep adds
a pruner, an executor and the knobs that keep several workers honest.

Samplers and pruners are Hydra `_target_` configs, their constructor's keyword arguments flat:
`hydra/sweeper/sampler=random`, then `hydra.sweeper.sampler.seed=7`; `hydra/sweeper/pruner=
hyperband`, then `hydra.sweeper.pruner.reduction_factor=2`. A null argument is Optuna's default
for the installed version (it is not passed). Any other sampler or pruner is a `_target_` away:
`hydra.sweeper.sampler._target_=optuna.samplers.BruteForceSampler`.
(No `from __future__ import annotations` here: Hydra loads plugin modules in a way that breaks
dataclasses with string annotations.)
"""

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


@dataclass
class SamplerConfig:
    _target_: str = MISSING


@dataclass
class TPESamplerConfig(SamplerConfig):
    _target_: str = "optuna.samplers.TPESampler"
    seed: int | None = None
    consider_prior: bool | None = None
    prior_weight: float | None = None
    consider_magic_clip: bool | None = None
    consider_endpoints: bool | None = None
    n_startup_trials: int | None = None
    n_ei_candidates: int | None = None
    multivariate: bool | None = None
    group: bool | None = None
    warn_independent_sampling: bool | None = None
    constant_liar: bool | None = None


@dataclass
class RandomSamplerConfig(SamplerConfig):
    _target_: str = "optuna.samplers.RandomSampler"
    seed: int | None = None


@dataclass
class GridSamplerConfig(SamplerConfig):
    # The grid comes from hydra.sweeper.params: choice(...) and range(...) values.
    _target_: str = "optuna.samplers.GridSampler"
    seed: int | None = None


@dataclass
class CmaEsSamplerConfig(SamplerConfig):
    _target_: str = "optuna.samplers.CmaEsSampler"
    seed: int | None = None
    x0: dict[str, Any] | None = None
    sigma0: float | None = None
    n_startup_trials: int | None = None
    independent_sampler: Any | None = None  # a sampler's _target_ config
    warn_independent_sampling: bool | None = None
    consider_pruned_trials: bool | None = None
    restart_strategy: str | None = None
    popsize: int | None = None
    inc_popsize: int | None = None
    use_separable_cma: bool | None = None
    with_margin: bool | None = None
    lr_adapt: bool | None = None
    source_trials: Any | None = None


@dataclass
class NSGAIISamplerConfig(SamplerConfig):
    _target_: str = "optuna.samplers.NSGAIISampler"
    seed: int | None = None
    population_size: int | None = None
    mutation_prob: float | None = None
    crossover: Any | None = None  # e.g. {_target_: optuna.samplers.nsgaii.SBXCrossover}
    crossover_prob: float | None = None
    swapping_prob: float | None = None
    constraints_func: Any | None = None


@dataclass
class NSGAIIISamplerConfig(NSGAIISamplerConfig):
    _target_: str = "optuna.samplers.NSGAIIISampler"
    dividing_parameter: int | None = None


@dataclass
class GPSamplerConfig(SamplerConfig):
    _target_: str = "optuna.samplers.GPSampler"
    seed: int | None = None
    independent_sampler: Any | None = None
    n_startup_trials: int | None = None
    deterministic_objective: bool | None = None
    constraints_func: Any | None = None
    warn_independent_sampling: bool | None = None


@dataclass
class QMCSamplerConfig(SamplerConfig):
    _target_: str = "optuna.samplers.QMCSampler"
    seed: int | None = None
    qmc_type: str | None = None
    scramble: bool | None = None
    independent_sampler: Any | None = None
    warn_asynchronous_seeding: bool | None = None
    warn_independent_sampling: bool | None = None


@dataclass
class PrunerConfig:
    _target_: str = MISSING


# Optuna's percentile pruners (the median is percentile 50) judge a trial once n_startup_trials
# trials have completed (pruned ones do not count), at every step >= n_warmup_steps. A trial's
# step is its epoch, counted from 1, so n_warmup_steps: 2 first judges a trial after its second
# epoch (0 and 1 both after the first). A trial stops when its best value so far is worse than
# the `percentile`-th best of the completed trials' values at the same epoch: 75 stops the bottom
# quarter, the median the bottom half.
# Measured (benchmarks/README.md, 3 TPE seeds, every pruned trial re-trained to the end): the
# percentile pruner's defaults, which the channels_lr and kernels presets use, keep the unpruned
# study's best and every trial that would have ended within 0.01 of it, and train 27%
# (channels_lr) and 10% (kernels) fewer epochs. The median, the pruner of a single-objective
# study unless told otherwise, stopped such trials unless it waited for 10 trials and 5 epochs
# (then 13% and 4% fewer epochs). The other arguments are Optuna's defaults.
@dataclass
class MedianPrunerConfig(PrunerConfig):
    _target_: str = "optuna.pruners.MedianPruner"
    n_startup_trials: int | None = 10
    n_warmup_steps: int | None = 5
    interval_steps: int | None = None
    n_min_trials: int | None = None


@dataclass
class PercentilePrunerConfig(MedianPrunerConfig):
    _target_: str = "optuna.pruners.PercentilePruner"
    n_startup_trials: int | None = 5
    n_warmup_steps: int | None = 2
    percentile: float = 75.0


@dataclass
class SuccessiveHalvingPrunerConfig(PrunerConfig):
    _target_: str = "optuna.pruners.SuccessiveHalvingPruner"
    min_resource: Any | None = None  # an epoch count, or "auto"
    reduction_factor: int | None = None
    min_early_stopping_rate: int | None = None
    bootstrap_count: int | None = None


@dataclass
class HyperbandPrunerConfig(PrunerConfig):
    _target_: str = "optuna.pruners.HyperbandPruner"
    min_resource: int | None = None
    max_resource: Any | None = None  # the epoch count, or "auto"
    reduction_factor: int | None = None
    bootstrap_count: int | None = None


@dataclass
class ThresholdPrunerConfig(PrunerConfig):
    _target_: str = "optuna.pruners.ThresholdPruner"
    lower: float | None = None
    upper: float | None = None
    n_warmup_steps: int | None = None
    interval_steps: int | None = None


@dataclass
class NopPrunerConfig(PrunerConfig):
    _target_: str = "optuna.pruners.NopPruner"


SAMPLER_OPTIONS = {
    "tpe": TPESamplerConfig,
    "random": RandomSamplerConfig,
    "grid": GridSamplerConfig,
    "cmaes": CmaEsSamplerConfig,
    "nsgaii": NSGAIISamplerConfig,
    "nsgaiii": NSGAIIISamplerConfig,
    "gp": GPSamplerConfig,
    "qmc": QMCSamplerConfig,
}
PRUNER_OPTIONS = {
    "median": MedianPrunerConfig,
    "percentile": PercentilePrunerConfig,
    "successive_halving": SuccessiveHalvingPrunerConfig,
    "hyperband": HyperbandPrunerConfig,
    "threshold": ThresholdPrunerConfig,
    "none": NopPrunerConfig,
}


@dataclass
class LinesweepOptunaSweeperConf:
    _target_: str = "hydra_plugins.linesweep_optuna_sweeper.optuna_sweeper.LinesweepOptunaSweeper"
    # The sampler and pruner reach the sweeper as configs, built later: the trials need the
    # pruner's config, and a bad argument deserves one line naming its key, not a traceback.
    _recursive_: bool = False
    # _self_ first, so that a chosen pruner replaces `pruner: null` below; none is chosen by
    # default (median for a single objective, none for several).
    defaults: list[Any] = field(
        default_factory=lambda: ["_self_", {"sampler": "tpe"}, {"pruner": None}]
    )
    sampler: Any = MISSING  # a sampler's _target_ config (hydra/sweeper/sampler=<name>)
    # null: linesweep's app takes it from objective.metrics; any other app minimizes.
    # Or maximize, minimize, or a list with one per objective (a Pareto search).
    direction: Any = None
    # The study, and linesweep's folder outputs/sweeps/<study_name>: the same name resumes it.
    # null: the app's name (hydra.job.name).
    study_name: str | None = "linesweep"
    # null: an Optuna journal file in the sweep folder; a path: a journal file there;
    # sqlite:///..., postgresql://user@host/db: a database (PostgreSQL for many machines)
    storage: str | None = None
    n_trials: int = 20  # in total: re-running the same command resumes up to this many
    n_jobs: int = 1  # trials in flight at once (on one machine)
    # null: median (MedianPrunerConfig) for a single objective, none for several;
    # or a pruner's _target_ config (hydra/sweeper/pruner=<name>)
    pruner: Any = None
    # key: sweep expression, e.g. {model.out_1: "int(interval(1,8))"}; the command line adds more
    params: dict[str, Any] | None = field(default_factory=dict)
    # module.function(cfg, trial), called on every trial after `params` are sampled: the values
    # it suggests (trial.suggest_float("z", ...)) become overrides too
    custom_search_space: str | None = None
    # hydra-optuna-sweeper 1.2's deprecated search space; refused with the fix (use params)
    search_space: Any = None
    # stop once more than this fraction of n_trials has failed (refused configs do not count)
    max_failure_rate: float = 0.5
    # A study resumed with another search space (a range, a type, a choice) or other fixed
    # overrides (experiment=...) than it was started with is refused, naming what changed;
    # true continues it on purpose, under the new ones (a parameter Optuna cannot store under
    # its old name, another type or other choices, is refused all the same).
    resume_changed: bool = False
    # auto: population for an app that names a batch entry point (batch_task) and whose trials
    # can share, process for any other; process: a process per trial, n_jobs at a time;
    # launcher: batches through hydra/launcher; population: the app's batch entry point trains
    # trials together, up to population_size per process, n_jobs processes at a time (a trial
    # it cannot pair runs as `process` runs it); up to n_jobs * population_size trials are
    # asked at once
    executor: str = "auto"
    population_size: int = 16  # the most trials one process trains as one population
    # The app's batch entry point: a module with plan(configs, most) and
    # run(configs, on_return, context, task). linesweep's own app: linesweep.run.batch.
    batch_task: str | None = "linesweep.run.batch"
    # How often a worker marks its running trials as alive, and how long a trial of another host
    # without a heartbeat is taken for alive. On a database: Optuna's heartbeat_interval and
    # grace_period (whole seconds, rounded up); on a journal file, linesweep's own heartbeat.
    heartbeat_s: float = 10.0
    stale_after_s: float = 120.0
    # Seconds a trial (or a population's process) may go without reporting an epoch before it
    # is ended and recorded `timeout` (a failure); null: never. Silence over a minute is said.
    trial_timeout: float | None = None
    # Modules imported once, in the server trials fork from, so that no trial pays for them.
    # null: for linesweep's app its training and pictures (torch, matplotlib); for another app
    # that imported torch, torch._dynamo (torch builds its compiler stack the first time an
    # optimizer is made, ~1 s a trial).
    preload: list[str] | None = None


store = ConfigStore.instance()
store.store(
    group="hydra/sweeper", name="linesweep", node=LinesweepOptunaSweeperConf, provider="linesweep"
)
for _name, _node in SAMPLER_OPTIONS.items():
    store.store(group="hydra/sweeper/sampler", name=_name, node=_node, provider="linesweep")
for _name, _node in PRUNER_OPTIONS.items():
    store.store(group="hydra/sweeper/pruner", name=_name, node=_node, provider="linesweep")
