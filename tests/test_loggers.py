"""Loggers (`logger=tensorboard`, `logger=mlflow`, both) and optuna-dashboard, read back by each
tool's own reader: TensorBoard's event accumulator, MLflow's client, the dashboard's HTTP API."""

from __future__ import annotations

import csv
import json
import logging
import multiprocessing
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict
from pathlib import Path

import mlflow
import pytest
from hydra.errors import ConfigCompositionException
from mlflow import MlflowClient
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer
from tensorboard.plugins.hparams.metadata import (
    SESSION_START_INFO_TAG,
    parse_session_start_info_plugin_data,
)

from linesweep.compare.runs import find_runs
from linesweep.core.errors import ConfigError, Diverged
from linesweep.core.storage import JOURNAL_NAME
from linesweep.run.config import MlflowLoggerConfig
from linesweep.run.loggers import (
    MlflowBackend,
    RunIdentity,
    TensorBoardBackend,
    flatten,
    study_run,
)
from linesweep.run.task import run
from linesweep.run.validation import to_train_config
from tests.conftest import TINY

# mlflow (mlflow-skinny), tensorboard and optuna-dashboard come with .[dev]: missing, these
# tests fail at import rather than skip.


def database(tmp_path: Path) -> Path:
    return tmp_path / "mlflow" / "mlflow.db"


@pytest.fixture(scope="module")
def empty_store(tmp_path_factory) -> Path:
    """An MLflow SQLite store with its tables made: making them takes MLflow seconds."""
    path = database(tmp_path_factory.mktemp("template"))
    path.parent.mkdir()
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def store(tmp_path, empty_store) -> str:
    """The override that points `logger=mlflow` at a throwaway copy of the empty store."""
    database(tmp_path).parent.mkdir()
    shutil.copy(empty_store, database(tmp_path))
    return f"logger.mlflow.tracking_uri=sqlite:///{database(tmp_path)}"


def client(tmp_path: Path) -> MlflowClient:
    return MlflowClient(f"sqlite:///{database(tmp_path)}")


def all_runs(tmp_path: Path) -> list:
    mlflow_client = client(tmp_path)
    experiment = mlflow_client.get_experiment_by_name("linesweep")
    return mlflow_client.search_runs([experiment.experiment_id], max_results=1000)


def events(run_dir: Path) -> EventAccumulator:
    accumulator = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"images": 0})
    accumulator.Reload()
    return accumulator


def session_hparams(accumulator: EventAccumulator) -> dict:
    """The HParams plugin's session-start record, as TensorBoard's HParams view reads it."""
    content = accumulator.PluginTagToContent("hparams")[SESSION_START_INFO_TAG]
    start = parse_session_start_info_plugin_data(content)
    return {name: getattr(value, value.WhichOneof("kind")) for name, value in start.hparams.items()}


def metrics_csv(run_dir: Path) -> list[dict]:
    return list(csv.DictReader((run_dir / "metrics.csv").open()))


def summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


# ---------------------------------------------------------------- the config group


def test_logger_group_selects_one_or_several_and_csv_is_the_default(compose_config, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    default = to_train_config(compose_config()).logger
    assert (default.tensorboard, default.mlflow) == (None, None)  # csv: the run's files only
    one = to_train_config(compose_config("logger=tensorboard")).logger
    assert one.tensorboard.subdir == "tensorboard" and one.mlflow is None
    both = to_train_config(compose_config("logger=[tensorboard,mlflow]")).logger
    assert both.tensorboard is not None
    assert both.mlflow.experiment_name == "linesweep"
    assert both.mlflow.tracking_uri == "sqlite:///outputs/mlflow.db"  # no server needed
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")  # as MLflow's own tools
    assert to_train_config(compose_config("logger=mlflow")).logger.mlflow.tracking_uri == (
        "http://127.0.0.1:5000"
    )


def test_a_logger_typo_fails_while_composing(compose_config):
    with pytest.raises(ConfigCompositionException, match="logger/wandb"):
        compose_config("logger=wandb")
    with pytest.raises(ConfigCompositionException, match=r"logger\.mlflow\.trackinguri"):
        compose_config("logger=mlflow", "logger.mlflow.trackinguri=x")


def test_default_run_writes_no_logger_files(compose_config, tmp_path):
    run(compose_config(*TINY), tmp_path)
    assert {p.name for p in tmp_path.iterdir()} == {
        "summary.json", "metrics.csv", "shapes.yaml", "model.pt"
    }  # fmt: skip


# ---------------------------------------------------------------- TensorBoard


@pytest.mark.slow
def test_tensorboard_gets_epochs_objective_hparams_shape_plan_and_plots(compose_config, tmp_path):
    run_dir = tmp_path / "run"
    run(compose_config("experiment=smoke", "plots=light", "logger=tensorboard"), run_dir)
    board = events(run_dir)

    rows = metrics_csv(run_dir)
    accuracy = board.Scalars("val_accuracy")
    assert [e.step for e in accuracy] == [1, 2]
    assert [e.value for e in accuracy] == pytest.approx([float(r["val_accuracy"]) for r in rows])
    assert {"train_loss", "train_cost", "val_loss"} <= set(board.Tags()["scalars"])
    objective = board.Scalars("objective/val_accuracy")
    assert [(e.step, e.value) for e in objective] == [
        (2, summary(run_dir)["objective"]["values"][0])
    ]

    [image] = board.Images("plots/learning_curve")
    assert image.width > 100 and image.height > 100

    [plan] = board.Tensors("shape_plan/text_summary")
    assert "flat_features: 49" in plan.tensor_proto.string_val[0].decode()

    hparams = session_hparams(board)
    assert hparams["model.out_1"] == 2 and hparams["optimizer.lr"] == pytest.approx(0.001)
    assert hparams["optimizer._target_"] == "torch.optim.Adam"
    assert hparams["optimizer.fused"] == "true" and hparams["trainer.num_threads"] == "null"
    assert hparams["status"] == "complete"
    assert not any(name.startswith("logger.") for name in hparams)


# ---------------------------------------------------------------- MLflow


@pytest.mark.slow
def test_mlflow_gets_params_epochs_objective_shape_plan_and_plots(compose_config, tmp_path, store):
    run_dir = tmp_path / "run"
    cfg = compose_config("experiment=smoke", "plots=light", "logger=mlflow", store)
    run(cfg, run_dir)

    [found] = all_runs(tmp_path)
    mlflow_client = client(tmp_path)
    assert found.info.status == "FINISHED" and found.data.tags["linesweep.status"] == "complete"
    assert found.info.run_name == run_dir.name
    assert found.data.tags["linesweep.run_dir"] == str(run_dir.resolve())

    typed = asdict(to_train_config(cfg))
    del typed["logger"]
    params = found.data.params
    assert set(params) == set(flatten(typed))  # the whole config, flattened, nothing else
    assert params["model.out_1"] == "2" and params["optimizer.betas"] == "[0.9,0.999]"
    assert params["data.N_images"] == "200" and params["trainer.num_threads"] == "null"

    history = mlflow_client.get_metric_history(found.info.run_id, "val_accuracy")
    rows = metrics_csv(run_dir)
    assert [(m.step, m.value) for m in history] == [
        (int(r["epoch"]), pytest.approx(float(r["val_accuracy"]))) for r in rows
    ]
    assert (
        found.data.metrics["objective/val_accuracy"] == summary(run_dir)["objective"]["values"][0]
    )

    artifacts = {a.path for a in mlflow_client.list_artifacts(found.info.run_id)}
    assert artifacts == {"shape_plan.yaml", "plots"}
    assert [a.path for a in mlflow_client.list_artifacts(found.info.run_id, "plots")] == [
        "plots/learning_curve.png"
    ]
    plan = mlflow.artifacts.load_text(f"{found.info.artifact_uri}/shape_plan.yaml")
    assert plan == (run_dir / "shapes.yaml").read_text()
    # The store lies under outputs/ by default: `linesweep.compare outputs/` must not take it
    # for runs.
    assert find_runs([tmp_path]) == [run_dir]


@pytest.mark.slow
def test_both_loggers_at_once(compose_config, tmp_path, store):
    run_dir = tmp_path / "run"
    run(compose_config(*TINY, "logger=[tensorboard,mlflow]", store), run_dir)
    assert [e.step for e in events(run_dir).Scalars("val_loss")] == [1, 2]
    [found] = all_runs(tmp_path)
    per_epoch = {"train_cost", "train_loss", "val_loss", "val_accuracy", "epoch_s", "elapsed_s"}
    assert set(found.data.metrics) == per_epoch | {"objective/val_accuracy"}


@pytest.mark.slow
def test_a_diverged_run_ends_its_mlflow_run_as_failed_with_the_reason(
    compose_config, tmp_path, store
):
    overrides = ("optimizer=sgd", "optimizer.lr=1e30", "trainer.epochs=4")
    with pytest.raises(Diverged):
        run(compose_config(*TINY, *overrides, "logger=mlflow", store), tmp_path / "run")
    [found] = all_runs(tmp_path)
    assert found.info.status == "FAILED" and found.data.tags["linesweep.status"] == "diverged"
    assert "loss became" in found.data.tags["linesweep.error"]


# ---------------------------------------------------------------- a study


@pytest.mark.slow
def test_a_study_is_one_mlflow_parent_with_a_child_per_trial_and_one_hparams_table(
    sweep_in_process, tmp_path, store
):
    sweep = tmp_path / "sweep"
    # The grid sampler: three trials, three points, none proposed twice (so none replaced).
    args = ("logger=[tensorboard,mlflow]", store, "hydra.sweeper.study_name=lines")
    space = ("hydra/sweeper/sampler=grid", "model.out_1=choice(1,2,3)")
    sweep_in_process(sweep, "hydra.sweeper.n_trials=2", *space, *args)
    # Resuming the study (same name) adds its new trial to the same parent: found by its tag.
    sweep_in_process(sweep, "hydra.sweeper.n_trials=3", *space, *args)

    runs = all_runs(tmp_path)
    [parent] = [r for r in runs if r.data.tags.get("linesweep.role") == "study"]
    assert parent.info.run_name == "lines" and parent.data.tags["linesweep.study"] == "lines"
    children = sorted(
        (r for r in runs if r is not parent), key=lambda r: int(r.data.tags["linesweep.trial"])
    )
    assert len(runs) == 4
    assert all(c.data.tags["mlflow.parentRunId"] == parent.info.run_id for c in children)
    assert [c.info.run_name for c in children] == ["trial-0", "trial-1", "trial-2"]
    for number, child in enumerate(children):
        assert child.data.params["model.out_1"] == str(_out_1(sweep, number))
        objective = summary(sweep / str(number))["objective"]["values"][0]
        assert child.data.metrics["objective/val_accuracy"] == objective
    history = client(tmp_path).get_metric_history(parent.info.run_id, "objective/val_accuracy")
    assert sorted(m.step for m in history) == [0, 1, 2]  # the study's history, by trial number

    # `tensorboard --logdir <study folder>` sees one run per trial, each with its hparams.
    board = EventMultiplexer().AddRunsFromDirectory(str(sweep))
    board.Reload()
    assert sorted(board.Runs()) == ["0/tensorboard", "1/tensorboard", "2/tensorboard"]
    for number in range(3):
        hparams = session_hparams(board.GetAccumulator(f"{number}/tensorboard"))
        assert hparams["model.out_1"] == _out_1(sweep, number)


def _out_1(sweep: Path, number: int) -> int:
    overrides = (sweep / str(number) / ".hydra" / "overrides.yaml").read_text()
    [value] = [line.split("=")[1] for line in overrides.splitlines() if "model.out_1=" in line]
    return int(value)


def _open_child(uri: str, run_dir: str, barrier) -> None:
    barrier.wait()  # both workers reach an empty store at the same moment
    settings = MlflowLoggerConfig(tracking_uri=uri)
    backend = MlflowBackend(settings, RunIdentity(Path(run_dir), "trial", {}, "race", 0))
    backend.close("complete", None)


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="fork and flock")
def test_two_first_trials_at_once_make_one_store_and_one_parent(tmp_path):
    uri = f"sqlite:///{database(tmp_path)}"  # a new store: its tables are made in the race too
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(2)
    workers = [
        context.Process(target=_open_child, args=(uri, str(tmp_path / str(n)), barrier))
        for n in range(2)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert [w.exitcode for w in workers] == [0, 0]
    runs = all_runs(tmp_path)
    [parent] = [r for r in runs if r.data.tags.get("linesweep.role") == "study"]
    children = [r for r in runs if r is not parent]
    assert len(children) == 2
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}


def test_first_trials_racing_without_a_lock_all_keep_the_earliest_parent(
    tmp_path, store, monkeypatch
):
    """On a tracking server there is no shared lock: a trial that looked before another's parent
    was stored makes its own, sees both, deletes its own and joins the earliest."""
    mlflow_client = client(tmp_path)
    experiment = mlflow_client.create_experiment("linesweep")
    tags = {"linesweep.study": "race", "linesweep.role": "study"}
    earliest = mlflow_client.create_run(experiment, start_time=1, tags=tags).info.run_id
    search_runs, looks = mlflow_client.search_runs, []

    def looked_too_early(*args, **kwargs):
        looks.append(1)
        return [] if len(looks) == 1 else search_runs(*args, **kwargs)

    monkeypatch.setattr(mlflow_client, "search_runs", looked_too_early)
    assert study_run(mlflow_client, experiment, "race", tmp_path) == earliest
    assert [r.info.run_id for r in search_runs([experiment])] == [earliest]  # its own: deleted


# ---------------------------------------------------------------- failures


@pytest.mark.parametrize("name", ["tensorboard", "mlflow"])
def test_a_missing_extra_is_one_line_naming_the_install_before_training(
    compose_config, tmp_path, monkeypatch, name
):
    monkeypatch.setitem(sys.modules, name, None)  # as if not installed: its import fails
    cfg = compose_config(*TINY, f"logger={name}")
    expected = (
        f"logger={name} is not allowed: needs the {name} package, which is not installed; "
        f"pip install 'linesweep[{name}]'"
    )
    with pytest.raises(ConfigError) as raised:
        run(cfg, tmp_path / "run")
    assert str(raised.value) == expected  # main() prints it as one line and exits with 2
    assert summary(tmp_path / "run")["status"] == "refused"
    assert not (tmp_path / "run" / "metrics.csv").exists()  # refused before training


@pytest.mark.slow
def test_a_logger_that_fails_mid_run_is_dropped_with_one_warning_and_the_run_completes(
    compose_config, tmp_path, monkeypatch, caplog
):
    def disk_full(self, step, metrics):
        raise OSError("No space left on device")

    monkeypatch.setattr(TensorBoardBackend, "epoch", disk_full)
    run_dir = tmp_path / "run"
    with caplog.at_level(logging.WARNING, logger="linesweep.run.loggers"):
        run(compose_config(*TINY, "trainer.epochs=3", "logger=tensorboard"), run_dir)
    assert summary(run_dir)["status"] == "complete"
    assert len(metrics_csv(run_dir)) == 3
    [warning] = caplog.messages
    assert warning.startswith("logger tensorboard failed to log an epoch")
    assert "No space left on device" in warning


def test_an_unreachable_mlflow_store_does_not_stop_the_run(compose_config, tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("")  # a file where the store's folder should be
    uri = f"logger.mlflow.tracking_uri=sqlite:///{blocker / 'mlflow.db'}"
    with caplog.at_level(logging.WARNING, logger="linesweep.run.loggers"):
        run(compose_config(*TINY, "logger=mlflow", uri), tmp_path / "run")
    assert summary(tmp_path / "run")["status"] == "complete"
    [warning] = caplog.messages
    assert warning.startswith("logger mlflow failed to start")


# ---------------------------------------------------------------- optuna-dashboard


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get_json(url: str) -> object:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


@pytest.mark.slow
def test_optuna_dashboard_serves_a_sweeps_journal(sweep_in_process, tmp_path):
    """The README's command: optuna-dashboard outputs/sweeps/<study>/optuna_journal.log."""
    sweep = tmp_path / "sweep"
    sweep_in_process(
        sweep,
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.study_name=board",
        "hydra/sweeper/sampler=grid",  # two trials, both points: none proposed twice
        "model.out_1=choice(1,3)",
    )
    command = Path(sys.executable).with_name("optuna-dashboard")  # the extra's console script
    assert command.exists(), "pip install 'linesweep[dashboard]'"
    port = free_port()
    server = subprocess.Popen(
        [str(command), str(sweep / JOURNAL_NAME), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                studies = get_json(f"{base}/api/studies")["study_summaries"]
                break
            except OSError:
                assert server.poll() is None, server.stderr.read().decode()
                assert time.monotonic() < deadline, "optuna-dashboard did not answer in 60 s"
                time.sleep(0.2)
        [study] = [s for s in studies if s["study_name"] == "board"]
        detail = get_json(f"{base}/api/studies/{study['study_id']}")
        trials = sorted(detail["trials"], key=lambda t: t["number"])
        assert [t["number"] for t in trials] == [0, 1]
        for trial in trials:  # its parameters, its pruning curve (one point per epoch), its value
            assert trial["state"] == "Complete"
            assert [p["name"] for p in trial["params"]] == ["model.out_1"]
            assert [v["step"] for v in trial["intermediate_values"]] == [1, 2]
            objective = summary(sweep / str(trial["number"]))["objective"]["values"]
            assert trial["values"] == objective
    finally:
        server.terminate()
        server.wait(10)
