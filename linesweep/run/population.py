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
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from linesweep.core.errors import ConfigError
from linesweep.core.metrics import EpochMetrics
from linesweep.run.config import OptimizerConfig, TrainerConfig
from linesweep.run.data import Split
from linesweep.run.step import HandStep, Unsupported, UpdateRule, bind_parameters

log = logging.getLogger(__name__)

# Called after each epoch with every member's history so far; returns the members to stop there
# (a pruner's verdict: every member for a population judged on its statistic, some for a sweep's
# trials judged one by one).
PopulationCallback = Callable[[Sequence[Sequence[EpochMetrics]]], Collection[int]]
# Called the moment member m stops before the others (pruned or diverged): its record can be
# finished, and its trial told, while the others train on.
MemberCallback = Callable[[int, "PopulationOutcome"], None]


@dataclass(frozen=True)
class PopulationOutcome:
    """Each member's history and how it ended (complete, diverged or pruned), in member order.

    While training runs, a member still training has status "complete" and reason None.
    """

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


def population_step(
    models: list[nn.Module], optimizer: OptimizerConfig | Sequence[OptimizerConfig]
) -> HandStep:
    """The hand-written step over `models`, each model's parameters bound to its row.

    One optimizer config for all, or one per member: then they may differ in every
    hyperparameter (the step keeps a rule per member), not in the optimizer itself.
    """
    optimizers = [optimizer] * len(models) if isinstance(optimizer, OptimizerConfig) else optimizer
    rules = [population_rule(o, len(models)) for o in optimizers]
    if len({rule.kind for rule in rules}) > 1:
        raise ValueError(f"the members' optimizers differ: {sorted({r.kind for r in rules})}")
    step = HandStep.for_models(models, rules[0])
    step.update.rules = rules
    for model, row in zip(models, step.params, strict=True):
        bind_parameters(model, row)  # the models show the weights as they train
    return step


def _stacked(splits: Split | Sequence[Split], r: int) -> tuple[Tensor, Tensor]:
    """Images (R, N, C0, H, W) and labels (R, N): a view when every member shares one split."""
    if isinstance(splits, Split):
        return (
            splits.images.unsqueeze(0).expand(r, *splits.images.shape),
            splits.labels.unsqueeze(0).expand(r, -1),
        )
    return torch.stack([s.images for s in splits]), torch.stack([s.labels for s in splits])


def evaluate_population(
    step: HandStep, val: Split | Sequence[Split], batch_size: int
) -> tuple[list[float], list[float]]:
    """Each member's mean cross-entropy and accuracy on its split: two lists of R floats.

    `batch_size` counts images of all members together: each forward takes batch_size // R
    images of every member, as much work as a single run's batch. A forward R times wider
    leaves the cache: 16 members of `experiment=hard` on 1,000 validation images took 103 ms in
    batches of 1,000 and 25 ms in batches of 100 (one run: 3.3 ms).
    """
    r = len(step.params)
    batch_size = max(1, batch_size // r)
    images, labels = _stacked(val, r)  # (R, N, C0, H, W), (R, N)
    total_loss = torch.zeros(r, dtype=torch.float64)
    correct = torch.zeros(r, dtype=torch.int64)
    for x, y in zip(images.split(batch_size, 1), labels.split(batch_size, 1), strict=True):
        logits = step.logits(x)  # (R, B, K)
        losses = F.cross_entropy(logits.transpose(1, 2), y, reduction="none")  # (R, B)
        total_loss += losses.sum(dim=1).double().cpu()
        correct += (logits.argmax(dim=2) == y).sum(dim=1).cpu()
    n = labels.shape[1]
    return (total_loss / n).tolist(), (correct.double() / n).tolist()


def fit_population(
    models: list[nn.Module],
    optimizer: OptimizerConfig | Sequence[OptimizerConfig],
    train: Split | Sequence[Split],
    val: Split | Sequence[Split],
    cfg: TrainerConfig,
    shuffle_seeds: Sequence[int],
    on_epoch_end: PopulationCallback | None = None,
    on_member_end: MemberCallback | None = None,
) -> PopulationOutcome:
    """Train R models as one population for `cfg.epochs` epochs, each with its own shuffling.

    `models[r]` trains in place with `shuffle_seeds[r]` and its optimizer (one config for all,
    or one each, differing in any hyperparameter); `train` and `val` are one split for all or one
    each (of one size), already on the models' device. A member that diverges or is pruned is
    frozen (learning rate 0) and `on_member_end` hears of it; the others train on. Stops early
    once no member is training.
    """
    r = len(models)
    step = population_step(models, optimizer)
    # Members with one split and one shuffling seed (a sweep's trials of one seed) see the same
    # batches: one order, drawn once, keeps their images a shared view (`step.shared`).
    if isinstance(train, Split) and len(set(shuffle_seeds)) == 1:
        shuffle_seeds = shuffle_seeds[:1]
    shuffles = [torch.Generator().manual_seed(seed) for seed in shuffle_seeds]
    all_images, all_labels = _stacked(train, r)  # (R, N, C0, H, W), (R, N)
    n = all_labels.shape[1]
    members = torch.arange(r, device=all_labels.device).unsqueeze(1)  # (R, 1)
    histories: list[list[EpochMetrics]] = [[] for _ in range(r)]
    statuses: list[str] = ["complete"] * r
    reasons: list[str | None] = [None] * r
    outcome = PopulationOutcome(histories, statuses, reasons)
    start = time.perf_counter()

    def stop(m: int, status: str, reason: str) -> None:
        statuses[m], reasons[m] = status, reason
        step.update.freeze(m)  # the others' rows are untouched by its NaNs
        if on_member_end is not None:
            on_member_end(m, outcome)

    for epoch in range(1, cfg.epochs + 1):
        epoch_start = time.perf_counter()
        if cfg.shuffle:  # member r's order is the plain run's with its seed: one randperm each
            orders = torch.stack([torch.randperm(n, generator=g) for g in shuffles])
            orders = orders.to(all_labels.device)  # (R, N), or (1, N): one order for all
            if isinstance(train, Split):
                images, labels = train.images[orders], train.labels[orders]  # (R or 1, N, ...)
                images, labels = images.expand(r, *images.shape[1:]), labels.expand(r, -1)
            else:
                images, labels = all_images[members, orders], all_labels[members, orders]
        else:
            images, labels = all_images, all_labels

        losses = list(step.epoch(images, labels, cfg.batch_size))  # [(R,)] one per step
        costs = torch.stack(losses).sum(dim=0).tolist()  # R floats: summed once per epoch
        val_losses, val_accuracies = evaluate_population(step, val, cfg.eval_batch_size)
        now = time.perf_counter()
        training = [m for m in range(r) if statuses[m] == "complete"]
        for m in training:
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
        prune = set(on_epoch_end(histories)) if on_epoch_end is not None else set()
        for m in training:  # records every epoch first, then stops whom it must
            if not (math.isfinite(costs[m]) and math.isfinite(val_losses[m])):
                bad = costs[m] if not math.isfinite(costs[m]) else val_losses[m]
                stop(m, "diverged", f"loss became {bad} at epoch {epoch}")
                log.warning("member %d diverged: %s; the others train on", m, reasons[m])
            elif m in prune:
                stop(m, "pruned", f"pruned after epoch {epoch}")
        alive = [m for m in range(r) if statuses[m] == "complete"]
        log.info(
            "epoch %d/%d  %d/%d members training  val_acc mean %.4f  min %.4f  (%.2f s)",
            epoch, cfg.epochs, len(alive), r,
            sum(val_accuracies[m] for m in alive) / max(1, len(alive)),
            min((val_accuracies[m] for m in alive), default=math.nan), now - epoch_start,
        )  # fmt: skip
        if not alive:
            break
    return outcome
