"""The report's thumbnails: which image files may be read, and the JPEG thumbnails.

Path safety (docs/report.md, docs/reliability.md): an image is read only when its sample
id is a plain relative path (no ``..``, not absolute, no drive letter, no NUL) **and** the
file it resolves to, symbolic links followed, lies inside the images root **and** is a
regular file (a FIFO or a device would hang or never end). Anything else is skipped and
counted; the caller warns. Thumbnails are written only into the (temporary) report
folder being built, under ``thumbs/``; a thumbnail of an earlier report in the output
folder is reused only when it is a regular file reached without any symbolic link.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from mlcycle.errors import MlcycleError

THUMB_SIZE = 384
THUMBS = "thumbs"


@dataclass
class ThumbResult:
    paths: list[str | None]                      # relative to the report folder; None: no thumbnail
    sizes: list[tuple[int, int] | None]          # the image's own size
    outside: list[str] = field(default_factory=list)   # sample ids that point outside the root (never read)
    missing: list[str] = field(default_factory=list)   # sample ids whose image is missing or unreadable
    sources: list[Path | None] = field(default_factory=list)  # the image file, when it may be read


def image_path(root: Path, sample_id: str, real_root: str) -> Path | None:
    """The image of ``sample_id`` under ``root`` when it may be read, else None (a path
    that leaves the root, through ``..``, an absolute path or a symbolic link)."""
    from mlcycle.formats._paths import _escapes

    if sample_id is None or _escapes(sample_id):
        return None
    path = Path(root, *str(sample_id).replace("\\", "/").split("/"))
    real = os.path.realpath(path)
    try:
        if os.path.commonpath([real_root, real]) != real_root:
            return None
    except ValueError:  # different drives
        return None
    return path


def _regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


def _no_links(base: Path, rel: Path) -> bool:
    """True when no component of ``base / rel`` below ``base`` is a symbolic link and the
    last one is a regular file."""
    cur = base
    try:
        for part in rel.parts:
            cur = cur / part
            st = os.lstat(cur)
            if stat.S_ISLNK(st.st_mode):
                return False
        return stat.S_ISREG(st.st_mode)
    except OSError:
        return False


def _thumb(src: Path, dst: Path, size: int, reuse: Path | None) -> tuple[int, int] | None:
    """Write a JPEG thumbnail of ``src`` to ``dst`` (or link/copy ``reuse``, an earlier
    thumbnail newer than ``src``) and return the image's own size; None when the image
    is unreadable."""
    import shutil

    from PIL import Image

    try:
        mtime = src.stat().st_mtime
        with Image.open(src) as im:  # lazy: the header only
            full = im.size
            dst.parent.mkdir(parents=True, exist_ok=True)
            if reuse is not None:
                try:
                    st = reuse.stat()
                    if st.st_mtime >= mtime and st.st_size > 0:
                        try:
                            os.link(reuse, dst)
                        except OSError:
                            shutil.copy2(reuse, dst)
                        return full
                except OSError:
                    pass
            im.draft("RGB", (size, size))  # JPEG: decode at a reduced scale (fast)
            im.thumbnail((size, size))
            if im.mode not in ("RGB", "L"):
                rgba = im.convert("RGBA")
                im = Image.new("RGB", im.size, (255, 255, 255))
                im.paste(rgba, mask=rgba.split()[-1])
            im.save(dst, "JPEG", quality=85)
        return full
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None


def make_thumbs(sample_ids: list[str], images_root: Path, out: Path, size: int = THUMB_SIZE,
                previous: Path | None = None) -> ThumbResult:
    """Thumbnails of the samples' images under ``out/thumbs`` (``out``: the folder being
    built). ``previous``: an existing report folder whose thumbnails may be reused."""
    from concurrent.futures import ThreadPoolExecutor

    from mlcycle.formats._paths import _escapes

    root = Path(images_root)
    real_root = os.path.realpath(root)
    thumbs_root = out / THUMBS
    result = ThumbResult([], [])
    jobs = []
    for i, sid in enumerate(sample_ids):
        src = image_path(root, sid, real_root)
        if src is None:
            result.outside.append(sid)
        elif not _regular(src):
            result.missing.append(sid)
            src = None
        rel = Path(THUMBS, *(sid + ".jpg").split("/")) if not _escapes(sid) else Path(THUMBS, "_", f"{i}.jpg")
        reuse = previous / rel if previous is not None and src is not None and _no_links(previous, rel) else None
        result.sources.append(src)
        jobs.append((src, out / rel, reuse))
    workers = min(4, os.cpu_count() or 1)

    def run(job):
        src, dst, reuse = job
        return None if src is None else _thumb(src, dst, size, reuse)

    with ThreadPoolExecutor(workers) as pool:
        sizes = list(pool.map(run, jobs))
    for (src, dst, _), s, sid in zip(jobs, sizes, sample_ids):
        if src is not None and s is None:
            result.missing.append(sid)
        result.paths.append(dst.relative_to(out).as_posix() if s else None)
    result.sizes = sizes
    return result


def check_no_links(built: Path, target: Path) -> None:
    """Refuse to move the built report into ``target`` when a folder it writes into is a
    symbolic link there (a pre-existing ``thumbs`` linking elsewhere): the report is
    never written through a link."""
    if not target.exists():
        return
    for dirpath, dirnames, _ in os.walk(built):
        rel = Path(dirpath).relative_to(built)
        for d in dirnames:
            there = target / rel / d
            if there.is_symlink():
                raise MlcycleError(f"{there}: is a symbolic link; the report is never written through a link",
                                   hint="remove the link or write the report into another folder")
