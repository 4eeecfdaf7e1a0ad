"""Custom search spaces for linesweep's own app (hydra.sweeper.custom_search_space=tests.apps....).

Each is called as function(cfg, trial) on every new trial, after `params` are sampled.
"""

from omegaconf import DictConfig
from optuna.trial import Trial


def lr_follows_width(cfg: DictConfig, trial: Trial) -> None:
    """A learning rate whose range depends on the sampled width: a conditional parameter."""
    wide = trial.params["model.out_1"] >= 3
    trial.suggest_float("optimizer.lr", 1e-3 if wide else 1e-2, 1e-2 if wide else 1e-1, log=True)


def raises(cfg: DictConfig, trial: Trial) -> None:
    raise RuntimeError("no idea what to suggest")


def suggests_a_fixed_key(cfg: DictConfig, trial: Trial) -> None:
    trial.suggest_int("model.out_2", 1, 2)
