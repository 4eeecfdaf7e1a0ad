"""Every random draw in a run comes from one base seed, split into independent streams."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class Seeds:
    base: int
    train_data: int
    val_data: int
    model_init: int
    shuffle: int

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def derive_seeds(base: int, replicate: int = 0) -> Seeds:
    """Independent seeds for each consumer: changing one split never changes another.

    numpy's SeedSequence spawns statistically independent children, so the validation images
    share nothing with the training images (the notebook drew both from one global state).

    Replicate 0 is the plain run, seed for seed, so a population's first member can be checked
    against it. Replicate r > 0 shares the data seeds and draws its initial weights and
    shuffling from a fifth child, `replicate stream` r (spawn key (4, r)): independent of every
    other replicate's and of replicate 0's, and the same whatever the population's size.
    """
    children = np.random.SeedSequence(base).spawn(4)
    train_data, val_data, model_init, shuffle = (int(c.generate_state(1)[0]) for c in children)
    if replicate > 0:
        stream = np.random.SeedSequence(base, spawn_key=(4, replicate))
        model_init, shuffle = (int(c.generate_state(1)[0]) for c in stream.spawn(2))
    return Seeds(base, train_data, val_data, model_init, shuffle)
