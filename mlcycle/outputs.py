"""Writing outputs safely: one file atomically, a folder all or nothing, several
outputs all or none, special files (/dev/null, FIFOs, terminals) written directly.

An interrupted or failing command never leaves a half-written file or folder, and a
disk that fails (full, read-only, permissions) is an ``MlcycleError`` naming the file.
``mlcycle.io`` re-exports these; table encodings live there.
"""

from __future__ import annotations

import os
import stat
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator, Sequence

from mlcycle.errors import MlcycleError, OptionError


def is_stdout(output: str | os.PathLike | None) -> bool:
    return output is None or str(output) == "-"


def _is_special(path: Path) -> bool:
    try:
        st = os.stat(path)
    except OSError:
        return False
    return not stat.S_ISREG(st.st_mode) and not stat.S_ISDIR(st.st_mode)


def check_output(path: str | os.PathLike | None) -> None:
    """Fail early, before any work, when ``path`` cannot be written as one file: a
    folder (or a name ending in '/'), or a folder that does not exist."""
    if is_stdout(path):
        return
    text = os.fspath(path)
    target = Path(text)
    if text.endswith(("/", os.sep)) or target.is_dir():
        raise OptionError("output", f"{text}: is a folder; expected a file name")
    if _is_special(target):
        return
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise MlcycleError(f"{target}: folder {parent} does not exist")


def _stdout(binary: bool) -> IO:
    if sys.stdout is None:
        raise MlcycleError("standard output is closed", hint="write to a file with -o FILE")
    return sys.stdout.buffer if binary else sys.stdout


@contextmanager
def atomic_output(path: str | os.PathLike | None, mode: str = "wb") -> Iterator[IO]:
    """A file object for the output: stdout for ``-``/None; for a file, a temporary file
    in the same folder renamed over the target only when the block succeeds. Special
    files (``/dev/null``, FIFOs, terminals) are opened and written directly, never
    renamed over. A failure of the disk (full, read-only, permissions) is an
    ``MlcycleError`` naming the file; the target is left as it was."""
    binary = "b" in mode
    if is_stdout(path):
        stream = _stdout(binary)
        try:
            yield stream
            stream.flush()
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise MlcycleError(f"<stdout>: cannot write: {exc.strerror or exc}") from None
        return
    check_output(path)
    target = Path(path)
    if _is_special(target):
        try:
            with open(target, mode) as fh:
                yield fh
        except OSError as exc:
            if isinstance(exc, BrokenPipeError):
                raise
            raise MlcycleError(f"{target}: cannot write: {exc.strerror or exc}") from None
        return
    parent = target.parent if str(target.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(dir=parent, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as exc:
        raise MlcycleError(f"{target}: cannot write in {parent}: {exc.strerror or exc}") from None
    ok = False
    try:
        try:
            with os.fdopen(fd, mode) if binary else os.fdopen(fd, mode, encoding="utf-8", newline="") as fh:
                yield fh
            # keep the permissions a plain `>` would give
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
            os.replace(tmp, target)
        except OSError as exc:
            raise MlcycleError(f"{target}: cannot write: {exc.strerror or exc}") from None
        ok = True
    finally:
        if not ok:
            try:
                os.unlink(tmp)
            except OSError:
                pass


@contextmanager
def atomic_folder(path: str | os.PathLike) -> Iterator[Path]:
    """A folder output written all or nothing: the block fills a temporary sibling
    folder, which becomes ``path`` only when the block succeeds. A new folder appears
    in one rename; into an existing folder the finished files are moved one by one
    (each complete), and other files already there are left alone. A failure or Ctrl-C
    leaves ``path`` as it was and removes the temporary folder."""
    import shutil

    target = Path(os.fspath(path))
    if target.exists() and not target.is_dir():
        raise OptionError("output", f"{target}: is a file; this writes a folder")
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise MlcycleError(f"{target}: folder {parent} does not exist")
    try:
        tmp = Path(tempfile.mkdtemp(dir=parent, prefix=f".{target.name}.", suffix=".tmp"))
    except OSError as exc:
        raise MlcycleError(f"{target}: cannot write in {parent}: {exc.strerror or exc}") from None
    try:
        yield tmp
        try:
            os.chmod(tmp, 0o777 & ~_umask())
            if not target.exists():
                os.replace(tmp, target)
            else:
                _move_into(tmp, target)
        except OSError as exc:
            raise MlcycleError(f"{target}: cannot write: {exc.strerror or exc}") from None
    finally:
        if tmp.exists():  # failed, or merged into an existing folder
            shutil.rmtree(tmp, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _move_into(src: Path, dest: Path) -> None:
    """Move the finished tree ``src`` into the existing folder ``dest`` (file by file)."""
    for entry in sorted(src.iterdir()):
        to = dest / entry.name
        if entry.is_dir() and not entry.is_symlink() and to.is_dir() and not to.is_symlink():
            _move_into(entry, to)
        else:
            if to.is_dir() and not to.is_symlink():
                raise MlcycleError(f"{to}: is a folder where a file is to be written")
            os.replace(entry, to)


def write_outputs(outputs: Sequence[tuple[str | os.PathLike | None, bytes]]) -> None:
    """Write several outputs all or none: every file is written to a temporary name
    first and renamed only when all of them are written; standard output comes last.
    (``evaluate --metrics m.json -o bad/x`` must not leave m.json behind.)"""
    for path, _ in outputs:
        check_output(path)
    staged: list[tuple[str, Path]] = []
    direct: list[tuple[str | os.PathLike | None, bytes]] = []
    try:
        for path, data in outputs:
            if is_stdout(path) or _is_special(Path(path)):
                direct.append((path, data))
                continue
            target = Path(path)
            parent = target.parent if str(target.parent) else Path(".")
            try:
                fd, tmp = tempfile.mkstemp(dir=parent, prefix=f".{target.name}.", suffix=".tmp")
            except OSError as exc:
                raise MlcycleError(f"{target}: cannot write in {parent}: {exc.strerror or exc}") from None
            staged.append((tmp, target))
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                umask = os.umask(0)
                os.umask(umask)
                os.chmod(tmp, 0o666 & ~umask)
            except OSError as exc:
                raise MlcycleError(f"{target}: cannot write: {exc.strerror or exc}") from None
        for tmp, target in staged:
            try:
                os.replace(tmp, target)
            except OSError as exc:
                raise MlcycleError(f"{target}: cannot write: {exc.strerror or exc}") from None
        staged = []
    finally:
        for tmp, _ in staged:
            try:
                os.unlink(tmp)
            except OSError:
                pass
    for path, data in direct:
        with atomic_output(path, "wb") as fh:
            fh.write(data)
