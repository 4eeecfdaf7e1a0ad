"""Which optimizer a run asked for, in the terms of the hand-written step's update: worked out
from the config alone, so that the sweep process can group trials without importing torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from linesweep.run.config import AdamConfig, OptimizerConfig, SGDConfig

if TYPE_CHECKING:
    import torch


class Unsupported(Exception):
    """The model or optimizer is outside what the hand-written step reproduces; says why."""


@dataclass(frozen=True)
class UpdateRule:
    """An optimizer the step reproduces with torch's arithmetic: Adam, AdamW, or SGD."""

    kind: str  # adam, adamw or sgd
    lr: float
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    momentum: float = 0.0
    dampening: float = 0.0
    nesterov: bool = False

    @classmethod
    def of_config(cls, cfg: OptimizerConfig) -> UpdateRule:
        """From the run's optimizer config, without building (or importing) torch.optim."""
        kind = _KINDS.get(cfg._target_)
        if isinstance(cfg, AdamConfig) and kind in ("adam", "adamw"):
            if cfg.amsgrad:
                raise Unsupported(f"{cfg._target_} with amsgrad=True")
            betas = (float(cfg.betas[0]), float(cfg.betas[1]))
            return cls(kind, cfg.lr, cfg.weight_decay, betas, cfg.eps)
        if isinstance(cfg, SGDConfig) and kind == "sgd":
            return cls(kind, cfg.lr, cfg.weight_decay, momentum=cfg.momentum,
                       dampening=cfg.dampening, nesterov=cfg.nesterov)  # fmt: skip
        raise Unsupported(f"optimizer {cfg._target_} has no hand-written update")

    @classmethod
    def of_optimizer(cls, optimizer: torch.optim.Optimizer) -> UpdateRule:
        """From a built torch optimizer with one parameter group: its class and hyperparameters."""
        name = type(optimizer).__name__
        kind = _KINDS.get(f"{type(optimizer).__module__.rsplit('.', 1)[0]}.{name}")
        if kind is None or len(optimizer.param_groups) != 1:
            raise Unsupported(f"optimizer {name} has no hand-written update")
        group = optimizer.param_groups[0]
        for flag in ("amsgrad", "maximize", "differentiable"):
            if group.get(flag):
                raise Unsupported(f"{name} with {flag}=True")
        from torch import Tensor  # there is an optimizer: torch is loaded

        if any(isinstance(group[key], Tensor) for key in ("lr", "weight_decay")):
            raise Unsupported(f"{name} with a tensor learning rate or weight decay")
        if kind == "sgd":
            return cls(kind, group["lr"], group["weight_decay"], momentum=group["momentum"],
                       dampening=group["dampening"], nesterov=group["nesterov"])  # fmt: skip
        betas = (float(group["betas"][0]), float(group["betas"][1]))
        return cls(kind, group["lr"], group["weight_decay"], betas, group["eps"])


_KINDS = {"torch.optim.Adam": "adam", "torch.optim.AdamW": "adamw", "torch.optim.SGD": "sgd"}
