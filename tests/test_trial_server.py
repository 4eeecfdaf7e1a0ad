"""Trial processes fork from a server that imports torch while the sweep process composes.

The sweep process itself never imports torch; each trial process starts with the environment
the sweep had when it started it (not the server's, from earlier); Ctrl-C to the whole
terminal while the server still imports is one line, as it is without a server.
"""

from __future__ import annotations

import ast
import json
import logging
import multiprocessing
import multiprocessing.forkserver
import multiprocessing.popen_forkserver
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from linesweep.sweep import trial_server
from linesweep.sweep.workers import enter_child, start
from tests import process_tree

pytestmark = pytest.mark.skipif(not trial_server.AVAILABLE, reason="no fork server here")

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ["hparams_search=channels_lr", "experiment=smoke", "hydra.sweeper.n_trials=2"]


@pytest.mark.slow
def test_the_sweep_process_never_imports_torch_its_trials_do(tmp_path):
    folder = tmp_path / "sweep"
    code = (
        "import sys; from linesweep.train import cli; "
        f"sys.argv = ['linesweep.train', '-m', *{SMOKE!r}, 'hydra.sweep.dir={folder}']; "
        "cli(); print('torch imported here:', 'torch' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "torch imported here: False" in done.stdout
    assert "2 of 2 trials finished (2 complete)" in done.stderr
    assert (folder / "0" / "model.pt").is_file()  # a trial's process trained it, with torch


def _report_variable(alive, results, environment) -> None:
    enter_child(alive, environment)
    results.send(os.environ.get("LINESWEEP_TEST_SET_LATER"))


def _trial():
    """A trial process on the server, not started: (process, its results, the sweep's end of
    the pipe whose closing ends it). It reports LINESWEEP_TEST_SET_LATER as it saw it."""
    context = multiprocessing.get_context("forkserver")
    results, child_results = context.Pipe(duplex=False)
    child_alive, alive = context.Pipe(duplex=False)
    process = context.Process(
        target=_report_variable, args=(child_alive, child_results, dict(os.environ))
    )
    return process, results, alive


def test_a_trial_sees_the_environment_the_sweep_had_when_it_started_it(monkeypatch):
    trial_server.warm([])
    monkeypatch.setenv("LINESWEEP_TEST_SET_LATER", "set after the server started")
    process, results, alive = _trial()
    process.start()
    assert results.poll(60)
    assert results.recv() == "set after the server started"
    alive.close()  # the trial's sweep has gone: it ends
    process.join(timeout=30)
    assert process.exitcode is not None


PROBE = """
import multiprocessing, sys
from linesweep.sweep import trial_server
from tests import fork_server_probe
trial_server.warm(["tests.fork_server_probe"])
context = multiprocessing.get_context("forkserver")
results, child_results = context.Pipe(duplex=False)
trial = context.Process(target=fork_server_probe.report, args=(child_results,))
trial.start()
print(results.recv())
trial.join()
"""


def test_a_trial_collects_its_own_garbage_and_never_walks_what_the_server_imported():
    done = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    seen = ast.literal_eval(done.stdout.strip())
    assert seen["enabled"]  # the trial's own cycles are freed
    assert seen["frozen"] > 1000  # the server's imports: in the permanent generation, never walked
    assert not seen["import_garbage_kept"]  # garbage its imports left: freed, not frozen for good
    assert seen["its_child"] == "off"  # a trial that forks passes on its own setting


def test_the_servers_collector_module_changes_nothing_outside_a_server():
    code = "import gc, linesweep.sweep.server_gc; print(gc.isenabled(), gc.get_freeze_count())"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["True", "0"], done.stderr


@pytest.mark.slow
def test_ctrl_c_to_the_terminal_while_the_server_imports_is_one_line(tmp_path):
    command = [
        sys.executable, "-m", "linesweep.train", "-m", *SMOKE, f"hydra.sweep.dir={tmp_path / 's'}",
    ]  # fmt: skip
    # Its own process group, signalled whole as a terminal's Ctrl-C is: the server too, which
    # is still importing torch half a second in.
    sweep = subprocess.Popen(
        command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    time.sleep(0.5)
    os.killpg(sweep.pid, signal.SIGINT)
    output, _ = sweep.communicate(timeout=60)
    assert "Traceback" not in output and "KeyboardInterrupt" not in output, output
    assert sweep.returncode == 128 + signal.SIGINT, output
    assert output.strip().splitlines()[-1].endswith("interrupted by SIGINT"), output


@pytest.mark.slow
def test_sigterm_to_the_whole_group_mid_population_interrupts_every_member(tmp_path):
    # systemd, docker stop or `kill -TERM -<pgid>` signal every process: the server too, which
    # must not die under its running trials and have them taken for killed (alone, it ignores
    # SIGTERM: it ends with the sweep).
    folder = tmp_path / "sweep"
    command = [
        sys.executable, "-m", "linesweep.train", "-m", "hydra/sweeper=linesweep",
        "experiment=smoke", "plots=none", "hydra.sweeper.sampler.seed=0",
        "hydra.sweeper.executor=population", "hydra.sweeper.n_jobs=1",
        "hydra.sweeper.population_size=2", "hydra.sweeper.n_trials=2",
        "data.N_images=2000", "trainer.batch_size=10", "trainer.epochs=500",
        "optimizer.lr=tag(log,interval(1e-3,1e-1))", f"hydra.sweep.dir={folder}",
    ]  # fmt: skip
    sweep = subprocess.Popen(
        command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not all((folder / str(n) / "metrics.csv").exists() for n in range(2)):
        assert time.monotonic() < deadline and sweep.poll() is None, "no population trained"
        time.sleep(0.05)
    server = process_tree.trial_server(sweep.pid)
    os.kill(server, signal.SIGTERM)  # alone: nothing happens
    time.sleep(0.5)
    assert sweep.poll() is None and process_tree.children(server), (
        "the server or its trial went away"
    )
    os.killpg(sweep.pid, signal.SIGTERM)
    output, _ = sweep.communicate(timeout=60)
    assert sweep.returncode == 128 + signal.SIGTERM, output
    assert "killed" not in output and "Traceback" not in output, output
    for n in range(2):
        assert f"trial {n} interrupted" in output, output
        assert json.loads((folder / str(n) / "summary.json").read_text())["status"] == "interrupted"
    with pytest.raises(ProcessLookupError):  # nothing is left: no trial, no server
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            os.killpg(sweep.pid, 0)
            time.sleep(0.1)


def test_the_sweep_commands_that_start_the_server_early():
    from linesweep.train import _sweeps

    assert _sweeps(["-m", "hparams_search=channels_lr"])
    assert _sweeps(["--multirun", "hydra/sweeper=linesweep", "model.out_1=1,2"])
    assert not _sweeps(["hparams_search=channels_lr"])  # one run: it imports torch itself
    assert not _sweeps(["-m", "model.out_1=1,2"])  # Hydra's basic sweeper runs jobs in-process
    assert not _sweeps(["-m", "hydra/sweeper=basic", "model.out_1=1,2"])
    assert not _sweeps(["-m", "hparams_search=channels_lr", "hydra/launcher=joblib"])
    assert not _sweeps(["-m", "hparams_search=channels_lr", "hydra.sweeper.executor=launcher"])


def test_the_server_is_not_started_from_a_thread_other_than_the_main_one(monkeypatch):
    started = []
    monkeypatch.setattr(trial_server, "_alive", lambda pid: False)  # as if none ran yet
    monkeypatch.setattr(
        multiprocessing.forkserver, "ensure_running", lambda: started.append(True), raising=True
    )
    thread = threading.Thread(target=trial_server.warm, args=([],))
    thread.start()
    thread.join()
    assert started == []  # signals cannot be set there: the first trial starts it instead
    trial_server.warm([])
    assert started == [True]


def test_a_server_that_died_comes_back_ignoring_the_signals_again():
    trial_server.warm([])
    server = multiprocessing.forkserver._forkserver._forkserver_pid
    os.kill(server, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while os.waitid(os.P_PID, server, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    trial_server.ensure_running()  # as each trial's start does
    again = multiprocessing.forkserver._forkserver._forkserver_pid
    assert again != server
    ignored = int(_status(again)["SigIgn"], 16)
    assert all(ignored & (1 << (s - 1)) for s in (signal.SIGINT, signal.SIGTERM))


def _status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return dict(line.split(":\t", 1) for line in lines if ":\t" in line)


def test_a_server_stopped_by_a_signal_is_continued_while_a_trial_start_waits_on_it(caplog):
    """`kill -STOP` of the server would leave the next trial's start waiting for ever; the
    sweep's watch continues it (and so wherever else the sweep waits on it)."""
    caplog.set_level(logging.WARNING)
    trial_server.warm([])
    server = multiprocessing.forkserver._forkserver._forkserver_pid
    process, results, alive = _trial()
    said = f"the trial server (pid {server}) was stopped by a signal; continued it"
    os.kill(server, signal.SIGSTOP)
    try:
        starting = threading.Thread(target=process.start)
        starting.start()  # on the stopped server, unless the watch has continued it already
        starting.join(timeout=30)
        assert not starting.is_alive(), "the trial's start waits on a stopped server"
        assert results.poll(30)
        alive.close()
        process.join(timeout=30)
        deadline = time.monotonic() + 10  # the watch looks every WATCH_S
        while said not in caplog.text:
            assert time.monotonic() < deadline, caplog.text
            time.sleep(0.05)
    finally:
        os.kill(server, signal.SIGCONT)  # without the watch: lets the start end


def test_a_signal_that_comes_while_the_server_starts_is_delivered_after():
    # In a process of its own, with one thread, as the command is when it starts the server.
    code = """
import multiprocessing.forkserver as forkserver, os, signal
from linesweep.sweep import trial_server
real = forkserver.ensure_running
forkserver.ensure_running = lambda: (os.kill(os.getpid(), signal.SIGTERM), real())
seen = []
signal.signal(signal.SIGTERM, lambda *_: seen.append("SIGTERM"))
trial_server.warm([])
print("seen:", seen)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "seen: ['SIGTERM']" in done.stdout  # held, then delivered: not lost while ignored


def test_a_start_the_server_broke_off_by_dying_is_made_once_more_on_a_new_server():
    """The server killed while a trial's job is sent to it: the start breaks with a
    BrokenPipeError, which the sweep used to take for its storage failing."""
    trial_server.warm([])
    server = multiprocessing.forkserver._forkserver._forkserver_pid
    process, results, alive = _trial()
    launch = multiprocessing.popen_forkserver.Popen._launch
    calls = []

    def killed_while_sent(popen, process_obj):
        calls.append(1)
        if len(calls) == 1:  # the first start: the server dies as the job is sent
            os.kill(server, signal.SIGKILL)
            raise BrokenPipeError(32, "Broken pipe")
        return launch(popen, process_obj)

    multiprocessing.popen_forkserver.Popen._launch = killed_while_sent
    try:
        start(process)
    finally:
        multiprocessing.popen_forkserver.Popen._launch = launch
    assert results.poll(60)  # the trial started and reported
    assert multiprocessing.forkserver._forkserver._forkserver_pid != server
    alive.close()
    process.join(timeout=30)
