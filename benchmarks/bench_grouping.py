"""What a population's step costs, to decide which trials share one: the constants of
`linesweep.run.grouping`, fitted from the step itself.

    python benchmarks/bench_grouping.py                 # the notebook's model, one core: C_STEP
    LINESWEEP_NATIVE=0 python benchmarks/bench_grouping.py   # torch's layers: TORCH_STEP
    python benchmarks/bench_grouping.py --experiment hard --rounds 5

A population of R members padded to channel counts w takes, a step, about
    STEP_S + R * (MEMBER_STEP_S + NOTEBOOK_MEMBER_STEP_S * member_cost(w))
(member_cost: w's multiply-adds per image against the notebook model's; MEMBER_STEP_S what a
member costs whatever its width: its loss, its update, its share of every kernel's loop). This
times the whole
training step (`HandStep.epoch` on one shared batch stream, as a sweep's trials of one seed see
it) for R in 1..64 and six widths, medians of interleaved rounds, fits the three constants by
least squares, and prints them with the fit's worst relative error: the numbers to put in
grouping.py's `C_STEP` or `TORCH_STEP`. It also prints the measured step of a mixed-width
population of 32 members (widths 1-8 x 1-4) against a same-width population of 32 of the
widest: issue 19's <= 2x.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time
from dataclasses import replace

import numpy as np
import torch
from hydra import compose, initialize_config_module

from linesweep.run.config import register_configs
from linesweep.run.data import make_splits
from linesweep.run.grouping import member_cost
from linesweep.run.model import build_model
from linesweep.run.population import population_step
from linesweep.run.shapes import plan_cnn
from linesweep.run.trainer import cpu_settings
from linesweep.run.validation import to_train_config

WIDTHS = [(1, 1), (2, 1), (1, 4), (8, 1), (4, 2), (8, 4)]
SIZES = [1, 2, 4, 8, 16, 32, 64]


def step_seconds(cfg, widths: list[tuple[int, int]], images, labels, rounds: int) -> float:
    """Median seconds of one step of a population whose members have `widths`."""
    models = []
    for i, (out_1, out_2) in enumerate(widths):
        model_cfg = replace(cfg.model, out_1=out_1, out_2=out_2)
        models.append(build_model(model_cfg, plan_cnn(model_cfg, cfg.data.image_size), i))
    step = population_step(models, cfg.optimizer)
    r, batch = len(models), cfg.trainer.batch_size
    x = images.unsqueeze(0).expand(r, *images.shape)  # one stream for all: a sweep of one seed
    y = labels.unsqueeze(0).expand(r, -1)
    for _ in step.epoch(x, y, batch):  # warm-up
        pass
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in step.epoch(x, y, batch):
            pass
        times.append((time.perf_counter() - start) / (len(labels) // batch))
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", default="notebook")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--images", type=int, default=500, help="images a round")
    args = parser.parse_args()
    register_configs()
    with initialize_config_module("linesweep.conf", version_base="1.3"):
        cfg = to_train_config(compose("train", overrides=[f"experiment={args.experiment}"]))
    with cpu_settings(1):
        train, _ = make_splits(cfg.data, 1, 2)
        images, labels = train.images[: args.images], train.labels[: args.images]
        rows = []
        for w, r in itertools.product(WIDTHS, SIZES):
            seconds = step_seconds(cfg, [w] * r, images, labels, args.rounds)
            rows.append((w, r, member_cost(cfg, *w), seconds))
            print(f"  widths {w} x {r:3d}: {seconds * 1e6:8.1f} us a step", flush=True)
        design = np.array([[1.0, r, r * cost] for _, r, cost, _ in rows])
        measured = np.array([s for *_, s in rows])
        constants, *_ = np.linalg.lstsq(design, measured, rcond=None)
        worst = float(np.max(np.abs(design @ constants - measured) / measured))
        step_s, any_member_s, member_s = constants
        print(
            f"STEP_S = {step_s:.3g}  MEMBER_STEP_S = {any_member_s:.3g}  "
            f"NOTEBOOK_MEMBER_STEP_S = {member_s:.3g}  (worst relative error {worst:.0%})"
        )
        mixed = [(1 + i % 8, 1 + (i // 8) % 4) for i in range(32)]
        together = step_seconds(cfg, mixed, images, labels, args.rounds)
        widest = step_seconds(cfg, [(8, 4)] * 32, images, labels, args.rounds)
        print(
            f"mixed widths 1-8 x 1-4, 32 members: {together * 1e6:.0f} us a step; "
            f"32 of the widest: {widest * 1e6:.0f} us; ratio {together / widest:.2f}x"
        )


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
