"""What a comparison shows: the terminal table, the plots and the HTML report's first screen."""

from __future__ import annotations

import html
import os
import re
from pathlib import Path

import optuna
import pytest
import yaml
from matplotlib.figure import Figure

from linesweep.compare.cli import main
from linesweep.compare.plots import accuracy_by_size, objective_by_parameter, save_comparison_plots
from linesweep.compare.question import chosen_keys, read_question, split_overrides
from linesweep.compare.report import render_report
from linesweep.compare.runs import find_runs
from linesweep.compare.study_plots import history_plot
from linesweep.compare.table import compare, pareto_set
from linesweep.compare.terminal import text_table
from linesweep.core.plotting import PlainLogFormatter, log_scale_if_wide
from linesweep.run.drawing import run_caption
from tests.test_compare import BASE_CONFIG, PNG, fake_run

SWEEPER = {
    "_target_": "hydra_plugins.linesweep_optuna_sweeper.optuna_sweeper.LinesweepOptunaSweeper",
    "sampler": {"_target_": "optuna.samplers.TPESampler", "seed": 0, "n_startup_trials": None},
    "pruner": {"_target_": "optuna.pruners.MedianPruner", "n_warmup_steps": 1},
    "direction": "maximize",
    "study_name": "channels_lr",
    "n_trials": 6,
    "params": {"model.out_1": "int(interval(1,8))"},
}


def fake_sweep(folder: Path, trials, sweeper=None, objective=None, task=()) -> Path:
    """A sweep folder as linesweep's sweeper leaves it: multirun.yaml, results, trial folders.

    `trials`: (accuracies, config overrides, summary fields) per trial, numbered from 0.
    """
    folder.mkdir(parents=True)
    settings = {**SWEEPER, **(sweeper or {})}
    hydra = {"sweeper": settings, "overrides": {"task": list(task)}}
    config = {**BASE_CONFIG, "objective": objective or BASE_CONFIG["objective"]}
    (folder / "multirun.yaml").write_text(yaml.safe_dump({"hydra": hydra, **config}))
    counts: dict[str, int] = {}
    for number, (accuracies, overrides, summary) in enumerate(trials):
        fake_run(folder / str(number), accuracies, overrides, **summary)
        state = summary.get("status", "complete")
        counts[state] = counts.get(state, 0) + 1
    results = {"study_name": settings["study_name"], "n_trials": settings["n_trials"]}
    (folder / "optimization_results.yaml").write_text(yaml.safe_dump({**results, "counts": counts}))
    return folder


def channels_sweep(root: Path) -> Path:
    """out_1 swept; data.p differs too (set by an experiment, not by the user); one pruned."""
    return fake_sweep(
        root / "sweeps" / "channels_lr",
        [
            ((0.6, 0.8), {"model.out_1": 2}, {}),
            ((0.7, 0.9), {"model.out_1": 4}, {}),
            ((0.95,), {"model.out_1": 1}, {"status": "pruned", "reason": "pruned after epoch 1"}),
            ((0.5, 0.6), {"model.out_1": 8}, {}),
        ],
        task=["trainer.epochs=2", "optimizer.lr=choice(0.001,0.01)"],
    )


def page_of(tmp_path: Path, *folders: Path, plots=()) -> str:
    comparison = compare(find_runs(list(folders)))
    return render_report(comparison, list(plots), base=tmp_path / "out")


# ---------------------------------------------------------------- the report's first screen


def test_the_first_screen_asks_answers_and_lists_the_runs_in_that_order(tmp_path):
    sweep = channels_sweep(tmp_path)
    page = page_of(tmp_path, sweep)
    question, answer, picture, runs = (
        page.index(f'id="{name}"') for name in ("question", "answer", "picture", "runs")
    )
    assert question < answer < picture < runs < page.index("Plots")
    asked = page[question:answer]
    for text in (
        "channels_lr", "val_accuracy (maximize), at the last epoch",
        "<code>model.out_1</code> = <code>int(interval(1,8))</code>",
        "<code>optimizer.lr</code> = <code>choice(0.001,0.01)</code>",  # the command line's
        "<code>trainer.epochs=2</code>", "tpe, seed=0", "median, n_warmup_steps=1",
        "4 of 6: 3 complete, 1 pruned",
    ):  # fmt: skip
        assert text in asked, text
    # The answer's lines (linesweep.core.answer): the best complete run, not the pruned 0.95.
    answered = page[answer:picture]
    best, smallest, compared = re.findall(r'<p class="line[^"]*">([^<]*)</p>', answered)
    assert best.startswith("best (by its single value): model.out_1=4, optimizer.lr=0.001 (119")
    assert "val_accuracy 0.9, no interval" in best and "no spread to judge by" in smallest
    assert "left out: 1 pruned (only complete configurations are compared: a pruned" in compared
    assert 'href="../sweeps/channels_lr/1/"' in answered  # a relative link to the folder
    # The best run's own numbers open its section, below the runs table.
    facts = page[page.index("The best run: ") :]
    assert "val_accuracy = 0.9 (maximize)" in facts
    assert "epoch 2 of 2 (complete)" in facts and "<code>model.out_1=4</code>" in facts
    assert "Chosen among the 3 complete runs; the 1 pruned stopped early" in facts


def test_the_runs_table_puts_its_key_columns_first_and_links_every_folder(tmp_path):
    sweep = channels_sweep(tmp_path)
    page = page_of(tmp_path, sweep)
    table = page[page.index('<table class="runs">') :]
    header = table[: table.index("</thead>")]
    keys = [
        html.unescape(re.sub("<[^>]+>", "", h))
        for h in re.findall(r'<th class="key">(.*?)</th>', header)
    ]
    assert keys == [  # the search space's keys, optimizer.lr too though these trials share it
        "rank", "model.out_1", "optimizer.lr", "obj.val_accuracy", "obj_epoch", "state", "folder",
    ]  # fmt: skip
    assert header.index(">folder<") < header.index("<th>val_acc</th>") < header.index(">note<")
    links = re.findall(r'<a href="([^"]+)"', table[: table.index("</table>")])
    assert links == [f"../sweeps/channels_lr/{n}/" for n in (1, 0, 3, 2)]  # ranked, pruned last
    assert all((tmp_path / "out" / link).resolve().is_dir() for link in links)


def test_several_objectives_answer_with_the_pareto_set_of_complete_runs(tmp_path):
    objective = {"metrics": ["val_accuracy", "n_params"], "epoch": "last"}

    def trial(accuracy, size, **summary):
        values = {"metrics": objective["metrics"], "directions": ["maximize", "minimize"],
                  "epoch": "last", "values": [accuracy, size]}  # fmt: skip
        config = {"objective.metrics": objective["metrics"], "model.out_1": size // 10}
        return (accuracy,), config, {"objective": values, "n_params": size, **summary}

    sweep = fake_sweep(
        tmp_path / "pareto",
        [trial(0.9, 200), trial(0.8, 100), trial(0.85, 300), trial(0.7, 50), trial(0.95, 20,
         status="interrupted")],
        sweeper={"direction": ["maximize", "minimize"], "study_name": "pareto"},
        objective=objective,
    )  # fmt: skip
    comparison = compare(find_runs([sweep]))
    assert [r.folder.name for r in pareto_set(comparison.shown)] == ["0", "1", "3"]
    assert [r.folder.name for r in comparison.shown][:3] == ["0", "1", "3"]  # the set first
    assert comparison.best.folder.name == "0"
    page = page_of(tmp_path, sweep)
    answered = page[page.index('id="answer"') : page.index('id="runs"')]
    assert "The Pareto set" in answered and "3 of the 4 complete runs" in answered
    links = re.findall(r'href="([^"]+)"', answered)  # the best run's, then the set's
    assert links == [f"../pareto/{n}/" for n in (0, 0, 1, 3)]
    assert "on val_accuracy (maximize)" in answered  # the answer: the first objective's
    assert "val_accuracy (maximize), n_params (minimize)" in page


def test_every_text_is_escaped_and_nothing_reaches_outside_the_file(tmp_path):
    hostile = '<script>alert("x")</script> $\\foo$'
    sweep = fake_sweep(
        tmp_path / "s",
        [((0.8,), {"optimizer._target_": hostile}, {}), ((0.6,), {}, {})],
        sweeper={"study_name": "<b>study</b>", "params": {"model.out_1": "<i>choice(1)</i>"}},
        task=["+x='<img src=http://example.com/x.png>'"],
    )
    page = page_of(tmp_path, sweep)
    assert "<script" not in page and "<b>study" not in page and "<i>choice" not in page
    assert "&lt;script&gt;" in page and "&lt;b&gt;study&lt;/b&gt;" in page
    assert "http://" not in page.replace("http://example.com", "") and "<img src=http" not in page


def test_figure_captions_keep_the_file_names_underscores(tmp_path):
    picture = tmp_path / "study_channels_lr_history.png"
    picture.write_bytes(PNG)
    page = page_of(tmp_path, channels_sweep(tmp_path), plots=[picture])
    assert "<figcaption>study_channels_lr_history</figcaption>" in page


def test_a_question_reads_hydras_multirun_yaml_and_the_sweeps_results(tmp_path):
    sweep = channels_sweep(tmp_path)
    question = read_question(sweep)
    assert question.study == "channels_lr" and question.n_trials == 6
    assert question.space == {"model.out_1": "int(interval(1,8))",
                              "optimizer.lr": "choice(0.001,0.01)"}  # fmt: skip
    assert question.fixed == ["trainer.epochs=2"]
    assert question.counts == {"complete": 3, "pruned": 1}
    basic = tmp_path / "basic"
    basic.mkdir()
    hydra = {"sweeper": {"_target_": "hydra._internal.core_plugins.basic_sweeper.BasicSweeper",
                         "params": None}, "overrides": {"task": ["model.out_1=1,2,4"]}}  # fmt: skip
    (basic / "multirun.yaml").write_text(yaml.safe_dump({"hydra": hydra, **BASE_CONFIG}))
    plain = read_question(basic)
    assert plain.space == {"model.out_1": "1,2,4"} and plain.sampler.startswith("every combin")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "multirun.yaml").write_text("[not, a, mapping")
    assert read_question(tmp_path / "junk").study == "junk"  # never raises
    overrides = [
        "trainer.epochs=2",
        "model.out_1=1,2,4",
        "+model.x=[1,2]",
        "a.lr=tag(log,interval(1e-3,1e-1))",
    ]
    assert split_overrides(overrides) == (
        {"model.out_1": "1,2,4", "a.lr": "tag(log,interval(1e-3,1e-1))"},
        ["trainer.epochs=2", "+model.x=[1,2]"],  # a list is one value, not a sweep
    )


# ---------------------------------------------------------------- plots


def _texts(fig: Figure) -> str:
    texts = [t.get_text() for t in fig.texts]
    texts += [t.get_text() for ax in fig.axes for t in (ax.title, ax.xaxis.label)]
    texts += [t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().texts]
    return "\n".join(texts)


def test_parameter_plots_only_for_the_keys_the_user_varied(tmp_path):
    sweep = channels_sweep(tmp_path)
    comparison = compare(find_runs([sweep]))
    assert comparison.varying == ["model.out_1"]  # one sweep: one experiment
    other = fake_run(tmp_path / "other", (0.7,), None)  # no overrides: the defaults
    (other / ".hydra" / "config.yaml").write_text(  # as another experiment would set it
        yaml.safe_dump({**BASE_CONFIG, "data": {**BASE_CONFIG["data"], "N_images": 500}})
    )
    comparison = compare(find_runs([sweep, other]))
    assert comparison.varying == ["data.N_images", "model.out_1"]
    keys = chosen_keys(comparison.shown, comparison.varying)
    assert keys == ["model.out_1"]  # data.N_images differs, but no run's overrides set it
    fig = objective_by_parameter(comparison.shown, keys)
    assert [ax.get_xlabel() for ax in fig.axes if ax.get_xlabel()] == ["model.out_1"]


def test_pruned_values_are_drawn_apart_and_left_out_of_the_frontier(tmp_path):
    comparison = compare(find_runs([channels_sweep(tmp_path)]))
    fig = accuracy_by_size(comparison.shown)
    texts = _texts(fig)
    assert "complete (epoch 2)" in texts and "pruned, hollow (epoch 1)" in texts
    assert "left out of the frontier: their accuracy is from the epoch they stopped at" in texts
    (frontier,) = [line for line in fig.axes[0].lines if line.get_label().startswith("best")]
    assert 0.95 not in list(frontier.get_ydata())  # the pruned run's epoch-1 accuracy
    by_parameter = _texts(objective_by_parameter(comparison.shown, ["model.out_1"]))
    assert "pruned runs drawn hollow: their value is from the epoch they stopped at" in by_parameter


def test_the_history_shows_complete_and_pruned_trials_and_says_which_are_not_drawn():
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize")
    space = {"x": optuna.distributions.IntDistribution(1, 8)}
    states = optuna.trial.TrialState

    def add(state, value=None, steps=None, **attrs):
        study.add_trial(optuna.trial.create_trial(
            state=state, value=value, params={"x": 2}, distributions=space,
            intermediate_values=steps or {}, user_attrs=attrs,
        ))  # fmt: skip

    add(states.COMPLETE, 0.8, {1: 0.6, 2: 0.8})
    add(states.PRUNED, steps={1: 0.9})
    add(states.FAIL, **{"linesweep.state": "infeasible"})
    add(states.FAIL)
    counts = {"complete": 1, "pruned": 1, "infeasible": 1, "failed": 1}  # as the sweep counted
    fig = history_plot(study, ["val_accuracy"], "s: optimization history", counts)
    texts = _texts(fig)
    assert "complete (epoch 2)" in texts and "pruned, hollow (epoch 1)" in texts
    assert "history shows COMPLETE and PRUNED trials only" in texts
    assert "not drawn (no value): 1 failed, 1 infeasible" in texts  # linesweep's states
    alone = _texts(history_plot(study, ["val_accuracy"], "s"))  # no optimization_results.yaml
    assert "not drawn (no value): 2 fail" in alone  # Optuna's own state names
    (best,) = [line for line in fig.axes[0].lines if line.get_label() == "best complete so far"]
    assert max(best.get_ydata()) == 0.8  # the pruned 0.9 is not "best"


def test_dollar_signs_in_config_values_do_not_start_mathtext(tmp_path):
    for n, target in enumerate(["$\\foo$", "a$b", "torch.optim.Adam"]):
        fake_run(tmp_path / str(n), (0.5 + n / 10,), {"optimizer._target_": target})
    comparison = compare(find_runs([tmp_path]))
    plots, _ = save_comparison_plots(comparison, tmp_path / "plots")
    assert [p.name for p in plots] == [
        "learning_curves.png", "objective_by_parameter.png", "accuracy_by_size.png",
    ]  # fmt: skip
    assert all(p.read_bytes()[:8] == PNG for p in plots)


def test_log_axes_read_as_plain_numbers_and_a_flat_curve_stays_linear():
    fig = Figure()
    ax = fig.add_subplot()
    assert not log_scale_if_wide(ax, "y", [70.8, 70.5, 70.1])  # no 7.08x10^1
    assert ax.get_yscale() == "linear"
    ax.plot([1, 2], [0.002, 30])
    assert log_scale_if_wide(ax, "y", [0.002, 30]) and ax.get_yscale() == "log"
    fig.canvas.draw()
    labels = [t.get_text() for t in ax.get_yticklabels() if t.get_text()]
    assert "0.01" in labels and "10" in labels and not any("10^" in t for t in labels)
    minor = PlainLogFormatter(minor=True)
    minor.set_axis(ax.yaxis)
    assert minor(20) == ""  # four decades: only the powers of ten are labelled


def test_run_pictures_name_their_run_and_configuration():
    caption = run_caption(
        Path("outputs/sweeps/channels_lr/7"), ["model.out_1=7", "optimizer.lr=0.02195773446539457"]
    )
    assert caption == "channels_lr/7: model.out_1=7 optimizer.lr=0.02196"
    assert run_caption(Path("a/b"), None) == "a/b: (the defaults)"
    long = run_caption(Path("a/b"), [f"k{i}=v" for i in range(60)])
    assert len(long) <= 110 and long.startswith("a/b: … ") and long.endswith(" k58=v k59=v")
    sampled = ["experiment=hard", "plots=light", "trainer.shuffle=false"] * 6 + ["optimizer.lr=0.1"]
    assert run_caption(Path("s/7"), sampled).endswith("optimizer.lr=0.1")  # a sweep's own value
    assert run_caption(Path("a/b"), ["k=" + "v" * 200]).endswith("…")  # one override too long


def test_run_pngs_carry_the_caption(tmp_path, monkeypatch):
    import linesweep.run.plots as run_plots
    from linesweep.core.metrics import EpochMetrics
    from linesweep.run.config import PlotsConfig

    saved = {}
    monkeypatch.setattr(
        run_plots, "save_figure", lambda fig, path, dpi, crop=True: saved.update({path: fig})
    )
    history = [EpochMetrics(i, 10.0 / i, 1.0, 0.5, 0.8, 0.1, 0.1 * i) for i in (1, 2)]
    config = PlotsConfig(learning_curve=True, kernels=False, samples=False, feature_maps=False,
                         activations=False)  # fmt: skip
    caption = "r/1: model.out_1=$4$"
    run_plots.save_run_figures(tmp_path, config, history, None, caption, dpi=50)  # the curve only
    (fig,) = saved.values()
    assert "r/1: model.out_1=\\$4\\$" in [t.get_text() for t in fig.texts]


# ---------------------------------------------------------------- the terminal table


def test_the_terminal_table_fits_its_width_key_columns_first(tmp_path):
    sweep = channels_sweep(tmp_path)
    comparison = compare(find_runs([sweep]))
    first = chosen_keys(comparison.shown, comparison.varying)
    for width in (60, 80, 120, 250):
        text = text_table(comparison.rows, comparison.columns, width=width, first=first)
        lines = text.splitlines()
        table = lines[:-1] if lines[-1].startswith("not shown") else lines
        assert max(len(line) for line in table) <= width, width
        assert "\x1b[" not in text  # no colour codes: it reads the same in a pipe
        header = " ".join(table[:2])  # one line, or two: obj.val_ / accuracy
        for key in ("rank", "accuracy", "state"):
            assert key in header, (width, key)
    narrow = text_table(comparison.rows, comparison.columns, width=80, first=first)
    assert narrow.splitlines()[-1].startswith("not shown at 80 columns: ") and "(in" in narrow
    assert "…eps/channels_lr/1" in narrow or "sweeps/channels_lr/1" in narrow  # the folder's end
    wide = text_table(comparison.rows, comparison.columns, width=250, first=first)
    assert str(sweep / "1") in wide and "not shown" not in wide


def kernel_sweep(root: Path) -> Path:
    """Both kernel sizes, the channels and the learning rate searched (as a sampler leaves them)."""
    space = {
        "model.out_1": "int(interval(1,8))",
        "model.conv1.kernel_size": "choice(2,3)",
        "model.conv2.kernel_size": "choice(2,3)",
        "optimizer.lr": "tag(log,interval(1e-3,1e-1))",
    }
    trials = [
        ((0.6, a), {"model.out_1": o, "model.conv1.kernel_size": k1,
                    "model.conv2.kernel_size": k2, "optimizer.lr": lr}, {})
        for a, o, k1, k2, lr in [
            (0.91, 2, 2, 3, 0.006431172050131994), (0.875, 7, 3, 2, 0.0012345678901234567),
            (0.5, 4, 3, 3, 0.08123456789), (0.7, 1, 2, 2, 0.0401),
        ]
    ]  # fmt: skip
    return fake_sweep(root / "sweeps" / "kernels", trials, sweeper={"params": space})


@pytest.mark.parametrize("width", [60, 80, 100, 250])
def test_the_searched_parameters_and_the_objective_show_at_any_width(tmp_path, width):
    comparison = compare(find_runs([kernel_sweep(tmp_path)]))
    searched = ["model.out_1", "model.conv1.kernel_size", "model.conv2.kernel_size", "optimizer.lr"]
    assert sorted(comparison.searched) == sorted(searched)  # in config order
    lines = text_table(comparison.rows, comparison.columns, width, comparison.searched).splitlines()
    hidden = lines.pop()[len(f"not shown at {width} columns: ") :] if width < 250 else ""
    assert not any(key in hidden for key in [*searched, "obj.val_accuracy"]), hidden
    assert "state" in hidden.split(", ") or width > 60  # the others go first
    assert max(len(line) for line in lines) <= width
    header = lines[: lines.index(next(line for line in lines if line.startswith("─")))]
    assert "conv1." in " ".join(header) and "conv2." in " ".join(header)  # kernel_size: which?
    assert "out_1" in " ".join(header).split()  # never cut into out_ and 1
    body = "\n".join(lines[len(header) + 1 :])
    assert "0.006431" in body and "0.0064311" not in body  # 4 significant digits
    assert len(lines) == len(header) + 1 + 4


def test_one_run_is_one_run(tmp_path):
    fake_run(tmp_path / "only", (0.5,))
    fake_run(tmp_path / "refused", (0.5,), status="refused")
    comparison = compare(find_runs([tmp_path]))
    assert comparison.count_line() == "1 shown of 2 runs (0 with warnings)"
    assert comparison.hidden_line() == "1 refused run not shown; --state refused shows them"
    assert compare(find_runs([tmp_path / "only"])).count_line() == "1 run (0 with warnings)"


def test_the_command_respects_columns(tmp_path, capsys, monkeypatch):
    channels_sweep(tmp_path)
    monkeypatch.setenv("COLUMNS", "70")
    assert main([str(tmp_path / "sweeps"), "--out", str(tmp_path / "o"), "--no-plots"]) == 0
    answer, table = capsys.readouterr().out.split("4 runs")[0].split("\n\n", 1)
    table = table.splitlines()  # the answer's lines are whole: a terminal wraps them
    assert len(answer.splitlines()) == 3
    assert max(len(line) for line in table if not line.startswith("not shown")) <= 70
    assert os.environ["COLUMNS"] == "70"


@pytest.mark.slow
def test_a_real_sweeps_question_and_its_plots(sweep_in_process, tmp_path, capsys):
    sweep = tmp_path / "sweep"
    sweep_in_process(sweep, "hydra.sweeper.n_trials=3", "model.out_1=choice(1,2,4)")
    question = read_question(sweep)
    assert question.space == {"model.out_1": "choice(1,2,4)"}
    assert question.sampler.startswith("tpe, seed=0") and question.pruner.startswith("default")
    assert question.counts["complete"] == 3 and question.n_trials == 3  # duplicates never ran
    out = tmp_path / "out"
    assert main([str(sweep), "--out", str(out)]) == 0
    assert (out / "plots" / "study_sweep_history.png").read_bytes()[:8] == PNG
    page = (out / "report.html").read_text()
    assert "<code>model.out_1</code> = <code>choice(1,2,4)</code>" in page


def importance_sweep(root: Path) -> Path:
    """A sweep folder of 12 trials with its journal study: lr decides the accuracy, out_1 does
    not; each trial told its 3 replicates (`linesweep.result`), so the caveat knows the noise."""
    import optuna
    from optuna.distributions import FloatDistribution, IntDistribution

    from linesweep.core.storage import open_storage
    from linesweep.core.trial_link import RESULT

    trials, made = [], []
    for n in range(12):
        lr, out_1 = 10 ** (-4 + n % 4), 1 + (n * 5) % 8
        accuracy = 0.5 + 0.1 * (n % 4)  # lr alone: 0.5 ... 0.8
        made.append(((accuracy,), {"model.out_1": out_1, "optimizer.lr": lr}, {}))
        values = [accuracy - 0.01, accuracy, accuracy + 0.01]  # seed noise 0.01 / sqrt(3)
        result = {
            "metric": "val_accuracy", "direction": "maximize", "epoch_rule": "last",
            "values": values, "seeds": [{"model_init": r} for r in range(3)], "n_params": 119,
            "epochs_run": 1, "success_threshold": None,
        }  # fmt: skip
        trials.append(
            optuna.trial.create_trial(
                value=accuracy,
                params={"model.out_1": out_1, "optimizer.lr": lr},
                distributions={
                    "model.out_1": IntDistribution(1, 8),
                    "optimizer.lr": FloatDistribution(1e-5, 1, log=True),
                },
                user_attrs={RESULT: result},
            )
        )
    sweep = fake_sweep(root, made, sweeper={"study_name": "lr", "n_trials": 12})
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(str(sweep / "optuna_journal.log"))
    optuna.create_study(study_name="lr", storage=storage, direction="maximize").add_trials(trials)
    return sweep


def test_which_hyperparameter_matters_is_optunas_ped_anova_with_its_caveat(tmp_path):
    from linesweep.compare.importances import sweep_importances

    comparison = compare(find_runs([importance_sweep(tmp_path / "sweep")]))
    plots, problems = save_comparison_plots(comparison, tmp_path / "plots")
    assert problems == [] and tmp_path / "plots" / "study_sweep_importances.png" in plots
    (found,) = sweep_importances(comparison).values()  # computed once, shown twice
    assert list(found.importances) == ["optimizer.lr", "model.out_1"]
    assert found.importances["optimizer.lr"] > 0.5 and found.trials == 12
    page = render_report(comparison, plots, base=tmp_path)
    section = page[page.index('id="importances"') : page.index("The best run")]
    assert "PED-ANOVA (Optuna&#x27;s PedAnovaImportanceEvaluator" in section
    rows = re.findall(r"<tr><td>([^<]+)</td><td[^>]*>([^<]+)</td></tr>", section)
    assert rows == [(k, f"{v:.4g}") for k, v in found.importances.items()]
    # The caveat in numbers: a mean of 3 replicates 0.01 apart against the trials' spread.
    assert (
        "Caveat: importances rank parameters" in section and "in a mean of 3 replicates" in section
    )
    assert f"about {0.01 / 3**0.5:.2g}" in section
