"""The step's layers (`linesweep/run/step_layers.py`) at a commit against this checkout's.

    python benchmarks/bench_layers_ab.py --base c0d6ec0 8,4,9 4,4,11 2,1,1

Each case is out_1,out_2,R: R members of the notebook's model with those widths, sharing one
batch of images (as a sweep's trials of one seed do), Adam, one thread. The two versions of
the layer functions take turns in one process, round by round, on the same images: each round
builds the step afresh, warms it on 10 batches and times an epoch of CPU time
(`time.process_time`, steadier than the wall clock on a shared machine). Prints the medians
of 7 rounds in µs per member-step and their ratio (above 1: this checkout is faster). The step
itself (`step.py`) is this checkout's in both; `bench_step.py --ab` compares that one.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from bench_step import build, images_for

from linesweep.run import step, step_layers

ROOT = Path(__file__).resolve().parents[1]
# The layer functions the step calls; each is swapped in both modules that look it up.
SWAPPED = (
    "unfold", "fold", "pad", "conv_forward", "conv_input_backward", "conv_weight_backward",
    "pool_forward", "pool_backward", "cross_entropy", "bmm_into",
)  # fmt: skip


def earlier_layers(base: str):
    """step_layers.py as it was at `base`, imported under another name."""
    source = subprocess.run(
        ["git", "show", f"{base}:linesweep/run/step_layers.py"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    path = Path(tempfile.mkdtemp()) / "earlier_step_layers.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("earlier_step_layers", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def use(functions: dict) -> None:
    for name, function in functions.items():
        if hasattr(step, name):
            setattr(step, name, function)
        setattr(step_layers, name, function)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="the commit to compare with")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("cases", nargs="+", help="out_1,out_2,R")
    args = parser.parse_args()
    torch.set_num_threads(1)
    old = earlier_layers(args.base)
    versions = {
        args.base: {name: getattr(old, name) for name in SWAPPED},
        "this": {name: getattr(step_layers, name) for name in SWAPPED},
    }
    for case in args.cases:
        out_1, out_2, r = (int(v) for v in case.split(","))
        steps = max(20, min(400, 4000 // r))
        images, labels = images_for(r, steps, shared=True)
        times: dict[str, list[float]] = {name: [] for name in versions}
        for _ in range(args.rounds):
            for name, functions in versions.items():
                use(functions)
                s = build(step, r, (out_1, out_2))
                for _ in s.epoch(images[:, :100], labels[:, :100], 10):
                    pass
                start = time.process_time()
                for _ in s.epoch(images, labels, 10):
                    pass
                times[name].append((time.process_time() - start) / steps / r * 1e6)
        base, this = (statistics.median(times[name]) for name in versions)
        print(
            f"({out_1},{out_2}) R={r}: {args.base} {base:.1f} µs, this {this:.1f} µs, "
            f"{args.base}/this {base / this:.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
