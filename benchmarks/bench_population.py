"""Replicates as one population against one run: the training time of R replicates.

    python benchmarks/bench_population.py                   # 8 replicates, notebook, 3 rounds
    python benchmarks/bench_population.py --replicates 4 --rounds 5 --experiment notebook
    python benchmarks/bench_population.py --part bmm        # bmm into a gradient view, R = 1, 8, 32
    python benchmarks/bench_population.py --part profile --replicates 8   # the step's profile

Issue 11's figure: 8 replicates of the notebook experiment train in at most 2.5x the training
time of one run, on 2 CPU cores (one thread, as the trainer runs). Training time is `fit`'s
(the plain run's trainer) against `fit_population`'s wall time, validation after every epoch
included, data generation and model building not. The two alternate in one process, every
figure is a median over rounds, and the ratio is taken within this invocation. Each round also
checks that replicate 0 ends at the plain run's accuracy.
"""

from __future__ import annotations

import argparse
import statistics
import time

import bench_step
import torch
from hydra import compose, initialize_config_module

from linesweep.run.config import register_configs
from linesweep.run.data import make_splits
from linesweep.run.model import build_model
from linesweep.run.population import fit_population
from linesweep.run.seeds import derive_seeds
from linesweep.run.shapes import plan_cnn
from linesweep.run.trainer import cpu_settings, fit
from linesweep.run.validation import to_train_config


def bmm_into_a_view(rounds: int = 5, calls: int = 3000) -> None:
    """conv1's weight gradient (R, 2, 1000) @ (R, 1000, 4) written into a view of a (R, P)
    gradient buffer, as `step.bmm_into` does: bmm's `out=` against bmm then copy."""

    def median_us(call) -> float:
        return bench_step.median_us(call, calls, rounds, warmup=50)

    torch.set_num_threads(1)
    print(f"bmm into a gradient view, medians of {rounds} rounds of {calls} calls:")
    for r in (1, 8, 32):
        grad = torch.zeros(r, 400)  # (R, P)
        out = grad[:, 100:108].view(r, 2, 4)  # a weight's gradient: members P apart
        dz, columns = torch.rand(r, 2, 1000), torch.rand(r, 50, 4, 1000)[:, 3]
        b = columns.transpose(1, 2)  # (R, 1000, 4)
        direct = median_us(lambda a=dz, b=b, out=out: torch.bmm(a, b, out=out))
        copied = median_us(lambda a=dz, b=b, out=out: out.copy_(torch.bmm(a, b)))
        print(f"  R={r:2d}: out= the view {direct:5.1f} µs, bmm then copy {copied:5.1f} µs")


def step_profile(cfg, replicates: int) -> None:
    """µs a step of R members on 2,000 of the experiment's images, then torch's profile of it."""
    from torch.profiler import profile

    from linesweep.run.population import population_step

    plan = plan_cnn(cfg.model, cfg.data.image_size)
    seeds = [derive_seeds(cfg.seed, r) for r in range(replicates)]
    with cpu_settings(1):
        train, _ = make_splits(cfg.data, seeds[0].train_data, seeds[0].val_data)
        models = [build_model(cfg.model, plan, s.model_init) for s in seeds]
        step = population_step(models, cfg.optimizer)
        images = train.images[:2000].expand(replicates, -1, -1, -1, -1)  # (R, N, C0, H, W)
        labels = train.labels[:2000].expand(replicates, -1)  # (R, N)
        batch = cfg.trainer.batch_size
        for _ in step.epoch(images, labels, batch):  # warm-up
            pass
        start = time.perf_counter()
        for _ in range(3):
            for _ in step.epoch(images, labels, batch):
                pass
        steps = 3 * len(labels[0]) // batch
        print(f"R={replicates}: {(time.perf_counter() - start) / steps * 1e6:.0f} µs a step")
        with profile() as profiled:
            for _ in step.epoch(images, labels, batch):
                pass
    print(profiled.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicates", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--experiment", default="notebook")
    parser.add_argument("--part", choices=("replicates", "bmm", "profile"), default="replicates")
    args = parser.parse_args()
    if args.part == "bmm":
        bmm_into_a_view()
        return

    register_configs()
    with initialize_config_module("linesweep.conf", version_base="1.3"):
        cfg = to_train_config(compose("train", overrides=[f"experiment={args.experiment}"]))
    if args.part == "profile":
        step_profile(cfg, args.replicates)
        return
    plan = plan_cnn(cfg.model, cfg.data.image_size)
    seeds = [derive_seeds(cfg.seed, r) for r in range(args.replicates)]
    single_s, population_s = [], []
    with cpu_settings(1):
        train, val = make_splits(cfg.data, seeds[0].train_data, seeds[0].val_data)
        for round_ in range(1, args.rounds + 1):
            model = build_model(cfg.model, plan, seeds[0].model_init)
            start = time.perf_counter()
            alone = fit(model, cfg.optimizer, train, val, cfg.trainer, seeds[0].shuffle)
            single_s.append(time.perf_counter() - start)

            models = [build_model(cfg.model, plan, s.model_init) for s in seeds]
            start = time.perf_counter()
            together = fit_population(
                models, cfg.optimizer, train, val, cfg.trainer, [s.shuffle for s in seeds]
            )
            population_s.append(time.perf_counter() - start)

            finals = [h[-1].val_accuracy for h in together.histories]
            same = finals[0] == alone.history[-1].val_accuracy
            print(
                f"round {round_}: one run {single_s[-1]:.2f} s, {args.replicates} replicates "
                f"{population_s[-1]:.2f} s; accuracies {finals}; replicate 0 = the run: {same}"
            )
    one, many = statistics.median(single_s), statistics.median(population_s)
    print(
        f"median over {args.rounds} rounds ({args.experiment}): one run {one:.2f} s, "
        f"{args.replicates} replicates {many:.2f} s, ratio {many / one:.2f}x "
        f"({many / one / args.replicates:.2f}x per replicate)"
    )


if __name__ == "__main__":
    main()
