"""linesweep: the lines-CNN notebook grown into a Hydra + Optuna experiment framework.

    import linesweep
    df = linesweep.load_runs("outputs/sweeps/channels_lr")  # a pandas DataFrame, one row per run

`load_runs` is imported on first use, so `import linesweep` stays light (no pandas, no torch).
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["__version__", "load_runs"]


def __getattr__(name: str) -> Any:
    if name == "load_runs":
        from linesweep.compare.dataframe import load_runs

        return load_runs
    raise AttributeError(f"module 'linesweep' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), "load_runs"])
