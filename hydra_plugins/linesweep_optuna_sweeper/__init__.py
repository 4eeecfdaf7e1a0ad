"""linesweep's Optuna sweeper for Hydra (select it with hydra/sweeper=linesweep)."""
