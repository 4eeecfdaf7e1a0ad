"""Hydra's own plugin test suite (LauncherTestSuite), run against linesweep's sweeper.

The suite checks that a sweeper drives Hydra's launcher correctly: each job gets its overrides,
its config, its folder and its job metadata. Four of its tests expect an exhaustive sweep in
order (`+a=0,1` runs a=0 then a=1); an Optuna sweeper samples instead. Those four are replaced
below by the same checks in a sampler's terms: with the grid sampler and n_trials equal to the
grid's size, every value runs exactly once, in some order. A fifth returns a string from its
job, which linesweep records as a failed trial (a sweep whose every trial failed exits with
status 2): it is replaced by the same check with a job that returns a number.
BatchedSweeperTestSuite does not
apply at all: it asserts the batch structure and the order of a 3x2 product.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import version
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.test_utils.launcher_common_tests import LauncherTestSuite
from hydra.test_utils.test_utils import verify_dir_outputs
from omegaconf import OmegaConf

from hydra_plugins.linesweep_optuna_sweeper.optuna_sweeper import LinesweepOptunaSweeper

SUITE_OVERRIDES = [
    "hydra/sweeper=linesweep",
    "hydra.sweeper.n_trials=1",
    "hydra/sweeper/pruner=none",
    "hydra.sweeper.max_failure_rate=1.0",  # test tasks return strings: failed trials, not errors
]


@pytest.fixture(autouse=True)
def hydra_default_version_base():
    """The suite's apps declare no version_base: they expect Hydra's default (1.1) behaviour,
    whatever version base an earlier test in this process set through the compose API."""
    version.VersionBase.instance().setbase(version.__compat_version__)


def test_hydra_discovers_the_sweeper():
    assert LinesweepOptunaSweeper.__name__ in [
        p.__name__ for p in Plugins.instance().discover(Sweeper)
    ]


def run_grid(runner, tmpdir, config_name, sweep_overrides, n_values):
    return runner(
        calling_file=None,
        calling_module="hydra.test_utils.a_module",
        task_function=None,
        config_path="configs",
        config_name=config_name,
        overrides=[
            *SUITE_OVERRIDES,
            "hydra/launcher=basic",
            "hydra/sweeper/sampler=grid",
            f"hydra.sweeper.n_trials={n_values}",
            *sweep_overrides,
        ],
        temp_dir=tmpdir,
    )


def flat(returns):
    return sorted((r for batch in returns for r in batch), key=lambda r: r.overrides)


@pytest.mark.parametrize(("launcher_name", "overrides"), [("basic", SUITE_OVERRIDES)])
class TestLinesweepSweeperWithBasicLauncher(LauncherTestSuite):
    def test_sweep_2_jobs(self, hydra_sweep_runner, launcher_name, overrides, tmpdir):
        with run_grid(hydra_sweep_runner, tmpdir, "compose", ["+a=0,1"], 2) as sweep:
            jobs = flat(sweep.returns)
            assert [j.overrides for j in jobs] == [["+a=0"], ["+a=1"]]
            assert [j.cfg for j in jobs] == [{"foo": 10, "bar": 100, "a": a} for a in (0, 1)]
            for job in jobs:
                assert job.hydra_cfg.hydra.job.name == "a_module"
                verify_dir_outputs(job, job.overrides)
            assert {p.name for p in Path(sweep.temp_dir).iterdir() if p.is_dir()} >= {"0", "1"}
            multirun = OmegaConf.load(Path(sweep.temp_dir) / "multirun.yaml")
            assert multirun.hydra.overrides.task == ["+a=0,1"]

    def test_sweep_2_optimizers(self, hydra_sweep_runner, launcher_name, overrides, tmpdir):
        with run_grid(hydra_sweep_runner, tmpdir, "compose", ["group1=file1,file2"], 2) as sweep:
            jobs = flat(sweep.returns)
            assert [j.overrides for j in jobs] == [["group1=file1"], ["group1=file2"]]
            assert [j.cfg for j in jobs] == [{"foo": 10, "bar": 100}, {"foo": 20, "bar": 100}]

    def test_sweep_over_unspecified_mandatory_default(
        self, hydra_sweep_runner, launcher_name, overrides, tmpdir
    ):
        config = "unspecified_mandatory_default"
        with run_grid(hydra_sweep_runner, tmpdir, config, ["group1=file1,file2"], 2) as sweep:
            jobs = flat(sweep.returns)
            assert [j.cfg for j in jobs] == [{"foo": 10}, {"foo": 20}]
            for job in jobs:
                verify_dir_outputs(job, job.overrides)

    def test_sweep_and_override(self, hydra_sweep_runner, launcher_name, overrides, tmpdir):
        sweep_overrides = ["db=mysql,postgresql", "db.user=someone"]
        with run_grid(hydra_sweep_runner, tmpdir, "db_conf.yaml", sweep_overrides, 2) as sweep:
            jobs = flat(sweep.returns)
            assert [j.overrides for j in jobs] == [
                ["db.user=someone", "db=mysql"],
                ["db.user=someone", "db=postgresql"],
            ]
            assert jobs[0].cfg == {
                "db": {"driver": "mysql", "password": "secret", "user": "someone"}
            }
            assert jobs[1].cfg.db.driver == "postgresql" and jobs[1].cfg.db.user == "someone"

    def test_sweep_with_custom_resolver(self, hydra_sweep_runner, launcher_name, overrides, tmpdir):
        """The suite's job returns the resolved value, "foo": not an objective, so under
        linesweep every trial fails and the sweep ends without a result (exit status 2). The
        same check with an objective: the custom resolver resolves in the job's config."""
        OmegaConf.register_new_resolver("my_custom_resolver", lambda: "foo", replace=True)
        sweep = hydra_sweep_runner(
            calling_file=None,
            calling_module="hydra.test_utils.a_module",
            task_function=lambda cfg: float(len(cfg.x)),  # "foo" -> 3.0
            config_path="configs",
            config_name="custom_resolver",
            overrides=[f"hydra/launcher={launcher_name}", *overrides],
            temp_dir=tmpdir,
        )
        with sweep:
            (job,) = flat(sweep.returns)
            assert job.return_value == 3.0
