"""Every error mlcycle raises, and the exit statuses — the whole tree in one place.

Tree (the library raises these; only ``mlcycle.cli`` turns them into a line on stderr
and an exit status)::

    MlcycleError          exit 1  input could not be read or processed (names file and place)
    ├── OptionError       exit 2  a parameter's value is wrong; ``.option`` names the
    │                             parameter (``"iou"``); the CLI shows it as its flag (``--iou``)
    └── CheckFailed       exit 3  a check failed (schema-check errors, evaluate --fail-under)

The library never speaks of flags: an ``OptionError`` names the Python parameter, and
the CLI looks up the flag that sets it. A message or hint that mentions another
parameter writes ``mention("image_sizes")``; Python users read ``image_sizes``, the CLI
shows ``--image-sizes``.
"""

from __future__ import annotations

import re
from enum import IntEnum
from typing import Callable

_MENTION = re.compile(r"\{option:([A-Za-z_][A-Za-z0-9_]*)\}")


def mention(parameter: str) -> str:
    """A reference to a parameter inside a message (rendered by ``render_mentions``)."""
    return "{option:" + parameter + "}"


def render_mentions(text: str | None, name_of: Callable[[str], str] | None = None) -> str | None:
    """Replace parameter mentions with ``name_of(parameter)`` (default: the name itself)."""
    if text is None or "{option:" not in text:
        return text
    return _MENTION.sub(lambda m: (name_of or (lambda n: n))(m.group(1)), text)


class ExitCode(IntEnum):
    """The exit statuses of every command (written into every man page)."""

    OK = 0
    ERROR = 1
    USAGE = 2
    CHECK_FAILED = 3
    INTERRUPTED = 130


# The one description of the exit statuses: (status, short form for --help, sentence for
# the man pages and docs). Help, man pages and docs are generated from it.
EXIT_STATUSES = (
    (ExitCode.OK, "success", "Success."),
    (ExitCode.ERROR, "input could not be processed",
     "Error: an input could not be read or processed (malformed, inconsistent, I/O)."),
    (ExitCode.USAGE, "usage error", "Usage error: a bad option or argument, or binary output to a terminal."),
    (ExitCode.CHECK_FAILED, "a check failed",
     "A check failed: schema-check found errors, or evaluate --fail-under was not met."),
    (ExitCode.INTERRUPTED, "interrupted", "Interrupted (Ctrl-C); no partial output file is left behind."),
)


def exit_status_summary() -> str:
    """'Exit status: 0 success, 1 ..., 130 interrupted.' (the line every --help ends with)."""
    return "Exit status: " + ", ".join(f"{int(code)} {short}" for code, short, _ in EXIT_STATUSES) + "."


class MlcycleError(Exception):
    """An expected failure: a message for the user, an optional hint, an exit status."""

    exit_code: int = ExitCode.ERROR

    def __init__(self, message: str, hint: str | None = None, exit_code: int | None = None):
        super().__init__(render_mentions(message))
        self.raw_message = message  # with parameter mentions, for the CLI to show as flags
        self.raw_hint = hint
        if exit_code is not None:
            self.exit_code = exit_code

    @property
    def message(self) -> str:
        """The message as a Python user reads it (parameters by their names)."""
        return render_mentions(self.raw_message)

    @message.setter
    def message(self, value: str) -> None:
        self.raw_message = value

    @property
    def hint(self) -> str | None:
        return render_mentions(self.raw_hint)

    @hint.setter
    def hint(self, value: str | None) -> None:
        self.raw_hint = value

    def __str__(self) -> str:  # pragma: no cover - trivial
        return self.message


class OptionError(MlcycleError):
    """A parameter's value is wrong. ``option`` is the parameter's Python name
    (``"iou"``, ``"fail_under"``) or None when the problem is the call as a whole."""

    exit_code = ExitCode.USAGE

    def __init__(self, option: str | None, message: str, hint: str | None = None):
        super().__init__(message, hint)
        self.option = option


class CheckFailed(MlcycleError):
    exit_code = ExitCode.CHECK_FAILED


def where(path: str | None, line: int | None = None, column: int | None = None) -> str:
    """Format 'file:line:column' for error messages ('<stdin>' for standard input)."""
    name = "<stdin>" if path in (None, "-") else str(path)
    if line is not None:
        name += f":{line}"
        if column is not None:
            name += f":{column}"
    return name


def printable(text: object, limit: int = 200) -> str:
    """Text from data made safe for a one-line message: control characters (newlines,
    terminal escapes) shown as escapes, long values cut."""
    s = str(text)
    if not s.isprintable():
        s = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in s)
    return s if len(s) <= limit else s[: limit - 1] + "…"
