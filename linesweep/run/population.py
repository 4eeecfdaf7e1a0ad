"""R models trained together as one vectorised population: a run's replicates, a sweep's trials.

    python -m linesweep.train model.out_2=1 replicates=8
    python -m linesweep.train -m hparams_search=channels_lr_grid experiment=notebook

Every member is a lines CNN with its own initial weights, optimizer hyperparameters, shuffling
and data split; members may differ in their channel counts too (`linesweep.run.widths` pads each
to the widest, the padding held at exactly zero). They train through the hand-written step
(`linesweep/run/step.py`): every parameter carries a leading member dimension, so a step of R
members is the same few matmuls as a step of one, with R times the rows. Member m sees exactly
what a solo run with its seeds sees, so it ends where that run ends, within float tolerance
(tests/test_population.py, tests/test_widths.py). A single run is a population of one.

A member whose loss becomes NaN or infinite, or that its caller stops (a pruner), leaves the
population at the end of that epoch: the step keeps only the others' rows (`HandStep.keep`), so
what stopped costs nothing afterwards, and its model keeps the weights it had.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from linesweep.core.errors import ConfigError
from linesweep.core.metrics import EpochMetrics, divergence
from linesweep.core.status import Status
from linesweep.run.config import OptimizerConfig, TrainerConfig
from linesweep.run.data import Split
from linesweep.run.model import LinesCNN
from linesweep.run.step import Architecture, HandStep, Unsupported, UpdateRule, parameter_views
from linesweep.run.trainer import progress_bar
from linesweep.run.widths import embed, rebind, widened, widest

# Called after each epoch with every member's history so far; returns the members to stop there
# (a pruner's verdict: all of a run's replicates, or one trial of a sweep's population).
PopulationCallback = Callable[[Sequence[Sequence[EpochMetrics]]], Collection[int]]
# Called the moment member m stops before the others (pruned or diverged): its record can be
# finished, and its trial told, while the others train on.
MemberCallback = Callable[[int, "PopulationOutcome"], None]
GATHER_NUMBERS = 1 << 21  # images gathered for one block of batches: 8 MB in float32


@dataclass(frozen=True)
class PopulationOutcome:
    """Each member's history and how it ended (complete, diverged or pruned), in member order.

    While training runs, a member still training has status complete and reason None.
    """

    histories: list[list[EpochMetrics]]
    statuses: list[Status]
    reasons: list[str | None]
    rows: list[int] = field(default_factory=list)  # members the step trained, each epoch


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
    models: Sequence[LinesCNN], optimizer: OptimizerConfig | Sequence[OptimizerConfig]
) -> HandStep:
    """The hand-written step over `models`, each padded to the widest and bound to its row.

    One optimizer config for all, or one per member: then they may differ in every
    hyperparameter (the step keeps a rule per member), not in the optimizer itself.
    """
    optimizers = [optimizer] * len(models) if isinstance(optimizer, OptimizerConfig) else optimizer
    rules = [UpdateRule.of_config(o) for o in optimizers]  # Unsupported: outside the family
    if len({rule.kind for rule in rules}) > 1:
        raise ValueError(f"the members' optimizers differ: {sorted({r.kind for r in rules})}")
    template = widened(models[0], widest(models))
    arch = Architecture.of(template)
    if any(_geometry(Architecture.of(m)) != _geometry(arch) for m in models):
        raise ValueError("the members' layers differ in more than their channel counts")
    device = next(models[0].parameters()).device
    params = torch.zeros(len(models), sum(s.numel() for s in arch.shapes), device=device)
    step = HandStep(arch, params, rules[0])
    step.update.rules = list(rules)
    for model, row in zip(models, _rows(step), strict=True):
        embed(model, row)  # its weights into its padded row; its parameters views of it
    return step


def _geometry(arch: Architecture) -> tuple:
    return arch.conv1, arch.pool1, arch.conv2, arch.pool2


def _rows(step: HandStep) -> list[list[Tensor]]:
    """Each member's parameters, as views of its row of the step's buffer (torch's shapes)."""
    views = list(parameter_views(step.arch, step.params).values())  # (R, *shape) each
    return [[v[k] for v in views] for k in range(len(step.params))]


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


def _stacked(splits: Split | Sequence[Split], r: int) -> tuple[Tensor, Tensor]:
    """Images (R, N, C0, H, W) and labels (R, N): a view when every member shares one split."""
    if isinstance(splits, Split):
        return (
            splits.images.unsqueeze(0).expand(r, *splits.images.shape),
            splits.labels.unsqueeze(0).expand(r, -1),
        )
    return torch.stack([s.images for s in splits]), torch.stack([s.labels for s in splits])


class _Streams:
    """The members' image streams: one per distinct (split, shuffling seed), drawn once each.

    Member m's order is its solo run's: one randperm a epoch from a generator seeded with its
    shuffling seed. Members sharing a split and a seed share the stream, and when every member
    still training shares one, its images reach the step as one batch seen by all (a view with
    stride 0 over members: `step.shared`), conv1's columns unfolded once.
    """

    def __init__(self, splits: Sequence[Split], seeds: Sequence[int], shuffle: bool) -> None:
        keys = [
            (id(split), seed if shuffle else 0) for split, seed in zip(splits, seeds, strict=True)
        ]
        self.of_member = [list(dict.fromkeys(keys)).index(k) for k in keys]  # member -> stream
        first = {k: m for m, k in reversed(list(enumerate(keys)))}
        self.splits = [splits[first[k]] for k in dict.fromkeys(keys)]
        self.shuffles = (
            [torch.Generator().manual_seed(seeds[first[k]]) for k in dict.fromkeys(keys)]
            if shuffle
            else None
        )
        self.n = len(self.splits[0])

    def orders(self) -> list[Tensor | None]:
        """This epoch's order of each stream (None: the split's own order)."""
        if self.shuffles is None:
            return [None] * len(self.splits)
        device = self.splits[0].labels.device
        return [torch.randperm(self.n, generator=g).to(device) for g in self.shuffles]

    def blocks(
        self, members: Sequence[int], orders: Sequence[Tensor | None], batch: int
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """Images (R, n, C0, H, W) and labels (R, n) of the members, n images at a time (whole
        batches), gathered block by block: never an epoch's copy per member."""
        streams = [self.of_member[m] for m in members]
        one = len(set(streams)) == 1
        per_block = max(1, GATHER_NUMBERS // ((1 if one else len(members)) * batch * 121)) * batch
        for start in range(0, self.n, per_block):
            stop = min(self.n, start + per_block)
            images, labels = [], []
            for s in dict.fromkeys(streams):
                split, order = self.splits[s], orders[s]
                index = slice(start, stop) if order is None else order[start:stop]
                images.append(split.images[index])  # (n, C0, H, W)
                labels.append(split.labels[index])  # (n,)
            if one:
                yield (
                    images[0].unsqueeze(0).expand(len(members), *images[0].shape),
                    labels[0].unsqueeze(0).expand(len(members), -1),
                )
                continue
            slot = {s: i for i, s in enumerate(dict.fromkeys(streams))}
            pick = torch.tensor([slot[s] for s in streams], device=labels[0].device)
            yield torch.stack(images)[pick], torch.stack(labels)[pick]  # (R, n, ...), (R, n)


def fit_population(
    models: Sequence[LinesCNN],
    optimizer: OptimizerConfig | Sequence[OptimizerConfig],
    train: Split | Sequence[Split],
    val: Split | Sequence[Split],
    cfg: TrainerConfig,
    shuffle_seeds: Sequence[int],
    on_epoch_end: PopulationCallback | None = None,
    on_member_end: MemberCallback | None = None,
) -> PopulationOutcome:
    """Train R models as one population for `cfg.epochs` epochs, each with its own shuffling.

    `models[m]` (any channel counts, one layer geometry) trains in place with `shuffle_seeds[m]`
    and its optimizer config (one for all, or one each: any hyperparameter may differ, not the
    optimizer); `train` and `val` are one split for all, or one each (members given the same
    Split object share it), already on the models' device. A member that diverges or is
    stopped by `on_epoch_end` leaves the population and `on_member_end` hears of it; the
    others train on. Stops early once no member is training.
    """
    r = len(models)
    trains = [train] * r if isinstance(train, Split) else list(train)
    vals = [val] * r if isinstance(val, Split) else list(val)
    step = population_step(models, optimizer)
    streams = _Streams(trains, shuffle_seeds, cfg.shuffle)
    histories: list[list[EpochMetrics]] = [[] for _ in range(r)]
    statuses: list[Status] = [Status.COMPLETE] * r
    reasons: list[str | None] = [None] * r
    outcome = PopulationOutcome(histories, statuses, reasons)
    alive = list(range(r))  # row k of the step is member alive[k]
    steps_per_epoch = math.ceil(streams.n / cfg.batch_size)
    start = time.perf_counter()
    with progress_bar(cfg.progress_bar, cfg.epochs * steps_per_epoch) as bar:
        for epoch in range(1, cfg.epochs + 1):
            epoch_start = time.perf_counter()
            outcome.rows.append(len(alive))
            losses: list[Tensor] = []  # (R,) a step
            for images, labels in streams.blocks(alive, streams.orders(), cfg.batch_size):
                losses.extend(step.epoch(images, labels, cfg.batch_size))
                if bar is not None:
                    bar.update(math.ceil(labels.shape[1] / cfg.batch_size))
            costs = torch.stack(losses).sum(dim=0).tolist()  # R floats: summed once an epoch
            shared_val = vals[alive[0]] if all(vals[m] is vals[alive[0]] for m in alive) else None
            val_losses, val_accuracies = evaluate_population(
                step, shared_val or [vals[m] for m in alive], cfg.eval_batch_size
            )
            now = time.perf_counter()
            for k, m in enumerate(alive):
                histories[m].append(
                    EpochMetrics(
                        epoch=epoch,
                        train_cost=costs[k],
                        train_loss=costs[k] / len(losses),
                        val_loss=val_losses[k],
                        val_accuracy=val_accuracies[k],
                        epoch_s=now - epoch_start,  # the population's time: members share it
                        elapsed_s=now - start,
                    )
                )
            if bar is not None:
                best = max(val_accuracies)
                bar.set_postfix(epoch=epoch, val_acc=f"{best:.3f}", refresh=False)
            stopped = set(on_epoch_end(histories)) if on_epoch_end is not None else set()
            rows, leaving = list(alive), []
            for m in alive:  # records every epoch first, then stops whom it must
                if (why := divergence(histories[m][-1])) is not None:
                    statuses[m], reasons[m] = Status.DIVERGED, why
                elif m in stopped:
                    statuses[m], reasons[m] = Status.PRUNED, f"pruned after epoch {epoch}"
                else:
                    continue
                leaving.append(m)
            if leaving:
                alive = [m for m in alive if m not in leaving]
                if alive:
                    step.keep([k for k, m in enumerate(rows) if m not in leaving])
                    for model, row in zip((models[m] for m in alive), _rows(step), strict=True):
                        rebind(model, row)
                for m in leaving:
                    if on_member_end is not None:
                        on_member_end(m, outcome)
            if not alive:
                break
    return outcome
