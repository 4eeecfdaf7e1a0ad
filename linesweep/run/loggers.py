"""Send a run to TensorBoard and MLflow as well as to its own files (`logger` config group).

    python -m linesweep.train logger=tensorboard                  # <run folder>/tensorboard/
    python -m linesweep.train logger=[tensorboard,mlflow]         # several at once
    python -m linesweep.train -m hparams_search=channels_lr logger=mlflow   # a parent run per study
    tensorboard --logdir outputs/sweeps/channels_lr               # HParams view: every trial
    mlflow ui --backend-store-uri sqlite:///outputs/mlflow.db     # needs `pip install mlflow`

Each selected logger receives the flattened config (hyperparameters), the checked shape plan,
every epoch's metrics, the final objective, the plots, and the run's final status. The run's own
files stay the record: a logger that fails is dropped with one warning line and the run goes on.

Why it looks the way it does:
- Opening only checks that the packages are installed (a missing extra is one line and exit 2
  before training); the loggers start on the first thing logged, after the shape plan is checked,
  so an infeasible trial is still refused in milliseconds and imports neither mlflow nor
  tensorboard.
- MLflow's default store is a SQLite file under outputs/: no server, and MLflow 3 refuses its old
  `./mlruns` file store (mlflow-skinny writes SQLite through SQLAlchemy and Alembic, which Optuna
  brings). A trial finds its study's parent run by itself, by the tag `linesweep.study=<study
  name>`, and the first trial that finds none creates it: the sweeper needs to know nothing about
  MLflow, and a resumed study (the same name) keeps its parent. Beside a SQLite store a file lock
  makes that exact (and serialises MLflow's creation of a new store's tables, which two first
  trials would otherwise race). A tracking server has no shared lock: there, first trials that
  race each create a parent, see them all, keep the earliest and delete their own; only a
  parent stored later than a younger one was seen could still leave two.
- TensorBoard gets a session-start record (the HParams plugin's) per run and no experiment
  record, so TensorBoard builds the HParams table from all the runs below its --logdir, even when
  trials differ in their keys (optimizer=choice(adam,sgd)).

Why one module over 300 lines: the composite and its two backends share one small interface;
each backend is a class of a few methods, and MLflow's parent-run lookup is the longest part.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from linesweep.core.errors import ConfigError
from linesweep.core.flat import flatten
from linesweep.core.status import Status
from linesweep.run.config import MlflowLoggerConfig, TensorBoardLoggerConfig, TrainConfig

if TYPE_CHECKING:
    from linesweep.core.trial_link import TrialLink

try:  # POSIX. Without it (Windows) first trials started at once may race on a new SQLite store
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

# logger -> (the module it imports, the extra that installs it)
PACKAGES = {"tensorboard": ("tensorboard", "tensorboard"), "mlflow": ("mlflow", "mlflow")}
STUDY_TAG = "linesweep.study"  # on a study's parent run and on each of its trials
ROLE_TAG = "linesweep.role"  # "study" on a parent run
SHAPE_PLAN_ARTIFACT = "shape_plan.yaml"  # the run's shapes.yaml
MLFLOW_STATUS = {
    Status.COMPLETE: "FINISHED",
    Status.PRUNED: "FINISHED",
    Status.INTERRUPTED: "KILLED",
}


@dataclass(frozen=True)
class RunIdentity:
    """What every logger needs to know about the run, whichever logger it is."""

    run_dir: Path
    name: str  # the run folder's name, or trial-<number> in a study
    params: dict[str, Any]  # the flattened config, without the logger settings
    study: str | None = None
    trial: int | None = None


class Backend(Protocol):
    name: str

    def plan(self, shapes: Path) -> None: ...
    def epoch(self, step: int, metrics: Mapping[str, float]) -> None: ...
    def result(self, step: int, objective: Mapping[str, float], plots: Sequence[Path]) -> None: ...
    def close(self, status: str, error: str | None) -> None: ...


class RunLoggers:
    """The loggers of one run: started on first use, each failure isolated to its logger."""

    def __init__(self, factories: Mapping[str, Callable[[], Backend]] | None = None) -> None:
        self._factories = dict(factories or {})
        self._backends: list[Backend] | None = None  # None: not started
        self._step = 0

    def log_plan(self, shapes: Path) -> None:
        """The checked shape plan (shapes.yaml): an artifact, or text in TensorBoard."""
        self._each("log the shape plan", lambda b: b.plan(shapes))

    def log_epoch(self, row: Mapping[str, float]) -> None:
        """One row of metrics.csv; its `epoch` is the step."""
        self._step = int(row["epoch"])
        metrics = {k: float(v) for k, v in row.items() if k != "epoch"}
        self._each("log an epoch", lambda b: b.epoch(self._step, metrics))

    def log_result(self, objective: Mapping[str, float], plots: Sequence[Path]) -> None:
        """The objective (metric name -> value) and the run's plots, at the last epoch's step."""
        self._each("log the result", lambda b: b.result(self._step, objective, plots))

    def close(self, status: str, error: str | None = None) -> None:
        """End every started logger with the run's final status (complete, pruned, failed...)."""
        if self._backends is not None:
            self._each("close", lambda b: b.close(status, error))
            self._backends = []

    def _each(self, action: str, call: Callable[[Backend], None]) -> None:
        if self._backends is None:
            self._backends = []
            for name, factory in self._factories.items():
                try:
                    self._backends.append(factory())
                except Exception as err:
                    _warn(name, "start", err)
        for backend in list(self._backends):
            try:
                call(backend)
            except Exception as err:
                _warn(backend.name, action, err)
                self._backends.remove(backend)


def _warn(name: str, action: str, err: Exception) -> None:
    text = " ".join(str(err).split())[:300]
    log.warning(
        "logger %s failed to %s and is off for the rest of this run (the run's own files are "
        "unaffected): %s: %s",
        name,
        action,
        type(err).__name__,
        text,
    )


def open_loggers(cfg: TrainConfig, run_dir: Path, trial: TrialLink | None = None) -> RunLoggers:
    """The run's loggers; ConfigError (one line, naming the extra to install) if one is missing."""
    context = trial.describe() if trial is not None else {}
    run = RunIdentity(
        run_dir=run_dir,
        name=f"trial-{context['number']}" if context else run_dir.name,
        params=flatten({k: v for k, v in asdict(cfg).items() if k != "logger"}),
        study=context.get("study_name"),
        trial=context.get("number"),
    )
    factories: dict[str, Callable[[], Backend]] = {}
    if (tensorboard := cfg.logger.tensorboard) is not None:
        factories["tensorboard"] = lambda: TensorBoardBackend(tensorboard, run)
    if (mlflow := cfg.logger.mlflow) is not None:
        factories["mlflow"] = lambda: MlflowBackend(mlflow, run)
    for name in factories:
        module, extra = PACKAGES[name]
        if importlib.util.find_spec(module) is None:
            raise ConfigError(
                "logger",
                name,
                f"needs the {module} package, which is not installed",
                f"pip install 'linesweep[{extra}]'",
            )
    return RunLoggers(factories)


def as_text(value: Any) -> str:
    """A config value as a user types it: null, true, [0.9,0.999], 0.001."""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))


# ---------------------------------------------------------------- TensorBoard


class TensorBoardBackend:
    """Event files in <run folder>/<subdir>/, read by `tensorboard --logdir <folder above>`."""

    name = "tensorboard"

    def __init__(self, settings: TensorBoardLoggerConfig, run: RunIdentity) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.run = run
        self.writer = SummaryWriter(log_dir=str(run.run_dir / settings.subdir))

    def plan(self, shapes: Path) -> None:
        indented = "\n".join("    " + line for line in shapes.read_text().splitlines())
        self.writer.add_text("shape_plan", indented)  # indented: a code block in Markdown
        self.writer.flush()

    def epoch(self, step: int, metrics: Mapping[str, float]) -> None:
        for key, value in metrics.items():
            self.writer.add_scalar(key, value, step)
        self.writer.flush()  # live in TensorBoard, and kept if the process is killed

    def result(self, step: int, objective: Mapping[str, float], plots: Sequence[Path]) -> None:
        from matplotlib.image import imread

        for metric, value in objective.items():
            self.writer.add_scalar(f"objective/{metric}", value, step)
        for path in plots:
            pixels = imread(path)[..., :3]  # (H, W, RGBA) floats in [0, 1] -> (H, W, RGB)
            self.writer.add_image(f"plots/{path.stem}", pixels, step, dataformats="HWC")
        self.writer.flush()

    def close(self, status: str, error: str | None) -> None:
        from torch.utils.tensorboard.summary import hparams

        values: dict[str, Any] = {k: _hparam(v) for k, v in self.run.params.items()}
        values["status"] = status  # written at the end: the HParams table filters on it
        _, session_start, _ = hparams(values, {})
        self.writer.file_writer.add_summary(session_start)
        self.writer.close()


def _hparam(value: Any) -> float | str:
    """TensorBoard takes numbers and text; torch would turn a bool into 1.0."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    return as_text(value)


# ---------------------------------------------------------------- MLflow


class MlflowBackend:
    """One MLflow run per linesweep run; in a study, a child of the study's parent run."""

    name = "mlflow"

    def __init__(self, settings: MlflowLoggerConfig, run: RunIdentity) -> None:
        from mlflow import MlflowClient
        from mlflow.entities import Param
        from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

        self.trial = run.trial
        uri, lock, artifacts = _store(settings)
        with _locked(lock):  # MLflow creates a new SQLite store's tables on first use
            self.client = MlflowClient(uri)
            experiment_id = _experiment(self.client, settings.experiment_name, artifacts)
            self.parent = (
                study_run(self.client, experiment_id, run.study, run.run_dir.parent)
                if run.study is not None
                else None
            )
        tags = {"linesweep.run_dir": str(run.run_dir.resolve())}
        if self.parent is not None:
            tags.update({MLFLOW_PARENT_RUN_ID: self.parent, STUDY_TAG: str(run.study)})
            tags["linesweep.trial"] = str(run.trial)
            self.client.update_run(self.parent, status="RUNNING")
        self.run_id = self.client.create_run(
            experiment_id, run_name=run.name, tags=tags
        ).info.run_id
        params = [Param(k, as_text(v)) for k, v in run.params.items()]
        for start in range(0, len(params), 100):  # MLflow takes at most 100 params per batch
            self.client.log_batch(self.run_id, params=params[start : start + 100])

    def plan(self, shapes: Path) -> None:
        # Not named shapes.yaml: with that name (a run's marker) `linesweep.compare outputs/`
        # would take the artifact folder under outputs/mlartifacts/ for a run.
        self.client.log_text(self.run_id, shapes.read_text(), SHAPE_PLAN_ARTIFACT)

    def epoch(self, step: int, metrics: Mapping[str, float]) -> None:
        self._metrics(self.run_id, metrics, step)

    def result(self, step: int, objective: Mapping[str, float], plots: Sequence[Path]) -> None:
        named = {f"objective/{metric}": value for metric, value in objective.items()}
        self._metrics(self.run_id, named, step)
        if self.parent is not None:  # the parent's chart: each trial's objective, by number
            self._metrics(self.parent, named, self.trial or 0)
        for path in plots:
            self.client.log_artifact(self.run_id, str(path), artifact_path="plots")

    def close(self, status: str, error: str | None) -> None:
        from mlflow.entities import RunTag

        tags = [RunTag("linesweep.status", status)]
        if error:
            tags.append(RunTag("linesweep.error", error[:5000]))
        self.client.log_batch(self.run_id, tags=tags)
        self.client.set_terminated(self.run_id, MLFLOW_STATUS.get(status, "FAILED"))
        if self.parent is not None:  # ends with the study's last trial: no one else knows when
            self.client.set_terminated(self.parent, "FINISHED")

    def _metrics(self, run_id: str, metrics: Mapping[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(key, float(value), now, step) for key, value in metrics.items()]
        self.client.log_batch(run_id, metrics=batch)


def _store(settings: MlflowLoggerConfig) -> tuple[str, Path | None, str | None]:
    """The tracking URI, the lock file beside a SQLite store, and where artifacts go."""
    uri, artifacts = settings.tracking_uri, settings.artifact_location
    lock = None
    if uri.startswith("sqlite:///"):
        database = Path(uri.removeprefix("sqlite:///")).resolve()  # relative: the launch folder
        database.parent.mkdir(parents=True, exist_ok=True)
        uri, lock = f"sqlite:///{database}", database.with_name(database.name + ".lock")
        if artifacts is None:
            artifacts = str(database.parent / "mlartifacts")
    if artifacts is not None and "://" not in artifacts:
        artifacts = Path(artifacts).resolve().as_uri()
    return uri, lock, artifacts


@contextlib.contextmanager
def _locked(path: Path | None) -> Iterator[None]:
    if path is None or fcntl is None:
        yield
        return
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _experiment(client: Any, name: str, artifacts: str | None) -> str:
    from mlflow.exceptions import MlflowException

    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    try:
        return client.create_experiment(name, artifact_location=artifacts)
    except MlflowException:  # another worker created it first
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


def study_run(client: Any, experiment_id: str, study: str, sweep_dir: Path) -> str:
    """The study's parent run: found by its tag, or created; the earliest wins a creation race."""
    quote = '"' if "'" in study else "'"
    where = f"tags.`{STUDY_TAG}` = {quote}{study}{quote} and tags.`{ROLE_TAG}` = 'study'"

    def parents() -> list[Any]:
        runs = client.search_runs([experiment_id], filter_string=where, max_results=100)
        return sorted(runs, key=lambda r: (r.info.start_time, r.info.run_id))

    found = parents()
    if found:
        return found[0].info.run_id
    tags = {STUDY_TAG: study, ROLE_TAG: "study", "linesweep.sweep_dir": str(sweep_dir.resolve())}
    mine = client.create_run(experiment_id, run_name=study, tags=tags).info.run_id
    winner = parents()[0].info.run_id
    if winner != mine:
        client.delete_run(mine)
    return winner
