"""Seconds per run: the notebook's training loop against linesweep's, in one process.

    python benchmarks/bench_train.py            # 3 rounds of each, alternating; prints medians
    python benchmarks/bench_train.py --rounds 5
    python benchmarks/bench_train.py --ablation     # what each of linesweep's changes buys

(a) `notebook`: the notebook's code as written: a Python loop generating the images, a per-item
    Dataset and DataLoader (batch 10, validation batch 20), torch's default thread count, the
    default (oneDNN) convolution and Adam's default implementation.
(b) `linesweep`: the same experiment (`experiment=notebook`: the notebook's data, model, Adam
    lr 0.001, batch 10, 10 epochs, images in class order) through linesweep's data generator
    and trainer.
(c) `linesweep run`: (b) plus everything a run writes (summary, metrics, shapes, weights), plots
    off, through `linesweep.train.run`.
A "run" is data generation + training + per-epoch validation. The printed ratio is the median
seconds of (a) over the median seconds of (b); both must end at the same validation accuracy.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

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


# ---------------------------------------------------------------- (b) and (c) linesweep
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
    from linesweep.train import run

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="runs of each variant (default 3)")
    parser.add_argument("--ablation", action="store_true", help="one change at a time, µs/step")
    args = parser.parse_args()
    logging.disable(logging.INFO)
    if args.ablation:
        ablation(args.rounds)
        return

    # Warm-up: torch imports its compiler stack the first time any optimizer is built (~1 s).
    torch.optim.Adam(nn.Linear(1, 1).parameters())
    variants = {
        "notebook": notebook_run,
        "linesweep": linesweep_trainer_run,
        "linesweep run": linesweep_full_run,
    }
    results: dict[str, list[dict]] = {name: [] for name in variants}
    for round_ in range(args.rounds):
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

    threads = torch.get_num_threads()
    print(
        f"\nmedians of {args.rounds} rounds (torch {torch.__version__}, {threads} default threads)"
    )
    base = statistics.median(r["seconds"] for r in results["notebook"])
    for name, runs in results.items():
        seconds = statistics.median(r["seconds"] for r in runs)
        us_per_step = seconds / runs[0]["steps"] * 1e6
        accs = sorted({round(r["val_accuracy"], 4) for r in runs})
        print(
            f"{name:14s} {seconds:6.2f} s/run  {us_per_step:6.0f} us/step  "
            f"x{base / seconds:4.2f} vs notebook  final val_acc {accs}"
        )


if __name__ == "__main__":
    main()
