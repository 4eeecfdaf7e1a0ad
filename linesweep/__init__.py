"""linesweep: the lines-CNN notebook grown into a Hydra + Optuna experiment framework.

    import linesweep
    df = linesweep.load_runs("outputs/sweeps/channels_lr")  # a pandas DataFrame, one row per run
    configs = linesweep.load_configurations("outputs/sweeps/channels_lr")  # one per configuration

`load_runs` and `load_configurations` (each configuration's mean with its 95% interval, n and
success rate, as compare's answer judged it) are imported on first use, so `import linesweep`
stays light (no pandas, no torch).
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
LAZY = ("load_runs", "load_configurations")  # from linesweep.compare.dataframe, on first use
__all__ = ["__version__", "load_configurations", "load_runs"]


def __getattr__(name: str) -> Any:
    if name in LAZY:
        from linesweep.compare import dataframe

        return getattr(dataframe, name)
    raise AttributeError(f"module 'linesweep' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *LAZY])
