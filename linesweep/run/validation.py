"""Semantic checks of a typed config: each rule a user can break, one clear line per problem.

The schemas in config.py catch wrong types and unknown keys while Hydra composes; what a type
cannot say (a probability in [0, 1], an offset that keeps the bar inside the image) is checked
here, before any work.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import re

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from linesweep.core.errors import ConfigError
from linesweep.core.metrics import METRIC_DIRECTIONS
from linesweep.run.bars import max_offset
from linesweep.run.config import (
    MAX_CHANNELS,
    OPTIMIZER_SCHEMAS,
    AdamConfig,
    AnswerConfig,
    DataConfig,
    ModelConfig,
    ObjectiveConfig,
    OptimizerConfig,
    SGDConfig,
    TrainConfig,
    TrainerConfig,
    WindowConfig,
)


def to_train_config(cfg: DictConfig) -> TrainConfig:
    """Turn a composed config (or a run's saved .hydra/config.yaml) into checked dataclasses.

    Every problem is a ConfigError naming the key: an unknown key (Hydra lets `+key=value` add
    one to a typed node, and a run would silently ignore it), a value of the wrong type, an
    interpolation that cannot be resolved (`${oc.env:NOPE}`), or a value outside the rules.
    """
    task_cfg = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
    try:
        typed = _typed(task_cfg)
    except OmegaConfBaseException as err:
        key = err.full_key or "config"
        raise ConfigError(key, _raw(task_cfg, key), _first_line(err)) from None
    validate(typed)
    return typed


@functools.cache
def _schema(optimizer_target: str | None) -> DictConfig:
    """TrainConfig's schema as OmegaConf builds it, with the optimizer schema of `_target_`
    (None: the default's). Built once: it is half of `to_train_config`'s time (a sweep checks
    every trial), and merging copies it, never changes it."""
    schema = OmegaConf.structured(TrainConfig)
    if optimizer_target is not None:
        by_target = {s._target_: s for s in OPTIMIZER_SCHEMAS.values()}
        schema.optimizer = OmegaConf.structured(by_target[optimizer_target])
    return schema


def _typed(task_cfg: DictConfig) -> TrainConfig:
    target = None
    optimizer = task_cfg.get("optimizer")
    if optimizer is not None and OmegaConf.get_type(optimizer) is dict:
        # A saved config has lost its schema: find the optimizer's by its `_target_`.
        target = optimizer.get("_target_")
        if not isinstance(target, str) or target not in {
            s._target_ for s in OPTIMIZER_SCHEMAS.values()
        }:
            targets = ", ".join(s._target_ for s in OPTIMIZER_SCHEMAS.values())
            raise ConfigError("optimizer._target_", target, "one of " + targets)
    schema = _schema(target)
    merged = OmegaConf.merge(schema, task_cfg)
    for key in _unknown_keys(merged):
        parent, _, _ = key.rpartition(".")
        known = _field_names(
            OmegaConf.get_type(OmegaConf.select(merged, parent) if parent else merged)
        )
        close = difflib.get_close_matches(key.rpartition(".")[2], known, n=3)
        hint = f"; did you mean {', '.join(f'{parent}.{c}' if parent else c for c in close)}?"
        raise ConfigError(
            key,
            _raw(task_cfg, key),
            f"a key linesweep knows ({parent or 'the config'} has {', '.join(known)})",
            hint[2:] if close else "remove it",
        )
    typed = OmegaConf.to_object(merged)
    assert isinstance(typed, TrainConfig)
    return typed


def _field_names(schema: object) -> list[str]:
    return [f.name for f in dataclasses.fields(schema)] if dataclasses.is_dataclass(schema) else []


def _unknown_keys(node: DictConfig, prefix: str = "") -> list[str]:
    """Keys of a typed config that its dataclass does not declare (added with `+`)."""
    names = set(_field_names(OmegaConf.get_type(node)))
    unknown = []
    for key in node:
        if names and key not in names:
            unknown.append(f"{prefix}{key}")
            continue
        child = node._get_node(key)
        if isinstance(child, DictConfig) and not child._is_missing() and not child._is_none():
            unknown += _unknown_keys(child, f"{prefix}{key}.")
    return unknown


def _raw(cfg: DictConfig, key: str) -> object:
    """A key's value as the user wrote it (an interpolation stays unresolved)."""
    node = OmegaConf.to_container(cfg, resolve=False)
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return "?"
        node = node[part]
    return node


def _first_line(err: Exception) -> str:
    text = str(getattr(err, "msg", None) or err).strip().splitlines()
    return text[0] if text else type(err).__name__


def validate(cfg: TrainConfig) -> None:
    """Raise ConfigError for the first value outside what linesweep accepts."""
    _require(cfg.seed >= 0, "seed", cfg.seed, "an integer >= 0 (numpy's seeds are not negative)")
    _validate_data(cfg.data)
    _validate_model(cfg.model)
    _validate_optimizer(cfg.optimizer)
    _validate_trainer(cfg.trainer)
    _validate_objective(cfg.objective)
    _validate_replicates(cfg)
    _validate_answer(cfg.answer)
    _require(cfg.plots.dpi >= 10, "plots.dpi", cfg.plots.dpi, "an integer >= 10")


def _require(ok: bool, key: str, value: object, allowed: str, fix: str | None = None) -> None:
    if not ok:
        raise ConfigError(key, value, allowed, fix)


def _validate_data(data: DataConfig) -> None:
    for key, n in (("data.N_images", data.N_images), ("data.N_val_images", data.N_val_images)):
        _require(n >= 2 and n % 2 == 0, key, n, "an even integer >= 2 (half the images per class)")
    _require(data.image_size >= 2, "data.image_size", data.image_size, "an integer >= 2")
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


STATISTICS = ("mean", "median", "min", "success_rate")


def _validate_replicates(cfg: TrainConfig) -> None:
    _require(cfg.replicates >= 1, "replicates", cfg.replicates, "an integer >= 1 (1: a plain run)")
    rep = cfg.replicate
    _require(
        math.isfinite(rep.success_threshold) and 0.0 <= rep.success_threshold <= 1.0,
        "replicate.success_threshold",
        rep.success_threshold,
        "a number in [0, 1]",
    )
    _require(
        rep.statistic in STATISTICS,
        "replicate.statistic",
        rep.statistic,
        "one of " + ", ".join(STATISTICS),
    )
    first = cfg.objective.metrics[0]
    _require(
        rep.statistic != "success_rate" or METRIC_DIRECTIONS[first] == "maximize",
        "replicate.statistic",
        rep.statistic,
        f"mean, median or min with objective.metrics[0]={first}: a success rate is maximised, "
        f"{first} is minimised",
        "put val_accuracy first in objective.metrics",
    )


def _validate_answer(answer: AnswerConfig) -> None:
    """The answer's own settings type checks them (ConfigError naming `answer.<key>`), so that
    a sweep's end and compare, which build it from other sources, refuse the same values.
    Imported here: the answer's statistics load scipy.stats (about half a second), which a run
    never needs."""
    from linesweep.core.answer import AnswerSettings

    AnswerSettings(alpha=answer.alpha, test=answer.test, correction=answer.correction)
