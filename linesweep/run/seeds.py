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


def derive_seeds(base: int) -> Seeds:
    """Independent seeds for each consumer: changing one split never changes another.

    numpy's SeedSequence spawns statistically independent children, so the validation images
    share nothing with the training images (the notebook drew both from one global state).
    """
    children = np.random.SeedSequence(base).spawn(4)
    train_data, val_data, model_init, shuffle = (int(c.generate_state(1)[0]) for c in children)
    return Seeds(base, train_data, val_data, model_init, shuffle)
