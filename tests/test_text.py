"""Names and cells are text: non-ASCII study names and folders work through every executor, and
a CSV cell a spreadsheet would run as a formula is neutralised, while load_runs reads it as is."""

from __future__ import annotations

import csv
import json

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from hypothesis import given
from hypothesis import strategies as st

import linesweep
from linesweep.compare.cli import main as compare_main
from linesweep.core.files import spreadsheet_cell, write_csv
from linesweep.core.storage import JOURNAL_NAME
from linesweep.core.trial_link import TrialContext
from linesweep.sweep.space import literal_json, quoted
from tests.conftest import TINY, load_study, run_cli

NAME = "étude-ü✓中"

# ------------------------------------------------------------------ names


@given(st.text(alphabet=st.sampled_from("\\'\"aé✓中 ${}=,\n\tu0"), max_size=30))
def test_a_quoted_override_value_reads_back_exactly_as_written(text):
    """Hydra unescapes a backslash only before a quote: the trial's JSON came back with every
    `\\u00e9` doubled, and the trial looked for its study in a folder named `\\u00e9tude`."""
    parsed = OverridesParser.create().parse_override(f"x={quoted(text)}")
    assert parsed.value() == text


def test_a_trial_context_with_non_ascii_names_crosses_hydra_intact(tmp_path):
    context = TrialContext(storage=str(tmp_path / NAME / JOURNAL_NAME), study_name=NAME, number=3)
    value = OverridesParser.create().parse_override(f"x={quoted(literal_json(context.to_env()))}")
    assert TrialContext.from_env(value.value()) == context
    assert "$" not in literal_json(json.dumps({"a": "${oc.env:HOME}"}))  # nothing to interpolate


@pytest.mark.slow
@pytest.mark.parametrize(
    ("executor", "process"),
    [
        (["hydra.sweeper.executor=process"], False),
        (["hydra.sweeper.executor=population"], False),
        (["hydra.sweeper.executor=launcher"], False),
        (
            ["hydra.sweeper.executor=launcher", "hydra/launcher=joblib", "hydra.sweeper.n_jobs=2"],
            True,
        ),
    ],
    ids=["process", "population", "launcher", "joblib"],
)
def test_non_ascii_study_names_and_folders_work_end_to_end(
    tmp_path, train_in_process, executor, process
):
    """The command line as a real process once (joblib's trials run in processes of their own
    anyway); through the same cli() in this process for the other executors."""
    work = tmp_path / "wörk ✓中"  # the working folder: outputs/ lands there
    work.mkdir()
    arguments = [
        "-m", "hydra/sweeper=linesweep", *TINY, "hydra.sweeper.n_trials=2",
        f"hydra.sweeper.study_name='{NAME}'", "optimizer.lr=choice(0.01,0.02)", *executor,
    ]  # fmt: skip
    if process:
        done = run_cli("linesweep.train", *arguments, cwd=work, timeout=240)
    else:
        done = train_in_process(*arguments, cwd=work)
    assert done.returncode == 0, done.stdout + done.stderr
    sweep = work / "outputs" / "sweeps" / NAME
    study = load_study(sweep, NAME)
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
    for trial in study.trials:
        summary = json.loads((sweep / str(trial.number) / "summary.json").read_text())
        assert summary["status"] == "complete" and summary["trial"]["study_name"] == NAME
    journals = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob(f"*{JOURNAL_NAME}"))
    assert journals == [sweep.relative_to(tmp_path) / JOURNAL_NAME]  # no stray journal beside it
    rows = list(csv.DictReader((sweep / "trials.csv").open(encoding="utf-8")))
    assert [r["state"] for r in rows] == ["complete", "complete"]


@pytest.mark.slow
def test_a_non_ascii_run_folder_works(tmp_path):
    run = tmp_path / "runs" / NAME
    done = run_cli("linesweep.train", *TINY, f"hydra.run.dir='{run}'", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads((run / "summary.json").read_text())["status"] == "complete"
    assert linesweep.load_runs(str(run))["folder"].tolist() == [str(run)]


# ------------------------------------------------------------------ spreadsheet-safe cells


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ('=HYPERLINK("http://x")', '\'=HYPERLINK("http://x")'),
        ("+1+2", "'+1+2"),
        ("-2+3+cmd|' /C calc'!A0", "'-2+3+cmd|' /C calc'!A0"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("-inf", "'-inf"),
        ("-0.5", "-0.5"),  # a number stays a number
        ("-1e-05", "-1e-05"),
        ("+3", "+3"),
        (-0.5, -0.5),
        (3, 3),
        ("a=b", "a=b"),
        ("", ""),
    ],
)
def test_a_cell_that_starts_like_a_formula_is_neutralised_and_numbers_stay_numbers(value, written):
    assert spreadsheet_cell(value) == written


def test_write_csv_neutralises_headers_and_cells_only_when_asked(tmp_path):
    rows = [{"=key": "=1+2", "lr": -0.5}]
    write_csv(tmp_path / "safe.csv", rows, ["=key", "lr"], spreadsheet_safe=True)
    write_csv(tmp_path / "plain.csv", rows, ["=key", "lr"])  # metrics.csv: read back as floats
    assert (tmp_path / "safe.csv").read_text() == "'=key,lr\n'=1+2,-0.5\n"
    assert (tmp_path / "plain.csv").read_text() == "=key,lr\n=1+2,-0.5\n"


@pytest.mark.slow
def test_compare_table_and_trials_csv_are_safe_and_load_runs_reads_the_value_unchanged(
    tmp_path, train_in_process, monkeypatch
):
    runs = [tmp_path / "=1+2", tmp_path / "-3+4"]  # folder names a spreadsheet would run
    for run in runs:  # the commands, in this process (test_a_non_ascii_run_folder_works: one)
        done = train_in_process(*TINY, f"hydra.run.dir='{run}'", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
    out = tmp_path / "cmp"
    monkeypatch.chdir(tmp_path)
    shown = compare_main(["--no-plots", "--out", str(out), "--", *(r.name for r in runs)])
    assert shown == 0
    table = list(csv.DictReader((out / "table.csv").open()))
    assert sorted(row["folder"][:2] for row in table) == ["'-", "'="]
    assert all(float(row["val_acc"]) >= 0 for row in table)  # numbers are still numbers
    assert sorted(linesweep.load_runs(*map(str, runs))["folder"]) == sorted(map(str, runs))

    sweep = tmp_path / "sweep"
    done = train_in_process(
        "-m", "hydra/sweeper=linesweep", *TINY, "hydra/sweeper/sampler=grid",
        "hydra.sweeper.max_failure_rate=1.0", "+note=choice('=1+2','@x')",
        f"hydra.sweep.dir={sweep}", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr  # every trial refused: no result
    cells = [row["params.+note"] for row in csv.DictReader((sweep / "trials.csv").open())]
    assert sorted(cells) == ["'=1+2", "'@x"]
