"""What `pip install .` (not editable) gives a user: every module and config, and a run."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_wheel_carries_the_configs_and_trains_from_another_folder(tmp_path):
    pip = [sys.executable, "-m", "pip"]
    subprocess.run(
        [*pip, "wheel", str(ROOT), "--no-deps", "-q", "-w", str(tmp_path / "dist")],
        check=True, capture_output=True,
    )  # fmt: skip
    wheel = next((tmp_path / "dist").glob("linesweep-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    configs = {
        f"linesweep/conf/{p.relative_to(ROOT / 'conf')}" for p in (ROOT / "conf").rglob("*.yaml")
    }
    assert configs <= names and "linesweep/conf/train.yaml" in names
    sources = (ROOT / "linesweep").rglob("*")
    modules = {str(p.relative_to(ROOT)) for p in sources if p.suffix in (".py", ".c")}
    assert modules <= names  # pyproject.toml's package list names every package in the tree

    # Installed on its own, first on the path, and run from a folder with no source tree.
    site = tmp_path / "site"
    subprocess.run(
        [*pip, "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
        check=True, capture_output=True,
    )  # fmt: skip
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}
    done = subprocess.run(
        [sys.executable, "-m", "linesweep.train", "experiment=smoke", "plots=none",
         "trainer.epochs=1", "hydra.run.dir=run"],
        cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert (elsewhere / "run" / "summary.json").exists()
    swept = subprocess.run(
        [sys.executable, "-m", "linesweep.train", "-m", "hydra/sweeper=linesweep",
         "hydra.sweeper.n_trials=1", "experiment=smoke", "plots=none", "hydra.sweep.dir=study"],
        cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert swept.returncode == 0, swept.stderr[-2000:]  # the sweeper plugin is found too
    assert (elsewhere / "study" / "trials.csv").exists()
    where = subprocess.run(
        [sys.executable, "-c", "import linesweep.conf; print(linesweep.conf.__file__)"],
        cwd=elsewhere, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert where.stdout.strip().startswith(str(site))  # the wheel's copy, not the source tree
