"""The model is built from its plan and seeded; the loop trains, stops on divergence or pruning."""

from __future__ import annotations

import math

import pytest
import torch

from linesweep.core.errors import ConfigError
from linesweep.run.config import DataConfig, ModelConfig, TrainerConfig
from linesweep.run.data import make_splits
from linesweep.run.model import build_model, check_plan, layer_outputs
from linesweep.run.shapes import plan_cnn
from linesweep.run.trainer import (
    cpu_settings,
    evaluate,
    fit,
    flatten_parameters,
    resolve_device,
    resolve_threads,
)

SMALL_DATA = DataConfig(N_images=200, N_val_images=100)
FAST = TrainerConfig(epochs=3, batch_size=20, progress_bar=False)


def small_setup(model_cfg: ModelConfig | None = None, seed: int = 4, lr: float = 0.01):
    model_cfg = model_cfg or ModelConfig(out_1=4, out_2=2)
    plan = plan_cnn(model_cfg, SMALL_DATA.image_size)
    model = build_model(model_cfg, plan, seed=seed)
    train, val = make_splits(SMALL_DATA, 1, 2)
    return model, adam(lr), train, val


def adam(lr):
    return lambda params: torch.optim.Adam(params, lr=lr, fused=True)


def test_same_seed_same_initial_weights_and_global_rng_untouched():
    plan = plan_cnn(ModelConfig(), 11)
    torch.manual_seed(0)
    expected = torch.rand(1)
    torch.manual_seed(0)
    a, b, c = (
        build_model(ModelConfig(), plan, 1),
        build_model(ModelConfig(), plan, 1),
        build_model(ModelConfig(), plan, 2),
    )
    assert torch.equal(torch.rand(1), expected)
    assert torch.equal(a.fc.weight, b.fc.weight) and not torch.equal(a.fc.weight, c.fc.weight)


def test_layers_follow_the_plan_names_and_linear_size():
    plan = plan_cnn(ModelConfig(out_2=3), 11)
    model = build_model(ModelConfig(out_2=3), plan, 0)
    assert [name for name, _ in model.named_children()] == [row.name for row in plan.layers]
    assert model.fc.in_features == 3 * 7 * 7
    outputs = layer_outputs(model, torch.zeros(2, 1, 11, 11))
    assert outputs["fc"].shape == (2, 2)
    assert check_plan(model, plan).to_record().agree is True


def test_fit_learns_and_records_one_row_per_epoch():
    model, optimizer, train, val = small_setup()
    with cpu_settings(1):
        outcome = fit(model, optimizer, train, val, FAST, shuffle_seed=0)
    assert outcome.status == "complete"
    assert [row.epoch for row in outcome.history] == [1, 2, 3]
    assert outcome.history[-1].val_accuracy > 0.9
    first = outcome.history[0]
    assert math.isclose(first.train_loss, first.train_cost / 10)  # 200 images / batch 20
    assert (first.val_loss, first.val_accuracy) != (0.0, 0.0)


def test_divergence_stops_training_and_says_why():
    model, _, train, val = small_setup()

    def optimizer(params):
        return torch.optim.SGD(params, lr=1e30)

    with cpu_settings(1):
        outcome = fit(
            model,
            optimizer,
            train,
            val,
            TrainerConfig(epochs=5, batch_size=20, progress_bar=False),
            0,
        )
    assert outcome.status == "diverged"
    assert len(outcome.history) < 5
    assert "loss became" in outcome.reason and f"epoch {len(outcome.history)}" in outcome.reason


def test_epoch_callback_can_stop_training_as_pruned():
    model, optimizer, train, val = small_setup()
    seen = []

    def prune_after_two(history):
        seen.append(len(history))
        return len(history) == 2

    with cpu_settings(1):
        outcome = fit(
            model,
            optimizer,
            train,
            val,
            TrainerConfig(epochs=5, batch_size=20, progress_bar=False),
            0,
            prune_after_two,
        )
    assert outcome.status == "pruned"
    assert seen == [1, 2] and len(outcome.history) == 2


def test_evaluate_counts_accuracy_over_all_batches():
    model, _, _, val = small_setup()
    loss_big, acc_big = evaluate(model, val, batch_size=1000)
    loss_small, acc_small = evaluate(model, val, batch_size=7)
    assert acc_big == acc_small and math.isclose(loss_big, loss_small, rel_tol=1e-5)


def test_cpu_settings_restore_threads_and_onednn():
    before = (torch.get_num_threads(), torch.backends.mkldnn.enabled)
    with cpu_settings(1):
        assert torch.get_num_threads() == 1 and torch.backends.mkldnn.enabled is False
    assert (torch.get_num_threads(), torch.backends.mkldnn.enabled) == before


def test_thread_count_is_the_configs_or_one():
    assert resolve_threads(2) == 2
    assert resolve_threads(None) == 1


def test_cuda_when_unavailable_is_a_clear_config_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match=r"^trainer.device=cuda is not allowed: cpu or auto"):
        resolve_device("cuda")
    assert resolve_device("auto").type == "cpu"


def test_flat_parameters_are_the_models_own_weights_and_gradients():
    plan = plan_cnn(ModelConfig(), 11)
    model = build_model(ModelConfig(), plan, seed=0)
    images = torch.rand(4, 1, 11, 11)
    before = model(images).detach()
    keys = list(model.state_dict())
    flat = flatten_parameters(model)
    assert flat.numel() == plan.n_params
    assert torch.equal(model(images), before) and list(model.state_dict()) == keys
    model(images).sum().backward()
    assert torch.equal(flat.grad[:8], model.conv1.weight.grad.reshape(-1))  # gradients land in flat
    with torch.no_grad():
        flat.zero_()
    assert model.fc.weight.abs().sum() == 0  # and updates to flat are the layers' updates
