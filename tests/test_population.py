"""Replicates trained as one population: each is a real run, their spread is recorded right.

The tolerance a replicate is held to: member 0 of a population runs the same arithmetic as the
plain run on the same seeds, but its matmuls are batched with other members', so the kernels may
sum in another order. Its first epoch's loss agrees to 1e-5 relative, its weights to 1e-5, its
final accuracy exactly.
"""

from __future__ import annotations

import json
import math
import statistics

import pytest
import torch
from conftest import TINY

from linesweep.core.errors import ConfigError, Diverged
from linesweep.core.metrics import EpochMetrics, population_objective, spread
from linesweep.core.record import read_metrics, read_weights, write_metrics
from linesweep.run.budget import check_population_fits
from linesweep.run.data import make_splits
from linesweep.run.model import build_model
from linesweep.run.population import fit_population
from linesweep.run.seeds import derive_seeds
from linesweep.run.shapes import plan_cnn
from linesweep.run.task import run
from linesweep.run.validation import to_train_config

REL = 1e-5  # the first epoch's loss, replicate 0 against the plain run


def read_summary(folder):
    """summary.json as the file holds it: the format is what these tests check."""
    return json.loads((folder / "summary.json").read_text())


def _runs(compose_config, tmp_path, *overrides, replicates=3):
    plain = run(compose_config(*overrides), tmp_path / "plain")
    population = run(compose_config(*overrides, f"replicates={replicates}"), tmp_path / "pop")
    return plain, population


def _check_replicate_zero_is_the_plain_run(tmp_path) -> None:
    plain = read_metrics(tmp_path / "plain")
    first = read_metrics(tmp_path / "pop")  # replicate 0's rows, the default
    assert len(first) == len(plain)
    assert first[0]["train_cost"] == pytest.approx(plain[0]["train_cost"], rel=REL)
    assert first[0]["val_loss"] == pytest.approx(plain[0]["val_loss"], rel=REL)
    assert first[-1]["val_accuracy"] == plain[-1]["val_accuracy"]
    a, b = read_weights(tmp_path / "plain"), read_weights(tmp_path / "pop")
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=1e-5, atol=1e-5)


def test_replicate_zero_is_the_plain_run(compose_config, tmp_path):
    _runs(compose_config, tmp_path, *TINY, "trainer.epochs=3")
    _check_replicate_zero_is_the_plain_run(tmp_path)


@pytest.mark.slow
def test_replicate_zero_is_the_plain_run_on_the_notebook_experiment(compose_config, tmp_path):
    _runs(compose_config, tmp_path, "experiment=notebook", "plots=none", replicates=4)
    _check_replicate_zero_is_the_plain_run(tmp_path)


def test_seeds_of_replicate_zero_are_the_plain_run_s_and_the_others_independent():
    assert derive_seeds(4, 0) == derive_seeds(4)
    seeds = [derive_seeds(4, r) for r in range(5)]
    assert len({(s.train_data, s.val_data) for s in seeds}) == 1  # the same data for all
    assert len({s.model_init for s in seeds}) == 5 and len({s.shuffle for s in seeds}) == 5
    assert derive_seeds(4, 3) == seeds[3]  # a replicate's seeds do not depend on the count


def test_population_records_each_replicate_and_the_spread(compose_config, tmp_path):
    result = run(compose_config(*TINY, "replicates=4"), tmp_path)
    summary = read_summary(tmp_path)
    block = summary["replicates"]
    assert block["count"] == 4 and [m["replicate"] for m in block["members"]] == [0, 1, 2, 3]
    finals = [m["final"]["val_accuracy"] for m in block["members"]]
    stats = block["stats"]["val_accuracy"]
    assert stats["mean"] == pytest.approx(statistics.mean(finals))
    assert stats["std"] == pytest.approx(statistics.stdev(finals))
    assert (stats["min"], stats["max"]) == (min(finals), max(finals))
    assert stats["success_rate"] == sum(f >= 0.9 for f in finals) / 4
    assert result.value == pytest.approx(statistics.mean(finals))
    assert summary["objective"]["statistic"] == "mean"
    rows = read_metrics(tmp_path, replicate=None)
    assert [(r["replicate"], r["epoch"]) for r in rows] == [
        (r, e) for e in (1.0, 2.0) for r in (0.0, 1.0, 2.0, 3.0)
    ]
    weights = [read_weights(tmp_path, r) for r in range(4)]  # model.pt, replicates/model_<r>.pt
    assert not torch.equal(weights[0]["fc.weight"], weights[1]["fc.weight"])
    assert len({round(float(w["fc.bias"].sum()), 6) for w in weights}) == 4  # all different


@pytest.mark.parametrize(
    ("statistic", "expected"),
    [("median", statistics.median), ("min", min), ("success_rate", None)],
)
def test_the_sweeper_sees_the_chosen_statistic(compose_config, tmp_path, statistic, expected):
    result = run(
        compose_config(*TINY, "replicates=4", f"replicate.statistic={statistic}"), tmp_path
    )
    finals = [m["final"]["val_accuracy"] for m in read_summary(tmp_path)["replicates"]["members"]]
    want = sum(f >= 0.9 for f in finals) / 4 if expected is None else expected(finals)
    assert result.value == pytest.approx(want)


def test_spread_leaves_diverged_replicates_out_and_counts_them_as_failures():
    stats = spread([1.0, math.nan, 0.5, 0.9], "val_accuracy", 0.9)
    assert stats["count"] == 3 and stats["mean"] == pytest.approx(0.8)
    assert stats["median"] == 0.9 and stats["success_rate"] == 0.5
    assert spread([0.2, 0.4], "val_loss", 0.3)["success_rate"] == 0.5  # minimised: <= threshold
    values = population_objective([(1.0, 119.0), (0.5, 119.0)], ["val_accuracy", "n_params"],
                                  "success_rate", 0.9)  # fmt: skip
    assert values == (0.5, 119.0)


def test_a_diverged_member_stops_alone(compose_config):
    cfg = to_train_config(compose_config(*TINY, "trainer.epochs=3"))
    plan = plan_cnn(cfg.model, cfg.data.image_size)
    seeds = [derive_seeds(cfg.seed, r) for r in range(3)]
    train, val = make_splits(cfg.data, seeds[0].train_data, seeds[0].val_data)
    models = [build_model(cfg.model, plan, s.model_init) for s in seeds]
    with torch.no_grad():
        models[1].fc.bias.fill_(math.nan)  # member 1 diverges in its first step
    outcome = fit_population(models, cfg.optimizer, train, val, cfg.trainer, [1, 2, 3])
    assert outcome.statuses == ["complete", "diverged", "complete"]
    assert "loss became nan at epoch 1" in outcome.reasons[1]
    assert [len(h) for h in outcome.histories] == [3, 1, 3]
    for m in (0, 2):
        assert all(math.isfinite(row.train_cost) for row in outcome.histories[m])
        assert all(torch.isfinite(p).all() for p in models[m].parameters())


def test_a_run_with_one_diverged_replicate_completes_and_records_it(
    compose_config, tmp_path, monkeypatch
):
    import linesweep.run.pipeline as pipeline

    built = []

    def poisoned_first(*args, **kwargs):  # replicate 0 meets NaN in its first epoch
        model = build_model(*args, **kwargs)
        if not built:
            with torch.no_grad():
                model.fc.bias.fill_(math.nan)
        built.append(model)
        return model

    monkeypatch.setattr(pipeline, "build_model", poisoned_first)
    result = run(compose_config(*TINY, "replicates=2"), tmp_path)
    summary = read_summary(tmp_path)
    members = summary["replicates"]["members"]
    assert summary["status"] == "complete" and summary["replicates"]["diverged"] == 1
    assert [m["status"] for m in members] == ["diverged", "complete"]
    assert members[0]["epochs_run"] == 1 and members[1]["epochs_run"] == 2
    assert result.value == members[1]["final"]["val_accuracy"]  # the mean of the finite ones
    assert [r["replicate"] for r in read_metrics(tmp_path, replicate=None)] == [0, 1, 1]


def test_every_member_diverging_is_a_diverged_run(compose_config, tmp_path, monkeypatch):
    import linesweep.run.pipeline as pipeline

    def poisoned(*args, **kwargs):
        model = build_model(*args, **kwargs)
        with torch.no_grad():
            model.fc.bias.fill_(math.nan)
        return model

    monkeypatch.setattr(pipeline, "build_model", poisoned)
    with pytest.raises(Diverged, match="every replicate diverged"):
        run(compose_config(*TINY, "replicates=2"), tmp_path)
    summary = read_summary(tmp_path)
    assert summary["status"] == "diverged" and summary["replicates"]["diverged"] == 2


def test_metrics_of_a_plain_run_keep_their_format_and_a_population_s_add_a_column(tmp_path):
    rows = [EpochMetrics(e, 1.0, 0.1, 0.2, 0.5 + e / 10, 0.01, 0.01 * e) for e in (1, 2)]
    write_metrics(tmp_path, rows)
    assert (tmp_path / "metrics.csv").read_text().startswith("epoch,")
    assert read_metrics(tmp_path) == [r.as_row() for r in rows]
    write_metrics(tmp_path, rows, rows[:1])  # replicate 1 stopped after epoch 1
    assert (tmp_path / "metrics.csv").read_text().startswith("replicate,epoch,")
    assert [r["epoch"] for r in read_metrics(tmp_path)] == [1, 2]  # replicate 0 by default
    assert [r["epoch"] for r in read_metrics(tmp_path, replicate=1)] == [1]
    assert len(read_metrics(tmp_path, replicate=None)) == 3


def test_a_population_too_large_for_memory_names_replicates(compose_config):
    cfg = to_train_config(compose_config(*TINY, "replicates=100000000"))
    plan = plan_cnn(cfg.model, cfg.data.image_size)
    with pytest.raises(ConfigError, match=r"^replicates=100000000 is not allowed: at most \d+ "):
        check_population_fits(cfg, plan, available=2**30)
    cfg.replicates = 2
    check_population_fits(cfg, plan, available=2**30)  # fits


@pytest.mark.slow
@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("replicates=0", "replicates=0 is not allowed: an integer >= 1"),
        ("replicate.success_threshold=1.5", "replicate.success_threshold=1.5 is not allowed"),
        ("replicate.statistic=mode", "replicate.statistic=mode is not allowed: one of mean"),
        ("replicates=100000000000", "replicates=100000000000 is not allowed: at most"),
        ("replicates=2 optimizer.amsgrad=true", "replicates=2 is not allowed: 1 here"),
        (
            "replicate.statistic=success_rate objective.metrics=[val_loss]",
            "replicate.statistic=success_rate is not allowed",
        ),
    ],
)
def test_bad_replicate_input_exits_2_with_one_line(tmp_path, train_in_process, override, message):
    done = train_in_process(*TINY, *override.split(), cwd=tmp_path)  # test_cli: as a process
    assert done.returncode == 2, done.stderr
    errors = [line for line in done.stderr.splitlines() if "[ERROR]" in line]
    assert len(errors) == 1 and message in errors[0], errors
    assert "Traceback" not in done.stderr + done.stdout
    (summary,) = tmp_path.glob("outputs/runs/*/*/summary.json")  # the refusal, and nothing else
    assert json.loads(summary.read_text())["status"] == "refused"
    assert {p.name for p in summary.parent.iterdir()} == {"summary.json", ".hydra", "train.log"}


def test_one_verdict_whoever_trains_it_alone_a_replicate_or_a_population_member(
    compose_config, tmp_path
):
    from linesweep.run.pipeline import RunSpec, train_runs

    exploding = [*TINY, "optimizer=sgd", "optimizer.lr=1000"]  # finite, but a loss of ~1e7
    with pytest.raises(Diverged):
        run(compose_config(*exploding), tmp_path / "alone")
    alone = read_summary(tmp_path / "alone")
    run(compose_config(*exploding, "replicates=2"), tmp_path / "replicates")  # replicate 1 trains
    ended = {}
    specs = [
        RunSpec(compose_config(*exploding), tmp_path / "member"),
        RunSpec(compose_config(*TINY, "optimizer=sgd", "optimizer.lr=0.1", "seed=5"),
                tmp_path / "other"),
    ]  # fmt: skip
    train_runs(specs, lambda i, outcome: ended.setdefault(i, outcome))
    member = read_summary(tmp_path / "member")
    replicate_0 = read_summary(tmp_path / "replicates")["replicates"]["members"][0]
    assert alone["status"] == member["status"] == replicate_0["status"] == "diverged"
    assert alone["reason"] == member["reason"] == replicate_0["reason"]
    assert "exploded" in alone["reason"] and alone["epochs_run"] == member["epochs_run"] == 1
    assert (
        isinstance(ended[0], Diverged) and read_summary(tmp_path / "other")["status"] == "complete"
    )
