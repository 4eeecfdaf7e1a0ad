"""The command lines a user types: exit codes, messages, folders.

Each path runs as a real process at least once. A command refused in one line runs in this
process too (`train_in_process`: the same `cli()`, the same lines), where a process of its own
would spend two seconds starting up to print that line.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from linesweep.core.errors import ConfigError
from linesweep.plan import main as plan_main
from linesweep.run.overrides import check_command_line
from tests.conftest import ROOT, TINY, run_cli

pytestmark = pytest.mark.slow


def run_folders(cwd):
    return sorted(p for p in (cwd / "outputs" / "runs").glob("*/*") if p.is_dir())


def test_train_runs_and_leaves_one_folder_under_outputs(tmp_path):
    done = run_cli("linesweep.train", *TINY, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    (folder,) = run_folders(tmp_path)
    assert json.loads((folder / "summary.json").read_text())["status"] == "complete"
    assert (folder / ".hydra" / "config.yaml").exists() and (folder / "train.log").exists()
    assert "shape plan (one image)" in done.stderr and "epoch 2/2" in done.stderr


def train(process: bool, train_in_process):
    """The command as a real process, or in this one: the same exit status and lines."""
    if process:
        return lambda *args, cwd: run_cli("linesweep.train", *args, cwd=cwd)
    return train_in_process


PROCESS, IN_PROCESS = True, False


@pytest.mark.parametrize(
    ("override", "message", "process"),
    [
        ("model.conv2.kernel_size=9", "conv2: input 4x4 is smaller than the kernel 9x9", PROCESS),
        ("+model.out_3=4", "model.out_3=4 is not allowed: a key linesweep knows", IN_PROCESS),
        (
            "trainer.device=${oc.env:LINESWEEP_NO_SUCH_VARIABLE}",
            "trainer.device=${oc.env:",
            IN_PROCESS,
        ),
        (
            "model.conv1.padding=100000",
            "model.conv1.padding=100000 is not allowed: a run that",
            IN_PROCESS,
        ),
        (
            "plots=all plots.dpi=100000",
            "plots.dpi=100000 is not allowed: a run that fits in",
            IN_PROCESS,
        ),
        ("seed=-1", "seed=-1 is not allowed: an integer >= 0", IN_PROCESS),
    ],
)
def test_bad_input_exits_2_with_one_line_and_no_traceback(
    tmp_path, train_in_process, override, message, process
):
    command = train(process, train_in_process)
    done = command(*TINY, *override.split(), "model.conv1.stride=2", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    errors = [line for line in done.stderr.splitlines() if "[ERROR]" in line]
    assert len(errors) == 1 and message in errors[0]
    assert "Traceback" not in done.stderr + done.stdout
    (folder,) = run_folders(tmp_path)  # the refused run says so in its own folder
    assert json.loads((folder / "summary.json").read_text())["status"] in ("refused", "infeasible")


@pytest.mark.parametrize(
    ("override", "message", "process"),
    [
        (
            "hydra.run.dir=",
            "hydra.run.dir= is not allowed: a folder for the run's files",
            PROCESS,
        ),
        (
            "hparams_search=channels_lr",
            "add -m: python -m linesweep.train -m hparams_search=",
            IN_PROCESS,
        ),
        (
            "trainer.epochs=null",
            "trainer.epochs=null is not allowed: an integer, not null",
            IN_PROCESS,
        ),
        (  # Hydra: `field ... is not Optional`, five lines, exit 1
            "hydra.sweeper.population_size=null",
            "hydra.sweeper.population_size=null is not allowed: an integer, not null",
            IN_PROCESS,
        ),
        (  # a typo: one line naming the nearest keys, as a sweep's check says it
            "model.out1=3",
            "model.out1=3 is not allowed: a key of linesweep's config; the nearest: model.out_1",
            PROCESS,
        ),
        (
            "logger.tensorboard.subdir=x",
            "logger.tensorboard.subdir=x is not allowed: a setting of the tensorboard logger, "
            "which is off; turn it on with logger=tensorboard",
            PROCESS,
        ),
    ],
)
def test_refused_before_hydra_makes_a_folder(
    tmp_path, train_in_process, override, message, process
):
    done = train(process, train_in_process)(*TINY, override, cwd=tmp_path)
    assert done.returncode == 2 and message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []  # no folder, no file: not even in the current one


@pytest.mark.parametrize(
    ("arguments", "message", "process"),
    [
        (["model.out_1=four"], "model.out_1=four is not allowed: an integer", PROCESS),
        (["trainer.epochs=2.5"], "trainer.epochs=2.5 is not allowed: an integer", IN_PROCESS),
        (["data.p=high"], "data.p=high is not allowed: a number", IN_PROCESS),
        (
            ["trainer.shuffle=maybe"],
            "trainer.shuffle=maybe is not allowed: true or false",
            IN_PROCESS,
        ),
        (
            ["-m", "hparams_search=channels_lr", "hydra.sweeper.population_size=2.5"],
            "hydra.sweeper.population_size=2.5 is not allowed: an integer",
            IN_PROCESS,
        ),
        (
            ["-m", "hparams_search=channels_lr", "hydra.sweeper.n_jobs=two"],
            "hydra.sweeper.n_jobs=two is not allowed: an integer",
            IN_PROCESS,
        ),
        (
            ["-m", "hparams_search=channels_lr", "hydra.sweeper.preload=numpy"],
            "hydra.sweeper.preload=numpy is not allowed: a list; e.g. hydra.sweeper.preload=[numpy",
            PROCESS,
        ),
    ],
)
def test_a_value_its_key_cannot_hold_is_one_line_before_any_folder(
    tmp_path, train_in_process, arguments, message, process
):
    """Hydra's schema check says it in five lines with exit 1; a sweep's values are left alone.
    A run's and a sweep's refusal each run once as a real process, the others in this one."""
    done = train(process, train_in_process)(*arguments, cwd=tmp_path)
    assert done.returncode == 2 and message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("argument", "message"),
    [
        ("sampler.n_startup_trials=abc", "sampler.n_startup_trials=abc is not allowed: an integer"),
        ("sampler.seed=x", "sampler.seed=x is not allowed: an integer"),
        ("sampler.multivariate=maybe", "sampler.multivariate=maybe is not allowed: true or false"),
        ("pruner.percentile=high", "pruner.percentile=high is not allowed: a number"),
        ("pruner.n_warmup_steps=2.5", "pruner.n_warmup_steps=2.5 is not allowed: an integer"),
    ],
)
def test_a_sampler_or_pruner_argument_is_checked_against_the_options_that_take_it(
    argument, message
):
    """Whichever sampler or pruner the command line chooses, an argument every option types
    alike is checked like any key (Hydra would say it in five lines)."""
    with pytest.raises(ConfigError) as refused:
        check_command_line(["-m", f"hydra.sweeper.{argument}"])
    assert str(refused.value) == f"hydra.sweeper.{message}"


def test_a_sampler_argument_the_options_type_differently_is_left_to_the_sampler():
    check_command_line(["-m", "hydra.sweeper.sampler.independent_sampler=x"])  # Any: no check
    check_command_line(["-m", "hydra.sweeper.pruner.min_resource=auto"])  # Any in one option


def test_diverging_run_exits_3_and_is_recorded(tmp_path):
    done = run_cli("linesweep.train", *TINY, "optimizer=sgd", "optimizer.lr=1e30", cwd=tmp_path)
    assert done.returncode == 3
    assert "Traceback" not in done.stderr
    (folder,) = run_folders(tmp_path)
    assert json.loads((folder / "summary.json").read_text())["status"] == "diverged"


def test_cfg_job_prints_the_composed_config_without_running(tmp_path, train_in_process):
    done = train_in_process("model.out_1=4", "--cfg", "job", cwd=tmp_path)  # Hydra's own path
    assert done.returncode == 0
    assert "out_1: 4" in done.stdout and "N_images: 10000" in done.stdout
    assert not (tmp_path / "outputs").exists()


def test_help_lists_every_config_group_and_option(tmp_path, train_in_process):
    # In this process: the console scripts' test runs `linesweep-train --help` as a process.
    done = train_in_process("--help", cwd=tmp_path)
    assert done.returncode == 0
    for group in ("data", "model", "optimizer", "trainer", "plots", "experiment", "hparams_search"):
        options = ", ".join(sorted(p.stem for p in (ROOT / "conf" / group).glob("*.yaml")))
        listed = next(line for line in done.stdout.splitlines() if line.startswith(f"{group}: "))
        assert ", ".join(sorted(listed.split(": ", 1)[1].split("   ")[0].split(", "))) == options


def test_two_runs_with_the_same_time_stamp_never_share_a_folder(tmp_path):
    """The folder name ends in the process id: even an identical clock reading gives two folders."""
    same_time = "hydra.run.dir=outputs/runs/2026-01-01/00-00-00-000000_${linesweep.pid:}"
    command = [sys.executable, "-m", "linesweep.train", *TINY, same_time]
    procs = [
        subprocess.Popen(
            command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        for _ in range(2)
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    folders = run_folders(tmp_path)
    assert len(folders) == 2
    for folder in folders:  # each folder holds one whole run, not a mix of two
        summary = json.loads((folder / "summary.json").read_text())
        assert summary["status"] == "complete" and folder.name.endswith(f"_{summary['pid']}")


def test_plan_command_prints_the_plan_or_refuses(tmp_path, monkeypatch, capfd):
    done = run_cli("linesweep.plan", "model.out_2=3", cwd=tmp_path)
    assert done.returncode == 0
    assert "fc       Linear     147" in done.stdout
    assert "agree" in done.stdout
    monkeypatch.chdir(tmp_path)  # the refusal through the same main(), in this process
    assert plan_main(["model.conv1.stride=3", "model.conv2.kernel_size=4"]) == 2
    assert capfd.readouterr().err.strip() == (
        "error: conv2: input 3x3 is smaller than the kernel 4x4; use a smaller "
        "model.conv2.kernel_size or model.conv2.dilation, more model.conv2.padding, "
        "or a larger data.image_size"
    )
    assert not (tmp_path / "outputs").exists()


@pytest.mark.parametrize(
    "script", ["linesweep-train", "linesweep-plan", "linesweep-compare", "linesweep-draw"]
)
def test_the_console_scripts_answer_help(script, tmp_path):
    binary = Path(sys.executable).parent / script
    done = subprocess.run([binary, "--help"], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0 and "linesweep" in done.stdout


def test_a_basic_multirun_gives_each_job_its_own_folder_and_ends_with_the_best_and_compare(
    tmp_path,
):
    """Hydra's basic sweeper (no hydra/sweeper=linesweep): its default folder under outputs/."""
    done = run_cli("linesweep.train", "-m", *TINY, "model.out_1=1,2", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    (folder,) = (tmp_path / "outputs" / "multirun").glob("*/*")
    assert (folder / "multirun.yaml").exists()
    summaries = [json.loads((folder / job / "summary.json").read_text()) for job in ("0", "1")]
    assert {int(s["overrides"][-1].split("=")[1]) for s in summaries} == {1, 2}
    lines = done.stderr.splitlines()
    assert any(line.endswith("multirun: 2 runs (2 complete)") for line in lines)
    best = next(line for line in lines if "best val_accuracy=" in line)
    accuracies = [s["objective"]["values"][0] for s in summaries]
    assert f"best val_accuracy={max(accuracies):.4g}" in best and "model.out_1=" in best
    named = folder.relative_to(tmp_path)  # as Hydra's sweep.dir names it, from the current folder
    assert lines[-1].endswith(f"compare the runs: python -m linesweep.compare {named}")
