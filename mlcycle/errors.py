"""The one error type and the exit statuses every command uses.

Tree (all are ``MlcycleError``; the CLI prints ``error: <message>`` and an optional
``hint: <hint>`` and exits with ``exit_code``):

- ``MlcycleError``   exit 1  input could not be read or processed
- ``UsageError``     exit 2  bad option or argument, binary output to a terminal
- ``CheckFailed``    exit 3  a check failed (schema-check errors, evaluate --fail-under)

Library functions raise these; only ``mlcycle.cli`` turns them into exit statuses.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    ERROR = 1
    USAGE = 2
    CHECK_FAILED = 3
    INTERRUPTED = 130


class MlcycleError(Exception):
    """An expected failure: a message for the user, an optional hint, an exit status."""

    exit_code: int = ExitCode.ERROR

    def __init__(self, message: str, hint: str | None = None, exit_code: int | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        if exit_code is not None:
            self.exit_code = exit_code

    def __str__(self) -> str:  # pragma: no cover - trivial
        return self.message


class UsageError(MlcycleError):
    exit_code = ExitCode.USAGE


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
