"""Warnings, notes and progress from the library, without printing.

The library never prints. It reports through the *current reporter*, which the caller
chooses (datumaro's import context, in small): the CLI installs one that writes to the
stderr console; a Python user gets warnings back on the result object (and as Python
``warnings`` when nobody collects them).

    from mlcycle import reporting
    reporting.warn("3 images not found")          # in library code
    with reporting.collect() as seen:             # in an API function
        ...
    seen.warnings  # ['3 images not found']
"""

from __future__ import annotations

import warnings as _warnings
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Iterator, Protocol


class Progress(Protocol):
    def advance(self, n: float = 1) -> None: ...


class Reporter(Protocol):
    """What a caller provides to see the library's messages."""

    def warn(self, message: str) -> None: ...
    def info(self, message: str) -> None: ...
    def debug(self, message: str) -> None: ...
    def progress(self, description: str, total: float | None = None): ...  # a context manager yielding Progress


class MlcycleWarning(UserWarning):
    """A warning from mlcycle's library when no reporter collects it."""


class _NullProgress:
    def advance(self, n: float = 1) -> None:
        pass


@contextmanager
def _no_progress(description: str, total: float | None = None) -> Iterator[Progress]:
    yield _NullProgress()


class PythonWarnings:
    """The default reporter: warnings become Python warnings; notes are dropped."""

    def warn(self, message: str) -> None:
        from mlcycle.errors import render_mentions

        _warnings.warn(render_mentions(message), MlcycleWarning, stacklevel=3)

    def info(self, message: str) -> None:
        pass

    def debug(self, message: str) -> None:
        pass

    progress = staticmethod(_no_progress)


class Collector:
    """Keeps warnings and notes, and passes them on to the reporter it wraps."""

    def __init__(self, outer: Reporter | None = None) -> None:
        self.outer = outer
        self.warnings: list[str] = []
        self.notes: list[str] = []

    def warn(self, message: str) -> None:
        from mlcycle.errors import render_mentions

        self.warnings.append(render_mentions(message))
        if self.outer is not None:
            self.outer.warn(message)

    def info(self, message: str) -> None:
        self.notes.append(message)
        if self.outer is not None:
            self.outer.info(message)

    def debug(self, message: str) -> None:
        if self.outer is not None:
            self.outer.debug(message)

    def progress(self, description: str, total: float | None = None):
        if self.outer is not None:
            return self.outer.progress(description, total)
        return _no_progress(description, total)


_current: ContextVar[Reporter | None] = ContextVar("mlcycle_reporter", default=None)


def current() -> Reporter:
    rep = _current.get()
    return rep if rep is not None else PythonWarnings()


@contextmanager
def using(reporter: Reporter) -> Iterator[Reporter]:
    """Make ``reporter`` the current one inside the block."""
    token = _current.set(reporter)
    try:
        yield reporter
    finally:
        _current.reset(token)


@contextmanager
def collect() -> Iterator[Collector]:
    """Collect the warnings raised inside the block (still passed to an outer reporter
    that a caller installed; without one, they are only collected)."""
    outer = _current.get()
    with using(Collector(outer)) as c:
        yield c  # type: ignore[misc]


def warn(message: str) -> None:
    current().warn(message)


def info(message: str) -> None:
    current().info(message)


def debug(message: str) -> None:
    current().debug(message)


def progress(description: str, total: float | None = None):
    """A context manager yielding an object with ``advance(n)``."""
    return current().progress(description, total)
