"""Paths inside a dataset: output files that stay inside the output folder, sample ids
that are relative image paths, and the folder names that mean a split."""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from mlcycle.errors import MlcycleError

SPLIT_NAMES = ("train", "val", "valid", "validation", "test", "trainval", "training", "testing")


def _escapes(relative: str) -> bool:
    """True when ``relative`` is not a plain relative path: empty, absolute, with ``..``,
    a drive letter or a NUL byte."""
    rel = str(relative).replace("\\", "/")
    pure = PurePosixPath(rel)
    return (not rel or "\x00" in rel or pure.is_absolute() or ".." in pure.parts
            or (len(rel) > 1 and rel[1] == ":"))


def safe_join(root: Path, relative: str, what: str = "sample_id") -> Path:
    """``root / relative``, refusing anything that would land outside ``root``
    (absolute paths, ``..``, drive letters, NUL bytes, symbolic links out)."""
    if _escapes(relative):
        raise MlcycleError(f"{what} {relative!r} would write outside the output folder {root}",
                           hint="sample ids must be relative paths without '..'")
    target = Path(root, *PurePosixPath(str(relative).replace("\\", "/")).parts)
    real_root = os.path.realpath(root)
    if os.path.commonpath([real_root, os.path.realpath(target)]) != real_root:
        raise MlcycleError(f"{what} {relative!r} would write outside the output folder {root}")
    return target


def check_relative(sample_id: str, fmt: str) -> None:
    """Refuse a sample id that is not a relative path inside the dataset folder (``..``,
    absolute paths, drive letters): the format stores it as an image path."""
    if _escapes(sample_id):
        raise MlcycleError(f"sample_id {sample_id!r} would point outside the dataset folder; {fmt} stores it as an image path",
                           hint="sample ids must be relative paths without '..'")
