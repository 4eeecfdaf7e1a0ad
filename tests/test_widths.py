"""Members of different channel counts in one population: each trains as it would alone.

Each member is padded to the widest member's channel counts; the padding must stay exactly zero
(weights, gradients, optimizer state), so that member m ends where its solo run ends: the same
accuracies, losses and weights within float tolerance, shuffled or not, whatever the others do
(one stopped early, one diverging). A member that stops leaves the population's buffers.
"""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from linesweep.run.data import make_splits
from linesweep.run.model import build_model
from linesweep.run.population import fit_population, population_step
from linesweep.run.seeds import derive_seeds
from linesweep.run.shapes import plan_cnn
from linesweep.run.trainer import cpu_settings
from linesweep.run.validation import to_train_config
from linesweep.run.widths import padded_views, widened
from tests.conftest import TINY

WIDTHS = [(1, 1), (3, 2), (2, 4), (1, 3)]  # (out_1, out_2): the widest is (3, 4)


def members(cfg, widths=WIDTHS, lrs=(0.01, 0.02, 0.005, 0.03)):
    """One model per width, each from its own seed, and its optimizer config."""
    models, optimizers, shuffles = [], [], []
    for i, (out_1, out_2) in enumerate(widths):
        model_cfg = replace(cfg.model, out_1=out_1, out_2=out_2)
        seeds = derive_seeds(10 + i)
        models.append(
            build_model(model_cfg, plan_cnn(model_cfg, cfg.data.image_size), seeds.model_init)
        )
        optimizers.append(replace(cfg.optimizer, lr=lrs[i]))
        shuffles.append(seeds.shuffle)
    return models, optimizers, shuffles


def solo_and_together(cfg, poison=None, stop_at=None):
    """Each member trained alone, then all together (member `poison` with a NaN bias, member
    `stop_at[0]` stopped after epoch `stop_at[1]`): (solo runs, population) outcomes and models."""
    with cpu_settings(1):
        train, val = make_splits(cfg.data, 1, 2)
        alone = []
        for model, optimizer, shuffle in zip(*members(cfg), strict=True):
            if poison is not None and len(alone) == poison:
                with torch.no_grad():
                    model.fc.bias.fill_(math.nan)
            stop = None
            if stop_at is not None and len(alone) == stop_at[0]:
                stop = lambda h: {0} if len(h[0]) == stop_at[1] else set()  # noqa: E731
            outcome = fit_population([model], optimizer, train, val, cfg.trainer, [shuffle], stop)
            alone.append((outcome, model))
        models, optimizers, shuffles = members(cfg)
        if poison is not None:
            with torch.no_grad():
                models[poison].fc.bias.fill_(math.nan)

        def stop(histories):
            if stop_at is not None and len(histories[stop_at[0]]) == stop_at[1]:
                return {stop_at[0]}
            return set()

        together = fit_population(models, optimizers, train, val, cfg.trainer, shuffles, stop)
    return alone, (together, models)


@pytest.fixture
def cfg(compose_config):
    return to_train_config(compose_config(*TINY, "trainer.epochs=3"))


@pytest.mark.parametrize("shuffle", [True, False])
def test_each_member_of_a_mixed_width_population_ends_where_its_solo_run_ends(cfg, shuffle):
    cfg = replace(cfg, trainer=replace(cfg.trainer, shuffle=shuffle))
    alone, (together, models) = solo_and_together(cfg)
    for m, (solo, solo_model) in enumerate(alone):
        assert together.statuses[m] == solo.statuses[0] == "complete"
        mine, theirs = together.histories[m], solo.histories[0]
        assert [r.val_accuracy for r in mine] == [r.val_accuracy for r in theirs]
        for a, b in zip(mine, theirs, strict=True):
            assert a.val_loss == pytest.approx(b.val_loss, rel=1e-5, abs=1e-7)
            assert a.train_cost == pytest.approx(b.train_cost, rel=1e-5)
        for p, q in zip(models[m].parameters(), solo_model.parameters(), strict=True):
            assert p.shape == q.shape  # its own width, not the padded one
            torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-6)


def test_a_member_stopped_early_and_one_diverging_leave_the_others_as_they_were(cfg):
    alone, (together, models) = solo_and_together(cfg, poison=1, stop_at=(2, 1))
    assert together.statuses == ["complete", "diverged", "pruned", "complete"]
    assert alone[1][0].statuses == ["diverged"] and alone[2][0].statuses == ["pruned"]
    assert len(together.histories[1]) == len(alone[1][0].histories[0]) == 1  # the same epoch
    assert len(together.histories[2]) == 1
    for m in (0, 2, 3):  # the stopped one's weights are those it had when it stopped
        for p, q in zip(models[m].parameters(), alone[m][1].parameters(), strict=True):
            torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-6)
    assert together.rows == [4, 2, 2]  # who trained each epoch: the two that stopped left


def test_the_padding_stays_exactly_zero_in_weights_gradients_and_optimizer_state(cfg):
    for optimizer in (cfg.optimizer, replace(cfg.optimizer, weight_decay=0.1)):
        models, _, _ = members(cfg)
        step = population_step(models, optimizer)
        train, _ = make_splits(cfg.data, 1, 2)
        images = train.images[:40].expand(len(models), -1, -1, -1, -1)
        labels = train.labels[:40].expand(len(models), -1)
        for _ in step.epoch(images, labels, 10):
            pass
        wide = widened(models[0], (3, 4))
        buffers = {
            "weights": step.params, "gradients": step.grad,
            "exp_avg": step.update.exp_avg, "exp_avg_sq": step.update.exp_avg_sq,
        }  # fmt: skip
        for name, buffer in buffers.items():
            for k, model in enumerate(models):
                shapes = [p.shape for p in wide.parameters()]
                row = buffer[k, : sum(math.prod(s) for s in shapes)].clone()  # (P,), the widest
                pieces = list(torch.split(row, [math.prod(s) for s in shapes]))
                views = padded_views(
                    model, [piece.view(s) for piece, s in zip(pieces, shapes, strict=True)]
                )
                for view in views:
                    view.fill_(math.nan)  # the member's own entries, marked
                padding = torch.cat(pieces)
                padding = padding[~torch.isnan(padding)]
                assert padding.numel() > 0 and torch.count_nonzero(padding) == 0, name


def test_a_member_s_weights_file_holds_its_own_weights_not_the_population_s(cfg, tmp_path):
    from linesweep.core.record import read_weights, write_weights

    models, optimizers, _ = members(cfg)
    population_step(models, optimizers)  # their parameters: views of one (4, P) buffer
    alone = {k: v.clone() for k, v in models[0].state_dict().items()}
    (tmp_path / "member").mkdir()
    (tmp_path / "alone").mkdir()
    write_weights(tmp_path / "member", models[0].state_dict())
    write_weights(tmp_path / "alone", alone)
    saved = read_weights(tmp_path / "member")
    assert {k: v.shape for k, v in saved.items()} == {k: v.shape for k, v in alone.items()}
    assert all(torch.equal(saved[k], alone[k]) for k in alone)
    member_size = (tmp_path / "member" / "model.pt").stat().st_size
    assert member_size == (tmp_path / "alone" / "model.pt").stat().st_size
