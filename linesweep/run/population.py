"""Replicates of one configuration trained together as one vectorised population.

    python -m linesweep.train model.out_2=1 replicates=8

On these tiny models a configuration's accuracy depends on its seed (with out_2=1 some seeds
start with a dead ReLU channel and stay at 0.5), so one run says little. R replicates, each from
its own initial weights and shuffling, train here as one population through the hand-written
step (`linesweep/run/step.py`): every parameter carries a leading member dimension, so a step
of R members is the same few matmuls as a step of one, with R times the rows. Member r sees
exactly what a plain run with replicate r's seeds sees (`seeds.derive_seeds`), so replicate 0
ends where the plain run ends, within float tolerance (tests/test_population.py).

A member whose loss becomes NaN or infinite is frozen (its learning rate set to 0, its history
closed at that epoch) and recorded as diverged; the others train on.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from linesweep.core.errors import ConfigError
from linesweep.core.metrics import EpochMetrics
from linesweep.run.config import OptimizerConfig, TrainerConfig
from linesweep.run.data import Split
from linesweep.run.step import HandStep, Unsupported, UpdateRule, bind_parameters

log = logging.getLogger(__name__)

# Called after each epoch with every member's history so far; True stops the whole population
# (a pruner's verdict on the population's statistic).
PopulationCallback = Callable[[Sequence[Sequence[EpochMetrics]]], bool]


@dataclass(frozen=True)
class PopulationOutcome:
    """Each member's history and how it ended (complete, diverged or pruned), in member order."""

    histories: list[list[EpochMetrics]]
    statuses: list[str]
    reasons: list[str | None]


def population_rule(optimizer: OptimizerConfig, replicates: int) -> UpdateRule:
    """The hand step's update for `optimizer`, or a ConfigError on `replicates`.

    A population has no autograd fallback (torch's optimizers keep one state for all rows), so
    an optimizer outside the step's family (amsgrad) is refused before anything is built.
    """
    try:
        return UpdateRule.of_config(optimizer)
    except Unsupported as why:
        raise ConfigError(
            "replicates", replicates, f"1 here: replicates train through the hand step ({why})"
        ) from None


def population_step(models: list[nn.Module], optimizer: OptimizerConfig) -> HandStep:
    """The hand-written step over `models`, each model's parameters bound to its row."""
    step = HandStep.for_models(models, population_rule(optimizer, len(models)))
    for r, model in enumerate(models):  # the models show the weights as they train
        bind_parameters(model, step.params[r])
    return step


def evaluate_population(
    step: HandStep, val: Split, batch_size: int
) -> tuple[list[float], list[float]]:
    """Each member's mean cross-entropy and accuracy on a split: two lists of R floats."""
    r = len(step.params)
    total_loss = torch.zeros(r, dtype=torch.float64)
    correct = torch.zeros(r, dtype=torch.int64)
    batches = zip(val.images.split(batch_size), val.labels.split(batch_size), strict=True)
    for images, labels in batches:
        x = images.unsqueeze(0).expand(r, *images.shape)  # (R, B, C0, H, W), a view
        logits = step.logits(x)  # (R, B, K)
        y = labels.unsqueeze(0).expand(r, -1)  # (R, B)
        losses = F.cross_entropy(logits.transpose(1, 2), y, reduction="none")  # (R, B)
        total_loss += losses.sum(dim=1).double().cpu()
        correct += (logits.argmax(dim=2) == y).sum(dim=1).cpu()
    n = len(val)
    return (total_loss / n).tolist(), (correct.double() / n).tolist()


def fit_population(
    models: list[nn.Module],
    optimizer: OptimizerConfig,
    train: Split,
    val: Split,
    cfg: TrainerConfig,
    shuffle_seeds: Sequence[int],
    on_epoch_end: PopulationCallback | None = None,
) -> PopulationOutcome:
    """Train R models as one population for `cfg.epochs` epochs, each with its own shuffling.

    `models[r]` trains in place with `shuffle_seeds[r]`; `train` and `val` are shared and must
    already be on the models' device. Stops early only when every member has diverged or when
    `on_epoch_end` prunes the population.
    """
    r = len(models)
    step = population_step(models, optimizer)
    shuffles = [torch.Generator().manual_seed(seed) for seed in shuffle_seeds]
    histories: list[list[EpochMetrics]] = [[] for _ in range(r)]
    statuses: list[str] = ["complete"] * r
    reasons: list[str | None] = [None] * r
    start = time.perf_counter()
    for epoch in range(1, cfg.epochs + 1):
        epoch_start = time.perf_counter()
        if cfg.shuffle:  # member r's order is the plain run's with its seed: one randperm each
            orders = torch.stack([torch.randperm(len(train), generator=g) for g in shuffles])
            orders = orders.to(train.images.device)  # (R, N)
            images, labels = train.images[orders], train.labels[orders]  # (R, N, C0, H, W), (R, N)
        else:
            images = train.images.unsqueeze(0).expand(r, *train.images.shape)  # a view
            labels = train.labels.unsqueeze(0).expand(r, -1)  # (R, N), a view

        losses = list(step.epoch(images, labels, cfg.batch_size))  # [(R,)] one per step
        costs = torch.stack(losses).sum(dim=0).tolist()  # R floats: summed once per epoch
        val_losses, val_accuracies = evaluate_population(step, val, cfg.eval_batch_size)
        now = time.perf_counter()
        for m in range(r):
            if statuses[m] != "complete":
                continue  # frozen: its history ended when it diverged
            histories[m].append(
                EpochMetrics(
                    epoch=epoch,
                    train_cost=costs[m],
                    train_loss=costs[m] / len(losses),
                    val_loss=val_losses[m],
                    val_accuracy=val_accuracies[m],
                    epoch_s=now - epoch_start,  # the population's time: members share it
                    elapsed_s=now - start,
                )
            )
            if not (math.isfinite(costs[m]) and math.isfinite(val_losses[m])):
                bad = costs[m] if not math.isfinite(costs[m]) else val_losses[m]
                statuses[m], reasons[m] = "diverged", f"loss became {bad} at epoch {epoch}"
                step.update.lr[m] = 0.0  # frozen; the others' rows are untouched by its NaNs
                log.warning("replicate %d diverged: %s; the others train on", m, reasons[m])
        alive = [m for m in range(r) if statuses[m] == "complete"]
        log.info(
            "epoch %d/%d  %d/%d replicates training  val_acc mean %.4f  min %.4f  (%.2f s)",
            epoch, cfg.epochs, len(alive), r,
            sum(val_accuracies[m] for m in alive) / max(1, len(alive)),
            min((val_accuracies[m] for m in alive), default=math.nan), now - epoch_start,
        )  # fmt: skip
        prune = on_epoch_end is not None and on_epoch_end(histories)  # records every epoch
        if not alive:
            break
        if prune:
            for m in alive:
                statuses[m], reasons[m] = "pruned", f"pruned after epoch {epoch}"
            break
    return PopulationOutcome(histories, statuses, reasons)
