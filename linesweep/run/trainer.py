"""The training loop, fast on tiny models: where the notebook's time went, and what replaced it.

Measured on a 2-core machine (benchmarks/README.md has the numbers), most of a notebook step was
overhead, not arithmetic: a DataLoader fetching and collating 10 items one by one, oneDNN's
convolution set-up on 11x11 inputs, an optimizer looping over six tensors, a second thread that
only adds synchronisation, and a `loss.item()` per step. Here batches are views sliced from tensors
that already sit on the device, the loss is summed once per epoch, `cpu_settings` picks one thread
and the native convolution kernel, and the optimizer steps one flat tensor holding every parameter.

What remained was autograd's own bookkeeping, so for the notebook's family of models (conv,
ReLU, max-pool, twice, then linear) the step is now written out by hand (`linesweep/run/step.py`):
`training_epoch` picks it whenever the model and optimizer are in that family and keeps autograd's
step for anything else, saying which in one log line.
"""

from __future__ import annotations

import contextlib
import logging
import math
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from linesweep.core.errors import ConfigError
from linesweep.core.metrics import EpochMetrics, divergence
from linesweep.core.status import Status
from linesweep.run.config import OptimizerConfig, TrainerConfig
from linesweep.run.data import Split
from linesweep.run.step import HandStep, Unsupported, UpdateRule, bind_parameters

log = logging.getLogger(__name__)

# Called with the history so far after each epoch; True stops training there (a pruner's verdict).
EpochCallback = Callable[[Sequence[EpochMetrics]], bool]
OptimizerFactory = Callable[[list[nn.Parameter]], torch.optim.Optimizer]
# One epoch: images (N, C, H, W) and labels (N,) in this order, a batch size -> each step's loss.
TrainEpoch = Callable[[torch.Tensor, torch.Tensor, int], Iterator[torch.Tensor]]


@dataclass(frozen=True)
class FitOutcome:
    history: list[EpochMetrics]
    status: Status  # complete, diverged or pruned
    reason: str | None = None


def resolve_device(name: str) -> torch.device:
    """`cpu`, `cuda[:N]`, or `auto`; asking for CUDA on a machine without it is a ConfigError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("trainer.device", name, "cpu or auto: CUDA is not available here")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        allowed = f"cuda:0..cuda:{torch.cuda.device_count() - 1}"
        raise ConfigError("trainer.device", name, f"one of cpu, auto, {allowed}")
    return device


def resolve_threads(requested: int | None) -> int:
    """Threads for torch: the config's value, else 1.

    One thread is the fastest setting for these models (benchmarks/README.md): an 11x11
    convolution is too small to split, so a second thread only adds synchronisation. A sweep
    with n_jobs trials in flight thus keeps n_jobs cores busy, one each.
    """
    return requested if requested is not None else 1


@contextlib.contextmanager
def cpu_settings(num_threads: int) -> Iterator[None]:
    """Torch's thread count and oneDNN switch for one run, restored afterwards."""
    old_threads, old_mkldnn = torch.get_num_threads(), torch.backends.mkldnn.enabled
    torch.set_num_threads(num_threads)
    # oneDNN's convolution has a fixed set-up cost that dwarfs an 11x11 convolution.
    torch.backends.mkldnn.enabled = False
    try:
        yield
    finally:
        torch.set_num_threads(old_threads)
        torch.backends.mkldnn.enabled = old_mkldnn


def flatten_parameters(model: nn.Module) -> nn.Parameter:
    """Make every parameter of `model` a view into one flat tensor, and every gradient too.

    The optimizer then updates one tensor per step instead of one per layer: for 119 numbers in
    six tensors its per-tensor bookkeeping cost more than the arithmetic. The update itself is
    unchanged (Adam, AdamW and SGD act element by element), and the model keeps its usual
    parameters, state_dict and layers; they now share storage with the returned tensor.
    """
    flat = nn.Parameter(torch.cat([p.detach().reshape(-1) for p in model.parameters()]))
    flat.grad = torch.zeros_like(flat)
    bind_parameters(model, flat.data, flat.grad)
    return flat


# ---------------------------------------------------------------- the step: by hand, or autograd's
def training_epoch(model: nn.Module, optimizer: OptimizerFactory | OptimizerConfig) -> TrainEpoch:
    """The hand-written step when the model and optimizer are in its family, else autograd's.

    `optimizer` is a factory (torch's optimizer is built, and its class and hyperparameters are
    read off it) or the run's OptimizerConfig (nothing from torch.optim is built, which spares
    the process the ~1 s import of torch's compiler stack that building one triggers).
    """
    torch_optimizer = None
    try:
        if isinstance(optimizer, OptimizerConfig):
            rule = UpdateRule.of_config(optimizer)
        else:
            torch_optimizer = optimizer([flatten_parameters(model)])
            rule = UpdateRule.of_optimizer(torch_optimizer)
        step = HandStep.for_models([model], rule)  # the model's parameters now live in step
    except Unsupported as why:
        log.info("training step: autograd, not the hand-written one: %s", why)
        return autograd_epoch(model, torch_optimizer or optimizer)
    layers = "in C" if step.compiled else "in torch"
    log.info("training step: hand-written forward and backward %s, %s update", layers, rule.kind)
    return lambda images, labels, batch: step.epoch(images[None], labels[None], batch)  # R = 1


def autograd_epoch(
    model: nn.Module, optimizer: torch.optim.Optimizer | OptimizerFactory | OptimizerConfig
) -> TrainEpoch:
    """torch's way: record the forward, walk it back, let the optimizer update the flat tensor."""
    if not isinstance(optimizer, torch.optim.Optimizer):
        params = flatten_parameters(model)
        if isinstance(optimizer, OptimizerConfig):
            from hydra.utils import instantiate  # only this fallback needs it

            optimizer = instantiate(asdict(optimizer), params=[params])
        else:
            optimizer = optimizer([params])
    (params,) = optimizer.param_groups[0]["params"]

    def epoch(images: torch.Tensor, labels: torch.Tensor, batch: int) -> Iterator[torch.Tensor]:
        for x, y in zip(images.split(batch), labels.split(batch), strict=True):
            params.grad.zero_()  # kept, not set to None: the layers' gradients are views of it
            loss = F.cross_entropy(model(x), y)  # model: (B, 1, S, S) -> (B, 2)
            loss.backward()
            optimizer.step()
            yield loss.detach()

    return epoch


def evaluate(model: nn.Module, split: Split, batch_size: int) -> tuple[float, float]:
    """Mean cross-entropy and accuracy on a split, without gradients."""
    model.eval()
    total_loss, correct = 0.0, 0
    with torch.inference_mode():
        for images, labels in zip(
            split.images.split(batch_size), split.labels.split(batch_size), strict=True
        ):
            logits = model(images)  # (B, 2)
            total_loss += F.cross_entropy(logits, labels, reduction="sum").item()
            correct += int((logits.argmax(dim=1) == labels).sum())
    model.train()
    return total_loss / len(split), correct / len(split)


@contextlib.contextmanager
def progress_bar(enabled: bool | None, total: int) -> Iterator[Any]:
    """A tqdm bar on an interactive terminal (log lines print above it), else None."""
    if not (sys.stderr.isatty() if enabled is None else enabled):
        yield None
        return
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    with (
        logging_redirect_tqdm(),
        tqdm(total=total, unit="step", mininterval=0.25, leave=False, dynamic_ncols=True) as bar,
    ):
        yield bar


def fit(
    model: nn.Module,
    make_optimizer: OptimizerFactory | OptimizerConfig,
    train: Split,
    val: Split,
    cfg: TrainerConfig,
    shuffle_seed: int,
    on_epoch_end: EpochCallback | None = None,
) -> FitOutcome:
    """Train for `cfg.epochs` epochs, evaluating after each; stop early on divergence or pruning.

    `make_optimizer` is a factory receiving the model's parameters as one flat tensor
    (`flatten_parameters`), or the run's OptimizerConfig (see `training_epoch`); `train` and
    `val` must already be on the model's device. The model trains in place.
    """
    train_epoch = training_epoch(model, make_optimizer)
    shuffle = torch.Generator().manual_seed(shuffle_seed)
    steps_per_epoch = math.ceil(len(train) / cfg.batch_size)
    history: list[EpochMetrics] = []
    start = time.perf_counter()
    with progress_bar(cfg.progress_bar, cfg.epochs * steps_per_epoch) as bar:
        for epoch in range(1, cfg.epochs + 1):
            epoch_start = time.perf_counter()
            images, labels = train.images, train.labels
            if cfg.shuffle:
                order = torch.randperm(len(train), generator=shuffle).to(images.device)
                images, labels = images[order], labels[order]

            batch_losses = []
            for loss in train_epoch(images, labels, cfg.batch_size):  # one step each
                batch_losses.append(loss)  # summed once per epoch: no sync per step
                if bar is not None:
                    bar.update()

            cost = torch.stack(batch_losses).sum().item()
            val_loss, val_accuracy = evaluate(model, val, cfg.eval_batch_size)
            now = time.perf_counter()
            row = EpochMetrics(
                epoch=epoch,
                train_cost=cost,
                train_loss=cost / len(batch_losses),
                val_loss=val_loss,
                val_accuracy=val_accuracy,
                epoch_s=now - epoch_start,
                elapsed_s=now - start,
            )
            history.append(row)
            if bar is not None:
                bar.set_postfix(epoch=epoch, val_acc=f"{val_accuracy:.3f}", refresh=False)
            prune = on_epoch_end is not None and on_epoch_end(history)  # records every epoch
            if (why := divergence(row)) is not None:
                return FitOutcome(history, Status.DIVERGED, why)
            if prune:
                return FitOutcome(history, Status.PRUNED, f"pruned after epoch {epoch}")
    return FitOutcome(history, Status.COMPLETE)
