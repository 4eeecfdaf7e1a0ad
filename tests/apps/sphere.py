"""The sphere function, minimal at (0, 0): hydra-optuna-sweeper's first example app.

    python tests/apps/sphere.py -m                          # conf/config.yaml: TPE, 20 trials
    python tests/apps/sphere.py -m --config-name=test_grid  # the grid sampler over 8 points
    python tests/apps/sphere.py -m error=true               # every trial raises

Its config is the published one with only the defaults line changed (hydra/sweeper: linesweep).
"""

import hydra
from omegaconf import DictConfig


@hydra.main(version_base=None, config_path="conf", config_name="config")
def sphere(cfg: DictConfig) -> float:
    if cfg.get("error", False):
        raise RuntimeError("cfg.error is True")
    return cfg.x**2 + cfg.y**2


if __name__ == "__main__":
    sphere()
