"""Typed configuration: the schema Hydra enforces at compose time, and the checks that follow.

Config flows YAML (``conf/``) -> these dataclasses (registered in Hydra's ConfigStore, so a wrong
type or an unknown key fails while composing) -> :func:`validate` (semantic rules, one clear line
per problem) -> plain values for plain functions. Defaults here are the notebook's settings; the
YAML files in ``conf/`` repeat them so that a user sees every value where they edit it, and a test
keeps the two in agreement.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from linesweep.errors import ConfigError
from linesweep.objective import METRIC_DIRECTIONS

# Caps that keep a typo (an extra zero or three) from eating the machine's memory.
MAX_PIXELS_PER_SPLIT = 500_000_000
MAX_CHANNELS = 512


@dataclass
class DataConfig:
    """Toy images holding one bar: vertical (class 0) or horizontal (class 1)."""

    N_images: int = 10_000  # training images, half of each class
    N_val_images: int = 1_000  # validation images, half of each class, drawn independently
    image_size: int = 11  # images are image_size x image_size
    line_length: int = 9
    line_width: int = 3
    offset: int = 0  # each bar shifts by a random whole number of pixels in [-offset, offset]
    p: float = 0.9  # probability that a pixel of the bar is on
    noise_p: float = 0.0  # probability that a background pixel is on


@dataclass
class WindowConfig:
    """A sliding window, as used by both Conv2d and MaxPool2d."""

    kernel_size: int = 2
    stride: int = 1
    padding: int = 0
    dilation: int = 1


@dataclass
class ModelConfig:
    """conv1 -> relu -> pool1 -> conv2 -> relu -> pool2 -> flatten -> linear (2 classes)."""

    out_1: int = 2  # output channels of conv1
    out_2: int = 1  # output channels of conv2
    conv1: WindowConfig = field(default_factory=WindowConfig)
    pool1: WindowConfig = field(default_factory=WindowConfig)
    conv2: WindowConfig = field(default_factory=WindowConfig)
    pool2: WindowConfig = field(default_factory=WindowConfig)


@dataclass
class OptimizerConfig:
    """Keys shared by every optimizer; `_target_` names the torch class to instantiate."""

    _target_: str = MISSING
    lr: float = 0.001
    weight_decay: float = 0.0
    fused: bool | None = True  # torch's fused kernel: far less overhead per step on tiny models


@dataclass
class AdamConfig(OptimizerConfig):
    _target_: str = "torch.optim.Adam"
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    amsgrad: bool = False


@dataclass
class AdamWConfig(AdamConfig):
    _target_: str = "torch.optim.AdamW"
    weight_decay: float = 0.01


@dataclass
class SGDConfig(OptimizerConfig):
    _target_: str = "torch.optim.SGD"
    momentum: float = 0.0
    dampening: float = 0.0
    nesterov: bool = False


@dataclass
class TrainerConfig:
    epochs: int = 10
    batch_size: int = 10
    eval_batch_size: int = 1_000  # validation runs without gradients, so it can take big batches
    shuffle: bool = True  # reshuffle the training images every epoch (the notebook did not)
    device: str = "cpu"  # cpu, cuda, cuda:N, or auto (cuda when available)
    num_threads: int | None = None  # None: 1, the fastest for models this small
    progress_bar: bool | None = None  # None: a bar on an interactive terminal, log lines otherwise


@dataclass
class ObjectiveConfig:
    """What a run returns to a sweeper; each metric has a fixed direction (see objective.py)."""

    metrics: list[str] = field(default_factory=lambda: ["val_accuracy"])
    epoch: str = "last"  # last: the epoch whose weights are saved; best: the best epoch


@dataclass
class PlotsConfig:
    learning_curve: bool = True
    kernels: bool = True
    samples: bool = True
    feature_maps: bool = True
    activations: bool = True
    dpi: int = 100


@dataclass
class TrainConfig:
    seed: int = (
        4  # the notebook's; the seeds of the splits, the init and the shuffling derive from it
    )
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optimizer: OptimizerConfig = MISSING
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    plots: PlotsConfig = field(default_factory=PlotsConfig)


OPTIMIZER_SCHEMAS = {"adam": AdamConfig, "adamw": AdamWConfig, "sgd": SGDConfig}


def register_configs() -> None:
    """Store the schemas in Hydra's ConfigStore; `conf/` YAML files extend them by name."""
    store = ConfigStore.instance()
    store.store(name="train_schema", node=TrainConfig)
    for name, schema in OPTIMIZER_SCHEMAS.items():
        # conf/optimizer/<name>.yaml extends these; kept outside the optimizer group so that
        # --help lists only the options a user picks.
        store.store(group="schema/optimizer", name=name, node=schema)
    if not OmegaConf.has_resolver("linesweep.pid"):
        # Part of run-folder names: two runs started in the same microsecond still differ.
        OmegaConf.register_new_resolver("linesweep.pid", os.getpid, use_cache=True)
    if not OmegaConf.has_resolver("linesweep.sweep_dir"):
        OmegaConf.register_new_resolver("linesweep.sweep_dir", sweep_dir)


def sweep_dir(sweeper: str, study_name: str, stamp: str) -> str:
    """Where a -m run goes: an Optuna study's own folder, or a new folder for a basic multirun.

    A study's folder is named after it, so that re-running the same command finds the study
    again (resume), and several workers started with the same command share it.
    """
    if sweeper.endswith("LinesweepOptunaSweeper"):
        return f"outputs/sweeps/{study_name}"
    return f"outputs/multirun/{stamp}"


def to_train_config(cfg: DictConfig) -> TrainConfig:
    """Turn a composed config (or a run's saved .hydra/config.yaml) into checked dataclasses."""
    task_cfg = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
    schema = OmegaConf.structured(TrainConfig)
    optimizer = task_cfg.get("optimizer")
    if optimizer is not None and OmegaConf.get_type(optimizer) is dict:
        # A saved config has lost its schema: find the optimizer's by its `_target_`.
        by_target = {s._target_: s for s in OPTIMIZER_SCHEMAS.values()}
        target = optimizer.get("_target_")
        if target not in by_target:
            raise ConfigError("optimizer._target_", target, "one of " + ", ".join(by_target))
        schema.optimizer = OmegaConf.structured(by_target[target])
    typed = OmegaConf.to_object(OmegaConf.merge(schema, task_cfg))
    assert isinstance(typed, TrainConfig)
    validate(typed)
    return typed


def validate(cfg: TrainConfig) -> None:
    """Raise ConfigError for the first value outside what linesweep accepts."""
    _validate_data(cfg.data)
    _validate_model(cfg.model)
    _validate_optimizer(cfg.optimizer)
    _validate_trainer(cfg.trainer)
    _validate_objective(cfg.objective)
    _require(cfg.plots.dpi >= 10, "plots.dpi", cfg.plots.dpi, "an integer >= 10")


def _require(ok: bool, key: str, value: object, allowed: str, fix: str | None = None) -> None:
    if not ok:
        raise ConfigError(key, value, allowed, fix)


def _validate_data(data: DataConfig) -> None:
    from linesweep.data import max_offset  # the geometry lives with the generator

    for key, n in (("data.N_images", data.N_images), ("data.N_val_images", data.N_val_images)):
        _require(n >= 2 and n % 2 == 0, key, n, "an even integer >= 2 (half the images per class)")
    _require(data.image_size >= 2, "data.image_size", data.image_size, "an integer >= 2")
    pixels = max(data.N_images, data.N_val_images) * data.image_size**2
    _require(
        pixels <= MAX_PIXELS_PER_SPLIT,
        "data.N_images",
        data.N_images,
        f"at most {MAX_PIXELS_PER_SPLIT:,} pixels per split (this would be {pixels:,})",
        "use fewer or smaller images",
    )
    _require(
        1 <= data.line_length <= data.image_size,
        "data.line_length",
        data.line_length,
        f"an integer in [1, data.image_size={data.image_size}]",
    )
    _require(
        1 <= data.line_width < data.line_length,
        "data.line_width",
        data.line_width,
        f"an integer in [1, data.line_length={data.line_length}); a square bar has no orientation",
    )
    limit = max_offset(data.image_size, data.line_length, data.line_width)
    _require(
        0 <= data.offset <= limit,
        "data.offset",
        data.offset,
        f"an integer in [0, {limit}]: a {data.line_length}x{data.line_width} bar centred in a "
        f"{data.image_size}x{data.image_size} image can shift at most {limit} pixel(s) each way",
        "lower data.offset, shorten data.line_length, or enlarge data.image_size",
    )
    for key, prob in (("data.p", data.p), ("data.noise_p", data.noise_p)):
        _require(0.0 <= prob <= 1.0, key, prob, "a probability in [0, 1]")


def _validate_model(model: ModelConfig) -> None:
    for key, channels in (("model.out_1", model.out_1), ("model.out_2", model.out_2)):
        _require(1 <= channels <= MAX_CHANNELS, key, channels, f"an integer in [1, {MAX_CHANNELS}]")
    for layer in ("conv1", "pool1", "conv2", "pool2"):
        window: WindowConfig = getattr(model, layer)
        key = f"model.{layer}"
        _require(
            window.kernel_size >= 1, f"{key}.kernel_size", window.kernel_size, "an integer >= 1"
        )
        _require(window.stride >= 1, f"{key}.stride", window.stride, "an integer >= 1")
        _require(window.padding >= 0, f"{key}.padding", window.padding, "an integer >= 0")
        _require(window.dilation >= 1, f"{key}.dilation", window.dilation, "an integer >= 1")


def _validate_optimizer(opt: OptimizerConfig) -> None:
    _require(math.isfinite(opt.lr) and opt.lr > 0, "optimizer.lr", opt.lr, "a finite number > 0")
    _require(
        math.isfinite(opt.weight_decay) and opt.weight_decay >= 0,
        "optimizer.weight_decay",
        opt.weight_decay,
        "a finite number >= 0",
    )
    if isinstance(opt, AdamConfig):
        _require(
            len(opt.betas) == 2 and all(0.0 <= b < 1.0 for b in opt.betas),
            "optimizer.betas",
            opt.betas,
            "two numbers in [0, 1)",
        )
        _require(opt.eps > 0, "optimizer.eps", opt.eps, "a number > 0")
    if isinstance(opt, SGDConfig):
        _require(opt.momentum >= 0, "optimizer.momentum", opt.momentum, "a number >= 0")
        _require(opt.dampening >= 0, "optimizer.dampening", opt.dampening, "a number >= 0")
        _require(
            not opt.nesterov or (opt.momentum > 0 and opt.dampening == 0),
            "optimizer.nesterov",
            opt.nesterov,
            "true only with optimizer.momentum > 0 and optimizer.dampening=0",
        )


_DEVICE = re.compile(r"^(cpu|auto|cuda(:\d+)?)$")


def _validate_trainer(trainer: TrainerConfig) -> None:
    _require(trainer.epochs >= 1, "trainer.epochs", trainer.epochs, "an integer >= 1")
    _require(trainer.batch_size >= 1, "trainer.batch_size", trainer.batch_size, "an integer >= 1")
    _require(
        trainer.eval_batch_size >= 1,
        "trainer.eval_batch_size",
        trainer.eval_batch_size,
        "an integer >= 1",
    )
    _require(
        bool(_DEVICE.match(trainer.device)),
        "trainer.device",
        trainer.device,
        "one of cpu, cuda, cuda:N, auto",
    )
    _require(
        trainer.num_threads is None or trainer.num_threads >= 1,
        "trainer.num_threads",
        trainer.num_threads,
        "null (automatic) or an integer >= 1",
    )


def _validate_objective(objective: ObjectiveConfig) -> None:
    known = ", ".join(METRIC_DIRECTIONS)
    _require(
        len(objective.metrics) >= 1,
        "objective.metrics",
        objective.metrics,
        f"one or more of {known}",
    )
    for metric in objective.metrics:
        _require(
            metric in METRIC_DIRECTIONS,
            "objective.metrics",
            objective.metrics,
            f"names from {known}",
        )
    _require(
        len(set(objective.metrics)) == len(objective.metrics),
        "objective.metrics",
        objective.metrics,
        "distinct names",
    )
    _require(
        objective.epoch in ("last", "best"), "objective.epoch", objective.epoch, "last or best"
    )
