"""Typed configuration: the schema Hydra enforces at compose time, and the checks that follow.

Config flows YAML (``conf/``) -> these dataclasses (registered in Hydra's ConfigStore, so a
wrong type or an unknown key fails while composing) -> `validation.validate` (semantic rules, one
clear line per problem) -> plain values for plain functions. Defaults here are the notebook's
settings; the YAML files in ``conf/`` repeat them so that a user sees every value where they
edit it, and a test keeps the two in agreement.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf

# Caps that keep a typo (an extra zero or three) from eating the machine's memory.
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
class ReplicateConfig:
    """How the replicates of one configuration (`replicates` > 1) are summed up into one value."""

    # A replicate succeeds when the objective's first metric reaches this (>= for a maximised
    # metric, <= for a minimised one): with out_2=1 a dead-ReLU seed stays at 0.5 accuracy.
    success_threshold: float = 0.9
    statistic: str = "mean"  # what a sweeper sees: mean, median, min or success_rate


@dataclass
class AnswerConfig:
    """How replicated configurations are judged against the best (linesweep/core/answer.py)."""

    alpha: float = 0.05  # in (0, 1): the chance of calling any configuration among the best worse
    test: str = "auto"  # auto (paired where replicates share seeds, else welch), welch, ...
    correction: str = "simes"  # simes, bonferroni or none: how a step joins its tests


@dataclass
class PlotsConfig:
    learning_curve: bool = True
    kernels: bool = True
    samples: bool = True
    feature_maps: bool = True
    activations: bool = True
    dpi: int = 100

    @property
    def asked(self) -> bool:
        """Whether any picture is drawn at all."""
        pictures = (self.learning_curve, self.kernels, self.samples, self.feature_maps)
        return any(pictures) or self.activations


# ---------------------------------------------------------------- loggers (run/loggers.py)
# conf/logger/<name>.yaml each fill one key of `logger`; `logger=[tensorboard,mlflow]` fills
# several. A logger left None is off. The run's own files (csv) are always written.


@dataclass
class CsvLoggerConfig:
    """The run's own files (metrics.csv, summary.json, shapes.yaml, plots/): always written."""


@dataclass
class TensorBoardLoggerConfig:
    subdir: str = "tensorboard"  # event files go to <run folder>/<subdir>/


@dataclass
class MlflowLoggerConfig:
    # SQLite needs no server; MLflow 3 refuses its old ./mlruns file store. Relative paths are
    # relative to the launch folder, as outputs/ is.
    tracking_uri: str = "sqlite:///outputs/mlflow.db"
    experiment_name: str = "linesweep"
    artifact_location: str | None = None  # None: mlartifacts/ beside a SQLite file


@dataclass
class LoggerConfig:
    csv: CsvLoggerConfig = field(default_factory=CsvLoggerConfig)
    tensorboard: TensorBoardLoggerConfig | None = None
    mlflow: MlflowLoggerConfig | None = None


@dataclass
class TrainConfig:
    seed: int = (
        4  # the notebook's; the seeds of the splits, the init and the shuffling derive from it
    )
    # Copies of this configuration trained together as one population, each from its own initial
    # weights and shuffling (linesweep/run/population.py); 1 is a plain run.
    replicates: int = 1
    replicate: ReplicateConfig = field(default_factory=ReplicateConfig)
    # A hydra.run.dir that holds another run is refused; true deletes that run's files first
    # (linesweep/run/folder.py). Not part of the experiment: it decides where, not what.
    overwrite: bool = False
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optimizer: OptimizerConfig = MISSING
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    answer: AnswerConfig = field(default_factory=AnswerConfig)
    plots: PlotsConfig = field(default_factory=PlotsConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)


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


def sweep_dir(sweeper: str, study_name: str | None, stamp: str, job_name: str = "train") -> str:
    """Where a -m run goes: an Optuna study's own folder, or a new folder for a basic multirun.

    A study's folder is named after it, so that re-running the same command finds the study
    again (resume), and several workers started with the same command share it. A null
    study_name names the study after the app, as the sweeper does.
    """
    if sweeper.endswith("LinesweepOptunaSweeper"):
        return f"outputs/sweeps/{study_name or job_name}"
    return f"outputs/multirun/{stamp}"
