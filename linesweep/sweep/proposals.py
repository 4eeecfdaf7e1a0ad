"""Where a trial's parameters come from: a seed per trial, and no point of a finite space twice.

Seeds. A sampler built once with `seed: 0` draws the same stream in every process that builds it:
three workers on one study propose the same parameters, and a resumed study replays its first
trials. So each trial is proposed by a sampler seeded from (the configured seed, the trial's
number): trial numbers are unique within a study whoever asks and whenever, so no two trials
share a stream, and a fresh single-process sweep with the same seed proposes the same trials
again. Two samplers keep their one instance, and their one seed in every process: the grid
sampler (its seed orders the grid, and trial n takes the grid's n-th point) and QMC (its sequence
is counted in the study; a seed per trial would break its low discrepancy). Without a seed,
every other sampler draws fresh entropy in every process anyway.

Finite spaces. A sampler may still propose a point of a finite space (all choices, ranges and
integers) that a finished or running trial already has: TPE does on small spaces. So in a finite
space the proposal is drawn without creating a trial: the sampler asks a scratch in-memory study
holding copies of the real trials (and the study's system attributes, where QMC counts its
sequence). A new point is enqueued in the real study and asked at once; a repeat is replaced by
an unvisited point, drawn with the same per-trial seed, until every point has been visited, and
the trial that runs it says so (`linesweep.replaced_repeat_of`: the trial whose point the sampler
proposed again). The real study never holds a trial that did not run: optuna-dashboard and
`optuna trials` show what ran. (The grid sampler never repeats a point before the grid is
exhausted, and cannot take queued points of its own choosing: it is left alone.)
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import logging
import math
import random
from collections.abc import Callable, Hashable, Iterable, Iterator
from typing import Any

import optuna
from optuna.samplers import BaseSampler, GridSampler, QMCSampler
from optuna.storages import InMemoryStorage
from optuna.trial import FrozenTrial, TrialState

from linesweep.sweep.coordination import REPLACED, ask, slot_holders
from linesweep.sweep.space import SearchSpace

log = logging.getLogger("linesweep.sweep.sweeper")  # the sweep's own lines

ENUMERATE_UP_TO = 100_000  # points; larger finite spaces are searched by random draws


def trial_seed(seed: int, number: int) -> int:
    """The seed of trial `number`'s sampler: distinct per trial, the same in every process."""
    digest = hashlib.sha256(f"linesweep:{seed}:{number}".encode()).digest()
    return int.from_bytes(digest[:4], "big")  # numpy accepts seeds below 2**32


class Proposals:
    """Per-trial samplers and the duplicate check of one sweep."""

    def __init__(
        self,
        space: SearchSpace,
        seed: int | None,
        make_sampler: Callable[[int | None], BaseSampler],
        sampler: BaseSampler,
        whole_space: bool = True,
    ) -> None:
        """`whole_space`: False when a custom search space suggests more parameters than
        `space` holds: a point is then more than the space knows, and repeats are not judged."""
        self.space, self.seed = space, seed
        self._make_sampler, self._sampler = make_sampler, sampler
        self._one_stream = isinstance(sampler, (GridSampler, QMCSampler))
        finite = whole_space and space.distributions and not isinstance(sampler, GridSampler)
        self._values = space.finite_values() if finite else None
        self._names = sorted(space.distributions)

    @property
    def judges_repeats(self) -> bool:
        """Whether proposals are drawn on a scratch study and repeats replaced (a finite space)."""
        return self._values is not None

    def propose(
        self, study: optuna.Study, sampler: BaseSampler
    ) -> tuple[dict[str, Any], int | None]:
        """The point the next trial runs, and the trial it would have repeated (or None).

        `sampler` proposes on a scratch in-memory study holding copies of the real study's
        trials, so no trial is created for a proposal that is not run. Call it under the slot
        lock, with no trial waiting in the queue.
        """
        trials = [t for t in study.get_trials(deepcopy=False) if t.state != TrialState.WAITING]
        storage = InMemoryStorage()
        with _quiet("optuna.storages._in_memory"):  # its "new study created" line, per proposal
            scratch_id = storage.create_new_study(study.directions, "linesweep-scratch")
        for key, value in study._storage.get_study_system_attrs(study._study_id).items():
            storage.set_study_system_attr(scratch_id, key, value)
        scratch = optuna.Study("linesweep-scratch", storage, sampler=sampler)
        scratch.add_trials(trials)
        proposal = scratch.ask(fixed_distributions=self.space.distributions)
        number = proposal.number
        twin = self.repeated(study, proposal)
        point = None if twin is None else self.unvisited(study, number)
        if point is None:
            return dict(proposal.params), None
        return point, twin

    def ask(self, study: optuna.Study, queued: bool) -> optuna.Trial:
        """A new trial (call under the slot lock), from its own seed, at a point not yet taken.

        A queued trial (an interrupted one's re-run) keeps its parameters. In a finite space the
        proposal is drawn on a scratch copy of the study and a repeat of a trial's point is
        replaced by an unvisited one before any trial exists: the study holds only trials that
        run, and the replacement names the trial it would have repeated.
        """
        number = len(study.get_trials(deepcopy=False))  # the number a new trial gets
        study.sampler = self.sampler_for(number)
        if queued or not self.judges_repeats:
            return ask(study, self.space.distributions)
        point, twin = self.propose(study, study.sampler)
        study.enqueue_trial(point, user_attrs={} if twin is None else {REPLACED: twin})
        trial = ask(study, self.space.distributions)  # the point just queued
        if twin is not None:
            log.info(
                "trial %d: the sampler proposed the parameters of trial %d again; it runs a point "
                "no trial has taken",
                trial.number, twin,
            )  # fmt: skip
        return trial

    def sampler_for(self, number: int) -> BaseSampler:
        """The sampler that proposes trial `number`."""
        if self.seed is None or self._one_stream:
            return self._sampler
        return self._make_sampler(trial_seed(self.seed, number))

    def _key(self, params: dict[str, Any]) -> tuple[Hashable, ...] | None:
        if any(name not in params for name in self._names):
            return None
        return _point_key(tuple(params[name] for name in self._names))

    def _taken(self, trials: Iterable[FrozenTrial], besides: int) -> dict[tuple, int]:
        """Points of the trials that ran, run, or will run, by point: their trial number."""
        taken: dict[tuple, int] = {}
        for trial in slot_holders(list(trials)):
            if trial.number == besides:
                continue
            key = self._key(trial.params)
            if key is not None:
                taken.setdefault(key, trial.number)
        return taken

    def repeated(self, study: optuna.Study, trial: optuna.Trial | FrozenTrial) -> int | None:
        """The trial whose point `trial` repeats, if the space is finite and has points left."""
        if self._values is None:
            return None
        taken = self._taken(study.get_trials(deepcopy=False), besides=trial.number)
        key = self._key(trial.params)
        if key is None or key not in taken or len(taken) >= self.size:
            return None
        return taken[key]

    @property
    def size(self) -> int:
        assert self._values is not None
        return math.prod(len(v) for v in self._values.values())

    def unvisited(self, study: optuna.Study, number: int) -> dict[str, Any] | None:
        """A point no trial has taken, drawn with trial `number`'s seed; None if none is left."""
        assert self._values is not None
        taken = self._taken(study.get_trials(deepcopy=False), besides=-1)
        rng = random.Random(None if self.seed is None else trial_seed(self.seed, number))
        columns = [self._values[name] for name in self._names]
        if self.size <= ENUMERATE_UP_TO:
            free = [p for p in itertools.product(*columns) if _point_key(p) not in taken]
            return dict(zip(self._names, rng.choice(free), strict=True)) if free else None
        for _ in range(10_000):  # a large space with few trials: almost every draw is new
            point = tuple(rng.choice(column) for column in columns)
            if _point_key(point) not in taken:
                return dict(zip(self._names, point, strict=True))
        return None


@contextlib.contextmanager
def _quiet(name: str) -> Iterator[None]:
    """A logger's INFO lines left out for a moment."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def _point_key(values: tuple) -> tuple[Hashable, ...]:
    """Floats compared to 12 significant digits: a stepped range's points, however computed."""
    return tuple(float(f"{v:.12g}") if isinstance(v, float) else v for v in values)
