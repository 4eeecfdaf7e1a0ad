"""Sweeps across processes on a real PostgreSQL server: Optuna's documented way to scale out.

A throwaway server is started for these tests (initdb and pg_ctl into a temporary folder,
listening on a unix socket only) and stopped afterwards. If the server binaries are missing the
tests fail, saying how to install them: they never skip silently.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import optuna
import pytest

from linesweep.core.storage import open_storage
from linesweep.sweep.coordination import slot_holders
from tests.conftest import load_study
from tests.test_faults import FAST

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def server_binary(name: str) -> str:
    found = shutil.which(name) or next(
        iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))), None
    )
    if found is None:
        pytest.fail(
            f"PostgreSQL's {name} is not installed: `apt-get install -y postgresql` (Debian) "
            "provides the server binaries these tests start"
        )
    return found


@pytest.fixture(scope="module")
def postgres_url():
    initdb, pg_ctl = server_binary("initdb"), server_binary("pg_ctl")
    base = Path(tempfile.mkdtemp(prefix="linesweep-pg-"))
    data, socket_dir = base / "data", base / "socket"
    socket_dir.mkdir()
    run_as: list[str] = []
    if os.geteuid() == 0:  # the server refuses to run as root: run it as the postgres user
        shutil.chown(base, "postgres")
        shutil.chown(socket_dir, "postgres")
        os.chmod(base, 0o755)
        run_as = ["runuser", "-u", "postgres", "--"]

    def pg(*args: str) -> None:
        subprocess.run([*run_as, *args], check=True, capture_output=True, text=True, timeout=120)

    pg(initdb, "-D", str(data), "-U", "postgres", "-A", "trust", "--no-sync")
    options = f"-k {socket_dir} -c listen_addresses='' -c fsync=off -c max_connections=60"
    pg(pg_ctl, "-D", str(data), "-o", options, "-l", str(base / "server.log"), "-w", "start")
    try:
        yield f"postgresql://postgres@/postgres?host={socket_dir}"
    finally:
        pg(pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(base, ignore_errors=True)


def sweep_on(postgres_url: str, folder: Path, n_trials: int, lr: str) -> list[str]:
    return [
        sys.executable, "-m", "linesweep.train", "-m", *FAST,
        "trainer.epochs=4",
        f"hydra.sweeper.n_trials={n_trials}",
        "hydra.sweeper.study_name=shared",
        f"hydra.sweeper.storage='{postgres_url}'",  # quoted: the URL holds '?' and '='
        "hydra/sweeper/pruner=median",
        "hydra.sweeper.pruner.n_startup_trials=2",
        "hydra.sweeper.pruner.n_warmup_steps=0",
        "model.out_1=int(interval(2,4))",
        f"optimizer.lr={lr}",
        f"hydra.sweep.dir={folder}",
    ]  # fmt: skip


def test_sweep_processes_share_a_postgres_study_exactly_and_prune_across(
    tmp_path, postgres_url, train_in_process
):
    folder = tmp_path / "sweep"
    # A first worker records 3 good trials; then two more workers, started together, finish the
    # study with a learning rate too small to learn. Their trials can only be pruned by comparing
    # them with the first worker's reports, read from the database. (The first worker runs
    # through cli() in this process; the two that share the study are processes of their own.)
    first = train_in_process(*sweep_on(postgres_url, folder, 3, "0.03")[3:], cwd=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    # Another fixed learning rate than the study began with: continued on purpose.
    command = [*sweep_on(postgres_url, folder, 9, "0.000001"), "hydra.sweeper.resume_changed=true"]
    workers = [
        subprocess.Popen(
            command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for _ in range(2)
    ]
    outputs = [w.communicate(timeout=300)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs

    study = load_study(None, "shared", postgres_url)
    assert sorted(t.number for t in study.trials) == list(range(len(study.trials)))
    ran = slot_holders(study.trials)  # not the proposals replaced as repeats
    assert len(ran) == 9  # exactly
    first_owner = {t.user_attrs["linesweep.owner"]["pid"] for t in ran[:3]}
    assert len(first_owner) == 1
    later = ran[3:]
    assert all(t.user_attrs["linesweep.owner"]["pid"] not in first_owner for t in later)
    pruned = [t for t in later if t.state == optuna.trial.TrialState.PRUNED]
    assert pruned, [t.state.name for t in later]  # judged against the first worker's trials
    assert all(len(t.intermediate_values) < 4 for t in pruned)
    assert (folder / "trials.csv").exists()


def test_plain_postgresql_urls_use_the_installed_driver(postgres_url):
    storage = open_storage(postgres_url)  # postgresql:// with only psycopg 3 installed
    assert (
        optuna.create_study(storage=storage, study_name="driver-check").study_name == "driver-check"
    )
