"""JSON annotation files: parsed fast, malformed JSON reported as ``file:line:column``."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

from mlcycle.errors import MlcycleError


def load_json(path: Path | str | None, data: bytes | None = None) -> Any:
    """Parse a JSON file fast (orjson, cyclic GC paused while millions of small objects
    are built) and report malformed JSON as ``file:line:column``."""
    import orjson

    from mlcycle import io

    name = io.display_name(path)
    if data is None:
        data = io.read_bytes(path)
    enabled = gc.isenabled()
    gc.disable()
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        line = getattr(exc, "lineno", None)
        col = getattr(exc, "colno", None)
        where = f"{name}:{line}:{col}" if line else name
        msg = getattr(exc, "msg", str(exc))
        if not data.strip():
            msg = "the file is empty"
        raise MlcycleError(f"{where}: malformed JSON: {msg}") from None
    finally:
        if enabled:
            gc.enable()
