"""A resumed study is the study it was: another search space or other fixed overrides are refused
in one line naming the change (unless continued on purpose), and a repeated proposal never
becomes a trial that Optuna's own tools would show as failed."""

from __future__ import annotations

import pytest
from optuna.trial import TrialState

from linesweep.core.storage import JOURNAL_NAME
from linesweep.sweep.coordination import REPLACED, slot_holders
from linesweep.sweep.study import STARTED_WITH
from tests.conftest import load_study
from tests.test_sweep_trust import points, rows

START = ["hydra.sweeper.n_trials=2", "model.out_1=int(interval(1,4))", "model.out_2=choice(1,2)"]


def refused_resume(sweep_in_process, folder, capfd, *overrides) -> str:
    """Resume with `overrides`: exit 2, one error line, the study's journal untouched."""
    journal = (folder / JOURNAL_NAME).read_bytes()
    capfd.readouterr()
    with pytest.raises(SystemExit) as stop:
        sweep_in_process(folder, *overrides)
    assert stop.value.code == 2
    output = "".join(capfd.readouterr())  # after a first job, Hydra's logging owns the console
    assert "Traceback" not in output
    errors = [line.split("[ERROR] ", 1)[1] for line in output.splitlines() if "[ERROR] " in line]
    assert len(errors) == 1, errors
    assert (folder / JOURNAL_NAME).read_bytes() == journal  # nothing asked, nothing recorded
    return errors[0]


@pytest.mark.parametrize(
    ("changed", "named"),
    [
        (
            ["model.out_1=int(interval(1,8))", "model.out_2=choice(1,2)"],
            "model.out_1 was int in [1, 4], now int in [1, 8]",
        ),
        (
            ["model.out_1=int(interval(1,4))", "model.out_2=choice(1,2)", "optimizer.lr=0.01"],
            "the fixed overrides were [experiment=smoke plots=none], now [experiment=smoke "
            "plots=none optimizer.lr=0.01]",
        ),
        (
            ["model.out_1=int(interval(1,4))", "model.out_2=choice(1,2)", "seed=choice(1,2)"],
            "seed is searched now (choice(1, 2)), and was not",
        ),
        (
            ["model.out_1=int(interval(1,4))"],
            "model.out_2 is no longer searched (was choice(1, 2))",
        ),
    ],
    ids=["range", "fixed-override", "new-parameter", "dropped-parameter"],
)
def test_a_resume_with_another_space_is_refused_naming_what_changed(
    sweep_in_process, tmp_path, capfd, changed, named
):
    sweep_in_process(tmp_path, *START)
    error = refused_resume(sweep_in_process, tmp_path, capfd, "hydra.sweeper.n_trials=4", *changed)
    assert error.startswith("study 'linesweep' was started with another search space or other")
    assert named in error and "hydra.sweeper.resume_changed=true" in error
    study = load_study(tmp_path)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2


@pytest.mark.parametrize(
    ("changed", "named"),
    [
        (
            "model.out_2=interval(1.0,2.0)",
            "model.out_2=float in [1, 2] is not allowed: the "
            "choice(1, 2) that study 'linesweep' stored for it (trial 0)",
        ),
        (
            "model.out_2=choice(1,2,4)",
            "model.out_2=choice(1, 2, 4) is not allowed: the choice(1, 2)",
        ),
        (
            "model.out_1=tag(log,int(interval(1,4)))",
            "model.out_1=int in [1, 4], log is not allowed",
        ),
    ],
    ids=["type", "choices", "log-scale"],
)
def test_what_optuna_cannot_store_is_refused_even_on_purpose_and_leaves_no_trial_running(
    sweep_in_process, tmp_path, capfd, changed, named
):
    sweep_in_process(tmp_path, *START)
    others = [a for a in START[1:] if a.split("=")[0] != changed.split("=")[0]]
    for on_purpose in ([], ["hydra.sweeper.resume_changed=true"]):
        error = refused_resume(
            sweep_in_process, tmp_path, capfd, "hydra.sweeper.n_trials=4", *others, changed,
            *on_purpose,
        )  # fmt: skip
        assert error.startswith(named)
    study = load_study(tmp_path)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2  # no RUNNING, no params


@pytest.mark.slow  # three sweeps, 19 trials
def test_a_resume_continued_on_purpose_runs_the_new_space_exactly_without_repeats(
    sweep_in_process, tmp_path, capfd, caplog
):
    sweep_in_process(tmp_path, *START)
    wider = ["model.out_1=int(interval(1,6))", "model.out_2=choice(1,2)"]
    sweep_in_process(
        tmp_path, "hydra.sweeper.n_trials=8", *wider, "hydra.sweeper.resume_changed=true"
    )
    said = caplog.text + "".join(capfd.readouterr())  # the console is Hydra's after a job
    assert "the study continues with model.out_1 was int in [1, 4], now int in [1, 6]" in said
    study = load_study(tmp_path)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 8
    assert len(set(points(study))) == 8  # never the same parameters twice
    assert '"high": 6' in study.user_attrs[STARTED_WITH]["params"]["model.out_1"]
    sweep_in_process(tmp_path, "hydra.sweeper.n_trials=9", *wider)  # the new space is the study's
    assert len(load_study(tmp_path).trials) == 9


def test_a_study_from_before_the_check_records_its_space_at_its_next_run(
    sweep_in_process, tmp_path
):
    sweep_in_process(tmp_path, *START)
    load_study(tmp_path).set_user_attr(STARTED_WITH, None)  # as if made by an older linesweep
    sweep_in_process(tmp_path, "hydra.sweeper.n_trials=3", *START[1:])
    assert load_study(tmp_path).user_attrs[STARTED_WITH]["fixed"] == [
        "experiment=smoke",
        "plots=none",
    ]


# ------------------------------------------------------------------ repeated proposals


def test_a_repeated_proposal_creates_no_trial_optuna_would_show_as_failed(
    sweep_in_process, tmp_path
):
    """Before, each repeat was a trial told FAIL: optuna-dashboard and `optuna trials` showed
    failures that never ran. Now the study holds only the trials that ran."""
    sweep_in_process(tmp_path, "hydra.sweeper.n_trials=6", "hydra/sweeper/sampler=random",
                     "model.out_1=int(interval(1,3))", "model.out_2=choice(1,2)")  # fmt: skip
    study = load_study(tmp_path)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 6
    assert study.trials_dataframe()["state"].tolist() == ["COMPLETE"] * 6
    assert len(set(points(study))) == 6 == len(slot_holders(study.trials))
    replaced = [t for t in study.trials if REPLACED in t.user_attrs]
    assert replaced, "the seeded random sampler repeats itself on 6 points"
    for trial in replaced:  # it ran a point no earlier trial had taken
        earlier = {tuple(sorted(t.params.items())) for t in study.trials[: trial.number]}
        assert tuple(sorted(trial.params.items())) not in earlier
        assert trial.user_attrs[REPLACED] < trial.number
    table = {row["number"]: row for row in rows(tmp_path)}
    assert {row["state"] for row in table.values()} == {"complete"}
    assert [table[str(t.number)]["replaced_repeat_of"] for t in replaced] == [
        str(t.user_attrs[REPLACED]) for t in replaced
    ]
