"""Draw the pictures a run did not draw: python -m linesweep.draw RUN_FOLDER [RUN_FOLDER ...]

    python -m linesweep.draw outputs/sweeps/channels_lr/7    # a sweep's trial, run with plots=light
    python -m linesweep.draw outputs/runs/2026-11-27/10-27-12-963291_10781

A run trained with `plots=light` (a sweep's default) or `plots=none` draws no kernels, samples,
feature maps or activations. This draws the ones missing from the run's plots/ as the run would
have drawn them with `plots=full`: from its saved config (.hydra/config.yaml) and weights
(model.pt), on the training images its seed draws, through the run's own drawing code
(`linesweep.run.drawing`), at the run's plots.dpi; the learning curve too, from metrics.csv.
Pictures already there are kept (the two kernel pictures are drawn as a pair), and what it draws
is what the run would have drawn, byte for byte. `python -m linesweep.compare` then shows them.

The folder may come from someone else: its files are read within bounds (no symbolic link, the
weights with torch's weights_only), a config value that is an OmegaConf interpolation
(`${oc.env:TOKEN}`) is refused rather than resolved, and a plots/ that is a symbolic link is
refused; each picture is written as a new file renamed into place.

Exit status 0: drawn, or nothing was missing; 2: a folder it cannot draw from (one line each).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from linesweep.core.errors import LinesweepError
from linesweep.core.metrics import EpochMetrics
from linesweep.core.record import (
    METRICS,
    PICTURE_CAP,
    PLOTS,
    WEIGHTS,
    YAML_CAP,
    read_metrics,
    read_weights,
)
from linesweep.core.safe_read import Unreadable, is_regular, load_yaml, read_text

# Which files each of the run's `plots.*` switches draws (linesweep.run.plots).
PICTURES = {
    "learning_curve": ("learning_curve.png",),
    "samples": ("samples.png",),
    "kernels": ("kernels_conv1.png", "kernels_conv2.png"),
    "feature_maps": ("feature_maps.png",),
    "activations": ("flattened_activations.png",),
}
CONFIG = Path(".hydra", "config.yaml")
OVERRIDES = Path(".hydra", "overrides.yaml")


class CannotDraw(Exception):
    """A folder this command cannot draw from; the message is its one line."""


def missing(folder: Path) -> list[str]:
    """The `plots.*` switches whose pictures the run's plots/ lacks (as regular files)."""
    return [
        switch
        for switch, names in PICTURES.items()
        if not all(is_regular(folder / PLOTS / name, folder, PICTURE_CAP) for name in names)
    ]


def draw(folder: Path) -> list[Path]:
    """Draw every picture `folder`'s plots/ lacks; the files written (none when nothing lacked).

    CannotDraw when the folder holds no config or weights this version can rebuild a model from.
    """
    from linesweep.run.data import make_split
    from linesweep.run.drawing import Drawing, run_caption
    from linesweep.run.model import build_model
    from linesweep.run.seeds import derive_seeds
    from linesweep.run.shapes import plan_cnn
    from linesweep.run.validation import to_train_config

    folder = Path(folder)
    if (folder / PLOTS).is_symlink():
        raise CannotDraw(f"{PLOTS}/ is a symbolic link; give the run folder it belongs to")
    lacking = missing(folder)
    if not lacking:
        return []
    try:
        cfg = to_train_config(OmegaConf.create(_config(folder)))
    except LinesweepError as err:
        raise CannotDraw(f"{CONFIG} is refused by this version: {err}") from None
    history = _history(folder) if "learning_curve" in lacking else []
    wanted = replace(
        cfg.plots,
        **{s: s in lacking and (s != "learning_curve" or bool(history)) for s in PICTURES},
    )
    plan = plan_cnn(cfg.model, cfg.data.image_size)
    model = build_model(cfg.model, plan, seed=0)  # every weight is then loaded from model.pt
    try:
        model.load_state_dict(read_weights(folder))  # weights_only, size-capped, no link
    except FileNotFoundError:
        raise CannotDraw(f"no {WEIGHTS}: the run saved no weights (it never trained)") from None
    except (OSError, ValueError, RuntimeError) as err:  # RuntimeError: another model's weights
        raise CannotDraw(f"{WEIGHTS} does not load ({_first_line(err)})") from None
    model.eval()
    train = make_split(cfg.data, cfg.data.N_images, derive_seeds(cfg.seed).train_data)
    caption = run_caption(folder.absolute(), _overrides(folder))  # as the run captioned its own
    return Drawing(folder / PLOTS, wanted, train, model, caption).finish(history)


def _config(folder: Path) -> dict[str, Any]:
    """The run's task config as plain data; CannotDraw for a missing, odd or interpolated one."""
    try:
        tree = load_yaml(read_text(folder / CONFIG, folder, YAML_CAP))
    except FileNotFoundError:
        raise CannotDraw(f"no {CONFIG}: not a run folder linesweep wrote") from None
    except (OSError, Unreadable) as err:
        raise CannotDraw(f"{CONFIG} is unreadable ({_first_line(err)})") from None
    if not isinstance(tree, dict):
        raise CannotDraw(f"{CONFIG} is not a mapping")
    task = {key: value for key, value in tree.items() if key != "hydra"}
    if "${" in json.dumps(task, default=str):  # resolving it could read this user's environment
        raise CannotDraw(f"{CONFIG} holds an interpolation (${{...}}), which is not resolved")
    return task


def _history(folder: Path) -> list[EpochMetrics]:
    """Replicate 0's epochs from metrics.csv (the plain run's); none when it cannot be read."""
    try:
        rows = read_metrics(folder, replicate=0)
    except (OSError, ValueError):
        return []
    names = [f.name for f in fields(EpochMetrics)]
    try:
        return [
            EpochMetrics(**{n: row[n] for n in names} | {"epoch": int(row["epoch"])})
            for row in rows
        ]
    except KeyError:  # an older layout without some column: no curve
        return []


def _overrides(folder: Path) -> list[str] | None:
    """The run's overrides for the pictures' caption, as Hydra recorded them."""
    try:
        overrides = load_yaml(read_text(folder / OVERRIDES, folder, YAML_CAP))
    except (OSError, Unreadable):
        return None
    ok = isinstance(overrides, list) and all(isinstance(o, str) for o in overrides)
    return overrides if ok else None


def _first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return lines[0][:200] if lines else type(err).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: draw each folder's missing pictures; exit status 2 if any folder could not."""
    parser = argparse.ArgumentParser(
        prog="python -m linesweep.draw",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("folders", nargs="+", type=Path, metavar="RUN_FOLDER")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    status = 0
    for folder in args.folders:
        try:
            written = draw(folder)
        except CannotDraw as err:
            print(f"error: {folder}: {err}", file=sys.stderr)
            status = 2
            continue
        if written:
            names = ", ".join(path.name for path in written)
            print(f"{folder}: drew {names} into {folder / PLOTS}/")
        left = [name for switch in missing(folder) for name in PICTURES[switch]]
        if left:  # only the learning curve can be: it is drawn from metrics.csv
            print(f"{folder}: not drawn: {', '.join(left)} (no readable {METRICS})")
        elif not written:
            print(f"{folder}: every picture is there already")
    return status


if __name__ == "__main__":
    sys.exit(main())
