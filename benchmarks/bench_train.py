"""Training speed: linesweep's step and command against the notebook's, each in one invocation.

    python benchmarks/bench_train.py                # every part but runs (~3 minutes)
    python benchmarks/bench_train.py --rounds 5     # more rounds of each, interleaved; medians
    python benchmarks/bench_train.py --part steps   # or: commands, profile, conv, curves, runs
    python benchmarks/bench_train.py --ablation     # what each change to the autograd loop buys

steps     microseconds per training step of the notebook's experiment (10,000 images in class
          order, batch 10, Adam lr 0.001, the notebook's model), one epoch per round: the
          autograd step the trainer used before (`linesweep.run.trainer.autograd_epoch`: flat
          parameters, fused Adam, one thread, native convolution) against the hand-written step
          (`linesweep/run/step.py`), alternating, same process.
commands  whole-process wall time, Python start-up and imports included: the default command
          `python -m linesweep.train` (shuffled images, plots, every file a run writes) against
          the notebook's loop run as a script (`--notebook`: its Dataset, DataLoader, model and
          Adam, default threads, oneDNN), alternating.
profile   what remains in the hand-written step: each group of its operations timed alone on
          one batch of the notebook's experiment, medians over rounds.
conv      one convolution's forward for R = 1 and 8 members: grouped conv2d against the step's
          unfold + one bmm per member.
curves    milliseconds per learning-curve PNG at dpi 80 (plots=light), 16 members of a population
          with their own costs and captions, each written to a file: as it was drawn before (a new
          figure, `tight_layout`, the caption above it, savefig's tight bounding box) against a
          new `plots.LearningCurve` (the first member; a run drawing in-process), one prepared
          untimed (a single run: its drawing process prepares it while the model trains) and the
          process's one, redrawn (a population's members), alternating.
runs      (not in the default) the notebook's run in-process against linesweep's trainer and
          `linesweep.run.task.run`, data generation and validation included, as before.
The machine is noisy (2 shared cores): every figure is a median of interleaved rounds, and
ratios are taken within this one invocation.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

if TYPE_CHECKING:  # `--notebook` runs the notebook's loop alone: no linesweep import
    from matplotlib.figure import Figure

    from linesweep.core.metrics import EpochMetrics
    from linesweep.run.data import Split

ROOT = Path(__file__).resolve().parents[1]

N_TRAIN, N_VAL, EPOCHS, BATCH = 10_000, 1_000, 10, 10


# ---------------------------------------------------------------- (a) the notebook, as written
class NotebookData(Dataset):
    def __init__(self, N_images=100, offset=0, p=0.9, train=False):
        if train:
            np.random.seed(1)
        N_images = 2 * (N_images // 2)
        images = np.zeros((N_images, 1, 11, 11))
        start1, start2 = 3, 1
        self.y = torch.zeros(N_images).type(torch.long)
        for n in range(N_images):
            if offset > 0:
                low = int(np.random.randint(low=start1, high=start1 + offset, size=1))
                high = int(np.random.randint(low=start2, high=start2 + offset, size=1))
            else:
                low, high = 4, 1
            if n <= N_images // 2:
                self.y[n] = 0
                images[n, 0, high : high + 9, low : low + 3] = np.random.binomial(1, p, (9, 3))
            elif n > N_images // 2:
                self.y[n] = 1
                images[n, 0, low : low + 3, high : high + 9] = np.random.binomial(1, p, (3, 9))
        self.x = torch.from_numpy(images).type(torch.FloatTensor)
        self.len = self.x.shape[0]
        np.random.seed(0)

    def __getitem__(self, index):
        return self.x[index], self.y[index]

    def __len__(self):
        return self.len


class NotebookCNN(nn.Module):
    def __init__(self, out_1=2, out_2=1):
        super().__init__()
        self.cnn1 = nn.Conv2d(in_channels=1, out_channels=out_1, kernel_size=2, padding=0)
        self.maxpool1 = nn.MaxPool2d(kernel_size=2, stride=1)
        self.cnn2 = nn.Conv2d(
            in_channels=out_1, out_channels=out_2, kernel_size=2, stride=1, padding=0
        )
        self.maxpool2 = nn.MaxPool2d(kernel_size=2, stride=1)
        self.fc1 = nn.Linear(out_2 * 7 * 7, 2)

    def forward(self, x):
        x = self.maxpool1(torch.relu(self.cnn1(x)))
        x = self.maxpool2(torch.relu(self.cnn2(x)))
        return self.fc1(x.view(x.size(0), -1))


def notebook_run() -> dict:
    start = time.perf_counter()
    torch.manual_seed(4)
    train_dataset = NotebookData(N_images=N_TRAIN, train=True)
    validation_dataset = NotebookData(N_images=N_VAL, train=False)
    model = NotebookCNN(2, 1)
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.001)
    train_loader = DataLoader(dataset=train_dataset, batch_size=BATCH)
    validation_loader = DataLoader(dataset=validation_dataset, batch_size=20)
    steps, accuracy = 0, 0.0
    for _ in range(EPOCHS):
        cost = 0
        for x, y in train_loader:
            optimizer.zero_grad()
            loss = criterion(model(x), y)
            loss.backward()
            optimizer.step()
            cost += loss.item()
            steps += 1
        correct = 0
        for x_test, y_test in validation_loader:
            _, yhat = torch.max(model(x_test).data, 1)
            correct += (yhat == y_test).sum().item()
        accuracy = correct / len(validation_dataset)
    return {"seconds": time.perf_counter() - start, "steps": steps, "val_accuracy": accuracy}


# ---------------------------------------------------------------- per step: autograd and by hand
def notebook_images() -> Split:
    """The notebook experiment's training images, in class order (experiment=notebook)."""
    from linesweep.run.config import DataConfig
    from linesweep.run.data import make_split
    from linesweep.run.seeds import derive_seeds

    return make_split(DataConfig(), N_TRAIN, derive_seeds(4).train_data)


def step_us(kind: str, train: Split) -> float:
    """Microseconds per step over one epoch of `train` in order, the model built as a run does."""
    from linesweep.run.config import ModelConfig
    from linesweep.run.model import build_model
    from linesweep.run.seeds import derive_seeds
    from linesweep.run.shapes import plan_cnn
    from linesweep.run.trainer import autograd_epoch, training_epoch

    model = build_model(ModelConfig(), plan_cnn(ModelConfig(), 11), derive_seeds(4).model_init)

    def adam(params):
        return torch.optim.Adam(params, lr=0.001, fused=True)

    epoch = autograd_epoch(model, adam) if kind == "autograd" else training_epoch(model, adam)
    start, steps = time.perf_counter(), 0
    for _ in epoch(train.images, train.labels, BATCH):
        steps += 1
    return (time.perf_counter() - start) / steps * 1e6


def compare_steps(rounds: int) -> None:
    from linesweep.run.trainer import cpu_settings

    train = notebook_images()
    results: dict[str, list[float]] = {"autograd": [], "hand-written": []}
    with cpu_settings(1):
        for round_ in range(rounds):
            for kind, found in results.items():  # alternating: load spikes hit both
                found.append(step_us(kind, train))
            line = "  ".join(f"{k} {v[-1]:5.0f}" for k, v in results.items())
            print(f"round {round_ + 1}  us/step  {line}", flush=True)
    auto, hand = (statistics.median(v) for v in results.values())
    print(f"\nsteps, medians of {rounds} rounds of {N_TRAIN // BATCH} steps (batch {BATCH}):")
    print(f"  autograd step (the trainer before)  {auto:6.0f} us/step")
    print(f"  hand-written step                   {hand:6.0f} us/step   {auto / hand:4.2f}x faster")


# ---------------------------------------------------------------- whole commands
def timed(command: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    return seconds


def compare_commands(rounds: int) -> None:
    notebook = [sys.executable, str(Path(__file__).resolve()), "--notebook"]
    default = [sys.executable, "-m", "linesweep.train"]
    results: dict[str, list[float]] = {"notebook loop": [], "python -m linesweep.train": []}
    env_path = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env_path) if p)
    with tempfile.TemporaryDirectory() as folder:  # outputs/ of the default command lands here
        for round_ in range(rounds):
            for found, command in zip(results.values(), (notebook, default), strict=True):
                found.append(timed(command, Path(folder)))
            line = "  ".join(f"{k} {v[-1]:5.2f} s" for k, v in results.items())
            print(f"round {round_ + 1}  {line}", flush=True)
    base, ours = (statistics.median(v) for v in results.values())
    print(f"\nwhole commands, wall time, medians of {rounds} rounds:")
    print(f"  notebook loop as a script          {base:6.2f} s")
    print(f"  python -m linesweep.train          {ours:6.2f} s   {base / ours:4.2f}x faster")


# ---------------------------------------------------------------- what remains in the step
def step_profile(rounds: int, calls: int = 400) -> None:
    """Each group of the hand-written step's operations timed alone, on one batch."""
    from linesweep.run import step as hand
    from linesweep.run.config import ModelConfig
    from linesweep.run.model import build_model
    from linesweep.run.shapes import plan_cnn
    from linesweep.run.trainer import cpu_settings

    model = build_model(ModelConfig(), plan_cnn(ModelConfig(), 11), seed=0)
    step = hand.HandStep.for_models([model], hand.UpdateRule("adam", 0.001))
    train = notebook_images()
    x, y = train.images[None, 5000:5010], train.labels[None, 5000:5010]  # (1, 10, ...), (1, 10)
    arch, m, g, sizes, ws = step.arch, step._params, step._grads, step.sizes(x), step._ws
    with cpu_settings(1), torch.inference_mode():
        columns1 = hand.image_columns(arch, sizes, x, ws)
        logits, tape = hand.forward(arch, sizes, m, columns1, ws, keep=True)
        z1 = hand.conv_forward(columns1, m.conv1_w, m.conv1_b, sizes.conv1, ws.conv1)
        z2 = torch.rand(1, 1, *sizes.conv2, BATCH)
        p1, pool1 = tape.pool1.pooled, tape.pool1
        _, d_logits = hand.cross_entropy(logits.clone(), y)
        d_features = torch.bmm(m.fc_w.transpose(1, 2), d_logits)
        d_z2 = torch.rand(1, 1, sizes.conv2[0] * sizes.conv2[1] * BATCH)
        d_p1 = torch.zeros(p1.shape)
        groups: dict[str, Callable[[], object]] = {
            "conv1 forward: unfold the images": lambda: hand.image_columns(arch, sizes, x, ws),
            "conv1 forward: one matmul": lambda: hand.conv_forward(
                columns1, m.conv1_w, m.conv1_b, sizes.conv1, ws.conv1
            ),
            "pool1 then relu1, forward": lambda: hand.pool_forward(
                z1.clone(), arch.pool1, sizes.pool1, True, ws.pool1
            ),
            "conv2 forward: unfold, one matmul": lambda: hand.conv_forward(
                hand.unfold(p1, arch.conv2, sizes.conv2, ws.conv2),
                m.conv2_w, m.conv2_b, sizes.conv2, ws.conv2,
            ),
            "pool2 then relu2, forward": lambda: hand.pool_forward(
                z2.clone(), arch.pool2, sizes.pool2, True, ws.pool2
            ),
            "linear forward": lambda: torch.baddbmm(m.fc_b, m.fc_w, tape.features),
            "cross-entropy and its gradient": lambda: hand.cross_entropy(logits.clone(), y),
            "linear backward": lambda: (
                torch.bmm(d_logits, tape.features.transpose(1, 2), out=g.fc_w),
                torch.sum(d_logits, dim=2, keepdim=True, out=g.fc_b),
                torch.bmm(m.fc_w.transpose(1, 2), d_logits),
            ),
            "relu2, pool2 backward: mask, scatter-add": lambda: hand.pool_backward(
                d_features.clone().view(tape.pool2.pooled.shape), tape.pool2, arch.pool2,
                sizes.conv2, ws.pool2,
            ),
            "conv2 backward: weights, then fold (matmul, F.fold)": lambda: (
                hand.conv_input_backward(
                    hand.conv_weight_backward(d_z2, tape.columns2, (g.conv2_w, g.conv2_b)),
                    m.conv2_w, arch.conv2, sizes.pool1, sizes.conv2, ws.conv2,
                )
            ),
            "relu1, pool1 backward": lambda: hand.pool_backward(
                d_p1.clone(), pool1, arch.pool1, sizes.conv1, ws.pool1
            ),
            "conv1 backward: weights": lambda: hand.conv_weight_backward(
                z1, columns1, (g.conv1_w, g.conv1_b)
            ),
            "Adam update of the flat (1, P) buffer": step.update,
            "the whole step": lambda: step(x, y),
        }  # fmt: skip
        found: dict[str, list[float]] = {name: [] for name in groups}
        for _ in range(rounds * 5):
            for name, fn in groups.items():
                start = time.perf_counter()
                for _ in range(calls):
                    fn()
                found[name].append((time.perf_counter() - start) / calls * 1e6)
    medians = {name: statistics.median(v) for name, v in found.items()}
    whole = medians.pop("the whole step")
    print(f"\nthe hand-written step, us per call, medians of {rounds * 5} rounds of {calls}:")
    for name, us in medians.items():
        print(f"  {name:44s} {us:6.1f}")
    rest = whole - sum(medians.values())
    print(f"  {'the rest: Python, views, the tape':44s} {rest:6.1f}")
    print(f"  {'the whole step (one batch: images, labels)':44s} {whole:6.1f}")


# ---------------------------------------------------------------- one convolution, two ways
def compare_convolutions(rounds: int, calls: int = 400) -> None:
    """Grouped conv2d against unfold + one bmm per member, for R = 1 and 8 members.

    The notebook's second convolution widened to 2 -> 3 channels, 9x9 -> 8x8, batch 10, each in
    its own layout: conv2d on (B, R*C, H, W) with groups=R, the step's on (R, C, H, W, B).
    """
    import torch.nn.functional as F

    from linesweep.run.step import Window, Workspace, conv_forward, unfold
    from linesweep.run.trainer import cpu_settings

    window, buffers = Window((2, 2), (1, 1), (0, 0), (1, 1)), Workspace()
    print(f"\none convolution's forward, us, medians of {rounds * 5} rounds of {calls}:")
    with cpu_settings(1), torch.inference_mode():
        for r in (1, 8):
            x = torch.rand(BATCH, r * 2, 9, 9)  # (B, R*C, H, W)
            w, b = torch.rand(r * 3, 2, 2, 2), torch.rand(r * 3)  # (R*O, C, k, k), (R*O,)
            xs = torch.rand(r, 2, 9, 9, BATCH)  # (R, C, H, W, B)
            ws, bs = w.view(r, 3, 8), b.view(r, 3, 1)  # (R, O, C*k*k), (R, O, 1)
            ways = {
                "grouped conv2d": lambda x=x, w=w, b=b, r=r: F.conv2d(x, w, b, groups=r),
                "unfold + bmm": lambda xs=xs, ws=ws, bs=bs: conv_forward(
                    unfold(xs, window, (8, 8), buffers), ws, bs, (8, 8), buffers
                ),
            }
            found: dict[str, list[float]] = {name: [] for name in ways}
            for _ in range(rounds * 5):
                for name, fn in ways.items():
                    start = time.perf_counter()
                    for _ in range(calls):
                        fn()
                    found[name].append((time.perf_counter() - start) / calls * 1e6)
            line = "   ".join(f"{n} {statistics.median(v):5.1f}" for n, v in found.items())
            print(f"  R={r}:  {line}")


# ---------------------------------------------------------------- a run's learning curve
def curve_before(history: Sequence[EpochMetrics], caption: str, dpi: int) -> Figure:
    """The learning curve as drawn before: a new figure laid out by `tight_layout`, its caption
    above it, for savefig's tight bounding box (`save_figure`'s crop)."""
    from matplotlib.figure import Figure

    from linesweep.core.plotting import add_caption, log_scale_if_wide

    epochs = [row.epoch for row in history]
    fig = Figure(figsize=(6, 4))
    cost_ax = fig.add_subplot()
    cost_ax.plot(epochs, [row.train_cost for row in history], color="tab:red", marker="o")
    cost_ax.set_xlabel("epoch")
    cost_ax.xaxis.get_major_locator().set_params(integer=True)
    cost_ax.set_ylabel("training cost (sum of batch losses)", color="tab:red")
    log_scale_if_wide(cost_ax, "y", [row.train_cost for row in history])
    cost_ax.tick_params(axis="y", labelcolor="tab:red")
    acc_ax = cost_ax.twinx()
    acc_ax.plot(epochs, [row.val_accuracy for row in history], color="tab:blue", marker="s")
    acc_ax.set_ylabel("validation accuracy", color="tab:blue")
    acc_ax.tick_params(axis="y", labelcolor="tab:blue")
    acc_ax.set_ylim(-0.02, 1.02)
    cost_ax.set_title(f"learning curve (final validation accuracy {history[-1].val_accuracy:.3f})")
    fig.tight_layout()
    add_caption(fig, caption)
    return fig


def compare_curves(rounds: int, members: int = 16, dpi: int = 80) -> None:
    """One learning-curve PNG per member, four ways, alternating member by member."""
    from linesweep.core.files import save_figure
    from linesweep.core.metrics import EpochMetrics
    from linesweep.run import plots

    rng = np.random.default_rng(0)
    population = [
        (
            [
                EpochMetrics(e, 100 / e + rng.random(), 0.5 / e, 0.4, 0.5 + e / 30, 0.3, 0.3 * e)
                for e in range(1, 11)
            ],
            f"sweeps/lr/{k}: optimizer.lr={10 ** rng.uniform(-4, -1):.4g}",
        )
        for k in range(members)
    ]

    def prepared() -> plots.LearningCurve:
        curve = plots.LearningCurve()
        curve.prepare(dpi)
        return curve

    def new(h: Sequence[EpochMetrics], c: str) -> Figure:
        return plots.LearningCurve().draw(h, c, dpi)

    ways: dict[str, tuple[Callable[[], object], Callable[..., Figure], bool]] = {
        "before: new figure, tight layout, cropped": (
            lambda: None, lambda _, h, c: curve_before(h, c, dpi), True,
        ),
        "a new LearningCurve (not prepared)": (lambda: None, lambda _, h, c: new(h, c), False),
        "a single run: prepared while it trains": (
            prepared, lambda curve, h, c: curve.draw(h, c, dpi), False,
        ),
        "a population's members: redrawn": (
            lambda: None, lambda _, h, c: plots.learning_curve(h, c, dpi), False,
        ),
    }  # fmt: skip
    found: dict[str, list[float]] = {name: [] for name in ways}  # ways: untimed setup, draw, crop
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "learning_curve.png"
        plots.learning_curve(*population[0], dpi)  # the process's one curve, built
        for round_ in range(rounds):
            for history, caption in population:
                for name, (setup, draw, crop) in ways.items():
                    ready = setup()
                    start = time.perf_counter()
                    save_figure(draw(ready, history, caption), path, dpi, crop=crop)
                    found[name].append((time.perf_counter() - start) * 1e3)
            line = "  ".join(f"{statistics.median(v[-members:]):5.1f}" for v in found.values())
            print(f"round {round_ + 1}  ms/PNG  {line}", flush=True)
    medians = {name: statistics.median(v) for name, v in found.items()}
    first = next(iter(ways))
    before = medians.pop(first)
    print(f"\nlearning curve at dpi {dpi}, ms per PNG, medians of {rounds} rounds of {members}:")
    print(f"  {first:42s} {before:6.1f}")
    for name, ms in medians.items():
        print(f"  {name:42s} {ms:6.1f}   {before / ms:4.2f}x cheaper")


# ---------------------------------------------------------------- whole runs in-process
def linesweep_trainer_run() -> dict:
    from linesweep.run.config import AdamConfig, DataConfig, ModelConfig, TrainerConfig
    from linesweep.run.data import make_splits
    from linesweep.run.model import build_model
    from linesweep.run.seeds import derive_seeds
    from linesweep.run.shapes import plan_cnn
    from linesweep.run.trainer import cpu_settings, fit, resolve_threads

    start = time.perf_counter()
    seeds = derive_seeds(4)
    # experiment=notebook: the notebook's settings, training images in class order as it had them
    trainer = TrainerConfig(epochs=EPOCHS, batch_size=BATCH, shuffle=False, progress_bar=False)
    with cpu_settings(resolve_threads(None)):
        train, val = make_splits(
            DataConfig(N_images=N_TRAIN, N_val_images=N_VAL), seeds.train_data, seeds.val_data
        )
        plan = plan_cnn(ModelConfig(), 11)
        model = build_model(ModelConfig(), plan, seeds.model_init)
        opt = AdamConfig()

        def adam(params):
            return torch.optim.Adam(params, lr=opt.lr, fused=opt.fused)

        outcome = fit(model, adam, train, val, trainer, seeds.shuffle)
    steps = EPOCHS * (N_TRAIN // BATCH)
    return {
        "seconds": time.perf_counter() - start,
        "steps": steps,
        "val_accuracy": outcome.history[-1].val_accuracy,
    }


def linesweep_full_run() -> dict:
    from hydra import compose, initialize_config_dir

    from linesweep.run.config import register_configs
    from linesweep.run.task import run

    register_configs()
    conf = Path(__file__).resolve().parents[1] / "conf"
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        overrides = ["experiment=notebook", "plots=none", "trainer.progress_bar=false"]
        cfg = compose("train", overrides=overrides)
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        result = run(cfg, Path(folder))
        seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "steps": EPOCHS * (N_TRAIN // BATCH),
        "val_accuracy": result.objective[0],
    }


# ---------------------------------------------------------------- ablation: one change at a time
ABLATION = (  # each row adds one of linesweep's changes to the rows above it
    ("notebook loop (DataLoader, 2 threads, oneDNN, Adam's default)", None),
    ("+ batches sliced from tensors", "slices"),
    ("+ one thread", "one_thread"),
    ("+ native convolution (oneDNN off)", "native"),
    ("+ fused Adam", "fused"),
    ("+ one flat parameter tensor", "flat"),
    ("+ layers' forward called directly", "direct"),
)


def ablation_step_us(epochs: int = 3, **change: bool) -> float:
    """Microseconds per training step of the notebook's model with some of linesweep's changes."""
    from linesweep.run.config import ModelConfig
    from linesweep.run.model import build_model
    from linesweep.run.shapes import plan_cnn
    from linesweep.run.trainer import flatten_parameters

    threads, mkldnn = torch.get_num_threads(), torch.backends.mkldnn.enabled
    if change.get("one_thread"):
        torch.set_num_threads(1)
    torch.backends.mkldnn.enabled = not change.get("native")
    try:
        data = NotebookData(N_images=N_TRAIN, train=True)
        model = build_model(ModelConfig(), plan_cnn(ModelConfig(), 11), seed=4)
        if not change.get("direct"):
            model.__class__ = nn.Sequential  # the usual module calls, hooks bookkeeping included
        params = [flatten_parameters(model)] if change.get("flat") else list(model.parameters())
        optimizer = torch.optim.Adam(params, lr=0.001, fused=True if change.get("fused") else None)
        criterion = nn.CrossEntropyLoss()
        if change.get("slices"):
            batches = list(zip(data.x.split(BATCH), data.y.split(BATCH), strict=True))
        else:
            batches = DataLoader(data, batch_size=BATCH)
        start, steps = time.perf_counter(), 0
        for _ in range(epochs):
            for x, y in batches:
                if change.get("flat"):
                    params[0].grad.zero_()
                else:
                    optimizer.zero_grad()
                loss = criterion(model(x), y)
                loss.backward()
                optimizer.step()
                steps += 1
        return (time.perf_counter() - start) / steps * 1e6
    finally:
        torch.set_num_threads(threads)
        torch.backends.mkldnn.enabled = mkldnn


def ablation(rounds: int) -> None:
    print(f"ablation: microseconds per step, medians of {rounds} rounds of 3 epochs")
    results: dict[str, list[float]] = {name: [] for name, _ in ABLATION}
    for _ in range(rounds):
        changes: dict[str, bool] = {}
        for name, change in ABLATION:
            if change:
                changes[change] = True
            results[name].append(ablation_step_us(**changes))
    previous = None
    for name, _ in ABLATION:
        us = statistics.median(results[name])
        delta = "" if previous is None else f"  ({us - previous:+5.0f})"
        print(f"  {name:66s} {us:6.0f}{delta}")
        previous = us


def compare_runs(rounds: int) -> None:
    # Warm-up: torch imports its compiler stack the first time any optimizer is built (~1 s).
    torch.optim.Adam(nn.Linear(1, 1).parameters())
    variants = {
        "notebook": notebook_run,
        "linesweep": linesweep_trainer_run,
        "linesweep run": linesweep_full_run,
    }
    results: dict[str, list[dict]] = {name: [] for name in variants}
    for round_ in range(rounds):
        for name, fn in variants.items():  # interleaved, so load spikes hit every variant
            threads = torch.get_num_threads()
            results[name].append(fn())
            torch.set_num_threads(threads)
            r = results[name][-1]
            seconds, accuracy = r["seconds"], r["val_accuracy"]
            print(
                f"round {round_ + 1} {name:14s} {seconds:6.2f} s  val_acc {accuracy:.4f}",
                flush=True,
            )
    print(f"\nmedians of {rounds} rounds (torch {torch.__version__})")
    base = statistics.median(r["seconds"] for r in results["notebook"])
    for name, found in results.items():
        seconds = statistics.median(r["seconds"] for r in found)
        us_per_step = seconds / found[0]["steps"] * 1e6
        accs = sorted({round(r["val_accuracy"], 4) for r in found})
        print(
            f"{name:14s} {seconds:6.2f} s/run  {us_per_step:6.0f} us/step  "
            f"x{base / seconds:4.2f} vs notebook  final val_acc {accs}"
        )


PARTS = {
    "steps": compare_steps,
    "commands": compare_commands,
    "profile": step_profile,
    "conv": compare_convolutions,
    "curves": compare_curves,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each (default 3)")
    parser.add_argument("--part", choices=[*PARTS, "runs"], help="one part only")
    parser.add_argument("--ablation", action="store_true", help="one change at a time, µs/step")
    parser.add_argument("--notebook", action="store_true", help="run the notebook's loop, once")
    args = parser.parse_args()
    logging.disable(logging.INFO)
    if args.notebook:
        notebook_run()
    elif args.ablation:
        ablation(args.rounds)
    elif args.part == "runs":
        compare_runs(args.rounds)
    else:
        for name, part in PARTS.items():
            if args.part in (None, name):
                print(f"---- {name}", flush=True)
                part(args.rounds)


if __name__ == "__main__":
    main()
