"""Optuna storages: where a study lives, how to open it, and how to show its URL safely.

A plain path is an Optuna journal file (the default, next to the sweep's folders: no server, safe
for several processes on one machine); `sqlite:///...`, `postgresql://...` and `mysql://...` are
relational databases for sweeps that span machines. A URL may hold a password: it is shown only
through `shown_url`, which masks it, in every log line, error and file.
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path
from typing import TYPE_CHECKING

from linesweep.core.errors import ConfigError

if TYPE_CHECKING:
    from optuna.storages import BaseStorage

JOURNAL_NAME = "optuna_journal.log"  # optuna-dashboard and `optuna` open it as a journal file


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
    """The configured URL, or the default journal file in the sweep folder (absolute)."""
    if storage is None:
        return str((sweep_dir / JOURNAL_NAME).resolve())
    return storage if is_database_url(storage) else str(Path(storage).expanduser().resolve())


def database_url(url: str) -> str:
    """`postgresql://` means psycopg2 to SQLAlchemy; use psycopg 3 when only that is installed."""
    if (
        url.startswith("postgresql://")
        and importlib.util.find_spec("psycopg2") is None
        and importlib.util.find_spec("psycopg") is not None
    ):
        return "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def open_storage(url: str, lock_grace_s: int = 30, attempts: int = 5) -> BaseStorage:
    """Open (creating if needed) the storage at `url`; ConfigError if it cannot be opened."""
    from optuna.storages import JournalStorage, RDBStorage
    from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock

    try:
        if not is_database_url(url):
            path = Path(url)
            path.parent.mkdir(parents=True, exist_ok=True)
            lock = JournalFileSymlinkLock(str(path), grace_period=lock_grace_s)
            return JournalStorage(JournalFileBackend(str(path), lock_obj=lock))
        for attempt in range(attempts):
            try:
                return RDBStorage(database_url(url), engine_kwargs={"pool_pre_ping": True})
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


def mask_secrets(text: str, url: str) -> str:
    """`text` with the password of `url` (if any) replaced by ***, wherever it appears."""
    if not is_database_url(url):
        return text
    from sqlalchemy.engine import make_url

    try:
        password = make_url(url).password
    except Exception:
        return text
    return text.replace(str(password), "***") if password else text
