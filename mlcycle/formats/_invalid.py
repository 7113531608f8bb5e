"""Invalid input in annotation files: an error at once, or skipped and counted.

Every reader handles a bad label the same way: without ``skip_invalid`` the first one
is an ``MlcycleError`` naming file and place; with it, each is skipped and, at the end,
one warning says how many were skipped and shows the first few::

    skipped 2 invalid YOLO lines: a.txt:3: ...; b.txt:1: ...
"""

from __future__ import annotations

from typing import Callable, Sequence

from mlcycle.errors import MlcycleError, mention

SHOWN = 3  # examples named in the warning


class InvalidInput:
    """Collects invalid labels of one kind (``what``, e.g. ``"VOC object"``): raises at
    the first one unless ``skip`` is set; ``report()`` then warns once."""

    def __init__(self, skip: bool, what: str = "label", plural: str | None = None) -> None:
        self.skip = skip
        self.what = what
        self.plural = plural or what + "s"
        self.count = 0
        self.examples: list[str] = []

    def add(self, message: str, hint: str | None = None, count: int = 1) -> None:
        """One invalid input (or ``count`` of them that ``message`` describes)."""
        if not self.skip:
            raise MlcycleError(message, hint=hint or f"fix the file, or skip invalid {self.plural} with a warning ({mention('skip_invalid')})")
        self.count += count
        if len(self.examples) < SHOWN:
            self.examples.append(message)

    def add_each(self, indices: "Sequence[int]", message_of: "Callable[[int], str]", hint: str | None = None) -> None:
        """Invalid inputs at ``indices`` (many at once): the message is built only for
        the first few, the others are counted."""
        indices = list(indices)
        for k, i in enumerate(indices):
            if k >= SHOWN and self.skip:
                self.count += len(indices) - k
                return
            self.add(message_of(i), hint)

    def report(self) -> None:
        """Warn once about what was skipped (nothing when nothing was)."""
        if not self.count:
            return
        from mlcycle import reporting

        n = self.count
        more = f" (and {n - len(self.examples)} more)" if n > len(self.examples) else ""
        reporting.warn(f"skipped {n} invalid {self.what if n == 1 else self.plural}: {'; '.join(self.examples)}{more}")
