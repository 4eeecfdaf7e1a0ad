"""A single run's faults, for real: a disk that fills up, a Ctrl-C in its first fraction of a
second. Each is one line and an exit status, never a traceback; the record never claims more
than happened."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from linesweep.core.errors import ConfigError
from linesweep.run.budget import check_population_fits, estimate
from linesweep.run.shapes import plan_cnn
from linesweep.run.validation import to_train_config
from tests.conftest import TINY
from tests.test_faults import file_size_limit

# ------------------------------------------------------------------ a full disk


@pytest.mark.slow
@pytest.mark.parametrize(
    ("limit", "overrides", "file"),
    [
        (600, ["plots=none"], ".hydra/config.yaml"),  # Hydra's first file
        (2500, ["plots=none"], ".hydra/hydra.yaml"),
        (16_000, ["plots=light"], "plots/learning_curve.png"),
        (9_000, ["plots=none", "trainer.epochs=100"], "metrics.csv"),  # mid-training
    ],
    ids=["config", "hydra", "figure", "metrics"],
)
def test_a_full_disk_during_a_run_is_one_line_naming_the_file(tmp_path, limit, overrides, file):
    run = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "-m", "linesweep.train", *TINY, *overrides, f"hydra.run.dir={run}"],
        cwd=tmp_path, capture_output=True, text=True, preexec_fn=file_size_limit(limit),
    )  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "Traceback" not in output and "Logging error" not in output
    errors = [line for line in output.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and f"could not write {run / file}: File too large" in errors[0]
    if (run / "summary.json").exists():  # the record says so, or there is none
        assert json.loads((run / "summary.json").read_text())["status"] == "failed"


# ------------------------------------------------------------------ the memory estimate


def test_a_batch_larger_than_the_data_is_estimated_as_the_images_there_are(compose_config):
    cfg = to_train_config(compose_config(*TINY, "trainer.batch_size=100000000"))
    plan = plan_cnn(cfg.model, cfg.data.image_size)
    whole = to_train_config(compose_config(*TINY, f"trainer.batch_size={cfg.data.N_images}"))
    sizes = [need.nbytes for need in estimate(cfg, plan)]
    assert sizes == [need.nbytes for need in estimate(whole, plan)]  # the batch is the data
    check_population_fits(cfg, plan, available=2**30)  # before: "needs about 1177 GiB"
    many = to_train_config(compose_config(*TINY, "trainer.batch_size=100000000", "replicates=64"))
    check_population_fits(many, plan, available=2**30)
    images = "data.N_images=40000000"  # too many for 1 GiB: refused, for the images there are
    huge = to_train_config(compose_config(*TINY, images, "trainer.batch_size=100000000"))
    exact = to_train_config(compose_config(*TINY, images, "trainer.batch_size=40000000"))
    with pytest.raises(ConfigError) as refused:
        check_population_fits(huge, plan, available=2**30)
    with pytest.raises(ConfigError) as counted:
        check_population_fits(exact, plan, available=2**30)
    assert (
        str(refused.value).split(" is not allowed")[1]
        == str(counted.value).split(" is not allowed")[1]
    )  # the same need: 40 million images, not 100 million


# ------------------------------------------------------------------ Ctrl-C at once

# Interrupts `python -m linesweep.train` a millisecond after it first does `event` (an audit
# event): moments of its first second that do not depend on the machine's speed. (Sent from a
# thread, as a terminal's Ctrl-C comes from outside: the main thread stops between two steps.)
EARLY = """
import os, runpy, signal, sys, threading, time
event, detail = sys.argv[1], sys.argv[2]
seen = threading.Event()
def interrupt():
    seen.wait()
    time.sleep(0.001)
    os.kill(os.getpid(), signal.SIGINT)
threading.Thread(target=interrupt, daemon=True).start()
def hook(name, args):
    if not seen.is_set() and name == event and detail in repr(args):
        seen.set()  # nothing that waits: the interrupt lands in linesweep's or Hydra's code
sys.addaudithook(hook)
sys.argv = ["linesweep.train", *sys.argv[3:]]
runpy.run_module("linesweep.train", run_name="__main__", alter_sys=True)
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    ("event", "detail"),
    [
        ("import", "'hydra'"),  # train.py's first import
        ("import", "'omegaconf"),
        ("import", "'linesweep.run.config'"),
        ("import", "'torch'"),  # cli(): the task's imports
        # (Not while Hydra reads a config file: its `finally: f.close()` turns a Ctrl-C inside
        # that `open` into an UnboundLocalError, and the run was seen to go on.)
        ("os.mkdir", "run"),  # the run folder made
        ("open", "summary.json"),  # the record started
        ("open", "shapes.yaml"),  # the model built
    ],
)
def test_ctrl_c_in_a_runs_first_moments_is_one_line_and_exit_130(tmp_path, event, detail):
    run = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "-c", EARLY, event, detail, *TINY, f"hydra.run.dir={run}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode == 130, output
    assert "Traceback" not in output and "Exception ignored" not in output
    assert output.strip().splitlines()[-1].endswith(f"interrupted by SIGINT{_where(run, output)}")


def _where(run: Path, output: str) -> str:
    """A run that had started says where it recorded the interrupt."""
    return f"; recorded in {run}" if "recorded in" in output else ""
