"""compare's answer (linesweep/compare/answer.py): `linesweep.core.answer` on the runs shown,
printed before the table, in the report's first card, and the same one a sweep's end tells."""

from __future__ import annotations

import html
import json
import logging

import pytest
import yaml

from linesweep.compare.cli import main
from linesweep.compare.runs import find_runs
from linesweep.compare.table import compare
from tests.test_compare_spread import fake_population
from tests.test_sweep_answer import answer_lines

SEEDS = [{"model_init": r, "shuffle": 100 + r} for r in range(3)]


def population(folder, values, config, n_params, *, seeds=SEEDS, epochs=2, **summary):
    """A `replicates=3` run as fake_population writes it, with each replicate's seeds (a sweep's
    replicates share them, so the answer pairs them) and anything else in summary.json."""
    fake_population(folder, values, config, n_params=n_params)
    record = json.loads((folder / "summary.json").read_text())
    for member, seed in zip(record["replicates"]["members"], seeds, strict=True):
        member.update(seeds=seed, epochs_run=epochs)
    record.update(epochs_run=epochs, **summary)
    (folder / "summary.json").write_text(json.dumps(record))
    return folder


def three_sizes(root):
    """1, 2 and 4 channels: the 1-channel model clearly worse, 2 as good as 4 (the best)."""
    population(root / "1", [0.55, 0.60, 0.58], {"model.out_1": 1}, 60)
    population(root / "2", [0.90, 0.93, 0.91], {"model.out_1": 2}, 110)
    population(root / "3", [0.92, 0.92, 0.93], {"model.out_1": 4}, 220)
    return root


def test_compare_prints_the_answer_first_the_same_lines_the_comparison_holds(tmp_path, capsys):
    three_sizes(tmp_path / "runs")
    assert main([str(tmp_path / "runs"), "--out", str(tmp_path / "out"), "--no-plots"]) == 0
    printed = capsys.readouterr().out.splitlines()
    answered = compare(find_runs([tmp_path / "runs"])).answer
    best, smallest, compared = answered.lines()[:3]
    assert printed[:3] == [best, smallest, compared] and printed[3] == ""
    assert best.startswith("best (by its mean, of 3): model.out_1=4 (220 parameters)")
    assert "95% CI [" in best and "(Student t, n=3)" in best
    # 1 channel is shown worse than the others; 2 channels is not: the answer.
    assert smallest.startswith("smallest not distinguishable from the best: model.out_1=2 (110")
    assert "step 2 in order of size" in smallest and "paired t" in smallest
    assert "compared 3 configuration(s) on val_accuracy (maximize) at epoch 2 of 2" in compared
    assert answered.smallest_run.folder.name == "2" and answered.best_run.folder.name == "3"
    # Fewer than 3 replicates nowhere: no warning of it.
    assert not any("fewer than 3" in line for line in answered.lines())


def test_pruned_runs_never_enter_and_other_epochs_are_compared_not_at_all(tmp_path):
    runs = three_sizes(tmp_path / "runs")
    population(runs / "4", [0.99, 0.99, 0.98], {"model.out_1": 8}, 400, status="pruned")
    population(runs / "5", [0.97, 0.98, 0.99], {"model.out_1": 6}, 300, epochs=3)
    a = compare(find_runs([runs])).answer.answer
    assert a.best.configuration.name == "model.out_1=4" and a.ranked == 3
    assert a.left_out == {"pruned": 1}
    assert a.not_compared == (
        ("model.out_1=6", "trained 3 epochs, the compared ones 2: no common epoch"),
    )
    compared = a.lines()[2]
    assert "left out: 1 pruned (only complete configurations are compared: a pruned run's " in (
        compared
    )
    assert "not compared: 1 trained 3 epochs, the compared ones 2: no common epoch" in compared


def test_runs_judged_by_another_objective_are_never_compared_and_the_answer_says_why(tmp_path):
    runs = three_sizes(tmp_path / "runs")
    other = population(runs / "4", [0.2, 0.1, 0.15], {"model.out_1": 8}, 400)
    record = json.loads((other / "summary.json").read_text())
    record["objective"].update(metrics=["val_loss"], directions=["minimize"])
    (other / "summary.json").write_text(json.dumps(record))
    a = compare(find_runs([runs])).answer.answer
    assert (a.metric, a.direction, a.ranked) == ("val_accuracy", "maximize", 3)
    assert a.not_compared == (
        ("model.out_1=8", "judged by val_loss (minimize), not val_accuracy (maximize)"),
    )
    assert (
        "judged by val_loss (minimize), not val_accuracy (maximize) (model.out_1=8)"
        in (a.lines()[2])
    )


def test_runs_without_replicates_say_there_is_no_spread_and_the_command_that_adds_it(
    tmp_path, capsys
):
    from tests.test_compare import three_runs

    three_runs(tmp_path / "runs")
    assert main([str(tmp_path / "runs"), "--out", str(tmp_path / "out"), "--no-plots"]) == 0
    best, smallest, compared, *_ = capsys.readouterr().out.splitlines()
    assert best.startswith("best (by its single value): model.out_1=2")
    assert "no spread to judge by" in smallest and "replicates=3`" in smallest
    assert compared.startswith("compared: none of 3 configuration(s)")


@pytest.mark.parametrize(
    ("flags", "line"),
    [
        (["--alpha", "0"], "error: --alpha 0.0 is not allowed: a number in (0, 1)"),
        (["--alpha", "1.5"], "error: --alpha 1.5 is not allowed: a number in (0, 1)"),
        (["--alpha", "nan"], "error: --alpha nan is not allowed: a number in (0, 1)"),
        (["--alpha", "small"], "error: --alpha small is not allowed: a number in (0, 1)"),
        (
            ["--test", "ttest"],
            "error: --test ttest is not allowed: one of auto, welch, mannwhitney, paired",
        ),
    ],
)
def test_a_bad_alpha_or_test_is_one_line_naming_it_and_exit_2(tmp_path, capsys, flags, line):
    three_sizes(tmp_path / "runs")
    out = tmp_path / "out"
    assert main([str(tmp_path / "runs"), "--out", str(out), *flags]) == 2
    printed = capsys.readouterr()
    assert printed.err.splitlines() == [line] and printed.out == ""
    assert not out.exists()  # refused before anything was read or written


def test_alpha_and_test_change_the_answer_as_they_say(tmp_path):
    runs = three_sizes(tmp_path / "runs")
    answered = compare(find_runs([runs]), answer_flags={"alpha": 0.001, "test": "welch"}).answer
    a = answered.answer
    assert (a.settings.alpha, a.settings.test) == (0.001, "welch")
    assert set(a.tests) == {"Welch's t"} and "alpha=0.001" in a.lines()[2]


@pytest.mark.slow
def test_the_answer_is_one_computation_shown_four_times(sweep_in_process, tmp_path, capfd, caplog):
    """The sweep's end, optimization_results.yaml, compare's terminal and the report name the
    same best and smallest configuration with the same p-value: the same lines."""
    caplog.set_level(logging.INFO)
    sweep = tmp_path / "sweep"
    sweep_in_process(
        sweep,
        "hydra/sweeper/sampler=grid",
        "model.out_1=choice(1,2,4)",
        "replicates=3",
        "hydra.sweeper.n_trials=3",
    )
    at_the_end = answer_lines(capfd, caplog)
    saved = yaml.safe_load((sweep / "optimization_results.yaml").read_text())["answer"]
    assert saved["ranked"] == 3 and saved["smallest"] is not None

    out = tmp_path / "compared"
    assert main([str(sweep), "--out", str(out)]) == 0
    printed = capfd.readouterr().out.splitlines()
    page = (out / "report.html").read_text()
    card = page[page.index('id="answer"') : page.index("</section>", page.index('id="answer"'))]

    lines = saved["lines"]
    assert at_the_end == lines
    assert printed[: len(lines)] == lines
    shown = html.unescape(card)
    assert all(line.removeprefix("warning: ") in shown for line in lines)
    # ... and the numbers behind the lines are compare's own, computed from the run folders.
    again = compare(find_runs([sweep])).answer.answer.to_dict()
    for key in ("best", "smallest"):
        assert again[key]["label"] == saved[key]["label"]
        assert again[key]["p_adjusted"] == saved[key]["p_adjusted"]
        assert again[key]["mean"] == saved[key]["mean"] and again[key]["ci"] == saved[key]["ci"]
    best, smallest = saved["best"]["label"], saved["smallest"]["label"]
    p = f"p={saved['smallest']['p_adjusted']:.4g}" if not saved["smallest_is_best"] else ""
    for text in ("\n".join(at_the_end), "\n".join(printed), shown):
        assert f": {best} (" in text and f": {smallest} (" in text and p in text
