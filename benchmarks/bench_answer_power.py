"""How often the answer calls a configuration among the best worse, and how close it comes to
the true smallest configuration as good as the best: simulated, seeded.

    python benchmarks/bench_answer_power.py                 # both tables (several minutes)
    python benchmarks/bench_answer_power.py --part level --sweeps 1000
    python benchmarks/bench_answer_power.py --part power --sweeps 200

level: K truly equal configurations, n replicates each; the share of sweeps in which
`linesweep.core.answer.answer` calls any of them worse (a false "worse": every one is among the
best), for each correction and test, with alpha's 99.9% binomial bounds. "precise first": the
first tested has a tenth of the others' spread (the hardest case for the paired t's and Simes'
dependence, and for Welch's approximation).

power: simulated `hparams_search=channels_lr_grid` sweeps (128 configurations, the structure in
tests/answer_grid.py; `--dead-rate 0`: without dead ReLUs). For each: the answer's true mean
below the best true mean (its "deficit"), whether it is within 0.01 / 0.02 of the best, how
many configurations the sequence tested, and whether the answer is smaller or larger than the
true smallest within 0.01. The "oracle" row is the best any fixed sequence by size could do:
each step one test, at alpha, against the truly best configuration (which no real procedure
knows).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
from scipy import stats as sps

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests/answer_grid.py

from linesweep.core.answer import AnswerSettings, Configuration, answer  # noqa: E402
from linesweep.core.stats import compare_many  # noqa: E402
from tests import answer_grid  # noqa: E402

ALPHA = 0.05


def equal(k: int, n: int, values: np.ndarray, paired: bool) -> list[Configuration]:
    return [
        Configuration(
            params={"i": i},
            n_params=100,
            metric="val_accuracy",
            direction="maximize",
            values=list(v),
            epoch=10,
            epochs=10,
            seeds=list(range(n)) if paired else [10 * i + r for r in range(n)],
        )
        for i, v in enumerate(values)
    ]


def level(sweeps: int) -> None:
    print(f"false 'worse' rate, {sweeps} sweeps each (alpha {ALPHA}); paired: seeds shared")
    bound = sps.binom.ppf(0.999, sweeps, ALPHA) / sweeps
    print(f"99.9% binomial upper bound at alpha: {bound:.3f}")
    head = "case                     K  n  " + "  ".join(
        f"{c + '/' + t:>17s}" for t in ("paired", "welch") for c in ("simes", "bonferroni", "none")
    )
    print(head)
    cases = [("equal spreads", k, n, None) for k in (2, 5, 20) for n in (3, 5)]
    cases += [("precise first", 20, 3, 0.1), ("precise first", 20, 5, 0.1)]
    for name, k, n, ratio in cases:
        rng = np.random.default_rng(1_000 * k + n)
        sd = np.full(k, 0.02)
        if ratio is not None:
            sd[0] *= ratio  # configuration i=0 is tested first (its name sorts first)
        draws = [0.9 + rng.standard_normal((k, n)) * sd[:, None] for _ in range(sweeps)]
        row = []
        for test in ("paired", "welch"):
            for correction in ("simes", "bonferroni", "none"):
                settings = AnswerSettings(test="auto", correction=correction)
                falsely = 0
                for values in draws:
                    a = answer(equal(k, n, values, paired=test == "paired"), settings)
                    falsely += any(e.worse for e in (a.best, *a.compared))
                row.append(falsely / sweeps)
        print(f"{name:22s} {k:3d} {n:2d}  " + "  ".join(f"{r:17.3f}" for r in row), flush=True)


def oracle(configs: list[Configuration], best: int) -> int:
    """Each configuration, in the answer's order, tested once against the truly best at alpha;
    the index of the first not shown worse."""
    ks = compare_many(
        [c.values for c in configs], configs[best].values, "maximize", "auto",
        [c.seeds for c in configs], configs[best].seeds,
    )  # fmt: skip
    order = sorted(range(len(configs)), key=lambda i: (configs[i].n_params, configs[i].name, i))
    for i in order:
        if i == best or ks[i].p_value is None or ks[i].p_value >= ALPHA:
            return i
    return best


def power(sweeps: int, dead_rate: float) -> None:
    truths = answer_grid.grid(dead_rate)
    top = max(t.mean for t in truths)
    target = answer_grid.smallest_as_good(truths, 0.01)
    best = int(np.argmax([t.mean for t in truths]))
    print(
        f"simulated channels_lr_grid (dead-ReLU rate {dead_rate} where out_2 = 1): 128 "
        f"configurations, {sweeps} sweeps each; best true mean "
        f"{top:.4f}; the true smallest within 0.01: {target.params} ({target.n_params} "
        f"parameters, {target.mean:.4f})"
    )
    print(
        "replicates  procedure    deficit median  p90   within .01  within .02  "
        "tested median  smaller / larger than the truth  ms/answer"
    )
    for n in (3, 5, 10):
        rows = {"simes": [], "bonferroni": [], "oracle": []}
        spent = {name: 0.0 for name in rows}
        rng = np.random.default_rng(n)
        for _ in range(sweeps):
            configs = answer_grid.draw(truths, n, rng)
            for correction in ("simes", "bonferroni"):
                start = time.perf_counter()
                a = answer(configs, AnswerSettings(correction=correction))
                spent[correction] += time.perf_counter() - start
                picked = configs.index(a.smallest.configuration)
                rows[correction].append((picked, a.tested))
            picked = oracle(configs, best)
            rows["oracle"].append((picked, 0))
        for name, got in rows.items():
            deficit = np.array([top - truths[i].mean for i, _ in got])
            sizes = np.array([truths[i].n_params for i, _ in got])
            tested = np.median([t for _, t in got]) if name != "oracle" else float("nan")
            ms = spent[name] / sweeps * 1000 if name != "oracle" else float("nan")
            print(
                f"{n:10d}  {name:11s} {np.median(deficit):14.3f}  {np.quantile(deficit, 0.9):.3f}"
                f"  {np.mean(deficit <= 0.01):10.2f}  {np.mean(deficit <= 0.02):10.2f}"
                f"  {tested:13.0f}  {np.mean(sizes < target.n_params):.2f} / "
                f"{np.mean(sizes > target.n_params):.2f}{'':22s}{ms:6.1f}",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("level", "power", "both"), default="both")
    parser.add_argument("--sweeps", type=int, default=None, help="1000 (level), 200 (power)")
    parser.add_argument("--dead-rate", type=float, default=0.1, help="power: 0 for no dead ReLU")
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()}")
    if args.part in ("level", "both"):
        level(args.sweeps or 1_000)
    if args.part in ("power", "both"):
        power(args.sweeps or 200, args.dead_rate)
    print(f"load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
