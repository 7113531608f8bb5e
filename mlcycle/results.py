"""The one result shape every library entry point returns.

``mlcycle.evaluate``, ``check``, ``describe``, ``mine`` (and the curation verbs) return a
``Result``: the output label table (or None when the operation produces none), the
summary document the CLI prints as JSON, and the warnings raised on the way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa


@dataclass(frozen=True)
class Result:
    table: "pa.Table | None"
    summary: dict[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    def to_json(self) -> bytes:
        """The summary as indented JSON (what ``--json`` prints)."""
        import orjson

        return orjson.dumps(self.summary, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY
                            | orjson.OPT_APPEND_NEWLINE | orjson.OPT_NON_STR_KEYS)
