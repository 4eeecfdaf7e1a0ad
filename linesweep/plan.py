"""Print the shape plan of a config without training: python -m linesweep.plan [overrides]

    python -m linesweep.plan                                  # the notebook's model
    python -m linesweep.plan model.conv1.kernel_size=5 model.pool1.stride=2
    python -m linesweep.plan experiment=hard model.out_2=8

Takes the same overrides as `python -m linesweep.train`, composes the same config, prints every
layer's input and output shape and parameter count, and checks them against a real forward pass
of one blank image. Exit status 0: feasible and checked; 2: bad config or impossible architecture;
1: the plan disagrees with torch (a bug in linesweep).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from hydra import compose, initialize_config_module
from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException

from linesweep.core.errors import LinesweepError
from linesweep.run.config import register_configs
from linesweep.run.model import build_model, check_plan
from linesweep.run.seeds import derive_seeds
from linesweep.run.shapes import plan_cnn
from linesweep.run.validation import to_train_config


def describe(overrides: Sequence[str]) -> tuple[str, bool]:
    """The plan and its check for a composed config, as text, and whether torch agrees."""
    register_configs()
    with initialize_config_module("linesweep.conf", version_base="1.3", job_name="plan"):
        cfg = to_train_config(compose(config_name="train", overrides=list(overrides)))
    plan = plan_cnn(cfg.model, cfg.data.image_size)
    check = check_plan(build_model(cfg.model, plan, derive_seeds(cfg.seed).model_init), plan)
    verdict = (
        "checked against a forward pass: every shape and the parameter count agree"
        if check.agrees
        else "DISAGREES with a forward pass: " + "; ".join(check.mismatches())
    )
    text = f"{plan.table()}\n\nlinear layer input: {plan.flat_features} features\n{verdict}"
    return text, check.agrees


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    try:
        text, agrees = describe(args)
    except (LinesweepError, HydraException, OmegaConfBaseException) as err:
        print(f"error: {_one_line(err)}", file=sys.stderr)
        return 2
    print(text)
    return 0 if agrees else 1  # a disagreement is a bug in linesweep's arithmetic


def _one_line(err: BaseException) -> str:
    """The error and, for Hydra's composition errors, the reason it wraps (the wrong value)."""
    lines = str(err).splitlines()[:2]
    cause = err.__cause__
    if cause is not None and str(cause).splitlines():
        lines.append(str(cause).splitlines()[0])
    return " ".join(dict.fromkeys(line.strip() for line in lines if line.strip()))


if __name__ == "__main__":
    sys.exit(main())
