"""An Optuna journal file read record by record: what is whole, what is damaged, what is torn.

Optuna's `JournalFileBackend` appends one JSON object per line, `{"op_code": ...}`, and replays
them in order; trials are numbered by the order their CREATE_TRIAL records appear. Three kinds of
damage happen:

* a torn last record: a writer killed mid-append left a line without its newline (Optuna skips
  it, but the next append glues a record onto it);
* a glued line: that torn record with the next writer's whole record after it;
* garbage: a line that holds no record (appended by hand, a disk fault in the middle).

`scan` tells them apart and salvages every whole record, glued ones included, so that a repair
keeps every trial as it was. Only where a lost record created a trial (or a study) would the
records after it be applied to the wrong trial: `Scan.shifted` says so, and then nothing is
guessed. Used by the sweep (linesweep/sweep/journal.py: check, repair) and by compare (which
says that a journal it reads is damaged).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

CREATE_STUDY, DELETE_STUDY, CREATE_TRIAL = 0, 1, 4  # Optuna's JournalOperation codes
_START = b'{"op_code"'  # how Optuna writes every record (json.dumps, op_code first)
_decoder = json.JSONDecoder()


@dataclass
class Scan:
    """A journal's content, record by record."""

    records: list[bytes] = field(default_factory=list)  # every whole record, in order
    damaged: list[int] = field(default_factory=list)  # 1-based lines that are not one record
    torn: bytes = b""  # the last line, if it has no newline: a record cut mid-append
    lines: int = 0  # newline-terminated lines

    @property
    def clean(self) -> bool:
        return not self.damaged and not self.torn

    def shifted(self) -> str | None:
        """Why the whole records alone would misplace trials (a lost CREATE_TRIAL or
        CREATE_STUDY: a later record names an id nothing created), or None."""
        created = {"study_id": 0, "trial_id": 0}
        live: dict[str, int] = {}  # study names by id, as Optuna's replay keeps them
        for number, record in enumerate(self.records, start=1):
            log = json.loads(record)
            code = log.get("op_code")
            for key, count in created.items():
                value = log.get(key)
                if isinstance(value, int) and value >= count:
                    what = key.removesuffix("_id")
                    return f"whole record {number} names {what} {value}, which no record created"
            if code == CREATE_STUDY and log.get("study_name") not in live:
                live[log.get("study_name")] = created["study_id"]  # a name taken creates none
                created["study_id"] += 1
            elif code == DELETE_STUDY:
                live = {name: i for name, i in live.items() if i != log.get("study_id")}
            elif code == CREATE_TRIAL:
                created["trial_id"] += 1
        return None

    def trials(self) -> int:
        return sum(json.loads(r).get("op_code") == CREATE_TRIAL for r in self.records)


def is_record(line: bytes) -> bool:
    """One whole record: a JSON object with an op_code, in UTF-8 (as Optuna reads it)."""
    try:
        value = json.loads(line.decode("utf-8"))
    except ValueError:  # UnicodeDecodeError too
        return False
    return isinstance(value, dict) and isinstance(value.get("op_code"), int)


def salvage(line: bytes) -> list[bytes]:
    """The whole records inside a damaged line (a torn record with a whole one glued after it)."""
    text = line.decode("utf-8", "replace")
    found, start = [], text.find(_START.decode())
    while start != -1:
        try:
            value, end = _decoder.raw_decode(text, start)
        except ValueError:
            start = text.find(_START.decode(), start + 1)
            continue
        record = text[start:end].encode("utf-8")
        if isinstance(value, dict) and isinstance(value.get("op_code"), int) and record in line:
            found.append(record)  # the bytes as written (no invalid UTF-8 replaced inside)
            start = text.find(_START.decode(), end)
        else:
            start = text.find(_START.decode(), start + 1)
    return found


def scan(data: bytes) -> Scan:
    """Every whole record of a journal's bytes, and where it is damaged."""
    result = Scan()
    *lines, result.torn = data.split(b"\n")
    result.lines = len(lines)
    for number, line in enumerate(lines, start=1):
        if is_record(line):
            result.records.append(line)
            continue
        result.damaged.append(number)
        result.records.extend(salvage(line))
    return result
