"""The command line that trains a run again: `python -m linesweep.train` and the run's overrides.

Its numbers keep every digit: the command is to be run, not read, and a learning rate rounded to
four digits would train another run.
"""

from __future__ import annotations

import functools
import importlib.resources
import shlex
from pathlib import Path

import yaml

from linesweep.compare.row import Run, read_overrides
from linesweep.compare.runs import load_yaml

HYDRA_RECORD = Path(".hydra", "hydra.yaml")


def reproduce_command(run: Run, drop: tuple[str, ...] = ()) -> str:
    """The command line that trains this run again (same config, so the same seeds); without
    the overrides of the keys in `drop` (the answer's hint adds its own `replicates=3`).

    A study's preset (`hparams_search=channels_lr_grid`) runs only with `-m`: in its place come
    the config groups it chose for the run (`experiment=hard plots=light`), as the run's
    `.hydra/hydra.yaml` recorded them, and the values it sets itself (`replicates=3`), as the
    run's config holds them.
    """
    overrides = [o for o in read_overrides(run) if o.split("=", 1)[0].lstrip("+~") not in drop]
    preset = next((o.split("=", 1)[1] for o in overrides if o.startswith("hparams_search=")), None)
    if preset is not None:
        chosen = _preset_choices(run)
        if chosen is None:  # no hydra.yaml to say (rebuilt from multirun.yaml): the preset's own
            chosen = _preset_defaults(preset)
        if chosen is not None:
            chosen += _preset_values(run, preset, drop)
            given = {o.split("=", 1)[0].lstrip("+~") for o in overrides}
            kept = [o for o in overrides if not o.startswith("hparams_search=")]
            overrides = [c for c in chosen if c.split("=", 1)[0] not in given] + kept
    return " ".join(["python -m linesweep.train", *map(shlex.quote, overrides)])


def _preset_yaml(preset: str) -> dict | None:
    """linesweep's preset `conf/hparams_search/<preset>.yaml`; None for another app's."""
    try:
        path = importlib.resources.files("linesweep.conf") / "hparams_search" / f"{preset}.yaml"
        tree = yaml.safe_load(path.read_text("utf-8")) or {}
    except (OSError, ValueError, yaml.YAMLError):
        return None
    return tree if isinstance(tree, dict) else None


def _preset_defaults(preset: str) -> list[str] | None:
    """`group=option` for each task config group linesweep's preset overrides in its defaults
    list (`override /experiment: hard`); None where the preset is not linesweep's."""
    tree = _preset_yaml(preset)
    if tree is None:
        return None
    groups = _train_yaml_choices()
    chosen = []
    for entry in tree.get("defaults") or []:
        for key, option in entry.items() if isinstance(entry, dict) else ():
            group = str(key).removeprefix("override").strip().lstrip("/")
            if group in groups and isinstance(option, str):
                chosen.append(f"{group}={option}")
    return chosen


def _preset_values(run: Run, preset: str, drop: tuple[str, ...]) -> list[str]:
    """`key=value` for each value the preset's YAML sets outside `hydra` and `defaults`, with
    the run's own value of it (its config.yaml); none where the preset is not linesweep's."""
    tree = _preset_yaml(preset)
    if tree is None:
        return []
    keys = [k for k in _flat_keys(tree) if k.split(".")[0] not in ("hydra", "defaults")]
    config = run.config or {}
    return [f"{k}={_value(config[k])}" for k in keys if k in config and k not in drop]


def _flat_keys(tree: object, prefix: str = "") -> list[str]:
    if not isinstance(tree, dict):
        return [prefix.rstrip(".")]
    return [k for key, value in tree.items() for k in _flat_keys(value, f"{prefix}{key}.")]


def _value(value: object) -> str:
    """A config value in the override grammar, every digit kept."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return repr(value) if isinstance(value, float) else str(value)


def _preset_choices(run: Run) -> list[str] | None:
    """`group=option` for each task config group whose option differs from train.yaml's default
    (what a preset chose), from the run's hydra.yaml; None when that file cannot say."""
    try:
        tree = load_yaml(run.folder / HYDRA_RECORD, root=run.folder)
        choices = tree["hydra"]["runtime"]["choices"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(choices, dict):
        return None
    defaults = _train_yaml_choices()
    return [
        f"{group}={option}"
        for group, option in choices.items()
        if isinstance(group, str) and isinstance(option, str)
        and group in defaults and group != "hparams_search" and option != defaults[group]
    ]  # fmt: skip


@functools.cache
def _train_yaml_choices() -> dict[str, str | None]:
    """The task config groups of linesweep's primary config and their default options."""
    text = (importlib.resources.files("linesweep.conf") / "train.yaml").read_text("utf-8")
    entries = yaml.safe_load(text)["defaults"]
    return {
        group: option
        for entry in entries
        if isinstance(entry, dict)
        for group, option in entry.items()
        if not group.startswith(("override", "hydra"))
    }
