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


_PLAIN_ENCODINGS = (b"utf-8", b"utf8", b"us-ascii", b"ascii", b"iso-8859-1", b"latin-1", b"latin1")


def _without_dtd(data: bytes) -> bool:
    """True when ``data`` provably declares no DTD: no ``<!DOCTYPE``/``<!ENTITY`` bytes, no
    NUL bytes (UTF-16/32 would hide them), and no encoding other than UTF-8/ASCII/Latin-1.
    Without a DTD there are no entities to expand and no external references to
    fetch, so the C parser is as safe as defusedxml here -- and ~4x faster."""
    if b"<!" in data and (b"<!DOCTYPE" in data or b"<!ENTITY" in data or b"<!doctype" in data.lower()):
        return False
    if b"\x00" in data[:1024]:
        return False
    head = data[:256]
    if b"encoding" in head:
        decl = head.split(b"?>", 1)[0].lower()
        enc = decl.split(b"encoding", 1)[1].split(b"=", 1)[-1].strip()[1:].split(b"'")[0].split(b'"')[0]
        if enc not in _PLAIN_ENCODINGS:
            return False
    return True


def parse_xml(path: Path, data: bytes | None = None):
    """Parse untrusted XML safely: entity bombs and external entities are refused
    (defusedxml); documents without any DTD take the C parser (see ``_without_dtd``)."""
    import defusedxml.ElementTree as DET
    from defusedxml import DefusedXmlException
    from xml.etree.ElementTree import ParseError

    if data is None:
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise MlcycleError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        if _without_dtd(data):
            from xml.etree.ElementTree import XMLParser, fromstring

            return fromstring(data, parser=XMLParser())
        return DET.fromstring(data, forbid_dtd=False, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise MlcycleError(f"{path}: refused unsafe XML ({type(exc).__name__}: entities or external references)") from None
    except ParseError as exc:
        line, col = getattr(exc, "position", (None, None))
        raise MlcycleError(f"{path}:{line}:{col}: malformed XML: {str(exc).split(':')[0]}") from None
