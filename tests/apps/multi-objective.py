"""Binh and Korn's two-objective problem: hydra-optuna-sweeper's multi-objective example app.

    python tests/apps/multi-objective.py -m                 # NSGA-II, 20 trials, a Pareto set

Its config is the published one with only the defaults line changed (hydra/sweeper: linesweep):
no pruner is named, and a two-objective study gets none.
"""

import hydra
from omegaconf import DictConfig


@hydra.main(version_base=None, config_path="multi-objective-conf", config_name="config")
def binh_and_korn(cfg: DictConfig) -> tuple[float, float]:
    x, y = cfg.x, cfg.y
    return 4 * x**2 + 4 * y**2, (x - 5) ** 2 + (y - 5) ** 2


if __name__ == "__main__":
    binh_and_korn()
