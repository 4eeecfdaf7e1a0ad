"""The answer over 1,000 configurations x 5 replicates: seconds per call, median of rounds.

    python benchmarks/bench_answer.py --rounds 5

Each round times, in turn, the baseline (`linesweep.core.metrics.spread` over every
configuration: the mean/std/success rate compare shows today, no interval, no test) and
`linesweep.core.answer.answer` with each test: auto (the replicates share seeds, so paired),
welch, and mannwhitney on accuracies of 200 images (ties: scipy's exact permutation test).
The target is well under a second for the default (auto).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

from linesweep.core.answer import AnswerSettings, Configuration, answer
from linesweep.core.metrics import spread


def configurations(count: int = 1_000, replicates: int = 5) -> list[Configuration]:
    """A sweep's worth of replicated configurations: accuracies on 200 images, on a grid."""
    rng = np.random.default_rng(0)
    seeds = list(range(replicates))
    out = []
    for i in range(count):
        out_1, out_2 = int(rng.integers(1, 9)), int(rng.integers(1, 9))
        mean = 0.95 - 0.3 / (out_1 * out_2)
        values = np.clip(rng.normal(mean, 0.02, replicates), 0, 1).round(3)  # 1/1000 grid
        out.append(
            Configuration(
                params={"out_1": out_1, "out_2": out_2, "lr": float(10 ** rng.uniform(-4, -1))},
                n_params=out_1 * 4 + out_1 * out_2 * 4 + out_2 * 49 + 2 + i % 7,
                metric="val_accuracy",
                direction="maximize",
                values=list(values),
                epoch=10,
                epochs=10,
                seeds=seeds,
                success_threshold=0.9,
            )
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--count", type=int, default=1_000)
    args = parser.parse_args()
    configs = configurations(args.count)

    def baseline() -> None:
        for c in configs:
            spread(c.values, c.metric, 0.9)

    variants = {"baseline: spread() only": baseline}
    for test in ("auto", "welch", "mannwhitney"):
        settings = AnswerSettings(test=test)
        variants[f"answer(test={test})"] = lambda s=settings: answer(configs, s)
    first = answer(configs)
    print(f"load average at start: {os.getloadavg()}")
    print(f"{args.count} configurations x 5 replicates; {len(first.compared)} compared")
    print("\n".join(first.lines()))
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.rounds):  # interleaved: a load spike hits every variant
        for name, run in variants.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    base = statistics.median(times["baseline: spread() only"])
    for name, values in times.items():
        median = statistics.median(values)
        rounds = ", ".join(f"{v:.3f}" for v in values)
        print(f"{name:28s} median {median:.3f} s  ({median / base:.1f}x baseline)  [{rounds}]")
    print(f"load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
