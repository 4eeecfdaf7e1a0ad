"""Ways the population step could be written, timed against the way it is (and not taken).

    python benchmarks/bench_step_alternatives.py                   # conv2 and pooling, every case
    python benchmarks/bench_step_alternatives.py --part compile    # torch.compile (about a minute)

Issue 19 asks for 10 µs a member-step at R = 256; the step takes about twice that. These are
the rewrites tried to get there, each checked against the step's own layer functions
(`linesweep/run/step_layers.py`) for the same result and timed beside them in one process,
medians of 9 rounds, one thread:

conv    conv2's forward and both backwards without im2col: on the full grid of its input, each
        tap one batched matmul onto a shifted slice of the flat image (outputs past the right
        edge computed and dropped), so no columns are copied out; against unfold + baddbmm +
        bmm + the transposed convolution.
pool    2x2 max-pooling's forward and backward with boolean gates (`torch.gt` to bool,
        `torch.where` in the backward), against the float gates and `addcmul` passes.
compile `torch.compile` of the whole forward and backward (`HandStep._gradient`), against
        the same step eager, µs of CPU a member-step at R = 256 of the notebook's model.

Cases are out_1,out_2,R (conv2's input has out_1 channels, its output out_2).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import bench_step
import torch
from bench_step import build, images_for, timed_round

from linesweep.run import step as hand
from linesweep.run import step_layers as layers

CASES = (
    (8, 4, 48),
    (8, 2, 36),
    (5, 2, 48),
    (4, 4, 48),
    (2, 1, 256),
)  # the grid's widest + notebook
B = 10  # images a batch
WINDOW = layers.Window((2, 2), (1, 1), (0, 0), (1, 1))  # every 2x2 layer of the notebook's model


def median_us(f: Callable[[], object]) -> float:
    return bench_step.median_us(f, calls=50, rounds=9)


# ---------------------------------------------------------------- conv2 without im2col
def conv_case(c: int, o: int, r: int) -> tuple[float, float, float]:
    """(µs as the step does it, µs by shifted matmuls, largest difference of their results)."""
    h, ho = 9, 8  # conv2's input and output size in the notebook's model
    p1 = torch.randn(r, c, h, h, B)
    weight, bias = torch.randn(r, o, c * 4) * 0.3, torch.randn(r, o, 1)
    d_z = torch.randn(r, o, ho, ho, B)
    g_w, g_b, ws = torch.empty(r, o, c * 4), torch.empty(r, o, 1), layers.Workspace()

    def as_the_step_does() -> tuple[torch.Tensor, ...]:
        columns = layers.unfold(p1, WINDOW, (ho, ho), ws)
        z = layers.conv_forward(columns, weight, bias, (ho, ho), ws)
        d = layers.conv_weight_backward(d_z, columns, (g_w, g_b))
        return z, layers.conv_input_backward(d, weight, WINDOW, (h, h), (ho, ho), ws), g_w

    n = (ho * h - 1) * B  # full-grid outputs up to the last one inside the image
    flat = p1.view(r, c, -1)  # (R, C, H*W*B)
    taps = weight.view(r, o, c, 2, 2).permute(0, 3, 4, 1, 2).contiguous()  # (R, 2, 2, O, C)
    offsets = [(i, j, (i * h + j) * B) for i in range(2) for j in range(2)]
    z_full, d_full = torch.empty(r, o, ho * h * B), torch.zeros(r, o, ho * h * B)
    dx_full, g_taps = torch.empty(r, c, h * h * B), torch.empty(r, 2, 2, o, c)

    def by_shifted_matmuls() -> tuple[torch.Tensor, ...]:
        z = z_full[:, :, :n]
        torch.baddbmm(bias, taps[:, 0, 0], flat[:, :, :n], out=z)
        for i, j, at in offsets[1:]:
            z.baddbmm_(taps[:, i, j], flat[:, :, at : at + n])
        d_full.view(r, o, ho, h, B)[:, :, :, :ho].copy_(d_z)  # the column past the edge stays 0
        d = d_full[:, :, :n]
        for i, j, at in offsets:
            torch.bmm(d, flat[:, :, at : at + n].transpose(1, 2), out=g_taps[:, i, j])
        dx_full.zero_()
        for i, j, at in offsets:
            dx_full[:, :, at : at + n].baddbmm_(taps[:, i, j].transpose(1, 2), d)
        z_view = z_full.view(r, o, ho, h, B)[:, :, :, :ho]
        return z_view, dx_full.view(r, c, h, h, B), g_taps.permute(0, 3, 4, 1, 2).reshape(r, o, -1)

    ours = [t.clone() for t in as_the_step_does()]
    theirs = by_shifted_matmuls()
    gap = max((a - b).abs().max().item() for a, b in zip(ours, theirs, strict=True))
    return median_us(as_the_step_does), median_us(by_shifted_matmuls), gap


# ---------------------------------------------------------------- pooling with boolean gates
def pool_case(c: int, r: int) -> tuple[float, float, float]:
    """(µs as the step does it, µs with boolean gates, largest difference): conv1's output."""
    h = 10
    z, d_y = torch.randn(r, c, h, h, B), torch.randn(r, c, h - 1, h - 1, B)
    ws, scratch = layers.Workspace(), layers.Workspace()

    def as_the_step_does() -> torch.Tensor:
        _, tape = layers.pool_forward(z, WINDOW, (h - 1, h - 1), True, ws)
        return layers.pool_backward(d_y.clone(), tape, WINDOW, (h, h), ws)

    def with_boolean_gates() -> torch.Tensor:
        n = r * c
        x = z.view(n, h, h, B)
        across = torch.gt(x[:, :, 1:], x[:, :, :-1])  # (n, H, W-1, B), bool
        rows = torch.maximum(x[:, :, :-1], x[:, :, 1:])
        down = torch.gt(rows[:, 1:], rows[:, :-1])
        pooled = torch.maximum(rows[:, :-1], rows[:, 1:]).relu_()
        dy = torch.ops.aten.threshold_backward(d_y.view(n, h - 1, h - 1, B), pooled, 0)
        taken = torch.where(down, dy, 0.0)  # to the lower row
        d_rows = scratch.take("rows", dy, n, h, h - 1, B)
        torch.sub(dy, taken, out=d_rows[:, :-1])
        d_rows[:, -1].zero_()
        d_rows[:, 1:] += taken
        taken = torch.where(across, d_rows, 0.0)  # to the right column
        dx = scratch.take("dx", dy, n, h, h, B)
        torch.sub(d_rows, taken, out=dx[:, :, :-1])
        dx[:, :, -1].zero_()
        dx[:, :, 1:] += taken
        return dx.view(r, c, h, h, B)

    gap = (as_the_step_does() - with_boolean_gates()).abs().max().item()
    return median_us(as_the_step_does), median_us(with_boolean_gates), gap


# ---------------------------------------------------------------- torch.compile
def compile_case(r: int = 256, steps: int = 100) -> None:
    torch.set_num_threads(1)
    images, labels = images_for(r, steps, shared=True)
    step = build(hand, r, (2, 1))
    eager = step._gradient
    start = time.perf_counter()
    step._gradient = torch.compile(eager, dynamic=False)
    timed_round(step, images, labels)
    print(f"torch.compile: {time.perf_counter() - start:.1f} s to compile and run one round")
    per = steps * r / 1e6
    compiled = [timed_round(step, images, labels)[1] / per for _ in range(3)]
    step._gradient = eager
    plain = [timed_round(step, images, labels)[1] / per for _ in range(3)]
    eager_us, compiled_us = statistics.median(plain), statistics.median(compiled)
    print(
        f"R={r}: eager {eager_us:.1f} µs a member-step (CPU), compiled {compiled_us:.1f}: "
        f"{eager_us / compiled_us:.2f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("conv", "pool", "compile"), action="append")
    parts = parser.parse_args().part or ["conv", "pool"]
    torch.set_num_threads(1)
    if "conv" in parts:
        print("conv2 forward + backward, µs a step: the step's way, shifted matmuls, ratio")
        for c, o, r in CASES:
            ours, theirs, gap = conv_case(c, o, r)
            print(
                f" {c},{o} R={r:<4} {ours:8.1f} {theirs:8.1f} {ours / theirs:5.2f}x (gap {gap:.0e})"
            )
    if "pool" in parts:
        print("2x2 max-pooling forward + backward, µs: the step's way, boolean gates, ratio")
        for c, _, r in CASES:
            ours, theirs, gap = pool_case(c, r)
            print(
                f"  C={c} R={r:<4} {ours:8.1f} {theirs:8.1f} {ours / theirs:5.2f}x (gap {gap:.0e})"
            )
    if "compile" in parts:
        compile_case()


if __name__ == "__main__":
    main()
