"""Trials that report no epoch for a while: named in the log, and ended after a timeout.

    python -m linesweep.train -m hparams_search=channels_lr hydra.sweeper.trial_timeout=300

A trial reports every epoch to its Optuna trial (its intermediate values, for the pruner). One
that reports nothing for a minute is said in one line, with how long it has been silent (a
population's trials in one line: they stall together); with `hydra.sweeper.trial_timeout`
(seconds without a report; off by default) it is ended once that long has passed and recorded
`timeout`, which counts in the failure budget, and the sweep goes on with its slot filled. A
study without reports (several objectives) counts the silence from the trial's start. Time
runs from when its process started, not from when it was asked (a trial may wait for a free
process).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

import optuna
from optuna.trial import TrialState

log = logging.getLogger(__name__)
WARN_AFTER_S = 60.0  # silence worth a line, and how often it is said again


def number_ranges(numbers: list[int]) -> str:
    """3, 4, 5, 9 -> '3-5, 9': many trials' numbers in one short line."""
    spans: list[list[int]] = []
    for n in sorted(numbers):
        if spans and n == spans[-1][-1] + 1:
            spans[-1].append(n)
        else:
            spans.append([n])
    return ", ".join(f"{s[0]}-{s[-1]}" if len(s) > 2 else ", ".join(map(str, s)) for s in spans)


class StallWatch:
    """Watches the executing trials' reports; says which are silent, returns which timed out."""

    def __init__(self, timeout_s: float | None) -> None:
        self.timeout_s = timeout_s
        self.warn_after_s = min(WARN_AFTER_S, timeout_s / 2) if timeout_s else WARN_AFTER_S
        self._heard: dict[int, tuple[int, float]] = {}  # number -> (reports seen, when)
        self._said: dict[int, float] = {}  # number -> when its silence was last said

    def check(self, study: optuna.Study, executing: Mapping[int, float]) -> dict[int, float]:
        """`executing`: trial number -> when (time.monotonic) its process started. Returns the
        trials silent for longer than the timeout, with how long, in seconds."""
        now = time.monotonic()
        reports = {
            t.number: len(t.intermediate_values)
            for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        }
        silent: dict[int, float] = {}
        for number, started in executing.items():
            count, heard = reports.get(number, 0), self._heard.get(number)
            if heard is None:  # first seen: a report already in is news from now
                heard = self._heard[number] = (count, now if count else started)
            elif count != heard[0]:
                heard = self._heard[number] = (count, now)
            silent[number] = now - heard[1]
        for gone in set(self._heard) - set(executing):
            self._heard.pop(gone)
            self._said.pop(gone, None)
        quiet = [n for n, s in silent.items() if s >= self.warn_after_s]
        due = [n for n in quiet if now - self._said.get(n, -float("inf")) >= self.warn_after_s]
        if due:
            longest = max(silent[n] for n in due)
            log.warning(
                "trial%s %s %s reported no epoch for %.0f s%s",
                "s" if len(due) > 1 else "", number_ranges(due),
                "have" if len(due) > 1 else "has", longest,
                f" (hydra.sweeper.trial_timeout={self.timeout_s:g} ends it)"
                if self.timeout_s else "",
            )  # fmt: skip
            self._said.update(dict.fromkeys(due, now))
        if not self.timeout_s:
            return {}
        return {n: s for n, s in silent.items() if s >= self.timeout_s}
