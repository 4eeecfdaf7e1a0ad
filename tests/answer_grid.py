"""A simulated `hparams_search=channels_lr_grid` sweep: 128 configurations, their true means, and
replicate values drawn from them, for measuring what the answer finds (tests/test_answer.py and
benchmarks/bench_answer_power.py).

The grid is the preset's: out_1 in 1-8, out_2 in 1-4, lr in {1e-4, 1e-3, 1e-2, 1e-1}, with
experiment=hard's parameter counts (`plan_cnn`). Its accuracies follow what conf/experiment/
hard.yaml's notes and issue 20 measured, as a model with stated numbers:

- capacity c = out_1 * out_2; at lr 1e-2, mean 1 - 0.45 exp(-(c - 1) / 4) (0.55 for one
  channel each, 0.76 at c = 4, 0.97 at c = 16, 0.999 at 32), spread (std) 0.01 + 0.09
  exp(-(c - 1) / 4) (0.1 for the tiny, 0.03 at c = 16, 0.01 at 32);
- lr 1e-3: 0.01 lower; lr 1e-4 learns too slowly: 0.5 + 0.6 (mean - 0.5); lr 1e-1 never
  learns: 0.5 every time;
- dead ReLUs: a replicate stays at 0.5 with probability 0.1 where out_2 = 1 (one channel
  carries everything), 0.03 elsewhere (lr 1e-3 and 1e-2);
- values clipped to [0, 1] and rounded to 1/1000 (1,000 validation images); every
  configuration runs the same seeds, as a sweep's replicates do (so `auto` pairs them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from linesweep.core.answer import Configuration
from linesweep.run.config import ModelConfig
from linesweep.run.shapes import plan_cnn

LRS = (1e-4, 1e-3, 1e-2, 1e-1)
HARD_IMAGE_SIZE = 13  # conf/experiment/hard.yaml


@dataclass(frozen=True)
class Truth:
    """One configuration of the grid, as the simulation knows it."""

    params: dict
    n_params: int
    mu: float  # the mean of a replicate that learns, before clipping
    sd: float
    dead: float  # the chance that a replicate stays at 0.5

    @property
    def mean(self) -> float:
        """The true mean of a replicate's value: dead ones at 0.5, the rest clipped at 1."""
        if self.sd == 0:
            learned = min(self.mu, 1.0)
        else:
            z = (self.mu - 1) / self.sd  # E[min(X, 1)] = mu - E[(X - 1)+] for X ~ N(mu, sd)
            learned = self.mu - ((self.mu - 1) * sps.norm.cdf(z) + self.sd * sps.norm.pdf(z))
        return self.dead * 0.5 + (1 - self.dead) * learned


def grid(dead_rate: float = 0.1) -> list[Truth]:
    """The 128 configurations; `dead_rate`: the dead-ReLU chance where out_2 = 1 (elsewhere
    0.3 of it), 0 for none."""
    out = []
    for out_1 in range(1, 9):
        for out_2 in range(1, 5):
            n_params = plan_cnn(ModelConfig(out_1=out_1, out_2=out_2), HARD_IMAGE_SIZE).n_params
            c = out_1 * out_2
            mu = 1 - 0.45 * math.exp(-(c - 1) / 4)
            sd = 0.01 + 0.09 * math.exp(-(c - 1) / 4)
            dead = dead_rate if out_2 == 1 else 0.3 * dead_rate
            for lr in LRS:
                params = {"model.out_1": out_1, "model.out_2": out_2, "optimizer.lr": lr}
                if lr == 1e-4:
                    truth = Truth(params, n_params, 0.5 + 0.6 * (mu - 0.5), sd, 0.0)
                elif lr == 1e-1:
                    truth = Truth(params, n_params, 0.5, 0.0, 0.0)
                else:
                    truth = Truth(params, n_params, mu - (0.01 if lr == 1e-3 else 0), sd, dead)
                out.append(truth)
    return out


def draw(truths: list[Truth], replicates: int, rng: np.random.Generator) -> list[Configuration]:
    """One simulated sweep: each configuration's replicate values, as the answer takes them."""
    out = []
    for t in truths:
        values = rng.normal(t.mu, t.sd, replicates)
        values = np.where(rng.random(replicates) < t.dead, 0.5, values)
        out.append(
            Configuration(
                params=t.params,
                n_params=t.n_params,
                metric="val_accuracy",
                direction="maximize",
                values=list(np.clip(values, 0, 1).round(3)),
                epoch=10,
                epochs=10,
                seeds=list(range(replicates)),
                success_threshold=0.9,
            )
        )
    return out


def smallest_as_good(truths: list[Truth], within: float) -> Truth:
    """The first configuration in the answer's order (parameters, then name) whose true mean is
    within `within` of the best true mean."""
    best = max(t.mean for t in truths)
    named = [(t, draw([t], 1, np.random.default_rng(0))[0].name) for t in truths]
    ordered = sorted(named, key=lambda tn: (tn[0].n_params, tn[1]))
    return next(t for t, _ in ordered if t.mean >= best - within)
