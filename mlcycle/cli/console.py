"""The one stderr console: messages, warnings, progress. Data never goes here.

Only the CLI prints. ``ConsoleReporter`` is the reporter (``mlcycle.reporting``) the CLI
installs around every command, so the library's warnings and progress land here.

rich is imported lazily so that ``--help`` and completion stay fast.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from typing import Iterator

_state = {"quiet": False, "verbose": False, "no_color": False}
_console = None


def configure(quiet: bool = False, verbose: bool = False, no_color: bool = False) -> None:
    global _console
    _state.update(quiet=quiet, verbose=verbose or _env_debug(), no_color=no_color)
    _console = None


def _env_debug() -> bool:
    return os.environ.get("MLCYCLE_DEBUG", "") not in ("", "0")


def is_verbose() -> bool:
    return bool(_state["verbose"]) or _env_debug()


def is_quiet() -> bool:
    return bool(_state["quiet"])


def console():
    """The shared ``rich.console.Console(stderr=True)``."""
    global _console
    if _console is None:
        from rich.console import Console

        _console = Console(stderr=True, no_color=_state["no_color"] or None, highlight=False)
    return _console


def escape(text: object) -> str:
    """Escape text that comes from data before rich renders it (markup and control chars)."""
    from rich.markup import escape as _escape

    from mlcycle.errors import printable

    return _escape(printable(text, limit=10_000))


def info(message: str) -> None:
    """A progress/info message (hidden by -q). ``message`` is plain text, not markup."""
    if not _state["quiet"]:
        console().print(message, markup=False, highlight=False, soft_wrap=True)


def warn(message: str) -> None:
    if not _state["quiet"]:
        console().print("warning: " + message, markup=False, style="yellow", soft_wrap=True)


def debug(message: str) -> None:
    if is_verbose() and not _state["quiet"]:
        console().print(message, markup=False, style="dim", soft_wrap=True)


def error(message: str, hint: str | None = None) -> None:
    """Always shown, even with -q."""
    c = console()
    c.print("error: " + message, markup=False, style="bold red", soft_wrap=True)
    if hint:
        c.print("hint: " + hint, markup=False, style="cyan", soft_wrap=True)


def render(renderable) -> None:
    """Print a rich renderable (table, panel) to stderr unless quiet."""
    if not _state["quiet"]:
        console().print(renderable)


@contextmanager
def progress(description: str, total: float | None = None) -> Iterator:
    """A progress bar on stderr when it is interactive; a no-op object otherwise.

    Yields an object with ``advance(n)``.
    """

    class _Null:
        def advance(self, n: float = 1) -> None:
            pass

    if _state["quiet"] or not sys.stderr.isatty():
        yield _Null()
        return
    from rich.progress import Progress

    with Progress(console=console(), transient=True) as prog:
        task = prog.add_task(description, total=total)

        class _Bar:
            def advance(self, n: float = 1) -> None:
                prog.advance(task, n)

        yield _Bar()


class ConsoleReporter:
    """Routes the library's warnings, notes and progress to this console (parameter
    mentions shown as the running command's flags)."""

    def warn(self, message: str) -> None:
        warn(_flags(message))

    def info(self, message: str) -> None:
        info(_flags(message))

    def debug(self, message: str) -> None:
        debug(message)

    def progress(self, description: str, total: float | None = None):
        return progress(description, total)


def _flags(message: str) -> str:
    from mlcycle.cli.common import flag_for
    from mlcycle.errors import render_mentions

    return render_mentions(message, flag_for)
