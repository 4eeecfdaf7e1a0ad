"""Comparing runs: discovery, the table, odd folders, plots and the HTML report."""

from __future__ import annotations

import base64
import csv
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from linesweep.compare.cli import main
from linesweep.compare.console import UsageError
from linesweep.compare.display import short_names
from linesweep.compare.plots import frontier, save_comparison_plots, wants_log_axis
from linesweep.compare.reproduce import reproduce_command
from linesweep.compare.runs import find_runs, read_run
from linesweep.compare.table import FIXED_COLUMNS, Filter, Selection, compare
from linesweep.compare.terminal import text_table
from linesweep.core.flat import flatten, unflatten
from linesweep.run.task import run
from tests.conftest import TINY, run_cli

PNG = b"\x89PNG\r\n\x1a\n"
BASE_CONFIG = {
    "seed": 4,
    "data": {"N_images": 200, "image_size": 11},
    "model": {"out_1": 2, "out_2": 1, "conv1": {"kernel_size": 2, "stride": 1}},
    "optimizer": {"_target_": "torch.optim.Adam", "lr": 0.001, "betas": [0.9, 0.999]},
    "trainer": {"epochs": 2, "progress_bar": None},
    "objective": {"metrics": ["val_accuracy"], "epoch": "last"},
    "plots": {"dpi": 80},
}
METRICS = ["epoch", "train_cost", "train_loss", "val_loss", "val_accuracy", "epoch_s", "elapsed_s"]


def history(accuracies):
    return [
        dict(zip(METRICS, [i, 10.0 - i, 1.0 - i / 10, 1.0 - a, a, 0.1, 0.1 * i], strict=True))
        for i, a in enumerate(accuracies, start=1)
    ]


def fake_run(folder, accuracies=(0.6, 0.8), config=None, n_params=119, **summary):
    """A run folder as linesweep.train leaves it, written directly: no training."""
    cfg = unflatten({**flatten(BASE_CONFIG), **(config or {})})
    overrides = [f"{k}={v}" for k, v in (config or {}).items()]
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "config.yaml").write_text(yaml.safe_dump(cfg))
    (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    rows = history(accuracies)
    with (folder / "metrics.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, METRICS)
        writer.writeheader()
        writer.writerows(rows)
    (folder / "shapes.yaml").write_text(yaml.safe_dump({"agree": True, "n_params": n_params}))
    record = {
        "status": "complete",
        "error": None,
        "host": "elsewhere",
        "pid": 1,
        "overrides": overrides,
        "objective": {
            "metrics": ["val_accuracy"],
            "directions": ["maximize"],
            "epoch": "last",
            "values": [accuracies[-1]],
        },
        "epochs_run": len(rows),
        "final": rows[-1],
        "best": max(rows, key=lambda r: r["val_accuracy"]),
        "n_params": n_params,
        "wall_time_s": 1.5,
        **summary,
    }
    (folder / "summary.json").write_text(json.dumps(record))
    return folder


def three_runs(root):
    """out_1 = 1, 2, 4 with final accuracies 0.7, 0.9, 0.8; dpi and the progress bar differ too."""
    fake_run(root / "a", (0.5, 0.7), {"model.out_1": 1, "plots.dpi": 50}, n_params=110)
    fake_run(root / "b", (0.6, 0.9), {"model.out_1": 2, "trainer.progress_bar": True})
    fake_run(root / "c", (0.8, 0.8), {"model.out_1": 4, "optimizer.lr": 0.01}, n_params=137)
    return root


def folders(comparison):
    return [run.folder.name for run in comparison.shown]


def test_one_row_per_run_best_objective_first_with_only_the_config_values_that_differ(tmp_path):
    comparison = compare(find_runs([three_runs(tmp_path)]))
    assert folders(comparison) == ["b", "c", "a"]
    assert comparison.varying == ["model.out_1", "optimizer.lr"]  # not plots.*, progress_bar
    assert comparison.columns == [
        "rank", "model.out_1", "optimizer.lr", "obj.val_accuracy", "obj_epoch", *FIXED_COLUMNS,
        "folder", "note",
    ]  # fmt: skip
    first = comparison.rows[0]
    assert first["rank"] == 1 and first["model.out_1"] == 2 and first["obj.val_accuracy"] == 0.9
    assert first["obj_epoch"] == 2  # the epoch the objective was measured at
    assert (first["val_acc"], first["best_acc"], first["n_params"], first["epochs"]) == (
        0.9, 0.9, 119, 2,
    )  # fmt: skip
    assert first["state"] == "complete" and first["folder"] == str(tmp_path / "b")
    assert comparison.best.folder.name == "b"
    assert comparison.count_line() == "3 runs (0 with warnings)"


def test_sort_top_where_and_state_pick_and_order_the_rows(tmp_path):
    runs = find_runs([three_runs(tmp_path)])
    fake_run(tmp_path / "d", (0.5,), {"model.out_1": 8}, status="pruned", reason="pruned")

    def shown(**options):
        return folders(compare([*runs, tmp_path / "d"], Selection(**options)))

    assert shown() == ["b", "c", "a", "d"]
    assert shown(descending=False) == ["d", "a", "c", "b"]  # worst first
    assert shown(sort="n_params") == ["a", "b", "d", "c"]  # fewest first: a metric's best end
    assert shown(sort="model.out_1", descending=True) == ["d", "c", "b", "a"]
    assert shown(top=2) == ["b", "c"]
    assert shown(where=(Filter("model.out_1", "4"),)) == ["c"]
    assert shown(where=(Filter("optimizer.lr", "1e-2"),)) == ["c"]  # compared as numbers
    assert shown(where=(Filter("optimizer._target_", "torch.optim.Adam"),), top=1) == ["b"]
    assert shown(states=("pruned",)) == ["d"]
    assert shown(states=("complete",), sort="model.out_1") == ["a", "b", "c"]
    with pytest.raises(UsageError, match=r"no run has a column or config key 'model\.out'"):
        shown(where=(Filter("model.out", "4"),))
    with pytest.raises(UsageError, match="unknown state 'done'"):
        shown(states=("done",))


def test_runs_whose_configs_differ_in_structure_compare_on_the_keys_they_share(tmp_path):
    fake_run(tmp_path / "adam", (0.9,))
    sgd = {"optimizer._target_": "torch.optim.SGD", "optimizer.momentum": 0.9}
    fake_run(tmp_path / "sgd", (0.8,), sgd)
    sgd_config = yaml.safe_load((tmp_path / "sgd" / ".hydra" / "config.yaml").read_text())
    del sgd_config["optimizer"]["betas"]  # SGD has no betas, Adam no momentum
    (tmp_path / "sgd" / ".hydra" / "config.yaml").write_text(yaml.safe_dump(sgd_config))
    comparison = compare(find_runs([tmp_path]))
    assert comparison.varying == ["optimizer._target_"]
    assert folders(comparison) == ["adam", "sgd"]


def dead_pid():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_odd_folders_are_listed_with_their_state_and_one_warning_each(tmp_path):
    import socket

    here = {"host": socket.gethostname(), "objective": None, "final": None, "best": None}
    fake_run(tmp_path / "ok", (0.9,))
    fake_run(tmp_path / "live", (0.7,), status="running", pid=os.getpid(), **here)
    fake_run(tmp_path / "killed", (0.6,), status="running", pid=dead_pid(), **here)
    (fake_run(tmp_path / "no_summary", (0.5, 0.55)) / "summary.json").unlink()
    (fake_run(tmp_path / "bad_json", (0.5,)) / "summary.json").write_text('{"status": "compl')
    bad_csv = fake_run(tmp_path / "bad_csv", (0.5, 0.6, 0.7))
    lines = (bad_csv / "metrics.csv").read_text().splitlines()
    (bad_csv / "metrics.csv").write_text(
        "\n".join([*lines[:3], "3,oops,0.7,0.3,0.7,0.1,0.3"]) + "\n"
    )
    old = fake_run(tmp_path / "old", (0.65,))
    summary = json.loads((old / "summary.json").read_text())
    del summary["objective"]  # written before summaries named their objective
    (old / "summary.json").write_text(json.dumps(summary))
    no_hydra = fake_run(tmp_path / "no_hydra", (0.4,))
    for name in ("config.yaml", "overrides.yaml"):
        (no_hydra / ".hydra" / name).unlink()
    (no_hydra / ".hydra").rmdir()
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "summary.json").write_text("not json")
    (junk / "metrics.csv").write_text("no,such,columns\n")

    comparison = compare(find_runs([tmp_path]))
    runs = {run.folder.name: run for run in comparison.runs}
    states = {name: run.state for name, run in runs.items()}
    assert states == {
        "ok": "complete", "live": "running", "killed": "killed", "no_summary": "incomplete",
        "bad_json": "incomplete", "bad_csv": "complete", "old": "complete",
        "no_hydra": "complete", "junk": "unreadable",
    }  # fmt: skip
    warned = {name: run.warnings for name, run in runs.items() if run.warnings}
    assert {name: len(w) for name, w in warned.items()} == {
        "no_summary": 1, "bad_json": 1, "bad_csv": 1, "old": 1, "no_hydra": 1, "junk": 3,
    }  # fmt: skip
    assert "no summary.json" in warned["no_summary"][0]
    assert warned["bad_json"][0].startswith("summary.json is unreadable (JSONDecodeError")
    assert warned["bad_csv"][0] == (
        "metrics.csv line 4 is corrupt (could not convert string to float: 'oops'): "
        "kept the 2 epochs before it"
    )
    assert warned["old"][0] == "summary.json has no objective: not ranked"
    assert warned["no_hydra"][0] == "no .hydra/config.yaml: its config values are unknown"
    assert runs["live"].final["val_accuracy"] == 0.7  # the epochs so far, from metrics.csv
    assert "is gone" in runs["killed"].note
    assert runs["no_summary"].epochs_run == 2 and runs["no_summary"].best["val_accuracy"] == 0.55
    assert runs["old"].objective == {}
    assert runs["bad_csv"].history[-1]["epoch"] == 2
    assert comparison.count_line() == "9 runs (6 with warnings)"
    assert folders(comparison)[:3] == ["ok", "bad_csv", "no_hydra"]  # then the unranked


def test_a_sweep_trial_without_hydra_files_gets_its_config_from_multirun_yaml(tmp_path):
    (tmp_path / "multirun.yaml").write_text(yaml.safe_dump({"hydra": {}, **BASE_CONFIG}))
    trial = fake_run(tmp_path / "0", (0.7,), {"model.out_1": 4, "optimizer.lr": "1e-3"})
    for name in ("config.yaml", "overrides.yaml"):
        (trial / ".hydra" / name).unlink()
    (trial / ".hydra").rmdir()
    run_ = read_run(trial)
    assert run_.config == {**flatten(BASE_CONFIG), "model.out_1": 4, "optimizer.lr": 0.001}
    assert run_.warnings == [
        "no .hydra/config.yaml: config rebuilt from ../multirun.yaml and its overrides"
    ]
    assert reproduce_command(run_) == "python -m linesweep.train model.out_1=4 optimizer.lr=1e-3"


def test_the_command_prints_a_warning_line_per_problem_and_counts_every_run(tmp_path, capsys):
    fake_run(tmp_path / "runs" / "ok", (0.9,))
    (fake_run(tmp_path / "runs" / "broken") / "summary.json").write_text("{")
    assert main([str(tmp_path / "runs"), "--out", str(tmp_path / "out"), "--no-plots"]) == 0
    out, err = capsys.readouterr()
    assert err.splitlines() == [
        f"warning: {tmp_path / 'runs' / 'broken'}: summary.json is unreadable "
        "(JSONDecodeError: Expecting property name enclosed in double quotes: line 1 column 2 "
        "(char 1))"
    ]
    assert "2 runs (1 with warnings)" in out and "incomplete" in out
    assert f"best: {tmp_path / 'runs' / 'ok'}" in out


def test_tables_are_aligned_and_written_as_csv_and_markdown(tmp_path, capsys, monkeypatch):
    three_runs(tmp_path / "runs")
    monkeypatch.setenv("COLUMNS", "300")  # a wide terminal: every column, headers on one line
    assert main([str(tmp_path / "runs"), "--out", str(tmp_path / "out"), "--no-plots"]) == 0
    printed = capsys.readouterr().out.splitlines()
    printed = printed[printed.index("") + 1 :]  # the answer's lines come first (the answer's tests)
    header = printed[0]
    assert header.split() == [
        "rank", "model.out_1", "optimizer.lr", "obj.val_accuracy", "obj_epoch", "state", "folder",
        "val_acc", "best_acc", "val_loss", "n_params", "epochs", "wall_s", "note",
    ]  # fmt: skip
    assert set(printed[1]) == {"─"}  # the rule under the header
    # numbers right-aligned under their header: the column ends where the header ends
    end = header.index("obj.val_accuracy") + len("obj.val_accuracy")
    assert [line[:end].split()[-1] for line in printed[2:5]] == ["0.9", "0.8", "0.7"]
    rows = list(csv.DictReader((tmp_path / "out" / "table.csv").open()))
    assert [Path(r["folder"]).name for r in rows] == ["b", "c", "a"]
    assert rows[1]["optimizer.lr"] == "0.01" and rows[0]["note"] == ""
    markdown = (tmp_path / "out" / "table.md").read_text().splitlines()
    assert markdown[0].startswith("| rank | model.out_1 | optimizer.lr | obj.val_accuracy |")
    assert markdown[1].startswith("| ---: | ---: | ---: | ---: |")
    assert len(markdown) == 2 + 3 and "| complete |" in markdown[2]
    assert (tmp_path / "out" / "report.html").exists()  # --no-plots still writes the report


def test_text_table_clips_long_notes_and_shows_missing_values_as_dashes():
    rows = [{"n": 1, "note": "x" * 100}, {"n": None, "note": None}]
    lines = text_table(rows, ["n", "note"], width=60).splitlines()
    assert lines[2].endswith("…") and len(lines[2]) == 60
    assert lines[3].split() == ["-", "-"]


def test_no_runs_a_missing_folder_and_bad_options_exit_2_with_one_line(
    tmp_path, capsys, monkeypatch
):
    (tmp_path / "empty").mkdir()
    fake_run(tmp_path / "runs" / "a")
    cases = [
        ([str(tmp_path / "empty")], "error: no runs under"),
        ([str(tmp_path / "missing")], "error: no such folder:"),
        ([str(tmp_path / "nothing*")], "error: no folder matches"),
        ([str(tmp_path / "runs"), "--top", "0"], "error: --top 0"),
        ([str(tmp_path / "runs"), "--where", "model.out_1"], "error: --where 'model.out_1'"),
        ([str(tmp_path / "runs"), "--where", "model.out_1=9"], "error: no run matches"),
        ([str(tmp_path / "runs"), "--sort", "acc"], "error: --sort: no run has"),
        ([str(tmp_path / "runs"), "--frobnicate"], "error: unrecognized arguments"),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith(message) and err.count("\n") == 1, (argv, err)
    monkeypatch.chdir(tmp_path / "empty")  # no outputs/ folder here
    assert main([]) == 2
    assert capsys.readouterr().err.startswith("error: no runs under outputs/")


def test_without_arguments_it_compares_the_latest_sweep_under_outputs(tmp_path, monkeypatch):
    old = fake_run(tmp_path / "outputs" / "runs" / "2026-01-01" / "10-00-00")
    sweep = tmp_path / "outputs" / "sweeps" / "s"
    for n in range(2):
        fake_run(sweep / str(n), (0.5 + n / 10,), {"model.out_1": n + 1})
    (sweep / "multirun.yaml").write_text(yaml.safe_dump({"hydra": {}, **BASE_CONFIG}))
    os.utime(old, (1, 1))
    monkeypatch.chdir(tmp_path)
    assert main(["--no-plots", "--no-report"]) == 0
    rows = list(csv.DictReader((sweep / "compare" / "table.csv").open()))
    assert [r["folder"] for r in rows] == ["outputs/sweeps/s/1", "outputs/sweeps/s/0"]


def test_globs_are_expanded_by_the_command_and_a_run_folder_is_not_searched_inside(tmp_path):
    three_runs(tmp_path / "x")
    fake_run(tmp_path / "x" / "a" / "nested")  # inside a run folder: not a run of its own
    assert [p.name for p in find_runs([tmp_path])] == ["a", "b", "c"]
    assert main([str(tmp_path / "x" / "[ab]"), "--out", str(tmp_path / "o"), "--no-plots"]) == 0
    assert len(list(csv.DictReader((tmp_path / "o" / "table.csv").open()))) == 2


def test_the_reproduce_command_is_the_runs_overrides_shell_quoted(tmp_path):
    folder = fake_run(tmp_path / "r")
    overrides = ["model.out_1=4", "+note='two words'"]
    (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    assert reproduce_command(read_run(folder)) == (
        "python -m linesweep.train model.out_1=4 '+note='\"'\"'two words'\"'\"''"
    )


def test_a_study_presets_reproduce_command_spells_out_the_groups_it_chose(tmp_path):
    # hparams_search=... runs only with -m: its run is reproduced by the groups it chose.
    folder = fake_run(tmp_path / "r")
    overrides = ["hparams_search=channels_lr", "trainer.epochs=3", "model.out_1=5"]
    (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    choices = {
        "data": "lines", "model": "cnn", "plots": "light", "experiment": "hard",
        "hparams_search": "channels_lr", "hydra/sweeper": "linesweep",
    }  # fmt: skip
    hydra_record = {"hydra": {"runtime": {"choices": choices}}}
    (folder / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump(hydra_record, sort_keys=False))
    assert reproduce_command(read_run(folder)) == (
        "python -m linesweep.train plots=light experiment=hard trainer.epochs=3 model.out_1=5"
    )
    (folder / ".hydra" / "hydra.yaml").write_text("{not yaml")  # cannot say: the preset's own
    assert reproduce_command(read_run(folder)) == (
        "python -m linesweep.train experiment=hard plots=light trainer.epochs=3 model.out_1=5"
    )
    overrides[0] = "hparams_search=another_apps_preset"  # not linesweep's: as recorded
    (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    assert reproduce_command(read_run(folder)).startswith(
        "python -m linesweep.train hparams_search=another_apps_preset"
    )


def test_a_presets_own_values_are_spelled_out_with_the_runs_values(tmp_path):
    """channels_lr_grid sets replicates: 3 itself: without it the command trains one model."""
    folder = fake_run(tmp_path / "r", config={"replicates": 3})
    overrides = ["hparams_search=channels_lr_grid", "experiment=notebook", "model.out_1=3"]
    (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    choices = {"experiment": "notebook", "plots": "light", "hparams_search": "channels_lr_grid"}
    hydra_record = {"hydra": {"runtime": {"choices": choices}}}
    (folder / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump(hydra_record, sort_keys=False))
    assert reproduce_command(read_run(folder)) == (
        "python -m linesweep.train plots=light replicates=3 experiment=notebook model.out_1=3"
    )
    assert "replicates" not in reproduce_command(read_run(folder), drop=("replicates",))


def test_plot_helpers():
    assert frontier([(100, 0.5), (50, 0.6), (200, 0.55), (300, 0.9), (300, 0.7)]) == [
        (50, 0.6), (300, 0.9),
    ]  # fmt: skip
    assert short_names(["model.conv1.kernel_size", "model.conv2.kernel_size", "optimizer.lr"]) == {
        "model.conv1.kernel_size": "conv1.kernel_size",
        "model.conv2.kernel_size": "conv2.kernel_size",
        "optimizer.lr": "lr",
    }
    assert wants_log_axis("optimizer.lr", [0.001, 0.002])
    assert wants_log_axis("data.N_images", [10, 1000]) and not wants_log_axis("model.out_1", [1, 8])


def test_every_plot_is_a_png_even_from_fake_runs_without_weights(tmp_path):
    comparison = compare(find_runs([three_runs(tmp_path / "runs")]))
    plots, problems = save_comparison_plots(comparison, tmp_path / "plots")
    assert [p.name for p in plots] == [
        "learning_curves.png", "objective_by_parameter.png", "accuracy_by_size.png",
    ]  # fmt: skip
    assert all(p.read_bytes()[:8] == PNG and p.stat().st_size > 1000 for p in plots)
    assert problems == []


def test_the_report_shows_the_pictures_the_best_run_drew_and_draws_none_itself(tmp_path, capsys):
    best = fake_run(tmp_path / "runs" / "best", (0.99,))
    fake_run(tmp_path / "runs" / "other", (0.5,), {"model.out_1": 3})
    (best / "plots").mkdir()
    pictures = {n: PNG + n.encode() for n in ("kernels_conv1", "kernels_conv2", "feature_maps")}
    for name, data in pictures.items():
        (best / "plots" / f"{name}.png").write_bytes(data)
    (best / "model.pt").write_bytes(b"weights")  # never read: compare rebuilds no model
    out = tmp_path / "out"
    assert main([str(tmp_path / "runs"), "--out", str(out)]) == 0
    printed, errors = capsys.readouterr()
    assert not list((out / "plots").glob("best_*"))  # nothing drawn, nothing copied
    page = (out / "report.html").read_text()
    for data in pictures.values():
        assert f'src="data:image/png;base64,{base64.b64encode(data).decode()}"' in page
    draw = f"python -m linesweep.draw {best}"  # the one it lacks: flattened_activations.png
    assert f"<p>The run did not draw flattened_activations.png: {draw} draws" in page
    assert f"  its pictures: {draw}" in printed and "warning" not in errors

    for picture in (best / "plots").iterdir():
        picture.unlink()  # as plots=light leaves it
    assert main([str(tmp_path / "runs"), "--out", str(out)]) == 0
    printed, errors = capsys.readouterr()
    page = (out / "report.html").read_text()
    assert "<p>The run drew no kernels or feature maps (as plots=light and plots=none do): " in page
    assert f"{draw} draws them into its plots/" in page and "warning" not in errors
    assert page.count("<img ") == 3  # the comparison's plots only


@pytest.mark.slow
def test_real_runs_and_a_real_sweep_give_plots_and_a_self_contained_report(
    compose_config, sweep_in_process, tmp_path, capsys
):
    single = tmp_path / "runs" / "single"
    overrides = [*TINY, "model.out_1=3", "optimizer.lr=0.05"]
    cfg = compose_config(*overrides)
    run(cfg, single, overrides=overrides)
    (single / ".hydra").mkdir()  # what Hydra writes around the task function
    OmegaConf.save(cfg, single / ".hydra" / "config.yaml")
    (single / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    sweep = tmp_path / "sweep"
    sweep_in_process(
        sweep,
        "hydra.sweeper.n_trials=3",
        "hydra/sweeper/sampler=grid",
        "model.out_1=choice(1,4)",
        "optimizer.lr=choice(0.001,0.05)",
    )
    capsys.readouterr()

    out = tmp_path / "out"
    assert main([str(tmp_path / "runs"), str(sweep), "--out", str(out)]) == 0
    printed = capsys.readouterr()
    assert "4 runs (0 with warnings)" in printed.out
    assert [line for line in printed.err.splitlines() if "warning" in line] == []
    rows = list(csv.DictReader((out / "table.csv").open()))
    assert len(rows) == 4 and "model.out_1" in rows[0]
    assert {r["state"] for r in rows} == {"complete"}

    names = {p.name for p in (out / "plots").iterdir()}
    assert {
        "learning_curves.png", "objective_by_parameter.png", "accuracy_by_size.png",
        "study_sweep_history.png",
    } == names  # fmt: skip
    assert all((out / "plots" / n).read_bytes()[:8] == PNG for n in names)

    page = (out / "report.html").read_text()
    # No importances from 3 trials (linesweep.core.importance): the report says why, once.
    assert "No importances: 3 complete trial(s): PED-ANOVA compares the best 5" in page
    assert page.count('<img src="data:image/png;base64,') == len(names)  # plots=none: no kernels
    assert "The run drew no kernels or feature maps" in page and "linesweep.draw" in page
    assert "http://" not in page and "https://" not in page and "<script" not in page
    best = next(r for r in rows if r["rank"] == "1")
    relative = os.path.relpath(best["folder"], out)  # folders are relative links
    assert f'<a href="{relative}/" title="{best["folder"]}">' in page
    reproduce = next(line for line in printed.out.splitlines() if "reproduce:" in line)
    command = reproduce.split("reproduce: ", 1)[1]
    assert command.startswith("python -m linesweep.train ") and command in page
    assert "conv1" in page and "Shape plan" in page and "_target_: torch.optim.Adam" in page
    assert not list(sweep.glob("*/compare")) and not (single / "compare").exists()


@pytest.mark.slow
def test_the_command_line(tmp_path):
    three_runs(tmp_path / "runs")
    done = run_cli("linesweep.compare", "runs", "--no-plots", "--top", "2", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "2 shown of 3 runs (0 with warnings)" in done.stdout
    (written,) = (tmp_path / "outputs" / "compare").iterdir()  # outputs/compare/<time>/
    assert {p.name for p in written.iterdir()} == {
        "table.csv", "table.md", "report.html", ".linesweep-compare.json",
    }  # fmt: skip
    done = run_cli("linesweep.compare", "nowhere", cwd=tmp_path)
    assert done.returncode == 2 and done.stderr == "error: no such folder: nowhere\n"


@pytest.mark.slow
def test_a_closed_pipe_ends_quietly_and_every_file_is_still_written(tmp_path):
    three_runs(tmp_path / "runs")
    read_end, write_end = os.pipe()
    os.close(read_end)  # a reader already gone, as `| head` is after its lines: every line fails
    try:
        done = subprocess.run(
            [sys.executable, "-m", "linesweep.compare", "runs", "--out", "closed"],
            cwd=tmp_path, stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=120,
        )  # fmt: skip
    finally:
        os.close(write_end)
    assert (done.returncode, done.stderr) == (0, "")  # no BrokenPipeError traceback
    written = sorted(p.name for p in (tmp_path / "closed").iterdir())
    assert written == [".linesweep-compare.json", "plots", "report.html", "table.csv", "table.md"]
    assert len((tmp_path / "closed" / "table.csv").read_text().splitlines()) == 4

    command = f"{shlex.quote(sys.executable)} -m linesweep.compare runs --out head | head -n 1"
    done = subprocess.run(
        ["bash", "-c", command], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.stdout.count("\n") == 1 and done.stderr == ""  # the table's first line
    assert (tmp_path / "head" / "report.html").is_file()


def test_a_second_comparison_into_the_same_folder_leaves_nothing_of_the_first(tmp_path, capsys):
    three_runs(tmp_path / "runs")
    out = tmp_path / "out"
    assert main([str(tmp_path / "runs"), "--out", str(out), "--no-plots"]) == 0
    assert (out / "report.html").exists()
    assert (
        main([str(tmp_path / "runs"), "--out", str(out), "--no-plots", "--no-report", "--top", "1"])
        == 0
    )
    assert len(list(csv.DictReader((out / "table.csv").open()))) == 1
    assert not (out / "report.html").exists()  # no report describing the earlier, larger table


def test_an_output_folder_that_cannot_be_written_is_one_line(tmp_path, capsys):
    three_runs(tmp_path / "runs")
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert main([str(tmp_path / "runs"), "--out", str(blocker / "out"), "--no-plots"]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error == f"error: cannot write the comparison into {blocker / 'out'}: Not a directory"


def test_a_comparison_interrupted_keeps_the_previous_report_and_plots(
    tmp_path, monkeypatch, capsys
):
    """Ctrl-C while the plots are drawn: one line, exit 130; the previous comparison's report
    and pictures are still there, and a rerun replaces them."""
    three_runs(tmp_path / "x")
    out = tmp_path / "o"
    assert main([str(tmp_path / "x"), "--out", str(out)]) == 0
    before = {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert "report.html" in before and any(name.endswith(".png") for name in before)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("linesweep.compare.plots.save_comparison_plots", interrupted)
    capsys.readouterr()
    assert main([str(tmp_path / "x"), "--out", str(out)]) == 130
    assert capsys.readouterr().err.strip().splitlines() == [
        "interrupted by SIGINT: the files written so far are whole, the rest as they were"
    ]
    after = {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert {n: after.get(n) for n in before if n.endswith((".png", ".html"))} == {
        n: b for n, b in before.items() if n.endswith((".png", ".html"))
    }
    monkeypatch.undo()
    assert main([str(tmp_path / "x"), "--out", str(out)]) == 0  # the folder is still compare's


def test_runs_judged_by_different_objectives_have_no_best(tmp_path, capsys):
    fake_run(tmp_path / "x" / "a", (0.6, 0.9))
    fake_run(tmp_path / "x" / "b", (0.6, 0.8), objective={
        "metrics": ["val_loss"], "directions": ["minimize"], "epoch": "last", "values": [0.3],
    })  # fmt: skip
    assert main([str(tmp_path / "x"), "--out", str(tmp_path / "o"), "--no-plots"]) == 0
    out = capsys.readouterr().out
    assert "no best: the runs were judged by 2 different objectives (val_accuracy; val_loss)" in out
    assert "\nbest: " not in out and "reproduce:" not in out
