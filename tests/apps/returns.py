"""An app that returns its objective the ways apps do: numpy and torch scalars, arrays, lists.

    python tests/apps/returns.py -m 'kind=choice(float32,array0d,tensor)' hydra/sweeper/sampler=grid
    python tests/apps/returns.py -m kind=ndarray 'hydra.sweeper.direction=[minimize,minimize]'
    python tests/apps/returns.py -m kind=torch_loaded   # 1.0 if the sweep process imported torch

Every trial forks from the sweep process, so `torch_loaded` tells what the sweeper imported.
"""

import sys

import hydra
import numpy as np
from omegaconf import DictConfig, OmegaConf


@hydra.main(version_base=None, config_path="returns-conf", config_name="config")
def objective(cfg: DictConfig) -> object:
    x = float(cfg.x)
    if cfg.kind == "float32":
        return np.float32(x)
    if cfg.kind == "array0d":
        return np.array(x)
    if cfg.kind == "tensor":
        import torch

        return torch.tensor(x)  # crosses from the trial's process as a shared-memory handle
    if cfg.kind == "ndarray":
        return np.array([x, 2 * x])
    if cfg.kind == "listconfig":
        return OmegaConf.create([x, 2 * x])
    if cfg.kind == "torch_loaded":
        return float("torch" in sys.modules)
    raise ValueError(f"unknown kind {cfg.kind}")


if __name__ == "__main__":
    objective()
