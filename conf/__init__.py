"""linesweep's Hydra configs; installed as the package linesweep.conf (see pyproject.toml)."""
