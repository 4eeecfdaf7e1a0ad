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

    A study's preset (`hparams_search=channels_lr`) runs only with `-m`: in its place come the
    config groups it chose for the run (`experiment=hard plots=light`), as the run's
    `.hydra/hydra.yaml` recorded them.
    """
    overrides = [o for o in read_overrides(run) if o.split("=", 1)[0].lstrip("+~") not in drop]
    if any(o.startswith("hparams_search=") for o in overrides):
        chosen = _preset_choices(run)
        if chosen is not None:
            given = {o.split("=", 1)[0] for o in overrides}
            kept = [o for o in overrides if not o.startswith("hparams_search=")]
            overrides = [c for c in chosen if c.split("=", 1)[0] not in given] + kept
    return " ".join(["python -m linesweep.train", *map(shlex.quote, overrides)])


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
