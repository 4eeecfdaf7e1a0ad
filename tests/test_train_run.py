"""One run end to end, in-process: every file it leaves, and what each one says."""

from __future__ import annotations

import csv
import json

import pytest
import torch
import yaml

from linesweep.core.errors import ConfigError, Diverged, InfeasibleArchitecture
from linesweep.run.model import build_model
from linesweep.run.shapes import plan_cnn
from linesweep.run.task import run
from tests.conftest import TINY


def read_summary(folder):
    return json.loads((folder / "summary.json").read_text())


def test_a_run_leaves_metrics_summary_shapes_weights_and_plots(compose_config, tmp_path):
    cfg = compose_config("experiment=smoke", "plots=all", "model.out_1=3")
    result = run(cfg, tmp_path, overrides=["experiment=smoke", "model.out_1=3"])

    rows = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert set(rows[0]) == {
        "epoch",
        "train_cost",
        "train_loss",
        "val_loss",
        "val_accuracy",
        "epoch_s",
        "elapsed_s",
    }

    summary = read_summary(tmp_path)
    assert summary["status"] == "complete" and summary["error"] is None
    assert summary["epochs_run"] == 2
    assert summary["final"]["val_accuracy"] == float(rows[-1]["val_accuracy"])
    assert summary["objective"] == {
        "metrics": ["val_accuracy"], "directions": ["maximize"], "epoch": "last",
        "values": [float(rows[-1]["val_accuracy"])], "statistic": None,
    }  # fmt: skip
    assert result.objective == (float(rows[-1]["val_accuracy"]),)
    # 3 conv1 kernels 2x2 + bias, 1 conv2 kernel 3x2x2 + bias, a linear layer 49 -> 2
    assert summary["n_params"] == (3 * 4 + 3) + (3 * 4 + 1) + (49 * 2 + 2)
    assert set(summary["seeds"]) == {"base", "train_data", "val_data", "model_init", "shuffle"}
    assert summary["device"] == "cpu" and summary["num_threads"] >= 1
    assert {"python", "torch", "optuna", "hydra-core"} <= set(summary["versions"])
    assert summary["overrides"] == ["experiment=smoke", "model.out_1=3"]
    assert summary["wall_time_s"] > 0

    shapes = yaml.safe_load((tmp_path / "shapes.yaml").read_text())
    assert shapes["agree"] is True and shapes["flat_features"] == 49
    assert shapes["observed"]["conv1"] == [3, 10, 10]
    assert [row["layer"] for row in shapes["plan"]][-1] == "fc"

    state = torch.load(tmp_path / "model.pt", weights_only=True)
    model = build_model(result_model_cfg(3), plan_cnn(result_model_cfg(3), 11), seed=0)
    model.load_state_dict(state)  # the saved weights fit the architecture the plan describes

    plots = {p.name for p in (tmp_path / "plots").iterdir()}
    assert plots == {
        "learning_curve.png", "kernels_conv1.png", "kernels_conv2.png", "samples.png",
        "feature_maps.png", "flattened_activations.png",
    }  # fmt: skip
    assert all((tmp_path / "plots" / p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in plots)
    assert not list(tmp_path.glob(".*.tmp")), "no temporary files left behind"


def result_model_cfg(out_1):
    from linesweep.run.config import ModelConfig

    return ModelConfig(out_1=out_1)


def test_plots_none_writes_no_pictures(compose_config, tmp_path):
    run(compose_config(*TINY), tmp_path)
    assert not (tmp_path / "plots").exists()
    assert read_summary(tmp_path)["plots"] == []


def test_a_different_seed_gives_different_weights(compose_config, tmp_path):
    run(compose_config(*TINY, "seed=1"), tmp_path / "a")
    run(compose_config(*TINY, "seed=2"), tmp_path / "b")
    a, b = (torch.load(tmp_path / n / "model.pt", weights_only=True) for n in ("a", "b"))
    assert not torch.equal(a["fc.weight"], b["fc.weight"])


def test_impossible_architecture_is_refused_before_training_and_recorded(compose_config, tmp_path):
    cfg = compose_config(*TINY, "model.conv1.stride=3", "model.conv2.kernel_size=4")
    with pytest.raises(
        InfeasibleArchitecture, match=r"^conv2: input 3x3 is smaller than the kernel 4x4"
    ):
        run(cfg, tmp_path)
    summary = read_summary(tmp_path)
    assert summary["status"] == "infeasible"
    assert summary["error"].startswith("conv2: input 3x3")
    assert not (tmp_path / "metrics.csv").exists() and not (tmp_path / "model.pt").exists()


def test_invalid_value_is_recorded_as_refused_without_results(compose_config, tmp_path):
    with pytest.raises(ConfigError, match=r"^data.p=1.5"):
        run(compose_config(*TINY, "data.p=1.5"), tmp_path)
    summary = read_summary(tmp_path)
    assert summary["status"] == "refused" and summary["error"].startswith("data.p=1.5")
    assert {p.name for p in tmp_path.iterdir()} == {"summary.json"}


def test_divergence_is_recorded_then_raised(compose_config, tmp_path):
    with pytest.raises(Diverged, match="loss became nan at epoch 1") as stopped:
        run(
            compose_config(*TINY, "optimizer=sgd", "optimizer.lr=1e30", "trainer.epochs=4"),
            tmp_path,
        )
    assert stopped.value.epoch == 1 and stopped.value.status == "diverged"
    summary = read_summary(tmp_path)
    assert summary["status"] == "diverged" and "loss became" in summary["error"]
    assert summary["objective"]["values"] == [None]  # JSON has no NaN: nothing pretends to score
    assert "NaN" not in (tmp_path / "summary.json").read_text()


def test_objective_can_be_the_best_epoch_or_two_metrics(compose_config, tmp_path):
    result = run(
        compose_config(*TINY, "objective.metrics=[val_loss,n_params]", "objective.epoch=best"),
        tmp_path,
    )
    rows = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    assert result.objective == (min(float(r["val_loss"]) for r in rows), 119.0)
