"""Paths inside a dataset: output files that stay inside the output folder, sample ids
that are relative image paths, the folder names that mean a split, and files read or
copied safely (regular files only: a FIFO never hangs a command; never through a
symbolic link out of the images folder)."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path, PurePosixPath

from mlcycle.errors import MlcycleError, mention, printable

SPLIT_NAMES = ("train", "val", "valid", "validation", "test", "trainval", "training", "testing")

# characters no file name in a dataset (and no line of a list file) may hold
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _escapes(relative: str) -> bool:
    """True when ``relative`` is not a plain relative path: empty, absolute, with ``..``,
    a drive letter or a NUL byte."""
    rel = str(relative).replace("\\", "/")
    pure = PurePosixPath(rel)
    return (not rel or "\x00" in rel or pure.is_absolute() or ".." in pure.parts
            or (len(rel) > 1 and rel[1] == ":"))


def safe_join(root: Path, relative: str, what: str = "sample_id") -> Path:
    """``root / relative``, refusing anything that would land outside ``root``
    (absolute paths, ``..``, drive letters, NUL bytes, symbolic links out) and names with
    control characters (a newline in a file name breaks every list file)."""
    if _escapes(relative):
        raise MlcycleError(f"{what} '{printable(relative)}' would write outside the output folder {root}",
                           hint="sample ids must be relative paths without '..'")
    if _CONTROL.search(str(relative)):
        raise MlcycleError(f"{what} '{printable(relative)}' has a control character (newline, tab ...); "
                           "it cannot be a file name in the output", hint="rename the samples")
    target = Path(root, *PurePosixPath(str(relative).replace("\\", "/")).parts)
    real_root = os.path.realpath(root)
    if os.path.commonpath([real_root, os.path.realpath(target)]) != real_root:
        raise MlcycleError(f"{what} '{printable(relative)}' would write outside the output folder {root}")
    return target


def check_relative(sample_id: str, fmt: str) -> None:
    """Refuse a sample id that is not a relative path inside the dataset folder (``..``,
    absolute paths, drive letters): the format stores it as an image path."""
    if _escapes(sample_id):
        raise MlcycleError(f"sample_id '{printable(sample_id)}' would point outside the dataset folder; {fmt} stores it as an image path",
                           hint="sample ids must be relative paths without '..'")


def relative_entry(text: str) -> bool:
    """True when a line of a list file (an image path) is a plain relative path without
    control characters: safe to look up under the dataset folder."""
    return not _escapes(text) and not _CONTROL.search(text)


def read_regular(path: str | os.PathLike) -> bytes:
    """The bytes of a regular file; anything else (a FIFO, a device, a folder) is refused
    at once instead of blocking. A failure names the file."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except (OSError, ValueError) as exc:
        raise MlcycleError(f"{printable(path)}: cannot read: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise MlcycleError(f"{printable(path)}: not a regular file (a FIFO, device or folder); cannot read it")
        with os.fdopen(fd, "rb", closefd=False) as fh:
            return fh.read()
    except OSError as exc:
        raise MlcycleError(f"{printable(path)}: cannot read: {exc.strerror or exc}") from None
    finally:
        os.close(fd)


def image_source(images_root: str | os.PathLike, sample_id: str) -> Path | None:
    """The image file of ``sample_id`` under ``images_root`` for a folder exporter to
    copy, or None when there is none. Never outside the root: an absolute or ``..``
    sample id, or a symbolic link that points out of the root, is an error; so is a
    file that is not a regular file (a FIFO would block the copy)."""
    if _escapes(sample_id):
        raise MlcycleError(f"sample_id '{printable(sample_id)}' is not a relative path inside {mention('images_root')} "
                           f"{images_root}; its image is not read", hint="sample ids must be relative paths without '..'")
    src = Path(images_root, *PurePosixPath(str(sample_id).replace("\\", "/")).parts)
    try:
        st = os.stat(src)
    except (OSError, ValueError):
        return None
    real_root = os.path.realpath(images_root)
    if os.path.commonpath([real_root, os.path.realpath(src)]) != real_root:
        raise MlcycleError(f"{printable(src)}: a symbolic link to a file outside {mention('images_root')} {images_root}; not copied",
                           hint=f"name the folder the links point into as {mention('images_root')}")
    if not stat.S_ISREG(st.st_mode):
        raise MlcycleError(f"{printable(src)}: not a regular file (a FIFO, device or folder); the image is not copied")
    return src


def copy_images(images_root: str | os.PathLike | None, pairs) -> None:
    """Copy each ``(sample_id, target path)`` image that exists under ``images_root``
    (see ``image_source``); a missing image is not copied."""
    import shutil

    if images_root is None:
        return
    for sid, target in pairs:
        src = image_source(images_root, sid)
        if src is None:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            shutil.copyfile(src, target)
        except OSError as exc:
            raise MlcycleError(f"{printable(src)}: cannot copy to {target}: {exc.strerror or exc}") from None


def read_head(path: str | os.PathLike, size: int = 1 << 16) -> bytes | None:
    """The first ``size`` bytes of a regular file, or None when it is not one or cannot
    be read (for format detection and other guesses: never blocks on a FIFO)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except (OSError, ValueError):
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        with os.fdopen(fd, "rb", closefd=False) as fh:
            return fh.read(size)
    except OSError:
        return None
    finally:
        os.close(fd)
