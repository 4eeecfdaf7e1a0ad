"""A command line's keys checked before Hydra composes: a typo gets one line naming the nearest.

    python -m linesweep.train model.out1=3
    [ERROR] model.out1=3 is not allowed: a key of linesweep's config; the nearest: model.out_1,
    model.out_2 (to add a new key, write +model.out1=...)

    python -m linesweep.train -m hparams_search=channels_lr hydra.sweeper.population_size=2.5
    [ERROR] hydra.sweeper.population_size=2.5 is not allowed: an integer

Hydra refuses an unknown key, or a value its schema cannot hold, too, but in eight lines and
with exit status 1. The keys a
command line may set are those of the typed schemas (`linesweep.run.config.TrainConfig`, every
optimizer's fields: the group's choice may change which apply) and the config groups; a key
added with `+`, deleted with `~`, or under `hydra.` is left to Hydra, which knows those best.
A sweep's search space gets the same check from its sweeper, against the composed config.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Iterator, Sequence
from importlib import resources
from typing import Any

from hydra_plugins.linesweep_optuna_sweeper.config import (
    PRUNER_OPTIONS,
    SAMPLER_OPTIONS,
    LinesweepOptunaSweeperConf,
)
from linesweep.core.errors import ConfigError
from linesweep.run.config import OPTIMIZER_SCHEMAS, TrainConfig

SWEEPER_SCHEMA = LinesweepOptunaSweeperConf  # hydra.sweeper.*: where its fields are typed


def check_command_line(arguments: Sequence[str]) -> None:
    """Refuse, as a ConfigError, an override of a key linesweep's config does not have."""
    overrides = [a for a in arguments if "=" in a and not a.startswith("-")]
    if not overrides:
        return
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except HydraException:
        return  # Hydra says what does not parse
    keys, groups = known_keys(), config_groups()
    for override in parsed:
        key = override.key_or_group
        if override.is_add() or override.is_delete() or override.is_force_add():
            continue
        if key.startswith("hydra.sweeper."):
            _check_value(key, override, _sweeper_hint(key.removeprefix("hydra.sweeper.")))
        if key == "hydra" or key.startswith(("hydra.", "hydra/")) or key in groups:
            continue
        if key.split("@", 1)[0] in keys:
            _check_logger_is_on(key, override, parsed)
            _check_value(key, override, _hint(TrainConfig, key))
            continue
        near = difflib.get_close_matches(key, sorted(keys | groups), n=3, cutoff=0.6)
        hint = f"the nearest: {', '.join(near)}" if near else "see --cfg job for the keys"
        raise ConfigError(
            key,
            override.input_line.partition("=")[2] if override.input_line else "",
            "a key of linesweep's config",
            f"{hint} (to add a new key, write +{key}=...)",
        )


# What a key of one of these types holds, as a refusal says it.
PLAIN = {
    frozenset({int}): "an integer",
    frozenset({float}): "a number",
    frozenset({int, float}): "a number",
    frozenset({bool}): "true or false",
    frozenset({str}): "a string",
}


def _check_value(key: str, override: Any, hint: object) -> None:
    """A plain value that the key's type cannot hold (`abc` or 1e2 for an integer, `abc` for a
    number, `maybe` for true/false); sweep expressions and interpolations are left as they are."""
    if hint is None or override.is_sweep_override() or override.value_type is None:
        return
    raw = override.input_line.partition("=")[2] if override.input_line else ""
    value = override.value()
    kinds = {a for a in typing.get_args(hint) if a is not type(None)} or {hint}
    if value is None and type(None) not in typing.get_args(hint) and frozenset(kinds) in PLAIN:
        # Hydra says it in five lines ("is not Optional"), with exit 1
        raise ConfigError(key, raw, f"{PLAIN[frozenset(kinds)]}, not null")
    if not isinstance(value, (str, int, float, bool)) or "${" in raw:
        return
    if value is None or (isinstance(value, str) and str in kinds):
        return
    if all(typing.get_origin(k) is list for k in kinds):
        raise ConfigError(key, raw, "a list", f"e.g. {key}=[{raw}]")  # Hydra: not a ListConfig
    if kinds <= {int} and not (isinstance(value, int) and not isinstance(value, bool)):
        raise ConfigError(key, raw, "an integer")  # OmegaConf takes no float, not even 1e2
    if kinds <= {int, float} and isinstance(value, (str, bool)):
        raise ConfigError(key, raw, "a number")
    if kinds == {bool} and not isinstance(value, bool):
        raise ConfigError(key, raw, "true or false")


def _hint(schema: type, key: str) -> object:
    """The type a dotted key of `schema` holds, or None where the key goes elsewhere."""
    *parents, name = key.split(".")
    for part in parents:
        fields = {f.name: f for f in dataclasses.fields(schema)}  # type: ignore[arg-type]
        inner = _dataclass_of(typing.get_type_hints(schema)[part]) if part in fields else None
        if inner is None:
            return None
        schema = inner
    if name not in {f.name for f in dataclasses.fields(schema)}:  # type: ignore[arg-type]
        return None
    return typing.get_type_hints(schema)[name]


def _sweeper_hint(key: str) -> object:
    """The type a key under `hydra.sweeper.` holds. A sampler's or pruner's argument has the
    type every option that takes it gives it (`sampler.n_startup_trials`: an integer), whichever
    option the command line chooses; None where the options disagree or none takes it."""
    group, _, name = key.partition(".")
    options = {"sampler": SAMPLER_OPTIONS, "pruner": PRUNER_OPTIONS}.get(group)
    if options is None or not name or "." in name:
        return _hint(SWEEPER_SCHEMA, key)
    hints = {_hint(schema, name) for schema in options.values()} - {None}
    return hints.pop() if len(hints) == 1 else None


def _check_logger_is_on(key: str, override: object, parsed: Sequence[object]) -> None:
    """`logger.tensorboard.subdir=x` sets a key of a logger that is off unless `logger=` turns
    it on (Hydra fails with a bare assertion on the empty node)."""
    parts = key.split(".")
    if parts[0] != "logger" or len(parts) < 3 or parts[1] == "csv":
        return
    chosen = " ".join(
        str(o.input_line) for o in parsed if getattr(o, "key_or_group", None) == "logger"
    )
    if parts[1] not in chosen:
        raise ConfigError(
            key,
            str(getattr(override, "input_line", "")).partition("=")[2],
            f"a setting of the {parts[1]} logger, which is off",
            f"turn it on with logger={parts[1]} (several: logger=[csv,{parts[1]}])",
        )


def known_keys() -> set[str]:
    """Every dotted key the typed schemas declare, with every optimizer's fields."""
    keys = set(_paths(TrainConfig))
    for schema in OPTIMIZER_SCHEMAS.values():
        keys |= {f"optimizer.{k}" for k in _paths(schema)}
    return keys


def config_groups() -> set[str]:
    """The config groups of conf/ (data, model, optimizer, experiment, ...)."""
    root = resources.files("linesweep.conf")
    return {entry.name for entry in root.iterdir() if entry.is_dir() and entry.name != "hydra"}


def _paths(schema: type, prefix: str = "") -> Iterator[str]:
    for field in dataclasses.fields(schema):  # type: ignore[arg-type]
        key = f"{prefix}{field.name}"
        yield key
        inner = _dataclass_of(typing.get_type_hints(schema)[field.name])
        if inner is not None:
            yield from _paths(inner, f"{key}.")


def _dataclass_of(hint: object) -> type | None:
    """The dataclass a field holds (`X | None` too), or None for a plain value."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(hint) if a is not type(None)]
        hint = inner[0] if len(inner) == 1 else None
    return hint if isinstance(hint, type) and dataclasses.is_dataclass(hint) else None
