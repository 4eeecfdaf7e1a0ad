"""Which hyperparameter matters, for each Optuna sweep compared: `linesweep.core.importance`
(Optuna's PED-ANOVA on the trials' replicated values, with its caveat of seed noise) on the
sweep's study. Computed once per comparison, for the importance plot (study_plots.py) and the
report's section (report.py), which show the same numbers and the same caveat.

Each study is opened once per comparison too (`sweep_study`, by studies.py's rules: the sweep
folder's own journal, or --storage) and kept on the `Comparison` for the plots that read it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from linesweep.compare.plot_style import one_line
from linesweep.compare.question import RESULTS, Question
from linesweep.compare.studies import open_study
from linesweep.compare.table import Comparison
from linesweep.core.importance import Importances, importances


def studied(comparison: Comparison) -> list[Question]:
    """The compared sweeps that are Optuna studies (linesweep's sweeper left their results)."""
    return [q for q in comparison.questions if (q.folder / RESULTS).is_file()]


def sweep_study(comparison: Comparison, sweep: Path) -> Any:
    """The sweep's study, opened once per comparison; the exception that opening raised, again."""
    if sweep not in comparison.studies:
        try:
            comparison.studies[sweep] = open_study(sweep, comparison.storage)
        except Exception as err:  # a missing, damaged or foreign journal: the caller says why
            comparison.studies[sweep] = err
    found = comparison.studies[sweep]
    if isinstance(found, Exception):
        raise found
    return found


def sweep_importances(comparison: Comparison) -> dict[Path, Importances | str]:
    """Each studied sweep's importances, or one line saying why it has none (computed once)."""
    if comparison.importances is None:
        found: dict[Path, Importances | str] = {}
        for question in studied(comparison):
            try:
                study = sweep_study(comparison, question.folder)
            except Exception as err:
                found[question.folder] = f"cannot open the study ({one_line(err)})"
                continue
            try:
                found[question.folder] = importances(study)
            except Exception as err:  # a study Optuna's evaluator refuses: said, not raised
                found[question.folder] = f"no importances ({one_line(err)})"
        comparison.importances = found
    return comparison.importances
