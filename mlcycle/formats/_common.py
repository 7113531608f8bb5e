"""Helpers shared by format modules: JSON loading, safe output paths, XML parsing."""

from __future__ import annotations

import gc
import os
from pathlib import Path, PurePosixPath
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


def safe_join(root: Path, relative: str, what: str = "sample_id") -> Path:
    """``root / relative``, refusing anything that would land outside ``root``
    (absolute paths, ``..``, drive letters, NUL bytes)."""
    rel = str(relative).replace("\\", "/")
    pure = PurePosixPath(rel)
    if (not rel or "\x00" in rel or pure.is_absolute() or ".." in pure.parts
            or (len(rel) > 1 and rel[1] == ":")):
        raise MlcycleError(f"{what} {relative!r} would write outside the output folder {root}",
                           hint="sample ids must be relative paths without '..'")
    target = Path(root, *pure.parts)
    real_root = os.path.realpath(root)
    if os.path.commonpath([real_root, os.path.realpath(target)]) != real_root:
        raise MlcycleError(f"{what} {relative!r} would write outside the output folder {root}")
    return target


def parse_xml(path: Path, data: bytes | None = None):
    """Parse untrusted XML with defusedxml (entity bombs and external entities refused)."""
    import defusedxml.ElementTree as DET
    from defusedxml import DefusedXmlException
    from xml.etree.ElementTree import ParseError

    if data is None:
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise MlcycleError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        return DET.fromstring(data, forbid_dtd=False, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise MlcycleError(f"{path}: refused unsafe XML ({type(exc).__name__}: entities or external references)") from None
    except ParseError as exc:
        line, col = getattr(exc, "position", (None, None))
        raise MlcycleError(f"{path}:{line}:{col}: malformed XML: {str(exc).split(':')[0]}") from None
