"""What compare prints, and how: one line per error or warning, escaped, and quiet on a closed pipe.

Text that reaches the terminal may come from files anyone wrote (folder names, config values,
errors): `printable` escapes its control characters, so a value cannot drive the terminal.

`python -m linesweep.compare ... | head` closes the pipe after ten lines. Python's documentation
on SIGPIPE recommends catching the BrokenPipeError and pointing the stream at /dev/null (so that
what is still buffered, and every later line, goes nowhere instead of ending in a traceback at
exit); it warns against restoring SIGPIPE's default, which would kill compare mid-write. So `say`
does that, and compare goes on to write its files: a closed pipe costs the lines, never the
table.csv and report.html.
"""

from __future__ import annotations

import os
import re
import sys
from typing import TextIO

_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")


class UsageError(Exception):
    """A bad argument or nothing to compare: one line on stderr, exit status 2."""


def printable(text: str) -> str:
    """The text with its control characters (and line breaks) written as escapes: `\\x1b`."""
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)


def say(text: str, err: bool = False) -> None:
    """Print `text` on stdout (stderr with `err`), flushed; a closed pipe silences that stream."""
    stream = sys.stderr if err else sys.stdout
    try:
        print(text, file=stream, flush=True)
    except BrokenPipeError:
        silence(stream)


def warn(text: str) -> None:
    """One warning line on stderr, escaped."""
    say(f"warning: {printable(text)}", err=True)


def silence(stream: TextIO) -> None:
    """Send what `stream` still holds, and all it gets later, to /dev/null: its reader is gone."""
    try:
        fd = stream.fileno()
    except (OSError, ValueError):  # not a file (a test's capture): nothing to redirect
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)
