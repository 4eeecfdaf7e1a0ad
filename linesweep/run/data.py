"""The toy data: images of one vertical (class 0) or horizontal (class 1) bar, made in one shot.

Compared with the notebook's generator, this one is vectorised (no Python loop per image), takes its
randomness from its own seeded generator (the global random state stays untouched), makes exactly
half of each class, and refuses an offset that would push a bar off the image instead of silently
cutting it short.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from linesweep.run.bars import centred_start
from linesweep.run.config import DataConfig

CLASS_NAMES = ("vertical", "horizontal")


@dataclass(frozen=True)
class Split:
    """Images (N, 1, S, S) float32 in {0, 1} and labels (N,) int64; class 0 first, then class 1."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)

    def to(self, device: torch.device) -> Split:
        return Split(self.images.to(device), self.labels.to(device))


def make_split(cfg: DataConfig, n_images: int, seed: int) -> Split:
    """Draw `n_images` images (half per class) from `seed`; same seed, same images."""
    rng = np.random.default_rng(seed)
    size, length, width = cfg.image_size, cfg.line_length, cfg.line_width
    labels = np.repeat(np.arange(2), n_images // 2)  # (N,)

    shift = rng.integers(-cfg.offset, cfg.offset + 1, size=(n_images, 2))  # (N, 2): along, across
    along = centred_start(size, length) + shift[:, :1] + np.arange(length)  # (N, L)
    across = centred_start(size, width) + shift[:, 1:] + np.arange(width)  # (N, W)
    bar = rng.random((n_images, length, width)) < cfg.p  # (N, L, W): pixel (i, j) of each bar

    vertical = (labels == 0)[:, None, None]  # (N, 1, 1)
    rows = np.where(vertical, along[:, :, None], across[:, None, :])  # (N, L, W)
    cols = np.where(vertical, across[:, None, :], along[:, :, None])  # (N, L, W)

    images = rng.random((n_images, size, size)) < cfg.noise_p  # (N, S, S) background
    images[np.arange(n_images)[:, None, None], rows, cols] = bar
    return Split(
        images=torch.from_numpy(images[:, None].astype(np.float32)),  # (N, 1, S, S)
        labels=torch.from_numpy(labels),
    )


def make_splits(cfg: DataConfig, train_seed: int, val_seed: int) -> tuple[Split, Split]:
    """Training and validation splits, drawn from independent seeds."""
    return make_split(cfg, cfg.N_images, train_seed), make_split(cfg, cfg.N_val_images, val_seed)
