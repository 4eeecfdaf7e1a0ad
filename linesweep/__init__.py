"""linesweep: the lines-CNN notebook grown into a Hydra + Optuna experiment framework."""

__version__ = "0.1.0"
