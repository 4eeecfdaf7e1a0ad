"""Will a run fit in memory? Estimated from the shape plan and the image counts, before allocating.

A typo of a few zeros (`data.N_images=4000000`, `model.conv1.padding=100000`, `plots.dpi=100000`)
would otherwise make torch or matplotlib ask the kernel for tens of gigabytes and die with a
traceback, or push the machine into swap. The estimate is an upper bound of what a run holds at
its peak, per part, each named by the key that controls it, so that a refusal says which value to
change. It errs on the generous side of the truth by small factors, never by orders of magnitude.
"""

from __future__ import annotations

import contextlib
import math
import os
from dataclasses import dataclass
from pathlib import Path

from linesweep.core.errors import ConfigError
from linesweep.run.config import TrainConfig
from linesweep.run.shapes import ShapePlan

FLOAT = 4  # bytes: every tensor of a run is float32
# Generating a split holds a float64 uniform draw, its boolean mask and the float32 images at once.
GENERATION_BYTES_PER_PIXEL = 8 + 1 + 4
# A training step keeps each layer's output for the backward pass, plus its gradient and the
# pooling indices (int64): about four float32 copies of every activation.
TRAINING_COPIES = 4
OPTIMIZER_COPIES = 4  # parameters, gradients, and two Adam moments
RGBA = 4  # bytes per pixel of matplotlib's Agg canvas


@dataclass(frozen=True)
class Need:
    """One part of a run's peak memory, and the config key (and its value) that sizes it."""

    part: str
    key: str
    value: object
    nbytes: int


def estimate(cfg: TrainConfig, plan: ShapePlan, replicates: int = 1) -> list[Need]:
    """The run's memory by part: data, activations, weights, figures."""
    data, trainer = cfg.data, cfg.trainer
    pixels = data.image_size**2
    largest_split = max(data.N_images, data.N_val_images)
    # A shuffled epoch holds a reordered copy of the training images per replicate.
    copies = 1 + trainer.shuffle * replicates
    resident = (data.N_images * copies + data.N_val_images) * pixels * FLOAT
    generation = largest_split * pixels * GENERATION_BYTES_PER_PIXEL
    activation_numel = sum(math.prod(layer.output_shape) for layer in plan.layers)
    # A batch larger than the data is the data: the trainer never holds more images than exist.
    batch = min(trainer.batch_size, data.N_images)
    training = batch * activation_numel * FLOAT * TRAINING_COPIES * replicates
    evaluation = min(trainer.eval_batch_size, data.N_val_images) * activation_numel * FLOAT
    big_layer = max(plan.layers, key=lambda layer: math.prod(layer.output_shape))
    widest = max(cfg.model.out_1, cfg.model.out_2)
    return [
        Need("data", *_data_key(cfg), resident + generation),
        Need("activations", *_activation_key(cfg, big_layer.name), max(training, evaluation)),
        Need("weights", "model.out_1" if cfg.model.out_1 == widest else "model.out_2", widest,
             plan.n_params * FLOAT * OPTIMIZER_COPIES * replicates),
        Need("figures", "plots.dpi", cfg.plots.dpi, figure_bytes(cfg)),
    ]  # fmt: skip


def _data_key(cfg: TrainConfig) -> tuple[str, object]:
    """The key to blame for big data: huge images, else the larger image count."""
    data = cfg.data
    if data.image_size > 256:
        return "data.image_size", data.image_size
    if data.N_val_images > data.N_images:
        return "data.N_val_images", data.N_val_images
    return "data.N_images", data.N_images


def _activation_key(cfg: TrainConfig, layer: str) -> tuple[str, object]:
    """The key to blame for big activations: a padding that outgrew the image, else the batch."""
    window = getattr(cfg.model, layer, None)
    if window is not None and 2 * window.padding > cfg.data.image_size:
        return f"model.{layer}.padding", window.padding
    if cfg.data.image_size > 256:
        return "data.image_size", cfg.data.image_size
    return "trainer.batch_size", cfg.trainer.batch_size


def figure_bytes(cfg: TrainConfig) -> int:
    """The Agg canvas of the largest figure the run will draw (0 when it draws none).

    The sizes follow `linesweep.run.plots` (a test compares them with the real figures): the
    kernel grids grow with the channel counts, the rest are a few inches wide.
    """
    plots, model = cfg.plots, cfg.model
    inches2 = []
    if plots.kernels:
        for n_in, n_out in ((1, model.out_1), (model.out_1, model.out_2)):
            inches2.append((1.2 * n_in + 1.0) * (1.2 * n_out + 0.6))
    if plots.feature_maps or plots.samples or plots.learning_curve or plots.activations:
        inches2.append(1.5 * 9 * (1.8 * 2 + 0.6))  # feature maps: at most 9 columns of 2 rows
    return int(max(inches2, default=0) * plots.dpi**2 * RGBA)


def available_bytes() -> int:
    """What this process may still allocate: free memory, or its cgroup's limit if lower."""
    limits = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                limits.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    try:
        text = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if text != "max":
            limits.append(int(text))
    except (OSError, ValueError):
        pass
    if not limits and hasattr(os, "sysconf"):
        with contextlib.suppress(ValueError, OSError):
            limits.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    return min(limits) if limits else 2**62  # unknown: do not refuse


def check_fits(needs: list[Need], available: int | None = None) -> None:
    """Refuse, naming the key of the largest part, a run that would not fit in memory."""
    available = available_bytes() if available is None else available
    total = sum(need.nbytes for need in needs)
    if total <= available:
        return
    worst = max(needs, key=lambda need: need.nbytes)
    parts = ", ".join(f"{need.part} {_gib(need.nbytes)}" for need in needs if need.nbytes)
    raise ConfigError(
        worst.key,
        worst.value,
        f"a run that fits in the {_gib(available)} of memory available; this one needs about "
        f"{_gib(total)} ({parts})",
        f"lower {worst.key}",
    )


def _gib(nbytes: float) -> str:
    return f"{nbytes / 2**30:.1f} GiB" if nbytes >= 2**27 else f"{nbytes / 2**20:.0f} MiB"


def check_population_fits(
    cfg: TrainConfig, plan: ShapePlan, available: int | None = None, key: str = "replicates"
) -> None:
    """`check_fits` for `cfg.replicates` members; a population that fits only when smaller is a
    ConfigError on `key` (a sweep's: hydra.sweeper.population_size), naming the most that fit."""
    available = available_bytes() if available is None else available
    replicates = cfg.replicates
    if replicates == 1:
        check_fits(estimate(cfg, plan), available)
        return

    def fits(r: int) -> bool:
        return sum(need.nbytes for need in estimate(cfg, plan, r)) <= available

    if fits(replicates):
        return
    check_fits(estimate(cfg, plan), available)  # not even one fits: blame that run's own key
    low, high = 1, replicates  # fits(low), not fits(high)
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if fits(mid) else (low, mid)
    raise ConfigError(
        key,
        replicates,
        f"at most {low} {'replicates' if key == 'replicates' else 'members'} of this "
        f"configuration fit in {_gib(available)} of memory",
        f"use {key}={low} or fewer",
    )
