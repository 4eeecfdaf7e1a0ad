"""A foreign app that reports every epoch to its trial, with values known in advance.

    python tests/apps/reports.py -m hydra/sweeper=linesweep hydra/sweeper/pruner=percentile \
        hydra.sweeper.n_trials=6 hydra.sweeper.pruner.n_startup_trials=4

Trial n reports n at epochs 1 to 3 (the study minimizes), except trial 4, which reports 100 (far
in the bottom quarter of trials 0-3), and trial 5, which reports 2 (in their bottom half, not
their bottom quarter: a median pruner stops it, a 75th-percentile pruner does not). A pruner that
asks to stop raises `optuna.TrialPruned`, as Optuna's own objectives do.
"""

import hydra
import optuna
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from linesweep.core.trial_link import TrialLink

EPOCHS = 3
VALUES = {4: 100.0, 5: 2.0}


@hydra.main(version_base=None, config_path=None)
def reports(cfg: DictConfig) -> float:
    number = HydraConfig.get().job.num
    value = VALUES.get(number, float(number))
    link = TrialLink.from_environment()
    for epoch in range(1, EPOCHS + 1):
        if link is not None and link.report(epoch, value):
            raise optuna.TrialPruned(f"pruned at epoch {epoch}")
    return value


if __name__ == "__main__":
    reports()
