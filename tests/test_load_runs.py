"""`linesweep.load_runs`: run folders as a pandas DataFrame, agreeing with compare's table."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pandas as pd
import pytest

import linesweep
from linesweep.compare.console import UsageError
from linesweep.compare.runs import find_runs
from linesweep.compare.table import compare
from tests.test_compare import fake_run, three_runs


def test_one_row_per_run_with_config_objective_epoch_state_metrics_and_folder(tmp_path):
    three_runs(tmp_path)
    fake_run(tmp_path / "d", (0.5,), {"model.out_1": 8}, status="pruned", reason="pruned")
    df = linesweep.load_runs(tmp_path)
    assert isinstance(df, pd.DataFrame)
    assert [p.rsplit("/", 1)[-1] for p in df["folder"]] == ["a", "b", "c", "d"]  # folder order
    assert list(df["model.out_1"]) == [1, 2, 4, 8]  # every config key, flattened
    assert list(df["seed"]) == [4, 4, 4, 4] and df["optimizer.betas"][0] == [0.9, 0.999]
    assert list(df["obj.val_accuracy"]) == [0.7, 0.9, 0.8, 0.5]
    assert list(df["state"]) == ["complete", "complete", "complete", "pruned"]
    # the epoch each value was measured at: a pruned run's is the epoch it stopped at
    assert list(df["obj_epoch"]) == [2, 2, 2, 1]
    assert list(df["final.val_loss"]) == pytest.approx([0.3, 0.1, 0.2, 0.5])
    assert list(df["best.epoch"]) == [2, 2, 1, 1]  # c reached 0.8 at epoch 1 already
    assert list(df["n_params"]) == [110, 119, 137, 119]
    assert df["warnings"].isna().all() and df["sweep"].isna().all()


def test_its_columns_are_compares_table_read_through_the_same_mapping(tmp_path):
    three_runs(tmp_path)
    df = linesweep.load_runs(tmp_path).set_index("folder")
    comparison = compare(find_runs([tmp_path]))
    for row in comparison.rows:
        for column in comparison.columns:
            if column in ("rank", "folder"):
                continue
            mine, theirs = df.loc[row["folder"], column], row[column]
            same = mine == theirs or (theirs is None and pd.isna(mine))
            assert same, (row["folder"], column, mine, theirs)


def test_the_objectives_best_epoch_when_the_objective_is_measured_at_the_best_epoch(tmp_path):
    fake_run(tmp_path / "r", (0.5, 0.9, 0.7), {"objective.epoch": "best"})
    assert linesweep.load_runs(tmp_path)["obj_epoch"].tolist() == [2]


def test_runs_that_differ_only_in_their_seed_are_one_config_group(tmp_path):
    for seed in (1, 2, 3):
        fake_run(tmp_path / f"s{seed}", (0.5 + seed / 10,), {"seed": seed, "plots.dpi": seed})
    fake_run(tmp_path / "other", (0.9,), {"model.out_1": 5})
    df = linesweep.load_runs(tmp_path)
    assert df.set_index(df["folder"].str[-2:])["config_group"].to_dict() == {
        "er": 0, "s1": 1, "s2": 1, "s3": 1,
    }  # fmt: skip
    assert df["group_size"].tolist() == [1, 3, 3, 3]
    assert df["replicates"].tolist() == [1, 1, 1, 1]  # each run is one replicate
    spread = df[df.group_size > 1].groupby("config_group")["obj.val_accuracy"].agg(["mean", "std"])
    assert spread.loc[1, "mean"] == pytest.approx(0.7) and spread.loc[1, "std"] > 0


def test_the_docstrings_notebook_example_runs(tmp_path, monkeypatch):
    three_runs(tmp_path / "outputs" / "sweeps" / "channels_lr")
    monkeypatch.chdir(tmp_path)
    df = linesweep.load_runs("outputs/sweeps/channels_lr")  # or several folders, or globs
    done = df[df.state == "complete"]
    best = done.sort_values("obj.val_accuracy", ascending=False).head()
    assert best["model.out_1"].tolist() == [2, 4, 1]  # compare's order
    by_channels = done.groupby("model.out_1")["obj.val_accuracy"].max()
    assert by_channels.to_dict() == {1: 0.7, 2: 0.9, 4: 0.8}
    assert len(linesweep.load_runs()) == 3  # default: everything below outputs/


def test_paths_globs_and_lists_and_what_happens_without_runs(tmp_path):
    three_runs(tmp_path / "x")
    fake_run(tmp_path / "y" / "z")
    assert len(linesweep.load_runs(tmp_path / "x", tmp_path / "y")) == 4
    assert len(linesweep.load_runs([str(tmp_path / "x" / "a"), tmp_path / "y"])) == 2
    assert len(linesweep.load_runs(str(tmp_path / "x" / "[ab]"))) == 2
    (tmp_path / "empty").mkdir()
    empty = linesweep.load_runs(tmp_path / "empty")
    assert empty.empty and {"folder", "state"} <= set(empty.columns)
    with pytest.raises(UsageError, match="no such folder"):
        linesweep.load_runs(tmp_path / "typo")


def test_odd_folders_keep_their_row_with_a_warnings_column_and_one_python_warning(tmp_path):
    fake_run(tmp_path / "ok", (0.9,))
    (fake_run(tmp_path / "broken", (0.5,)) / "summary.json").write_text("{")
    with pytest.warns(UserWarning, match="1 of 2 run folders have problems"):
        df = linesweep.load_runs(tmp_path)
    broken = df[df.folder.str.endswith("broken")].iloc[0]
    assert broken.state == "incomplete" and broken.warnings.startswith("summary.json is unread")
    assert math.isnan(broken["obj.val_accuracy"])


def test_import_linesweep_stays_light_and_load_runs_imports_pandas_on_first_use():
    code = (
        "import sys, json, linesweep\n"
        "before = {m: m in sys.modules for m in ('pandas', 'torch', 'matplotlib')}\n"
        "linesweep.load_runs\n"
        "print(json.dumps([before, 'pandas' in sys.modules, 'load_runs' in dir(linesweep)]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    before, after, listed = json.loads(done.stdout)
    assert before == {"pandas": False, "torch": False, "matplotlib": False}
    assert after and listed
    with pytest.raises(AttributeError, match="no attribute 'load_run'"):
        linesweep.load_run  # noqa: B018


def test_load_configurations_is_one_row_per_configuration_with_the_answers_statistics(tmp_path):
    from tests.test_compare_answer import population, three_sizes

    runs = three_sizes(tmp_path / "runs")
    population(runs / "4", [0.99, 0.99, 0.98], {"model.out_1": 8}, 400, status="pruned")
    fake_run(runs / "5", (0.6, 0.95), {"model.out_1": 16}, n_params=800)  # one value: no spread
    configs = linesweep.load_configurations(runs)
    assert configs["model.out_1"].tolist() == [1, 2, 4, 8, 16] and len(configs) == 5

    # Each row's numbers by hand: the mean, its Student t interval, n; Wilson for the rate.
    from scipy import stats as sps

    one = configs.iloc[0]
    values = [0.55, 0.60, 0.58]
    mean, sem = sum(values) / 3, sps.sem(values)
    low, high = sps.t.interval(0.95, 2, loc=mean, scale=sem)
    assert (one.n, one.replicates, one.n_params) == (3, 3, 60)
    assert one["mean"] == pytest.approx(mean) and one["std"] == pytest.approx(sps.tstd(values))
    assert (one.ci_low, one.ci_high) == (pytest.approx(low), pytest.approx(high))
    wilson = sps.binomtest(0, 3).proportion_ci(0.95, method="wilson")  # none reaches 0.9
    assert one.success_rate == 0 and one.success_ci_high == pytest.approx(wilson.high)

    # The answer's verdicts, as compare states them.
    answered = compare(find_runs([runs])).answer
    assert configs.best.tolist() == [False, False, True, False, False]
    assert configs.smallest.tolist() == [False, True, False, False, False]
    assert configs.compared.tolist() == [True, True, True, False, False]
    assert configs.attrs["answer"]["lines"] == answered.lines()
    smallest = configs[configs.smallest].iloc[0]
    assert smallest.p_adjusted == answered.answer.smallest.p_adjusted and smallest.step == 2
    assert smallest.test == "paired" and smallest.difference == pytest.approx(0.913333 - 0.923333)
    pruned, single = configs.iloc[3], configs.iloc[4]
    assert pruned.status == "pruned" and pruned.why_not.startswith("pruned: only complete")
    assert single.n == 1 and math.isnan(single.ci_low)
    assert single.why_not == "with fewer than 2 finite values: no spread to test"
    # --alpha and --test, as keywords.
    welch = linesweep.load_configurations(runs, alpha=0.01, test="welch")
    assert set(welch.test.dropna()) == {"welch"} and welch.attrs["answer"]["alpha"] == 0.01
    with pytest.raises(UsageError, match=r"--test t is not allowed: one of auto, welch"):
        linesweep.load_configurations(runs, test="t")
