"""compare shows spread: runs with replicates (and repeats of one config by seed) in the table,
the DataFrame, the plots and the report, every number checked against one computed by hand."""

from __future__ import annotations

import base64
import csv
import json
import math
import statistics

import pytest
import yaml
from matplotlib.container import ErrorbarContainer
from omegaconf import OmegaConf
from scipy import stats as sps

import linesweep
from linesweep.compare.cli import main
from linesweep.compare.plots import accuracy_by_size, objective_by_parameter
from linesweep.compare.report import render_report
from linesweep.compare.runs import find_runs, read_run
from linesweep.compare.table import FIXED_COLUMNS, Selection, compare
from linesweep.compare.table_files import markdown_table
from linesweep.compare.terminal import text_table
from linesweep.draw import main as draw
from linesweep.run.task import run as train
from tests.conftest import TINY
from tests.test_compare import METRICS, fake_run, history, three_runs

THRESHOLD = 0.9


def fake_population(folder, finals, config=None, values=None, statuses=None, n_params=119):
    """A run folder as `replicates=R` leaves it (summary.json's members, metrics.csv's
    `replicate` column), written directly: replicate r ends at finals[r] after two epochs."""
    config = {"replicates": len(finals), **(config or {})}
    fake_run(folder, (0.5, finals[0]), config, n_params=n_params)
    histories = [history((0.5, final)) for final in finals]
    with (folder / "metrics.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, ["replicate", *METRICS])
        writer.writeheader()
        for epoch in range(2):
            writer.writerows({"replicate": r, **h[epoch]} for r, h in enumerate(histories))
    values = list(finals) if values is None else values
    statuses = statuses or ["complete"] * len(finals)
    summary = json.loads((folder / "summary.json").read_text())
    finite = [v for v in values if v is not None]
    summary["objective"].update(statistic="mean", values=[statistics.mean(finite)])
    summary["replicates"] = {
        "count": len(finals),
        "statistic": "mean",
        "success_threshold": THRESHOLD,
        "members": [
            {
                "replicate": r,
                "status": statuses[r],
                "reason": None,
                "epochs_run": 2,
                "final": histories[r][-1],
                "values": [values[r]],
            }
            for r in range(len(finals))
        ],
    }
    (folder / "summary.json").write_text(json.dumps(summary))
    return folder


FINALS = (0.5, 1.0, 0.95, 0.7)  # by hand: mean 0.7875, 2 of 4 reach 0.9


def by_folder(comparison):
    return {row["folder"].rsplit("/", 1)[-1]: row for row in comparison.rows}


def t_interval(values):
    """The mean's 95% Student t interval, by hand: mean -+ t(0.975, n - 1) * s / sqrt(n)."""
    n, mean = len(values), statistics.mean(values)
    half = sps.t.ppf(0.975, n - 1) * statistics.stdev(values) / math.sqrt(n)
    return mean - half, mean + half


def test_a_replicated_runs_row_shows_mean_interval_success_rate_and_replicates(tmp_path):
    fake_population(tmp_path / "pop", FINALS, {"model.out_1": 3})
    fake_run(tmp_path / "plain", (0.6, 0.8))
    comparison = compare(find_runs([tmp_path]))
    assert comparison.columns == [
        "rank", "model.out_1", "obj.val_accuracy",
        "val_accuracy_mean", "val_accuracy_ci_low", "val_accuracy_ci_high", "val_accuracy_std",
        "val_accuracy_n", "success_rate", "success_ci_low", "success_ci_high", "replicates",
        "obj_epoch", *FIXED_COLUMNS, "folder", "note",
    ]  # fmt: skip
    pop, plain = by_folder(comparison)["pop"], by_folder(comparison)["plain"]
    assert pop["val_accuracy_mean"] == pytest.approx(statistics.mean(FINALS))
    low, high = t_interval(FINALS)
    assert (pop["val_accuracy_ci_low"], pop["val_accuracy_ci_high"]) == (
        pytest.approx(low), pytest.approx(high),
    )  # fmt: skip
    assert pop["val_accuracy_std"] == pytest.approx(statistics.stdev(FINALS))  # sample std
    assert pop["val_accuracy_n"] == 4
    assert pop["success_rate"] == sum(f >= THRESHOLD for f in FINALS) / len(FINALS) == 0.5
    wilson = sps.binomtest(2, 4).proportion_ci(0.95, method="wilson")
    assert (pop["success_ci_low"], pop["success_ci_high"]) == (
        pytest.approx(wilson.low), pytest.approx(wilson.high),
    )  # fmt: skip
    assert pop["replicates"] == 4
    # the metric columns are means over the replicates, not replicate 0's numbers
    assert pop["val_acc"] == pytest.approx(statistics.mean(FINALS))
    assert pop["val_loss"] == pytest.approx(statistics.mean(1 - f for f in FINALS))
    assert pop["best_acc"] == pytest.approx(statistics.mean(FINALS))  # each one's best: epoch 2
    # a plain run next to it keeps its own numbers, and no spread
    assert (plain["val_acc"], plain["replicates"]) == (0.8, 1)
    assert plain["val_accuracy_std"] is None and plain["success_rate"] is None

    cell = f"{statistics.mean(FINALS):.4g} [{low:.4g}, {high:.4g}]"  # 0.7875 [0.4179, 1.157]
    rate = f"0.5 [{wilson.low:.2g}, {wilson.high:.2g}]"  # 0.5 [0.15, 0.85]
    text = text_table(comparison.rows, comparison.columns, width=200)
    assert "mean [95% t]" in text and cell in text and rate in text  # headers on two lines
    markdown = markdown_table(comparison.rows, comparison.columns)
    assert "| val_accuracy_mean [95% t] | success_rate [Wilson 95%] | replicates |" in markdown
    assert f"| {cell} | {rate} | 4 |" in markdown


def test_runs_without_replicates_show_the_table_they_always_did(tmp_path):
    comparison = compare(find_runs([three_runs(tmp_path)]))
    assert not any("mean" in c or c in ("success_rate", "replicates") for c in comparison.columns)
    assert "95%" not in text_table(comparison.rows, comparison.columns, width=200)


def test_a_diverged_replicate_is_left_out_of_the_mean_and_counts_as_a_failure(tmp_path):
    fake_population(
        tmp_path / "pop", (0.95, 0.5, 0.92), values=[0.95, None, 0.92],
        statuses=["complete", "diverged", "complete"],
    )  # fmt: skip
    row = compare(find_runs([tmp_path])).rows[0]
    assert row["val_accuracy_mean"] == pytest.approx(statistics.mean([0.95, 0.92]))
    assert row["val_accuracy_std"] == pytest.approx(statistics.stdev([0.95, 0.92]))
    assert row["success_rate"] == pytest.approx(2 / 3) and row["replicates"] == 3


def test_load_runs_has_the_spread_columns(tmp_path):
    fake_population(tmp_path / "pop", FINALS, {"model.out_1": 3})
    fake_run(tmp_path / "plain", (0.6, 0.8))
    df = linesweep.load_runs(tmp_path)
    df = df.set_index(df.folder.str[-3:])
    assert {"replicates", "val_accuracy_mean", "val_accuracy_std", "success_rate"} <= set(df)
    assert list(df.columns).count("replicates") == 1  # the config key of that name folds in
    assert df.loc["pop", "replicates"] == 4 and df.loc["ain", "replicates"] == 1
    assert df.loc["pop", "val_accuracy_std"] == pytest.approx(statistics.stdev(FINALS))
    assert df.loc["pop", "success_rate"] == 0.5
    assert df[["val_accuracy_std", "success_rate"]].loc["ain"].isna().all()
    assert df.loc["pop", "final.val_accuracy"] == FINALS[0]  # final.*: replicate 0's record


def seeds(root):
    """`-m seed=0,1,2` of one config (ending at 0.6, 0.9, 0.95) and one run of another."""
    spread = {"replicate.success_threshold": THRESHOLD, "replicate.statistic": "mean"}
    for seed, final in zip((0, 1, 2), (0.6, 0.9, 0.95), strict=True):
        fake_run(root / f"s{seed}", (0.5, final), {"seed": seed, "model.out_1": 3, **spread})
    fake_run(root / "other", (0.5, 0.8), {"seed": 0, "model.out_1": 5, **spread})
    return root


def test_group_seeds_makes_repeats_of_one_config_one_row_with_their_spread(tmp_path):
    folders = find_runs([seeds(tmp_path)])
    per_run = compare(folders)
    assert len(per_run.rows) == 4 and "replicates" not in per_run.columns  # the default

    grouped = compare(folders, Selection(group_seeds=True))
    assert len(grouped.rows) == 2 and "seed" in grouped.columns
    row = next(r for r in grouped.rows if r["model.out_1"] == 3)
    finals = [0.6, 0.9, 0.95]
    assert row["seed"] == [0, 1, 2] and row["replicates"] == 3
    assert row["obj.val_accuracy"] == pytest.approx(statistics.mean(finals))  # the statistic
    assert row["val_accuracy_mean"] == pytest.approx(statistics.mean(finals))
    assert row["val_accuracy_std"] == pytest.approx(statistics.stdev(finals))
    assert row["success_rate"] == pytest.approx(2 / 3)
    assert row["folder"].endswith("s0") and "3 runs grouped by seed" in row["note"]
    other = next(r for r in grouped.rows if r["model.out_1"] == 5)
    assert other["replicates"] == 1 and other["val_accuracy_std"] is None


def test_the_command_groups_seeds_on_request(tmp_path, capsys):
    assert main([str(seeds(tmp_path / "runs")), "--out", str(tmp_path / "o"), "--no-plots"]) == 0
    assert "4 runs (0 with warnings)" in capsys.readouterr().out
    out = tmp_path / "o2"
    assert main([str(tmp_path / "runs"), "--out", str(out), "--no-plots", "--group-seeds"]) == 0
    printed = capsys.readouterr().out
    assert "2 shown of 4 runs" in printed
    rows = list(csv.DictReader((out / "table.csv").open()))
    assert [r["replicates"] for r in rows] == ["3", "1"] and rows[0]["seed"] == "[0, 1, 2]"


def errorbars(fig):
    return [c for ax in fig.axes for c in ax.containers if isinstance(c, ErrorbarContainer)]


def test_accuracy_by_size_and_objective_by_parameter_draw_error_bars_and_each_replicate(tmp_path):
    fake_population(tmp_path / "a", FINALS, {"model.out_1": 3}, n_params=130)
    fake_population(tmp_path / "b", (0.8, 0.9), {"model.out_1": 6}, n_params=160)
    fake_run(tmp_path / "plain", (0.6, 0.8), {"model.out_1": 1})
    runs = compare(find_runs([tmp_path])).shown
    for fig in (accuracy_by_size(runs), objective_by_parameter(runs, ["model.out_1"])):
        (bars,) = errorbars(fig)  # one error bar per run with replicates, the plain run none
        _, _, (lines,) = bars.lines
        segments = sorted(lines.get_segments(), key=lambda s: s[0][0])
        expected = sorted(
            [(130, FINALS), (160, (0.8, 0.9))] if fig.axes[0].get_xlabel() == "parameters"
            else [(3, FINALS), (6, (0.8, 0.9))]
        )  # fmt: skip
        for segment, (x, values) in zip(segments, expected, strict=True):
            low, high = t_interval(values)  # the mean's 95% t interval, as every table shows
            assert segment[0] == pytest.approx([x, low])
            assert segment[1] == pytest.approx([x, high])
        dots = [c for c in fig.axes[0].collections if c.get_label() == "each replicate"]
        assert len(dots) == 1 and len(dots[0].get_offsets()) == len(FINALS) + 2
        assert any("n = 2–4 replicates" in t.get_text() for t in fig.texts)
    plain = [r for r in runs if r.replicates == 1]
    assert errorbars(accuracy_by_size(plain)) == []


def test_the_report_says_how_many_replicates_stand_behind_each_number(tmp_path):
    fake_population(tmp_path / "pop", FINALS, {"model.out_1": 3})
    fake_run(tmp_path / "plain", (0.6, 0.7))
    page = render_report(compare(find_runs([tmp_path])), [], base=tmp_path)
    low, high = t_interval(FINALS)
    cell = f"{statistics.mean(FINALS):.4g} [{low:.4g}, {high:.4g}]"
    answer = page[page.index('id="answer"') : page.index('id="runs"')]
    assert high > 1  # the answer cuts an accuracy's interval to [0, 1], and says so
    assert (
        f"val_accuracy {statistics.mean(FINALS):.4g}, 95% CI [{low:.4g}, 1] "
        "(Student t, n=4, cut to [0, 1])"
    ) in answer
    assert "success rate 0.5 (2/4 reach 0.9; Wilson 95% [0.15, 0.85])" in answer
    assert "1 with fewer than 2 finite values: no spread to test" in answer  # the plain run
    runs = page[page.index('id="runs"') :]
    assert "counts (1 to 4 per row; 1 row with one)" in runs
    assert '<th class="key">replicates</th>' in runs and f'<td class="num">{cell}</td>' in runs
    facts = page[page.index("The best run: ") :]  # the best run's own section
    assert "<dt>replicates</dt><dd>4, the value is their mean;" in facts
    assert f"val_accuracy {cell} (mean, 95% Student t interval over 4)" in facts
    assert "success rate 0.5 [0.15, 0.85] (reaching 0.9; Wilson 95%)" in facts

    alone = tmp_path / "alone"
    fake_run(alone / "r", (0.6, 0.7))
    page = render_report(compare(find_runs([alone])), [], base=alone)
    assert "<dt>replicates</dt><dd>1 (a single run: no spread)</dd>" in page
    assert "95% t" not in page


def test_hostile_replicate_records_are_one_warning_and_a_state(tmp_path, capsys):
    cases = {
        "members_not_records": ["x", 1],
        "bad_status": [{"replicate": 0, "status": "bogus", "final": {}}],
        "values_wrong_length": [{"replicate": 0, "status": "complete", "values": [1, 2]}],
        "bool_replicate": [{"replicate": True, "status": "complete"}],
        "negative_replicate": [{"replicate": -1, "status": "complete"}],
        "nested_final": [{"replicate": 0, "status": "complete", "final": {"a": [1e308] * 3}}],
    }
    for name, members in cases.items():
        folder = fake_population(tmp_path / "runs" / name, FINALS)
        summary = json.loads((folder / "summary.json").read_text())
        summary["replicates"]["members"] = members
        summary["replicates"]["success_threshold"] = "high"
        (folder / "summary.json").write_text(json.dumps(summary))
    odd = fake_population(tmp_path / "runs" / "odd_csv", FINALS)
    text = (odd / "metrics.csv").read_text().replace("\n3,", "\n1e300,").replace("\n2,", "\nnan,")
    (odd / "metrics.csv").write_text(text)
    not_a_block = fake_run(tmp_path / "runs" / "not_a_block", (0.5, 0.9))
    summary = json.loads((not_a_block / "summary.json").read_text())
    (not_a_block / "summary.json").write_text(json.dumps({**summary, "replicates": [1, 2]}))

    out = tmp_path / "out"
    assert main([str(tmp_path / "runs"), "--out", str(out)]) == 0
    printed = capsys.readouterr()
    warnings = [line for line in printed.err.splitlines() if line.startswith("warning:")]
    for name in [*cases, "odd_csv", "not_a_block"]:
        mine = [w for w in warnings if f"/runs/{name}:" in w]
        assert len(mine) == 1, (name, mine)
    for name in cases:  # its members from metrics.csv: the spread of their last epochs, no values
        folder = tmp_path / "runs" / name
        assert "replicates.members (not a list of replicate records" in printed.err
        run = read_run(folder)
        assert run.state == "complete" and run.replicates == 4 and run.success_threshold is None
        assert run.cell("val_acc") == pytest.approx(statistics.mean(FINALS))
    odd_run = read_run(odd)  # its members from summary.json; replicates 2 and 3 lack a best
    assert odd_run.warnings == ["metrics.csv has 4 rows whose replicate is not a count, left out"]
    assert odd_run.replicates == 4 and odd_run.cell("val_acc") == pytest.approx(0.7875)
    assert odd_run.cell("best_acc") == pytest.approx(statistics.mean(FINALS[:2]))
    assert read_run(not_a_block).replicates == 1
    assert (out / "report.html").is_file() and (out / "plots" / "accuracy_by_size.png").is_file()


@pytest.mark.slow
def test_a_real_population_in_the_table_equals_its_metrics_by_hand(compose_config, tmp_path):
    folder = tmp_path / "runs" / "pop"
    overrides = [*TINY, "replicates=4"]
    cfg = compose_config(*overrides)
    train(cfg, folder, overrides=overrides)
    (folder / ".hydra").mkdir()
    OmegaConf.save(cfg, folder / ".hydra" / "config.yaml")
    (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    with (folder / "metrics.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    last = {row["replicate"]: float(row["val_accuracy"]) for row in rows}  # the last epoch wins
    finals = [last[str(r)] for r in range(4)]

    (row,) = compare(find_runs([tmp_path / "runs"])).rows
    assert row["replicates"] == 4 and row["state"] == "complete"
    assert row["val_accuracy_mean"] == pytest.approx(statistics.mean(finals))
    assert row["val_accuracy_std"] == pytest.approx(statistics.stdev(finals))
    assert row["success_rate"] == sum(f >= 0.9 for f in finals) / 4
    assert row["obj.val_accuracy"] == pytest.approx(statistics.mean(finals))  # the default mean


@pytest.mark.slow
def test_a_seed_groups_best_run_shows_its_first_runs_pictures_once_drawn(
    compose_config, tmp_path, capsys
):
    for seed in (0, 1):
        folder = tmp_path / "runs" / f"s{seed}"
        overrides = [*TINY, f"seed={seed}"]  # plots=none: no picture drawn
        cfg = compose_config(*overrides)
        train(cfg, folder, overrides=overrides)
        (folder / ".hydra").mkdir()
        OmegaConf.save(cfg, folder / ".hydra" / "config.yaml")
        (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    first = tmp_path / "runs" / "s0"  # a group's folder, curve and weights are its first run's
    out = tmp_path / "out"
    assert main([str(tmp_path / "runs"), "--out", str(out), "--group-seeds"]) == 0
    assert f"  its pictures: python -m linesweep.draw {first}\n" in capsys.readouterr().out
    assert "The run drew no kernels or feature maps" in (out / "report.html").read_text()

    assert draw([str(first)]) == 0
    assert main([str(tmp_path / "runs"), "--out", str(out), "--group-seeds"]) == 0
    assert "linesweep.draw" not in capsys.readouterr().out
    page = (out / "report.html").read_text()
    for name in ("kernels_conv1", "kernels_conv2", "feature_maps", "flattened_activations"):
        png = base64.b64encode((first / "plots" / f"{name}.png").read_bytes()).decode()
        assert f'src="data:image/png;base64,{png}"' in page
    assert "linesweep.draw" not in page and not list((out / "plots").glob("best_*"))
