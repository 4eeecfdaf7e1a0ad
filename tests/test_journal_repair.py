"""A damaged journal loses nothing it need not: a refused resume changes nothing, the repair the
error names keeps every whole record (a complete trial stays complete), and compare says so."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from linesweep.compare.cli import main as compare_main
from linesweep.compare.studies import StudyUnavailable, open_study
from linesweep.core.journal_records import scan
from linesweep.core.storage import JOURNAL_NAME
from linesweep.sweep.journal import main as journal_main
from tests.conftest import load_study
from tests.test_faults import FAST, assert_consistent, sweep_arguments
from tests.test_own_files import snapshot

TORN = b'{"op_code":5,"worker_id":"dead-writer","trial_id":0,"par'  # a writer killed mid-append


def records(journal: Path) -> list[bytes]:
    return journal.read_bytes().split(b"\n")[:-1]


def damage(journal: Path, kind: str) -> None:
    """Break the journal as each fault does, around the record that completes trial 1."""
    lines = records(journal)
    done = next(
        i for i, line in enumerate(lines)
        if json.loads(line).get("op_code") == 6 and json.loads(line).get("state") == 1
        and json.loads(line).get("trial_id") == 1
    )  # fmt: skip
    if kind == "glued":  # a torn record, then the next writer's whole record on the same line
        lines[done] = TORN + lines[done]
    elif kind == "garbage-inside":
        lines.insert(done, b"\x00\x00\x00 not a record \xff")
    elif kind == "garbage-appended":
        lines.append(b"garbage appended by hand")
    journal.write_bytes(b"\n".join(lines) + b"\n")


def trials_of(folder: Path) -> list[tuple]:
    return [(t.number, t.state, t.params, t.values) for t in load_study(folder).trials]


# ------------------------------------------------------------------ the records, unit by unit


def test_scan_keeps_every_whole_record_and_salvages_a_glued_one():
    a, b, c = (json.dumps({"op_code": 8, "trial_id": 0, "n": i}).encode() for i in range(3))
    found = scan(a + b"\n" + TORN + b + b"\n" + b"junk\n" + c + b"\n" + TORN)
    assert found.records == [a, b, c]
    assert found.damaged == [2, 3] and found.torn == TORN and found.lines == 4
    assert scan(a + b"\n").clean


def test_scan_says_when_a_lost_record_created_a_trial():
    create = json.dumps({"op_code": 4, "study_id": 0}).encode()
    study = json.dumps({"op_code": 0, "study_name": "s"}).encode()
    on_trial_1 = json.dumps({"op_code": 8, "trial_id": 1, "user_attr": {}}).encode()
    whole = scan(study + b"\n" + create + b"\n" + create + b"\n" + on_trial_1 + b"\n")
    assert whole.shifted() is None
    lost = scan(study + b"\n" + create + b"\n" + create[:-3] + b"\n" + on_trial_1 + b"\n")
    assert lost.shifted() == "whole record 3 names trial 1, which no record created"


def test_the_repair_command_refuses_what_would_misplace_trials(tmp_path, capsys):
    journal = tmp_path / JOURNAL_NAME
    create = json.dumps({"op_code": 4, "study_id": 0}).encode()
    study = json.dumps({"op_code": 0, "study_name": "s"}).encode()
    on_trial_1 = json.dumps({"op_code": 8, "trial_id": 1}).encode()
    journal.write_bytes(study + b"\n" + create + b"\n" + create[:-4] + b"\n" + on_trial_1 + b"\n")
    before = journal.read_bytes()
    assert journal_main([str(journal), "--repair"]) == 2
    error = capsys.readouterr().err
    assert "repairing would misplace trials" in error and "--keep 2" in error
    assert journal.read_bytes() == before


# ------------------------------------------------------------------ end to end


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["glued", "garbage-inside", "garbage-appended"])
def test_a_damaged_journal_refuses_the_resume_untouched_and_its_repair_keeps_every_trial(
    tmp_path, prepared_sweep, train_in_process, kind
):
    folder = tmp_path / "sweep"
    space = "model.out_1=int(interval(1,4))"
    prepared_sweep(folder, *FAST, space, "hydra.sweeper.n_trials=3")  # run(folder, ...), once
    before = trials_of(folder)
    journal = folder / JOURNAL_NAME
    damage(journal, kind)
    broken = snapshot(folder)

    arguments = sweep_arguments(folder, *FAST, space, "hydra.sweeper.n_trials=4")
    refused = train_in_process(*arguments, cwd=tmp_path)  # refused before any trial: in-process
    output = refused.stdout + refused.stderr
    assert refused.returncode == 2 and "Traceback" not in output
    assert snapshot(folder) == broken  # nothing changed: no backup, no record, no folder
    command = f"python -m linesweep.sweep.journal {journal} --repair"
    assert f"every whole record ({len(scan(journal.read_bytes()).records)}, 3 trials) is kept " \
        f"by: {command}" in output  # fmt: skip

    repaired = subprocess.run(
        [sys.executable, *command.split()[1:]], capture_output=True, text=True
    )
    assert repaired.returncode == 0, repaired.stderr
    assert "the original is kept as" in repaired.stdout
    assert trials_of(folder) == before  # every trial as it was: trial 1 complete, not running
    # The resume in this process too (the repair is the command a user types, a process).
    done = train_in_process(*arguments, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert_consistent(folder, 4)
    assert trials_of(folder)[:3] == before


@pytest.mark.slow
def test_compare_says_a_study_journal_is_damaged_in_one_line(tmp_path, prepared_sweep, capfd):
    folder = tmp_path / "sweep"
    prepared_sweep(folder, *FAST, "model.out_1=int(interval(1,4))", "hydra.sweeper.n_trials=3")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    assert len(open_study(folder).trials) == 3
    for kind in ("garbage-inside", "cut"):
        journal = folder / JOURNAL_NAME
        whole = journal.read_bytes()
        if kind == "cut":
            journal.write_bytes(whole + TORN)
        else:
            damage(journal, kind)
        with pytest.raises(StudyUnavailable, match=r"optuna_journal.log is damaged \("):
            open_study(folder)
        capfd.readouterr()
        assert compare_main([str(folder), "--out", str(tmp_path / kind)]) == 0
        lines = [line for line in capfd.readouterr().err.splitlines() if "is damaged" in line]
        assert len(lines) == 1
        assert lines[0].endswith("python -m linesweep.sweep.journal --repair optuna_journal.log)")
        journal.write_bytes(whole)
