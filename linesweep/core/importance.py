"""Which hyperparameter matters: Optuna's PED-ANOVA on a study's trials, with what seed noise
does to it said in numbers.

    importances(study).to_dict()   # {"importances": {"optimizer.lr": 0.81, ...}, "caveat": ...}

No hand-written importance: `optuna.importance.get_param_importances` with
`PedAnovaImportanceEvaluator`, which asks how differently each parameter is distributed among
the best trials (its top quantile) than among all, on the trials' values: a sweep with
replicates reports each configuration's replicate statistic (the mean, by default), so the
importances are of the replicated means. Pruned, failed and running trials never enter (PED-ANOVA
reads complete trials only). A study of several objectives is judged by its first.

PED-ANOVA's top quantile (10%) should hold at least 5 trials (Optuna's documentation): with
fewer than 50 complete trials the quantile grows to 5 trials' worth; below `MIN_TRIALS` there
is no importance, and the reason says why.

The caveat: a trial's value carries its seeds' noise. Where runs told their trials their
replicates (`linesweep.core.trial_link.TrialResult`), the caveat compares that noise (the
median replicate standard deviation, divided by sqrt(R) for a mean of R) with the spread of the
trials' values: when the two are close, the top quantile is partly chosen by luck, and so are
the importances.
"""

from __future__ import annotations

import math
import statistics
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any

import optuna
from optuna.importance import PedAnovaImportanceEvaluator, get_param_importances
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from linesweep.core.trial_link import TrialResult

MIN_TRIALS = 10  # below: no importance (5 top trials would be half the study or more)
TOP_TRIALS = 5  # PED-ANOVA's top quantile should hold at least this many
# Seed noise above this share of the trials' spread moves trials in and out of a top quantile
# of 5 often enough to reorder the importances (measured in tests/test_importance.py: at 40%
# of the spread, out_1 came before lr).
NOISY = 0.2
TARGET_QUANTILE = 0.1  # PED-ANOVA's default
# Optuna's own words when a `target` is given: expected, since the answer passes one for a
# study of several objectives (its first, signed so that lower is better).
TARGET_WARNING = r".*computes the importances of params to achieve low `target` values.*"


@dataclass(frozen=True)
class Importances:
    """Each parameter's importance (normalised to sum 1, highest first), or why there is none,
    and the caveat of seed noise; plain data for compare's report."""

    importances: dict[str, float] = field(default_factory=dict)  # empty: see `reason`
    evaluator: str = ""  # which evaluator, on which values
    trials: int = 0  # complete trials it read
    reason: str | None = None  # why there are no importances; None: there are
    caveat: str = ""
    noise: float | None = None  # seed noise in a trial's value (see the module); None: unknown
    spread: float | None = None  # the standard deviation of the trials' values

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def importances(study: optuna.Study) -> Importances:
    """PED-ANOVA's importances of the study's parameters on its trials' (replicated) values."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    complete = [t for t in complete if t.values and math.isfinite(t.values[0])]
    values = [t.values[0] for t in complete]
    spread = statistics.stdev(values) if len(values) >= 2 else None
    noise, replicates = _seed_noise(complete)
    caveat = _caveat(noise, replicates, spread)
    varied = sorted({name for t in complete for name in t.params})
    if len(complete) < MIN_TRIALS:
        reason = (
            f"{len(complete)} complete trial(s): PED-ANOVA compares the best {TOP_TRIALS} with "
            f"all, so it needs at least {MIN_TRIALS}"
        )
        return Importances({}, "", len(complete), reason, caveat, noise, spread)
    if not varied:
        return Importances({}, "", len(complete), "the trials vary no parameter", caveat)
    quantile = max(TARGET_QUANTILE, TOP_TRIALS / len(complete))
    evaluator = PedAnovaImportanceEvaluator(target_quantile=quantile)
    target = None
    on = "the trials' values"
    if len(study.directions) > 1:
        sign = 1.0 if study.directions[0] == StudyDirection.MINIMIZE else -1.0
        target, on = (lambda t: sign * t.values[0]), "the trials' first objective"
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=TARGET_WARNING)
        found = get_param_importances(study, evaluator=evaluator, target=target)
    described = (
        f"PED-ANOVA (Optuna's PedAnovaImportanceEvaluator, top {quantile:.0%} of "
        f"{len(complete)} complete trials against all) on {on}"
    )
    ranked = dict(sorted(found.items(), key=lambda kv: -kv[1]))
    return Importances(
        {k: float(v) for k, v in ranked.items()},
        described,
        len(complete),
        None,
        caveat,
        noise,
        spread,
    )


def _seed_noise(trials: list[FrozenTrial]) -> tuple[float | None, int | None]:
    """The median, over trials with 2 or more finite replicate values, of a trial value's seed
    noise: the replicates' standard deviation over sqrt(R) (the value is their mean); and the
    median R. None where no trial told its replicates."""
    noise, counts = [], []
    for t in trials:
        result = TrialResult.from_attrs(t.user_attrs)
        if result is None:
            continue
        finite = [v for v in result.values if v is not None and math.isfinite(v)]
        if len(finite) >= 2:
            noise.append(statistics.stdev(finite) / math.sqrt(len(finite)))
            counts.append(len(finite))
    if not noise:
        return None, None
    return statistics.median(noise), int(statistics.median(counts))


def _caveat(noise: float | None, replicates: int | None, spread: float | None) -> str:
    head = (
        "importances rank parameters by how differently they are spread among the best trials "
        "than among all; a trial's value carries its seeds' noise"
    )
    if noise is None or replicates is None:
        return (
            f"{head}, unknown here (no trial has 2 or more replicates): a parameter may look "
            "important from seed noise alone; run replicates=3 or more to know"
        )
    ratio = noise / spread if spread else math.inf
    line = (
        f"{head}: about {noise:.2g} in a mean of {replicates} replicates, against a spread of "
        f"{spread:.2g} between trials"
        if spread is not None
        else f"{head}: about {noise:.2g} in a mean of {replicates} replicates"
    )
    if ratio >= NOISY:
        return line + (
            f" ({ratio:.0%} of it): the best trials are partly chosen by luck, and so are these"
        )
    return line + (
        f" ({ratio:.0%} of it): small beside it, so the ranking reflects the parameters more "
        "than the seeds"
    )
