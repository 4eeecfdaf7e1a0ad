"""A four-dimensional sphere whose z follows x: hydra-optuna-sweeper's custom-search-space app.

    python tests/apps/custom-search-space-objective.py -m max_z_difference_from_x=0.3

`hydra.sweeper.custom_search_space` names `configure` below (the published module name, hyphens
and all): the sweeper calls it on every trial after sampling `params`, and the values it suggests
become overrides too (`+w` adds a key the config lacks).
"""

import hydra
from omegaconf import DictConfig
from optuna.trial import Trial


@hydra.main(version_base=None, config_path="custom-search-space", config_name="config")
def four_dimensional_sphere(cfg: DictConfig) -> float:
    return cfg.w**2 + cfg.x**2 + cfg.y**2 + cfg.z**2


def configure(cfg: DictConfig, trial: Trial) -> None:
    """z within max_z_difference_from_x of the sampled x; a new key w in [0, 1]."""
    x = trial.params["x"]
    spread = cfg.max_z_difference_from_x
    trial.suggest_float("z", x - spread, x + spread)
    trial.suggest_float("+w", 0.0, 1.0)


if __name__ == "__main__":
    four_dimensional_sphere()
