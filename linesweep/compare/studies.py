"""Which Optuna study storage compare opens for a sweep: one the user chose, never one a file names.

A sweep's optimization_results.yaml names its storage, but the file may come from anyone: a URL
in it could make compare create a database anywhere (`sqlite:////some/path`) or connect to any
server (`postgresql://...`). So compare opens only

- the journal file inside the compared sweep folder (`optuna_journal.log`, where a sweep keeps
  its study by default), read-only: a regular file below the sweep folder, no link, at most
  JOURNAL_CAP, nothing written next to it (no lock file);
- or the storage the user passed on the command line (`--storage URL`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from linesweep.compare.runs import load_yaml
from linesweep.core.errors import ConfigError
from linesweep.core.journal_records import scan
from linesweep.core.safe_read import MiB, Unreadable, check_regular, read_bytes
from linesweep.core.storage import JOURNAL_NAME, is_database_url, open_storage, shown_url

RESULTS = "optimization_results.yaml"
JOURNAL_CAP = 256 * MiB  # ~100,000 trials
_ASK = "pass --storage URL to read its study from a database"


class StudyUnavailable(Exception):
    """The study of a sweep cannot be opened under these rules; the message says why."""


def study_name(sweep: Path) -> str:
    """The study's name, from the sweep's optimization_results.yaml (read within bounds)."""
    try:
        results = load_yaml(sweep / RESULTS, root=sweep)
    except (OSError, Unreadable) as err:
        raise StudyUnavailable(f"{RESULTS} is unreadable ({err})") from None
    name = results.get("study_name") if isinstance(results, dict) else None
    if not isinstance(name, str):
        raise StudyUnavailable(f"{RESULTS} names no study")
    return name


def open_study(sweep: Path, storage: str | None = None) -> Any:
    """The sweep's study, from its own journal file or from `storage` (the user's --storage)."""
    import optuna

    name = study_name(sweep)
    backend = _user_storage(storage) if storage is not None else _sweep_journal(sweep)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.load_study(study_name=name, storage=backend)


def _read_only_journal(path: Path) -> Any:
    """A journal storage that only reads `path`: it exists, so Optuna creates nothing."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    return JournalStorage(JournalFileBackend(str(path)))


def _sweep_journal(sweep: Path) -> Any:
    journal = sweep / JOURNAL_NAME
    try:
        check_regular(journal, sweep, JOURNAL_CAP)
        data = read_bytes(journal, sweep, JOURNAL_CAP)
        damage = journal_damage(data, appending=_appending(journal, len(data)))
    except FileNotFoundError:
        raise StudyUnavailable(f"no {JOURNAL_NAME} in the sweep folder; {_ASK}") from None
    except (OSError, Unreadable) as err:
        raise StudyUnavailable(f"{JOURNAL_NAME} {err}; {_ASK}") from None
    if damage:
        raise StudyUnavailable(  # short: the warning line names the folder, and is cut at 160
            f"{JOURNAL_NAME} is damaged ({damage}); in that folder: python -m "
            f"linesweep.sweep.journal --repair {JOURNAL_NAME}"
        )
    return _read_only_journal(journal)


def journal_damage(data: bytes, appending: bool = False) -> str | None:
    """What is wrong with a journal's records, or None. A last record without its newline is
    cut, unless a sweep is `appending` it now (Optuna reads the journal without it)."""
    found = scan(data)
    if found.damaged:
        more = f" and {len(found.damaged) - 1} more" if len(found.damaged) > 1 else ""
        return f"line {found.damaged[0]}{more} of {found.lines}: not a whole record"
    if found.torn and not appending:
        return "its last record is cut"
    return None


def _appending(journal: Path, size_read: int) -> bool:
    """Whether a writer holds the journal's lock, or has appended since it was read."""
    lock = journal.with_name(journal.name + ".lock")
    try:
        return lock.is_symlink() or journal.stat().st_size != size_read
    except OSError:
        return False


def _user_storage(url: str) -> Any:
    """The storage the user named: opened as asked, but never created where nothing is."""
    path = Path(url).expanduser() if not is_database_url(url) else None
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
    if path is not None and not path.is_file():
        raise StudyUnavailable(f"--storage {shown_url(url)}: no such file")
    if not is_database_url(url):
        return _read_only_journal(path)
    try:
        return open_storage(url)
    except ConfigError as err:
        raise StudyUnavailable(f"--storage {err.value}: {err.fix}") from None
