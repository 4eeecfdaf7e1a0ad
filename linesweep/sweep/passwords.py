"""A storage password is kept out of every file a sweep or its trials write.

    python -m linesweep.train -m hparams_search=channels_lr \
        "hydra.sweeper.storage='postgresql://user:secret@db-host/linesweep'"
"""

from __future__ import annotations

import os

from omegaconf import DictConfig, OmegaConf, read_write

from linesweep.core.storage import PASSWORD_VAR, mask_secrets, password_of, redact_logs
from linesweep.sweep.space import quoted


def keep_password_out(storage_url: str, config: DictConfig) -> tuple[str | None, list[str]] | None:
    """A storage password reaches the trials through the environment, never a saved file.

    Hydra saves each trial's config unresolved in its `.hydra/` folder: a URL typed on the
    command line or in a YAML file would be saved with its password, so the trials are given
    the masked URL (they reconnect through their TrialContext); `${oc.env:...}` is saved as
    written, and needs nothing. Returns the password variable's value before (None if it was
    unset) and the overrides every trial gets, or None for a storage without a password.
    """
    password = password_of(storage_url)
    if password is None:
        return None
    before = os.environ.get(PASSWORD_VAR)  # put back by `restore`
    os.environ[PASSWORD_VAR] = password
    redact_logs(storage_url)
    overrides = config.hydra.overrides.hydra
    with read_write(overrides):  # as typed: `${oc.env:...}` stays unresolved
        for index, text in enumerate(OmegaConf.to_container(overrides, resolve=False)):
            if mask_secrets(text, storage_url) != text:
                overrides[index] = mask_secrets(text, storage_url)
    raw = OmegaConf.to_container(config.hydra.sweeper, resolve=False).get("storage")
    job_overrides = []
    if isinstance(raw, str) and mask_secrets(raw, storage_url) != raw:
        job_overrides.append(f"hydra.sweeper.storage={quoted(mask_secrets(raw, storage_url))}")
    return before, job_overrides


def restore(before: str | None, storage_url: str) -> None:
    """The password variable as it was before the sweep (`keep_password_out`'s `before`)."""
    if before is not None:
        os.environ[PASSWORD_VAR] = before
    elif password_of(storage_url) is not None:
        os.environ.pop(PASSWORD_VAR, None)
