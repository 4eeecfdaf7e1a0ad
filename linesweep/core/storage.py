"""Optuna storages: where a study lives, how to open it, and how to show its URL safely.

A plain path is an Optuna journal file (the default, next to the sweep's folders: no server, safe
for several processes on one machine); `sqlite:///...`, `postgresql://...` and `mysql://...` are
relational databases for sweeps that span machines.

A URL may hold a password. It never reaches a file, a log line or an error: URLs are shown
through `shown_url`; error texts pass through `mask_secrets`; `redact_logs` masks it in every log
record of the process; and a trial learns the URL without its password (which Hydra saves in the
trial's `.hydra/` files), taking the password from the `LINESWEEP_STORAGE_PASSWORD` variable
that the sweep process sets in its own environment, which every trial process inherits.
"""

from __future__ import annotations

import importlib.util
import inspect
import logging
import math
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from linesweep.core.errors import ConfigError

if TYPE_CHECKING:
    from optuna.storages import BaseStorage

JOURNAL_NAME = "optuna_journal.log"  # optuna-dashboard and `optuna` open it as a journal file
PASSWORD_VAR = "LINESWEEP_STORAGE_PASSWORD"


def is_database_url(url: str) -> bool:
    return "://" in url


def shown_url(url: str) -> str:
    """The storage URL with its password masked, for logs and result files."""
    if not is_database_url(url):
        return url
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy reads: show it as given
        return url


def resolve_storage_url(storage: str | None, sweep_dir: Path) -> str:
    """The configured URL, or the default journal file in the sweep folder (absolute).

    The journal's own name is not resolved: a link planted there is refused (`check_journal_path`),
    never followed to wherever it points.
    """
    if storage is None:
        return str(sweep_dir.resolve() / JOURNAL_NAME)
    if is_database_url(storage):
        return storage
    path = Path(storage).expanduser()
    return str(path.parent.resolve() / path.name)


def check_journal_path(path: Path) -> None:
    """Refuse a journal, or a lock beside it, that is not what a sweep makes there: a journal
    and its slot lock are files (a link is never followed, a FIFO never waited on); the
    journal's writer lock is a symbolic link (or Optuna's open lock, a file), made and removed,
    never followed."""
    from linesweep.core.files import what_is

    expected = {path: "a file", Path(f"{path}.slots.lock"): "a file"}
    lock = Path(f"{path}.lock")
    for entry, kind in expected.items():
        found = what_is(entry)
        if found not in (None, kind):
            raise ConfigError(
                "hydra.sweeper.storage", str(path), f"a journal whose {entry.name} is {kind} "
                f"of the study's own, and {entry} is {found}",
                f"remove {entry} (if it is a link: give the file it points to as the storage)",
            )  # fmt: skip
    found = what_is(lock)  # a link (linesweep's, Optuna's) or a file (Optuna's open lock)
    if found is not None and not found.startswith("a symbolic link") and found != "a file":
        raise ConfigError(
            "hydra.sweeper.storage", str(path), f"a journal whose lock {lock.name} is a "
            f"lock Optuna or linesweep makes, and {lock} is {found}", f"remove {lock}",
        )  # fmt: skip


def database_url(url: str) -> str:
    """`postgresql://` means psycopg2 to SQLAlchemy; use psycopg 3 when only that is installed."""
    if (
        url.startswith("postgresql://")
        and importlib.util.find_spec("psycopg2") is None
        and importlib.util.find_spec("psycopg") is not None
    ):
        return "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def open_storage(
    url: str,
    lock_grace_s: int = 30,
    attempts: int = 5,
    heartbeat: tuple[float, float, Callable[..., None]] | None = None,
) -> BaseStorage:
    """Open (creating if needed) the storage at `url`; ConfigError if it cannot be opened.

    A journal file is locked with `OwnedSymlinkLock`: a lock its dead writer left is broken at
    once; one of another host or of another program, after `lock_grace_s` seconds.

    `heartbeat` (interval in seconds, grace period in seconds, stale-trial callback) turns on
    Optuna's own heartbeat on a database: a RUNNING trial whose heartbeat is older than the grace
    period is failed by `optuna.storages.fail_stale_trials`, which then calls the callback.
    Journal files have no heartbeat in Optuna; the sweep keeps its own there (coordination.py).
    """
    from optuna.exceptions import ExperimentalWarning
    from optuna.storages import JournalStorage, RDBStorage
    from optuna.storages.journal import JournalFileBackend

    from linesweep.core.journal_lock import OwnedSymlinkLock

    try:
        if not is_database_url(url):
            path = Path(url)
            path.parent.mkdir(parents=True, exist_ok=True)
            lock = OwnedSymlinkLock(str(path), grace_period=lock_grace_s)
            return JournalStorage(JournalFileBackend(str(path), lock_obj=lock))
        options = _heartbeat_options(*heartbeat) if heartbeat is not None else {}
        for attempt in range(attempts):
            try:
                with warnings.catch_warnings():  # the heartbeat is "experimental" since 2.9
                    warnings.filterwarnings("ignore", category=ExperimentalWarning)
                    return RDBStorage(
                        database_url(url), engine_kwargs={"pool_pre_ping": True}, **options
                    )
            except Exception as err:  # several workers creating the tables at the same instant
                if attempt == attempts - 1 or "already exists" not in str(err):
                    raise
                time.sleep(0.2 * (attempt + 1))
    except Exception as err:
        detail = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(
            "hydra.sweeper.storage",
            shown_url(url),
            "a storage Optuna can open (a journal file path or a database URL)",
            f"it failed with: {mask_secrets(detail, url)}",
        ) from None
    raise AssertionError("unreachable")


def _heartbeat_options(
    interval_s: float, grace_s: float, on_stale: Callable[..., None]
) -> dict[str, Any]:
    """RDBStorage's heartbeat arguments: whole seconds, the callback under this Optuna's name."""
    from optuna.storages import RDBStorage

    # Optuna 4.9 renamed failed_trial_callback (still accepted, with a warning, until 6.0).
    names = inspect.signature(RDBStorage).parameters
    callback = (
        "heartbeat_stale_trial_callback"
        if "heartbeat_stale_trial_callback" in names
        else "failed_trial_callback"
    )
    return {
        "heartbeat_interval": max(1, math.ceil(interval_s)),
        "grace_period": max(1, math.ceil(grace_s)),
        callback: on_stale,
    }


def _parsed(url: str) -> Any:
    if not is_database_url(url):
        return None  # a file: SQLAlchemy (0.2 s to import) is not loaded for it
    from sqlalchemy.engine import make_url

    try:
        return make_url(url)
    except Exception:  # not a URL SQLAlchemy reads
        return None


def password_of(url: str) -> str | None:
    """The URL's password, decoded; None if it has none."""
    parsed = _parsed(url)
    return str(parsed.password) if parsed is not None and parsed.password else None


def secrets_of(url: str) -> list[str]:
    """The URL's password as written in it (percent-encoded) and as decoded; longest first."""
    password = password_of(url)
    if password is None:
        return []
    found = {password}
    credentials = url.split("://", 1)[1].rpartition("@")[0]
    if ":" in credentials:
        found.add(credentials.split(":", 1)[1])
    return sorted((s for s in found if s), key=len, reverse=True)


def mask_secrets(text: str, url: str) -> str:
    """`text` with the password of `url` (if any) replaced by ***, wherever it appears."""
    for secret in secrets_of(url):
        text = text.replace(secret, "***")
    return text


def without_password(url: str) -> str:
    """The URL without its password (a trial adds it back from PASSWORD_VAR)."""
    parsed = _parsed(url)
    if parsed is None or not parsed.password:
        return url
    return parsed._replace(password=None).render_as_string(hide_password=False)


def with_password(url: str, password: str | None) -> str:
    """The URL with `password` put in, if it has none."""
    parsed = _parsed(url)
    if not password or parsed is None or parsed.password:
        return url
    return parsed.set(password=password).render_as_string(hide_password=False)


_redacted: set[str] = set()


def redact_logs(url: str) -> None:
    """From now on, mask the password of `url` in every log record this process makes.

    Messages, arguments and tracebacks alike, whichever library logs them: a record factory sees
    every record before any handler does.
    """
    new = set(secrets_of(url)) - _redacted
    if not new:
        return
    _redacted.update(new)
    secrets = sorted(_redacted, key=len, reverse=True)
    make_record = logging.getLogRecordFactory()

    def masked(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a malformed call: leave it to logging to report
            return record
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        for secret in secrets:
            message = message.replace(secret, "***")
            if record.exc_text:
                record.exc_text = record.exc_text.replace(secret, "***")
        record.msg, record.args = message, None
        return record

    logging.setLogRecordFactory(masked)


STUDY_NAME_BYTES = 200


def check_study_name(name: Any) -> None:
    """A study name is a folder name under outputs/sweeps/: no path, nothing hidden."""
    text = "" if name is None else str(name)
    if not text or text.startswith(".") or any(c in text for c in "/\\\0") or ".." in text:
        raise ConfigError(
            "hydra.sweeper.study_name",
            text,
            "a plain name (not empty, no '/', '\\' or '..', not starting with '.'): it names "
            "the study's folder under outputs/sweeps/",
            "e.g. hydra.sweeper.study_name=channels_lr_2",
        )
    if len(text.encode()) > STUDY_NAME_BYTES:  # a file name holds 255 bytes; ".slots.lock" too
        raise ConfigError(
            "hydra.sweeper.study_name",
            f"{text[:24]}... ({len(text.encode())} bytes)",
            f"a name of at most {STUDY_NAME_BYTES} bytes: it names the study's folder",
        )
