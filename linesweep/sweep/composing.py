"""Each trial's whole config, as Hydra's `load_sweep_config` gives it, composed once per frame.

`load_sweep_config` rebuilds the defaults tree and reloads every YAML file for every trial: about
150 ms, serial in the sweep process. Yet most trials of a sweep differ from the last only in plain
values (`optimizer.lr=0.0123`, `hydra.sweep.subdir=7`), and Hydra applies those last, to the
finished composition, with one function (`_apply_overrides_to_config`). So `SweepComposer`
composes fully once per *frame* (a trial's overrides with each plain value blanked, key and
position kept), and for every later trial of that frame copies that composition, re-applies
the plain values with Hydra's own function (the same errors, word for word), and redoes what Hydra
derives from the override list: `hydra.overrides`, `override_dirname`, `env_set` from `env_copy`,
`runtime.cwd` and the master's resolver cache. An lr-only sweep is one frame;
`optimizer=choice(adam,sgd)` makes two.

A plain value is a `key=value` or `++key=value` override of a key that is no config group (Hydra
asks the same repository, `group_exists`), whose value is no dict (a dict merges with what is
there), and whose key neither overlaps another config override's (their order would matter) nor
one Hydra writes after the overrides. Why setting a value where an earlier trial's value of the
same kind stands gives what a full composition gives (OmegaConf 2.3: `OmegaConf.update`,
`_set_item_impl`): a scalar is set in place into a node with a type or an AnyNode, whatever it
held, and anywhere else replaces the node with a fresh one from the same type hint; a list replaces
a list node's content, its type kept. A list set where a scalar stands makes a fresh node instead,
so scalars and lists are frames of their own (`_kind`).

Hydra's private API is used here, and only here, because its public one composes only whole
configs: `ConfigLoaderImpl._apply_overrides_to_config`, `get_overrides_dirname`, and the loader's
`_parse_overrides_and_create_caching_repo` (the repository Hydra consults, `hydra.searchpath`
included). A loader without them, or any override list that cannot be planned, is composed fully.
One difference: a YAML file edited during a sweep reaches only trials of a new frame.
"""

from __future__ import annotations

import os
import pickle
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from hydra._internal.config_loader_impl import ConfigLoaderImpl, get_overrides_dirname
from hydra.core.config_loader import ConfigLoader
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, OverrideType
from omegaconf import DictConfig, OmegaConf, open_dict

MAX_FRAMES = 64  # compositions kept, the least recently used dropped (each about 200 kB)
# Kept pickled: unpickling a whole config takes 0.9 ms where deep-copying it takes 5 ms, and gives
# the same nodes, types, flags and resolver cache (tests/test_sweep_composing.py compares them).

# What Hydra writes after applying the overrides, or reads to find the configs: a value for one of
# these (or above or below one) always makes a frame of its own.
HYDRA_WRITES = (
    "hydra.searchpath",
    "hydra.overrides",
    "hydra.runtime",
    "hydra.job.name",
    "hydra.job.config_name",
    "hydra.job.override_dirname",
    "hydra.job.env_copy",
)
PLAIN_TYPES = (OverrideType.CHANGE, OverrideType.FORCE_ADD)  # not `+key` (it fails if set), `~key`

Frame = tuple[Any, ...]


class SweepComposer:
    """`compose(overrides)` == `config_loader.load_sweep_config(master_config, overrides)`."""

    def __init__(self, config_loader: ConfigLoader, master_config: DictConfig) -> None:
        self.loader, self.master = config_loader, master_config
        self._frames: OrderedDict[Frame, bytes] = OrderedDict()  # each a pickled composition
        self._repositories: dict[tuple[str | None, str | None], Any] = {}
        self._parser = OverridesParser.create()
        self._can_reapply = hasattr(config_loader, "_parse_overrides_and_create_caching_repo")

    def compose(self, overrides: Sequence[str]) -> DictConfig:
        """The trial's whole config (hydra node included), a fresh object every call."""
        planned = self._plan(list(overrides)) if self._can_reapply else None
        if planned is None:
            return self.loader.load_sweep_config(self.master, list(overrides))
        frame, parsed, plain = planned
        if frame not in self._frames:
            config = self.loader.load_sweep_config(self.master, list(overrides))
            self._frames[frame] = pickle.dumps(config)
            if len(self._frames) > MAX_FRAMES:
                self._frames.popitem(last=False)
            return config
        self._frames.move_to_end(frame)
        return self._reapply(pickle.loads(self._frames[frame]), parsed, plain)

    def _plan(self, overrides: list[str]) -> tuple[Frame, list[Override], list[Override]] | None:
        """The trial's frame, its parsed overrides (as `load_sweep_config` lists them) and the
        plain ones among them; None where only a full composition will do."""
        config_name = self.master.hydra.job.config_name
        lines = [*OmegaConf.to_container(self.master.hydra.overrides.hydra), *overrides]
        try:
            parsed = self._parser.parse_overrides(lines)
            if any(o.is_sweep_override() for o in parsed):
                return None  # refused by a full composition, in Hydra's words
            repository = self._repository(config_name, parsed)
            config_overrides = [  # as Hydra's defaults list sorts them (`Overrides.__init__`)
                o
                for o in parsed
                if isinstance(o.value(), dict) or not repository.group_exists(o.key_or_group)
            ]
        except Exception:
            return None
        plain = [o for o in config_overrides if _is_plain(o, config_overrides)]
        blanked = {id(o) for o in plain}
        frame = (
            config_name,
            *(
                (o.get_key_element(), _kind(o.value())) if id(o) in blanked else o.input_line
                for o in parsed
            ),
        )
        return frame, parsed, plain

    def _repository(self, config_name: str | None, parsed: list[Override]) -> Any:
        """The repository Hydra composes from: the search path, `hydra.searchpath` included."""
        searchpath = next(
            (o.input_line for o in parsed if o.get_key_element() == "hydra.searchpath"), None
        )
        key = (config_name, searchpath)
        if key not in self._repositories:
            _, self._repositories[key] = self.loader._parse_overrides_and_create_caching_repo(
                config_name, [searchpath] if searchpath else []
            )
        return self._repositories[key]

    def _reapply(
        self, config: DictConfig, parsed: list[Override], plain: list[Override]
    ) -> DictConfig:
        """The tail of Hydra's `_load_configuration_impl` and `load_sweep_config`, on a copy."""
        ConfigLoaderImpl._apply_overrides_to_config(plain, config)
        hydra = config.hydra
        app = [o for o in parsed if not o.is_hydra_override()]
        hydra.overrides.hydra = [o.input_line for o in parsed if o.is_hydra_override()]
        hydra.overrides.task = [o.input_line for o in app]
        with open_dict(hydra):
            for key in hydra.job.env_copy:
                hydra.job.env_set[key] = os.environ[key]
        hydra.runtime.cwd = os.getcwd()
        dirname = hydra.job.config.override_dirname
        hydra.job.override_dirname = get_overrides_dirname(
            overrides=app,
            kv_sep=dirname.kv_sep,
            item_sep=dirname.item_sep,
            exclude_keys=dirname.exclude_keys,
        )
        OmegaConf.copy_cache(from_config=self.master, to_config=config)
        return config


class ComposingLoader:
    """Hydra's config loader, composing a sweep's trials through a `SweepComposer`: what the
    sweeper hands Hydra's launcher, so that a launcher composing in this process (the basic one,
    joblib with threads) composes each job once per frame, as linesweep's executors do.

    Launchers compose every job with `hydra_context.config_loader.load_sweep_config(config,
    overrides)`, the sweep's master config and each job's overrides (`executors.ProcessExecutor`
    composes its own trials with a `SweepComposer` of its own). Any other call, or another master
    config, goes to the loader itself; so does a pickle: joblib's worker processes and submitit's
    jobs, which compose in the worker, get the plain loader and compose fully, as before. As for
    every `SweepComposer`, a YAML file edited during the sweep reaches only trials of a new frame.
    """

    def __init__(self, loader: ConfigLoader, master_config: DictConfig) -> None:
        self._loader, self._master = loader, master_config
        self._composer = SweepComposer(loader, master_config)

    def load_sweep_config(
        self, master_config: DictConfig, sweep_overrides: list[str]
    ) -> DictConfig:
        if master_config is self._master:
            return self._composer.compose(sweep_overrides)
        return self._loader.load_sweep_config(master_config, sweep_overrides)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)

    def __reduce__(self) -> tuple[Any, tuple[ConfigLoader]]:
        return _itself, (self._loader,)


def _itself(loader: ConfigLoader) -> ConfigLoader:
    return loader


def _is_plain(override: Override, config_overrides: list[Override]) -> bool:
    """(One with a package, `key@pkg=1`, Hydra refuses: it never makes a frame.)"""
    key = override.key_or_group
    return (
        override.type in PLAIN_TYPES
        and _kind(override.value()) is not None
        and not any(_overlap(key, written) for written in HYDRA_WRITES)
        and not any(_overlap(key, o.key_or_group) for o in config_overrides if o is not override)
    )


def _kind(value: Any) -> str | None:
    """Values OmegaConf sets alike, whatever the node held (None: a dict, which merges)."""
    if isinstance(value, list):
        return "list"
    if value is None or isinstance(value, (str, int, float, bool)):
        return "scalar"
    return None


def _overlap(key: str, other: str) -> bool:
    return key == other or key.startswith(other + ".") or other.startswith(key + ".")
