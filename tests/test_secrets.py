"""A storage password never reaches a file, a log line, an error or a report, on any path:
a database that cannot be reached, one lost mid-trial, Hydra's own saved configs.

The in-process tests need no server (a closed port fails every connection). The PostgreSQL ones
start a throwaway server (see test_postgres.py) and run the real command line against it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml
from optuna.exceptions import StorageInternalError

from linesweep.core.errors import LinesweepError
from linesweep.core.storage import (
    PASSWORD_VAR,
    mask_secrets,
    password_of,
    redact_logs,
    shown_url,
    with_password,
    without_password,
)
from linesweep.core.trial_link import TrialContext, TrialLink
from linesweep.run.task import run
from linesweep.sweep.telling import storage_errors
from tests.conftest import TINY
from tests.test_faults import FAST, SLOW, running_trial, wait_for
from tests.test_postgres import server_binary

PASSWORD = "Sw0rdf1sh-7f3a"  # recognisable anywhere it might leak
# Twice SLOW's epochs: trial 1 still trains while pg_ctl stops the database under it.
SLOWER = [*(a for a in SLOW if not a.startswith("trainer.epochs=")), "trainer.epochs=25"]
UNREACHABLE = f"postgresql://nobody:{PASSWORD}@127.0.0.1:1/none"  # a closed port


def files_holding(folder: Path, text: str) -> list[Path]:
    """Every file under `folder` whose bytes contain `text`."""
    return [p for p in folder.rglob("*") if p.is_file() and text.encode() in p.read_bytes()]


def test_urls_lose_and_regain_their_password_and_mask_it_in_any_form():
    url = "postgresql://user:p%40ss:w@db-host:5432/study?host=/tmp/sock"
    assert mask_secrets(f"{url} and p@ss:w", url) == (
        "postgresql://user:***@db-host:5432/study?host=/tmp/sock and ***"
    )
    bare = without_password(url)
    assert "p%40ss" not in bare and "p@ss" not in bare
    assert with_password(bare, "p@ss:w").startswith("postgresql://user:p%40ss%3Aw@db-host")
    assert shown_url(url) == "postgresql://user:***@db-host:5432/study?host=%2Ftmp%2Fsock"


def test_a_journal_file_has_no_password_and_loads_no_sqlalchemy(monkeypatch, tmp_path):
    """A sweep on a journal file reads its storage without SQLAlchemy (0.2 s to import), and
    counts SQLAlchemy's errors as a storage failure once a database storage has loaded it."""
    import sqlalchemy.exc

    assert sqlalchemy.exc.SQLAlchemyError in storage_errors()
    monkeypatch.setitem(sys.modules, "sqlalchemy.engine", None)  # importing it fails now
    monkeypatch.setitem(sys.modules, "sqlalchemy.exc", None)
    journal = str(tmp_path / "optuna_journal.log")
    assert (
        password_of(journal) is None and mask_secrets(f"at {journal}", journal) == f"at {journal}"
    )
    assert storage_errors() == (OSError, json.JSONDecodeError, StorageInternalError)


def test_log_records_are_masked_whoever_logs_them(caplog):
    redact_logs(UNREACHABLE)
    try:
        raise RuntimeError(f"could not connect to {UNREACHABLE}")
    except RuntimeError:
        logging.getLogger("some.driver").error("lost %s", UNREACHABLE, exc_info=True)
    assert PASSWORD not in caplog.text and "nobody:***@127.0.0.1" in caplog.text
    assert "RuntimeError: could not connect to postgresql://nobody:***@" in caplog.text


def test_a_storage_that_cannot_be_reached_never_shows_its_password(
    sweep_in_process, tmp_path, capfd, caplog
):
    with pytest.raises(SystemExit) as stop:
        sweep_in_process(tmp_path, f"hydra.sweeper.storage='{UNREACHABLE}'")
    assert stop.value.code == 2
    output = caplog.text + "".join(capfd.readouterr())
    assert "hydra.sweeper.storage=postgresql://nobody:***@127.0.0.1:1/none is not allowed" in output
    assert PASSWORD not in output
    assert files_holding(tmp_path, PASSWORD) == []
    assert PASSWORD_VAR not in os.environ  # handed to trials for the sweep's duration only


def test_a_storage_lost_mid_trial_fails_the_run_in_one_line_without_its_password(
    compose_config, tmp_path, monkeypatch
):
    """The run trains, then reports its first epoch to a database that is gone."""
    monkeypatch.setenv(PASSWORD_VAR, PASSWORD)  # as the sweep process hands it to its trials
    link = TrialLink(TrialContext(storage=without_password(UNREACHABLE), study_name="s", number=0))
    with pytest.raises(LinesweepError) as failed:
        run(compose_config(*TINY), tmp_path, trial=link)
    message = str(failed.value)
    assert message.startswith("the study's storage failed at epoch 1: ")
    assert "\n" not in message and PASSWORD not in message
    summary = yaml.safe_load((tmp_path / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["error"] == message
    assert files_holding(tmp_path, PASSWORD) == []


def test_a_storage_url_from_the_environment_is_saved_unresolved(
    sweep_in_process, tmp_path, monkeypatch
):
    """Hydra saves each trial's config as written: `${oc.env:...}` keeps the URL out of it."""
    journal = tmp_path / "elsewhere" / "study.log"
    journal.parent.mkdir()
    monkeypatch.setenv("LINESWEEP_STORAGE", str(journal))
    folder = tmp_path / "sweep"
    sweep_in_process(
        folder, "hydra.sweeper.n_trials=1", "hydra.sweeper.storage=${oc.env:LINESWEEP_STORAGE}"
    )
    assert journal.exists()  # the study went where the variable said
    saved = [folder / "multirun.yaml", *(folder / "0" / ".hydra").glob("*.yaml")]
    hydra_yaml = (folder / "0" / ".hydra" / "hydra.yaml").read_text()
    assert "storage: ${oc.env:LINESWEEP_STORAGE}" in hydra_yaml
    assert "storage: ${oc.env:LINESWEEP_STORAGE}" in (folder / "multirun.yaml").read_text()
    assert all(f"storage: {journal}" not in p.read_text() for p in saved)


# ------------------------------------------------------------------ a real PostgreSQL server


class Server:
    """A throwaway PostgreSQL server on a unix socket, that a test may stop and start again."""

    def __init__(self) -> None:
        self.initdb, self.pg_ctl = server_binary("initdb"), server_binary("pg_ctl")
        self.base = Path(tempfile.mkdtemp(prefix="linesweep-pg-"))
        self.data, self.socket = self.base / "data", self.base / "socket"
        self.socket.mkdir()
        self.run_as: list[str] = []
        if os.geteuid() == 0:  # the server refuses to run as root
            for path in (self.base, self.socket):
                shutil.chown(path, "postgres")
            os.chmod(self.base, 0o755)
            self.run_as = ["runuser", "-u", "postgres", "--"]
        self._pg(self.initdb, "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync")

    def _pg(self, *args: str) -> None:
        subprocess.run([*self.run_as, *args], check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        options = f"-k {self.socket} -c listen_addresses='' -c fsync=off"
        log = str(self.base / "server.log")
        self._pg(self.pg_ctl, "-D", str(self.data), "-o", options, "-l", log, "-w", "start")

    def stop(self) -> None:
        self._pg(self.pg_ctl, "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def url(self, password: str) -> str:
        # The server trusts local connections: the password is sent nowhere, but the URL holds it.
        return f"postgresql://postgres:{password}@/postgres?host={self.socket}"


@pytest.fixture
def server():
    server = Server()
    server.start()
    yield server
    with contextlib.suppress(subprocess.CalledProcessError):  # the test may have stopped it
        server.stop()
    shutil.rmtree(server.base, ignore_errors=True)


def command(folder: Path, *overrides: str) -> list[str]:
    return [sys.executable, "-m", "linesweep.train", "-m", *overrides, f"hydra.sweep.dir={folder}"]


@pytest.mark.slow
@pytest.mark.postgres
def test_a_postgres_sweep_keeps_its_password_out_of_every_file_and_line(
    tmp_path, server, train_in_process, monkeypatch
):
    folder = tmp_path / "sweep"
    args = [*FAST, "hydra.sweeper.n_trials=2", "model.out_1=int(interval(1,4))"]
    typed = [*args, f"hydra.sweeper.storage='{server.url(PASSWORD)}'"]  # on the command line
    done = subprocess.run(command(folder, *typed), cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert PASSWORD not in done.stdout + done.stderr
    assert files_holding(folder, PASSWORD) == []  # .hydra/, multirun.yaml, results, logs
    assert "postgres:***@" in (folder / "0" / ".hydra" / "hydra.yaml").read_text()

    other = tmp_path / "from-env"  # the documented way: Hydra saves the variable's name
    monkeypatch.setenv("LINESWEEP_STORAGE", server.url(PASSWORD))
    by_env = [
        *args,
        "hydra.sweeper.study_name=env",
        "hydra.sweeper.storage=${oc.env:LINESWEEP_STORAGE}",
    ]
    done = train_in_process(*command(other, *by_env)[3:], cwd=tmp_path)  # in this process
    assert done.returncode == 0, done.stdout + done.stderr
    assert PASSWORD not in done.stdout + done.stderr and files_holding(other, PASSWORD) == []
    assert "${oc.env:LINESWEEP_STORAGE}" in (other / "0" / ".hydra" / "hydra.yaml").read_text()


@pytest.mark.slow
@pytest.mark.postgres
def test_a_database_outage_mid_trial_stops_in_one_line_and_the_resume_is_exact(
    tmp_path, server, train_in_process
):
    folder = tmp_path / "sweep"
    args = [*SLOWER, "hydra.sweeper.n_trials=2", f"hydra.sweeper.storage='{server.url(PASSWORD)}'"]
    sweep = subprocess.Popen(
        command(folder, *args, "model.out_1=int(interval(1,4))"),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    wait_for(lambda: running_trial(folder, 1), what="trial 1 to train")
    server.stop()  # the database goes away mid-trial
    output, _ = sweep.communicate(timeout=120)
    assert sweep.returncode == 1, output
    assert "Traceback" not in output and PASSWORD not in output
    assert "sweep stopped: the storage or the disk failed" in output
    assert "run the same command again to resume" in output

    server.start()  # the same command again, through cli() in this process
    done = train_in_process(
        *command(folder, *args, "model.out_1=int(interval(1,4))")[3:], cwd=tmp_path
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 of 2 trials finished" in done.stdout + done.stderr
    assert PASSWORD not in done.stdout + done.stderr
    assert files_holding(folder, PASSWORD) == []
