"""A run's files are its own: nothing written through a link planted before it, no folder that
holds another run reused unless asked, and what `overwrite=true` clears is exactly that run."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from linesweep.core.files import NotOwnPath, RunLogHandler, atomic_write_text, make_folder
from linesweep.core.storage import JOURNAL_NAME
from linesweep.sweep.journal import _backup
from tests.conftest import ROOT, TINY

TINY_RUN = [*TINY, "replicates=2", "plots=light"]  # writes every name: plots/, replicates/


@pytest.fixture
def run_in_process(hydra_restore_singletons, capfd):
    """run_in_process(folder, *overrides) -> (exit status, stderr): `python -m linesweep.train`
    in this process, callbacks included (the checks before Hydra writes)."""
    from hydra._internal.hydra import Hydra
    from hydra.core.global_hydra import GlobalHydra

    import linesweep.train
    from linesweep.run.config import register_configs

    def _run(folder: Path, *overrides: str) -> tuple[int, str]:
        register_configs()
        GlobalHydra.instance().clear()
        app = Hydra.create_main_hydra_file_or_module(
            calling_file=str(ROOT / "linesweep" / "train.py"),
            calling_module=None,
            config_path="pkg://linesweep.conf",
            job_name="train",
        )
        code = 0
        try:
            app.run(
                config_name="train",
                task_function=linesweep.train.main.__wrapped__,
                overrides=[*overrides, f"hydra.run.dir={folder}"],
                with_log_configuration=False,
            )
        except SystemExit as stop:
            code = stop.code
        finally:
            GlobalHydra.instance().clear()
        return code, capfd.readouterr().err

    return _run


def snapshot(folder: Path) -> dict[str, tuple[bytes | str, int]]:
    """Every entry below `folder`, links not followed: its content (or link text) and mtime."""
    found = {}
    for path in sorted(folder.rglob("*")):
        info = os.lstat(path)
        if path.is_symlink():
            found[str(path.relative_to(folder))] = (os.readlink(path), info.st_mtime_ns)
        elif path.is_file():
            found[str(path.relative_to(folder))] = (path.read_bytes(), info.st_mtime_ns)
        else:
            found[str(path.relative_to(folder))] = ("folder", 0)
    return found


@pytest.fixture
def victims(tmp_path):
    """A file and a folder outside the run that a planted link points at: neither may change."""
    file, folder = tmp_path / "victim.txt", tmp_path / "victim-folder"
    file.write_text("precious\n")
    folder.mkdir()
    yield file, folder
    assert file.read_text() == "precious\n"
    assert list(folder.iterdir()) == []


# name in the run folder, what the planted link points at
PLANTED = [
    ("train.log", "file"),
    (".hydra", "folder"),
    (".hydra/config.yaml", "file"),
    (".hydra/hydra.yaml", "file"),
    ("plots", "folder"),
    ("replicates", "folder"),
    ("summary.json", "file"),
    ("metrics.csv", "file"),
    ("model.pt", "file"),
]


def plant(run: Path, name: str, target: Path) -> Path:
    link = run / name
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target)
    return link


@pytest.mark.parametrize(("name", "kind"), PLANTED, ids=[n for n, _ in PLANTED])
def test_a_link_planted_where_a_run_writes_is_refused_in_one_line_naming_it(
    run_in_process, tmp_path, victims, name, kind
):
    run = tmp_path / "run"
    link = plant(run, name, victims[0] if kind == "file" else victims[1])
    before = snapshot(run)
    code, err = run_in_process(run, *TINY_RUN)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: hydra.run.dir=")
    assert f"{link} is a symbolic link to" in err
    assert snapshot(run) == before  # nothing written, the link left as it was


@pytest.mark.slow
@pytest.mark.parametrize(("name", "kind"), PLANTED, ids=[n for n, _ in PLANTED])
def test_overwrite_replaces_a_planted_link_without_following_it(
    run_in_process, tmp_path, victims, name, kind
):
    run = tmp_path / "run"
    link = plant(run, name, victims[0] if kind == "file" else victims[1])
    # plots and replicates written only where a link was planted at them: a faster run
    writes = TINY_RUN if name in ("plots", "replicates") else TINY
    code, err = run_in_process(run, *writes, "overwrite=true")
    assert code == 0, err
    assert not link.is_symlink()  # removed, never followed
    # the run's own file or folder now (in-process, Hydra opens no log file)
    assert link.exists() or name == "train.log"
    assert json.loads((run / "summary.json").read_text())["status"] == "complete"


def test_a_run_folder_that_is_a_link_is_refused(run_in_process, tmp_path, victims):
    run = tmp_path / "run"
    run.symlink_to(victims[1])
    code, err = run_in_process(run, *TINY)
    assert code == 2 and err.count("\n") == 1
    assert f"hydra.run.dir={run} is not allowed: a folder of the run's own, and it is a " in err


def test_a_fifo_where_a_run_writes_is_refused_and_nothing_waits_on_it(run_in_process, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    os.mkfifo(run / "train.log")
    code, err = run_in_process(run, *TINY, "overwrite=true")  # overwrite deletes no FIFO
    assert code == 2 and f"{run / 'train.log'} is a FIFO" in err


def test_a_plots_path_that_is_a_file_is_refused_before_training(run_in_process, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "plots").write_text("not a folder")
    for extra in ([], ["overwrite=true"]):
        code, err = run_in_process(run, *TINY, "plots=light", *extra)
        assert code == 2 and f"{run / 'plots'} is a file" in err
    assert sorted(p.name for p in run.iterdir()) == ["plots"]  # no training, no record


def test_the_log_handler_never_opens_a_link_or_a_fifo(tmp_path, victims):
    """The last line of defence, for a link planted after the checks: the kernel refuses it."""
    link = tmp_path / "train.log"
    link.symlink_to(victims[0])
    with pytest.raises(NotOwnPath, match="is a symbolic link to"):
        RunLogHandler(str(link))
    fifo = tmp_path / "fifo.log"
    os.mkfifo(fifo)
    with pytest.raises(NotOwnPath, match="is a FIFO"):
        RunLogHandler(str(fifo))  # without O_NONBLOCK this would wait for a reader forever
    handler = RunLogHandler(str(tmp_path / "own.log"))
    handler.emit(logging.LogRecord("x", logging.INFO, "", 0, "a line", None, None))
    handler.close()
    assert (tmp_path / "own.log").read_text().strip() == "a line"


def test_folders_and_files_are_made_anew_never_through_a_link(tmp_path, victims):
    link = tmp_path / "plots"
    link.symlink_to(victims[1])
    with pytest.raises(NotOwnPath, match="is a symbolic link"):
        make_folder(link)
    assert make_folder(tmp_path / "real") == tmp_path / "real"  # and again: a real folder is fine
    assert make_folder(tmp_path / "real").is_dir()
    planted = tmp_path / "summary.json"
    planted.symlink_to(victims[0])
    atomic_write_text(planted, "{}")  # renamed over the link: the link is replaced
    assert not planted.is_symlink() and planted.read_text() == "{}"


def test_a_journal_backup_never_follows_a_link_at_its_name(tmp_path, victims):
    journal = tmp_path / JOURNAL_NAME
    journal.write_bytes(b"{}\n")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for name in (stamp, time.strftime("%Y%m%d-%H%M%S", time.localtime(time.time() + 1))):
        (tmp_path / f"{JOURNAL_NAME}.backup-{name}").symlink_to(victims[0])
    backup = _backup(journal, journal.read_bytes())
    assert not backup.is_symlink() and backup.read_bytes() == b"{}\n"


# ------------------------------------------------------------------ a folder holding another run


def test_a_folder_holding_another_run_is_refused_and_left_exactly_as_it_was(
    run_in_process, tmp_path
):
    run = tmp_path / "run"
    assert run_in_process(run, *TINY_RUN)[0] == 0
    before = snapshot(run)
    code, err = run_in_process(run, *TINY, "model.out_1=3")
    assert code == 2 and err.count("\n") == 1
    assert "holds another run (summary.json, metrics.csv, shapes.yaml, model.pt, plots" in err
    assert "add overwrite=true to replace that run" in err
    assert snapshot(run) == before  # not even .hydra/ or train.log touched


def test_overwrite_with_a_config_that_is_refused_leaves_the_old_run(run_in_process, tmp_path):
    run = tmp_path / "run"
    assert run_in_process(run, *TINY_RUN)[0] == 0
    before = snapshot(run)
    for bad in ("data.p=1.5", "model.conv1.kernel_size=40", "data.N_images=400000000"):
        code, err = run_in_process(run, *TINY, "overwrite=true", bad)
        assert code == 2 and err.count("\n") == 1, err
        assert snapshot(run) == before, bad


def test_overwrite_clears_exactly_what_the_old_run_wrote(run_in_process, tmp_path):
    run = tmp_path / "run"
    assert run_in_process(run, *TINY_RUN)[0] == 0  # replicates/, plots/
    old = json.loads((run / "summary.json").read_text())["seeds"]
    (run / "notes.txt").write_text("mine")  # not a run's: kept
    code, err = run_in_process(run, *TINY, "overwrite=true", "seed=7")
    assert code == 0, err
    assert sorted(p.name for p in run.iterdir()) == sorted(
        [".hydra", "metrics.csv", "model.pt", "notes.txt", "shapes.yaml", "summary.json"]
    )  # no stale replicates/ or plots/ beside the new run (plots=none, no replicates)
    assert json.loads((run / "summary.json").read_text())["seeds"] != old  # the new run's
    assert "seed: 7" in (run / ".hydra" / "config.yaml").read_text()
    (run / "plots").mkdir()
    (run / "plots" / "mine.txt").write_text("mine")  # no run writes this
    code, err = run_in_process(run, *TINY, "overwrite=true")
    assert code == 2 and f"{run / 'plots' / 'mine.txt'} is a file that no run writes" in err


def test_overwrite_never_clears_a_folder_that_holds_no_run(run_in_process, tmp_path):
    project = tmp_path / "project"  # files with a run's names, but no run's record
    (project / "plots").mkdir(parents=True)
    (project / "model.pt").write_bytes(b"my weights")
    (project / "plots" / "figure.png").write_bytes(b"my figure")
    before = snapshot(project)
    code, err = run_in_process(project, *TINY, "overwrite=true")
    assert code == 2 and "holds model.pt, plots but no run's record" in err
    assert snapshot(project) == before


@pytest.mark.slow
def test_a_reused_multirun_folder_is_refused_and_overwrite_clears_its_jobs(
    tmp_path, train_in_process
):
    folder = tmp_path / "multi"
    command = ["-m", *TINY, "model.out_1=1,2", f"hydra.sweep.dir={folder}"]
    assert train_in_process(*command, cwd=tmp_path).returncode == 0  # the command, in-process
    again = train_in_process(*command, cwd=tmp_path)
    assert again.returncode == 2 and "Traceback" not in again.stderr
    assert f"hydra.sweep.dir={folder / '0'} is not allowed" in again.stderr
    assert "holds another run" in again.stderr
    done = train_in_process(*command, "overwrite=true", cwd=tmp_path)
    assert done.returncode == 0, done.stderr


@pytest.mark.slow
def test_an_interrupted_overwrite_never_reports_the_old_runs_epochs(tmp_path, train_in_process):
    run = tmp_path / "run"
    # The old run through cli() in this process; the overwrite that is interrupted, a process.
    first = train_in_process(*TINY, "trainer.epochs=3", f"hydra.run.dir={run}", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert json.loads((run / "summary.json").read_text())["epochs_run"] == 3
    slow = ["data.N_images=50000", "trainer.batch_size=10", "trainer.epochs=1"]  # a long epoch
    second = subprocess.Popen(
        [sys.executable, "-m", "linesweep.train", *TINY, *slow, "overwrite=true",
         f"hydra.run.dir={run}"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip

    def training() -> bool:
        try:
            summary = json.loads((run / "summary.json").read_text())
        except (OSError, ValueError):
            return False
        return summary["pid"] == second.pid  # written as the new run starts

    deadline = time.monotonic() + 120
    while not training() and second.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    second.send_signal(signal.SIGINT)
    output, _ = second.communicate(timeout=60)
    assert second.returncode == 130, output
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "interrupted"
    assert summary["epochs_run"] is None and not summary["final"]  # not the old run's 3 epochs
    assert not (run / "metrics.csv").exists()


@pytest.mark.slow
def test_planted_links_through_the_command_line_leave_their_targets_alone(
    tmp_path, victims, train_in_process
):
    """The whole command (its cli(), in this process), Hydra's log file and .hydra/ included,
    with overwrite=true."""
    run = tmp_path / "run"
    for name, kind in PLANTED:
        if name.startswith(".hydra/"):
            continue  # .hydra itself is a link here
        plant(run, name, victims[0] if kind == "file" else victims[1])
    refused = train_in_process(*TINY_RUN, f"hydra.run.dir={run}", cwd=tmp_path)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    done = train_in_process(*TINY_RUN, "overwrite=true", f"hydra.run.dir={run}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert not any(p.is_symlink() for p in run.rglob("*"))
    assert (run / "train.log").read_text().count("run complete") == 1


def test_a_sweep_refuses_links_at_its_journal_its_locks_and_its_trial_folders(
    sweep_in_process, tmp_path, victims
):
    cases = {
        JOURNAL_NAME: victims[0],
        f"{JOURNAL_NAME}.slots.lock": victims[0],
        ".plans": victims[1],
        "0": victims[1],  # the first trial's folder: a link to an empty folder
    }
    for name, target in cases.items():
        folder = tmp_path / name.replace(".", "_")
        folder.mkdir()
        (folder / name).symlink_to(target)
        with pytest.raises(SystemExit) as stop:
            sweep_in_process(folder, "hydra.sweeper.n_trials=1")
        assert stop.value.code == 2, name
        assert (folder / name).is_symlink(), name  # refused, left as it was
        if name == ".plans":  # refused before the study is created
            assert not (folder / JOURNAL_NAME).exists(), name
    planted = tmp_path / "planted-sweep"  # the sweep's folder itself
    planted.symlink_to(victims[1])
    with pytest.raises(SystemExit) as stop:
        sweep_in_process(planted, "hydra.sweeper.n_trials=1")
    assert stop.value.code == 2
