"""Errors a user can fix: each prints as one line that names the key, the value and the fix."""

from __future__ import annotations

from typing import Any


class LinesweepError(Exception):
    """A problem with the user's input, reported as one line without a traceback."""


class ConfigError(LinesweepError):
    """A config value outside what linesweep accepts."""

    def __init__(self, key: str, value: Any, allowed: str, fix: str | None = None) -> None:
        self.key, self.value, self.allowed, self.fix = key, value, allowed, fix
        message = f"{key}={_show(value)} is not allowed: {allowed}"
        super().__init__(f"{message}; {fix}" if fix else message)

    def __reduce__(self):
        return (type(self), (self.key, self.value, self.allowed, self.fix))


class InfeasibleArchitecture(LinesweepError):
    """A layer stack whose activations would shrink below 1x1 (or that torch would reject)."""

    def __init__(self, layer: str, reason: str, fix: str) -> None:
        self.layer, self.reason, self.fix = layer, reason, fix
        super().__init__(f"{layer}: {reason}; {fix}")

    def __reduce__(self):
        return (type(self), (self.layer, self.reason, self.fix))


def _show(value: Any) -> str:
    """Render a value the way the user would type it on the command line."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_show(v) for v in value) + "]"
    return repr(value)
