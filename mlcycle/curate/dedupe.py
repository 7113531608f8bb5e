"""dedupe: duplicate and near-duplicate images, within a split and across splits.

Per sample (image under ``images_root``):

- **exact** duplicates share the blake2b digest (16 bytes) of the file's bytes, read in
  1 MiB chunks;
- **near** duplicates have perceptual hashes (64 bits; pHash by default: the signs of
  the 8x8 lowest frequencies of the 32x32 grey image's DCT against their median, as
  the ``imagehash`` package computes it; or dHash: the signs of horizontal gradients of
  the 9x8 grey image) within Hamming distance ``max_distance``; or, with an
  ``embedding`` column, embeddings with cosine similarity >= ``min_cosine``.

Pairs within the distance are found without comparing all pairs: the hash is split
into 4 bands of 16 bits; two hashes within distance d agree on some band up to d // 4
bits (pigeonhole), so each band's value and its flips of up to d // 4 bits are looked
up in the sorted band values (multi-index hashing), and only those candidates'
distances are computed (a vectorised popcount). Groups are the connected components of
the pairs. A group whose samples carry more than one split is a *leak*.

Safety: sample ids must be relative paths inside ``images_root`` (absolute paths,
``..`` and symbolic links leading outside are refused), and every file is checked with
``os.stat`` to be a regular file before it is opened (a FIFO would block ``open``);
it is then opened non-blocking and checked again on the open descriptor.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

from mlcycle import reporting
from mlcycle import table as T
from mlcycle.errors import MlcycleError, OptionError, printable, mention
from mlcycle.results import Result

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import pyarrow as pa

__all__ = ["dedupe", "SPLIT_PRIORITY"]

HASHES = ("phash", "dhash")
# --drop keeps, in each group, the sample of the first split in this order, then the
# sample that comes first in the table.
SPLIT_PRIORITY = ("train", "val", "test")
_CHUNK = 1 << 20
_EXAMPLES = 20
# pair-report columns (a pairs table, not a label table)
DUP_SAMPLE_ID = "dup_sample_id"
DUP_DISTANCE = "dup_distance"
DUP_COSINE = "dup_cosine"
DUP_SPLIT = "dup_split"


@dataclass(frozen=True)
class _Image:
    digest: bytes | None
    phash: int | None
    error: str | None = None


def dedupe(table: "pa.Table", images_root: str | os.PathLike, *, max_distance: int = 6,
           hash: str = "phash", min_cosine: float | None = None, embedding: str | None = None,
           allow_missing: bool = False, drop: bool = False, report: bool = False,
           workers: int | None = None, origin: str = "<stdin>") -> Result:
    """Annotate ``table`` with ``dup_group``, ``dup_kind`` and ``leak`` (or, with
    ``drop``, keep one sample per group; with ``report``, return a table of pairs)."""
    import numpy as np
    import pyarrow as pa

    if hash not in HASHES:
        raise OptionError("hash", f"unknown hash '{hash}'", hint="choose phash or dhash")
    if not 0 <= max_distance <= 16:
        raise OptionError("max_distance", f"must be between 0 and 16 bits, got {max_distance}")
    if min_cosine is not None and not -1.0 <= min_cosine <= 1.0:
        raise OptionError("min_cosine", f"must be between -1 and 1, got {min_cosine}")
    if drop and report:
        raise OptionError(None, "drop and report exclude each other")
    root = os.fspath(images_root)
    if not os.path.isdir(root):
        raise OptionError("images_root", f"{root}: not a folder")
    table = table.drop_columns([c for c in T.DEDUPE_COLUMNS if c in table.column_names])

    codes, names = T.dictionary_codes(table.column(T.SAMPLE_ID))
    n = len(names)
    first_row = np.full(n, table.num_rows, dtype=np.int64)
    np.minimum.at(first_row, codes, np.arange(table.num_rows))
    paths = _resolve(names, first_row, root, origin)
    images = _hash_all(paths, hash, workers)

    missing = [k for k, im in enumerate(images) if im.error == "missing"]
    if missing and not allow_missing:
        k = missing[0]
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise MlcycleError(f"{origin}: row {first_row[k] + 1}: image of sample '{printable(names[k])}' "
                           f"not found: {printable(paths[k])}{more}",
                           hint=f"check {mention('images_root')}, or pass {mention('allow_missing')} to skip missing images")
    if missing:
        reporting.warn(f"{len(missing)} images not found under {root}, skipped (first: {printable(names[missing[0]])})")
    has = np.array([im.digest is not None for im in images], dtype=bool)

    split = _sample_split(table, codes, n)
    # exact: equal digests
    digest_code = np.full(n, -1, dtype=np.int64)
    if has.any():
        _, inv = np.unique(np.array([images[k].digest for k in np.flatnonzero(has)], dtype=object).astype("S16"),
                           return_inverse=True)
        digest_code[has] = inv.ravel()
    hashes = np.array([im.phash or 0 for im in images], dtype=np.uint64)
    idx = np.flatnonzero(has)
    i, j, dist = hamming_pairs(hashes[idx], max_distance)
    ei, ej = idx[i], idx[j]
    edist = dist.astype(np.float64)
    ecos = np.full(len(ei), np.nan)
    emb_col = embedding if embedding is not None else (T.EMBEDDING if T.EMBEDDING in table.column_names else None)
    if emb_col is not None and (min_cosine is not None or embedding is not None):
        ci, cj, cs = _cosine_pairs(table, emb_col, first_row, 0.98 if min_cosine is None else min_cosine, origin)
        ei, ej = np.concatenate([ei, ci]), np.concatenate([ej, cj])
        edist = np.concatenate([edist, np.full(len(ci), np.nan)])
        ecos = np.concatenate([ecos, cs])
    # exact pairs: every member of a digest class with the class's first member
    ex = np.flatnonzero(has)
    _, first_of = np.unique(digest_code[ex], return_index=True)
    lead = np.full(int(digest_code.max()) + 1 if len(ex) else 0, -1, dtype=np.int64)
    lead[digest_code[ex[first_of]]] = ex[first_of]
    star = ex[lead[digest_code[ex]] != ex]
    ei, ej = np.concatenate([ei, lead[digest_code[star]]]), np.concatenate([ej, star])
    edist = np.concatenate([edist, np.zeros(len(star))])
    ecos = np.concatenate([ecos, np.full(len(star), np.nan)])
    a, b = np.minimum(ei, ej), np.maximum(ei, ej)
    _, uniq = np.unique(a * max(n, 1) + b, return_index=True)
    ea, eb, edist, ecos = a[uniq], b[uniq], edist[uniq], ecos[uniq]

    comp = components(n, ea, eb)
    size = np.bincount(comp, minlength=n)
    in_group = size[comp] > 1
    exact = np.zeros(n, bool)
    if has.any():
        cnt = np.bincount(digest_code[has])
        exact[has] = cnt[digest_code[has]] > 1
    # leak: more than one distinct split in the group
    s_codes, s_names = T.dictionary_codes(pa.array(split, type=pa.string()))
    valid = s_codes >= 0
    pairs_cs = np.unique(np.stack([comp[valid], s_codes[valid]]), axis=1)
    n_splits = np.bincount(pairs_cs[0], minlength=n) if pairs_cs.size else np.zeros(n, np.int64)
    leak = in_group & (n_splits[comp] > 1)
    # group ids 0.. in order of first appearance
    order = np.argsort(first_row, kind="stable")
    grp_first = np.full(n, n, dtype=np.int64)
    np.minimum.at(grp_first, comp, np.argsort(order))
    gid_of_comp = np.full(n, -1, dtype=np.int64)
    roots = np.unique(comp[in_group])
    gid_of_comp[roots[np.argsort(grp_first[roots], kind="stable")]] = np.arange(len(roots))
    gid = np.where(in_group, gid_of_comp[comp], -1)
    kind = np.where(exact, T.DUP_EXACT, T.DUP_NEAR).astype(object)
    kind[~in_group] = None

    rank = _split_rank(split)
    keep_sample = np.ones(n, bool)
    if in_group.any():
        members = np.flatnonzero(in_group)
        best = members[np.lexsort((first_row[members], rank[members], gid[members]))]
        _, first_in = np.unique(gid[best], return_index=True)
        keep_sample[members] = False
        keep_sample[best[first_in]] = True

    summary = _summary(names, gid, in_group, exact, leak, keep_sample, split, hash, max_distance,
                       len(missing), has, first_row)
    if report:
        out = _pairs_table(names, split, ea, eb, edist, ecos, digest_code, gid, leak, rank, first_row)
        return Result(out, summary, ())
    out = table.append_column(T.DUP_GROUP, pa.array(gid[codes], mask=gid[codes] < 0, type=pa.int64()))
    out = out.append_column(T.DUP_KIND, pa.array(kind[codes].tolist(), type=pa.string()))
    out = out.append_column(T.LEAK, pa.array(leak[codes]))
    if drop:
        out = out.filter(pa.array(keep_sample[codes]))
    summary["rows_written"] = out.num_rows
    return Result(out, summary, ())


# --------------------------------------------------------------------------- files

_DRIVE = re.compile(r"^[A-Za-z]:")


def _resolve(names: list, first_row: "np.ndarray", root: str, origin: str) -> list[str]:
    """The file of each sample, refusing ids that leave the images root."""
    real_root = os.path.realpath(root)
    out = []
    for k, sid in enumerate(names):
        where = f"{origin}: row {first_row[k] + 1}: sample_id '{printable(sid)}'"
        parts = re.split(r"[/\\]", sid)
        if sid.startswith(("/", "\\")) or _DRIVE.match(sid) or os.path.isabs(sid):
            raise MlcycleError(f"{where} is an absolute path; dedupe reads only below the images root",
                               hint=f"sample ids must be paths relative to {mention('images_root')}")
        if ".." in parts or "\x00" in sid:
            raise MlcycleError(f"{where} leaves the images root ('..'); dedupe reads only below it",
                               hint=f"sample ids must be paths relative to {mention('images_root')}")
        path = os.path.join(root, *[p for p in parts if p])
        real = os.path.realpath(path)
        if os.path.commonpath([real_root, real]) != real_root:
            raise MlcycleError(f"{where} resolves outside the images root (a symbolic link to {printable(real)})")
        out.append(path)
    return out


def _hash_all(paths: Sequence[str], hash: str, workers: int | None) -> list[_Image]:
    from concurrent.futures import ThreadPoolExecutor

    workers = workers or min(8, os.cpu_count() or 1)
    fn = _phash if hash == "phash" else _dhash
    with reporting.progress("hashing images", total=len(paths)) as bar:
        def one(path: str) -> _Image:
            im = _hash_file(path, fn)
            bar.advance(1)
            return im

        if workers <= 1 or len(paths) < 16:
            return [one(p) for p in paths]
        with ThreadPoolExecutor(workers) as pool:
            return list(pool.map(one, paths, chunksize=16))


def _hash_file(path: str, fn) -> _Image:
    import hashlib

    try:
        st = os.stat(path)
    except FileNotFoundError:
        return _Image(None, None, "missing")
    except OSError as exc:
        raise MlcycleError(f"{printable(path)}: cannot read image: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        raise MlcycleError(f"{printable(path)}: not a regular file (a folder, FIFO or device); refusing to read it")
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise MlcycleError(f"{printable(path)}: cannot open image: {exc.strerror or exc}") from None
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):  # replaced since the stat
            raise MlcycleError(f"{printable(path)}: not a regular file; refusing to read it")
        h = hashlib.blake2b(digest_size=16)
        for block in iter(lambda: fh.read(_CHUNK), b""):
            h.update(block)
        fh.seek(0)
        try:
            p = fn(fh)
        except Exception as exc:  # PIL raises many types for undecodable data
            raise MlcycleError(f"{printable(path)}: cannot decode image ({type(exc).__name__}: {exc})") from None
    return _Image(h.digest(), p)


def _grey(fh, size: tuple[int, int]):
    import numpy as np
    from PIL import Image

    with Image.open(fh) as img:
        img.draft("L", (size[0] * 4, size[1] * 4))  # JPEG: decode at a reduced scale
        grey = img.convert("L").resize(size, Image.Resampling.LANCZOS)
        return np.asarray(grey, dtype=np.float64)


def _bits_to_int(bits: "np.ndarray") -> int:
    import numpy as np

    return int(np.packbits(bits.ravel().astype(np.uint8)).view(">u8")[0])


def _dhash(fh) -> int:
    g = _grey(fh, (9, 8))
    return _bits_to_int(g[:, 1:] > g[:, :-1])


_DCT: dict[int, Any] = {}


def _phash(fh) -> int:
    import numpy as np

    g = _grey(fh, (32, 32))
    if 32 not in _DCT:
        k = np.arange(32)
        _DCT[32] = np.cos(np.pi * (2 * k[None, :] + 1) * k[:, None] / 64)  # DCT-II rows
    d = _DCT[32]
    low = (d @ g @ d.T)[:8, :8]
    return _bits_to_int(low > np.median(low))


# --------------------------------------------------------------------------- search

def popcount(x: "np.ndarray") -> "np.ndarray":
    """Set bits of each uint64."""
    import numpy as np

    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(x).astype(np.int64)
    table = np.array([bin(v).count("1") for v in range(256)], dtype=np.int64)
    return table[x.view(np.uint8).reshape(-1, 8)].sum(axis=1)


def hamming_pairs(h: "np.ndarray", max_distance: int, chunk: int = 4_000_000):
    """All pairs (i < j) of 64-bit hashes within ``max_distance`` bits: (i, j, distance)."""
    import itertools

    import numpy as np

    from mlcycle._pairs import pair_chunks

    h = np.asarray(h, dtype=np.uint64)
    n = len(h)
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64))
    if n < 2:
        return empty
    radius = max_distance // 4
    masks = [0] + [sum(1 << b for b in bits) for r in range(1, radius + 1)
                   for bits in itertools.combinations(range(16), r)]
    found_i, found_j, found_d = [], [], []
    for band in range(4):
        key = ((h >> np.uint64(16 * band)) & np.uint64(0xFFFF)).astype(np.int64)
        order = np.argsort(key, kind="stable")
        sk = key[order]
        for mask in masks:
            probe = key ^ mask
            lo = np.searchsorted(sk, probe, "left")
            cnt = np.searchsorted(sk, probe, "right") - lo
            for row, off in pair_chunks(cnt, chunk):
                col = order[lo[row] + off]
                keep = row < col
                row, col = row[keep], col[keep]
                d = popcount(h[row] ^ h[col])
                ok = d <= max_distance
                found_i.append(row[ok])
                found_j.append(col[ok])
                found_d.append(d[ok])
    if not found_i:
        return empty
    i, j, d = np.concatenate(found_i), np.concatenate(found_j), np.concatenate(found_d)
    _, uniq = np.unique(i * n + j, return_index=True)
    return i[uniq], j[uniq], d[uniq]


def _cosine_pairs(table, column, first_row, min_cosine, origin, block: int = 2048):
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if column not in table.column_names:
        raise OptionError("embedding", f"{origin}: no column '{column}'")
    col = table.column(column).take(pa.array(first_row)).combine_chunks()
    if not (pa.types.is_list(col.type) or pa.types.is_large_list(col.type) or pa.types.is_fixed_size_list(col.type)):
        raise MlcycleError(f"{origin}: column '{column}' has type {col.type}, expected a list of floats")
    lengths = pc.fill_null(pc.list_value_length(col), 0).to_numpy(zero_copy_only=False)
    dim = int(np.bincount(lengths[lengths > 0]).argmax()) if (lengths > 0).any() else 0
    ok = lengths == dim
    if dim == 0 or not ok.any():
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    if (~ok).any():
        reporting.warn(f"{int((~ok).sum())} samples have no {dim}-value '{column}'; not compared by embedding")
    rows = np.flatnonzero(ok)
    e = pc.list_flatten(col.filter(pa.array(ok))).to_numpy(zero_copy_only=False).astype(np.float32).reshape(-1, dim)
    norm = np.linalg.norm(e, axis=1, keepdims=True)
    e = e / np.where(norm > 0, norm, 1)
    out_i, out_j, out_s = [], [], []
    for start in range(0, len(e), block):
        s = e[start:start + block] @ e.T
        i, j = np.nonzero(s >= min_cosine)
        keep = j > i + start
        out_i.append(rows[i[keep] + start])
        out_j.append(rows[j[keep]])
        out_s.append(s[i[keep], j[keep]].astype(np.float64))
    return np.concatenate(out_i), np.concatenate(out_j), np.concatenate(out_s)


def components(n: int, i: "np.ndarray", j: "np.ndarray") -> "np.ndarray":
    """Connected components of n nodes and edges (i, j): each node's smallest member."""
    import numpy as np

    lab = np.arange(n, dtype=np.int64)
    if not len(i):
        return lab
    while True:
        m = np.minimum(lab[i], lab[j])
        new = lab.copy()
        np.minimum.at(new, i, m)
        np.minimum.at(new, j, m)
        while True:  # pointer jumping
            nxt = new[new]
            if np.array_equal(nxt, new):
                break
            new = nxt
        if np.array_equal(new, lab):
            return lab
        lab = new


# --------------------------------------------------------------------------- results

def _sample_split(table, codes, n):
    """Each sample's split: the first non-null split among its rows (None if none)."""
    import numpy as np

    out = np.full(n, None, dtype=object)
    if T.SPLIT not in table.column_names:
        return out
    sc, snames = T.dictionary_codes(table.column(T.SPLIT))
    rows = np.flatnonzero(sc >= 0)
    if len(rows):
        sample_of = codes[rows]
        _, first = np.unique(sample_of, return_index=True)
        out[sample_of[first]] = np.asarray(snames, dtype=object)[sc[rows[first]]]
    return out


def _split_rank(split: "np.ndarray") -> "np.ndarray":
    import numpy as np

    rank = np.full(len(split), len(SPLIT_PRIORITY) + 1, dtype=np.int64)
    for r, name in enumerate(SPLIT_PRIORITY):
        rank[split == name] = r
    other = (rank == len(SPLIT_PRIORITY) + 1) & np.array([s is not None for s in split], dtype=bool)
    rank[other] = len(SPLIT_PRIORITY)
    return rank


def _pairs_table(names, split, ea, eb, edist, ecos, digest_code, gid, leak, rank, first_row):
    import numpy as np
    import pyarrow as pa

    # the sample --drop would keep comes first
    swap = (rank[eb] < rank[ea]) | ((rank[eb] == rank[ea]) & (first_row[eb] < first_row[ea]))
    a, b = np.where(swap, eb, ea), np.where(swap, ea, eb)
    exact = (digest_code[a] >= 0) & (digest_code[a] == digest_code[b])
    nm = np.asarray(names, dtype=object)
    order = np.lexsort((first_row[b], gid[a]))
    a, b, exact, edist, ecos = a[order], b[order], exact[order], edist[order], ecos[order]
    return pa.table({
        T.SAMPLE_ID: pa.array(nm[a].tolist(), type=pa.string()),
        DUP_SAMPLE_ID: pa.array(nm[b].tolist(), type=pa.string()),
        T.DUP_KIND: pa.array(np.where(exact, T.DUP_EXACT, T.DUP_NEAR).tolist(), type=pa.string()),
        DUP_DISTANCE: pa.array(edist, mask=np.isnan(edist)).cast(pa.int64()),
        DUP_COSINE: pa.array(ecos, mask=np.isnan(ecos)),
        T.SPLIT: pa.array(split[a].tolist(), type=pa.string()),
        DUP_SPLIT: pa.array(split[b].tolist(), type=pa.string()),
        T.LEAK: pa.array(np.array([x is not None and y is not None and x != y
                                   for x, y in zip(split[a], split[b])], dtype=bool)),  # pairs only
        T.DUP_GROUP: pa.array(gid[a], type=pa.int64()),
    })


def _summary(names, gid, in_group, exact, leak, keep, split, hash, max_distance, missing, has, first_row):
    import numpy as np

    groups = int(gid.max()) + 1 if in_group.any() else 0
    leak_groups = np.unique(gid[leak])
    split_pairs: dict[str, int] = {}
    if leak.any():
        members = np.flatnonzero(leak)
        kinds: dict[int, set] = {}
        for g, s in zip(gid[members].tolist(), split[members].tolist()):  # leaking samples only
            kinds.setdefault(g, set()).add(str(s))
        for ss in kinds.values():
            key = "/".join(sorted(ss, key=lambda x: (SPLIT_PRIORITY.index(x) if x in SPLIT_PRIORITY else 9, x)))
            split_pairs[key] = split_pairs.get(key, 0) + 1
    examples = []
    for g in range(min(groups, _EXAMPLES)):
        members = np.flatnonzero(gid == g)
        members = members[np.argsort(first_row[members])]
        examples.append({"group": g, "samples": [names[k] for k in members[:10]],
                         "kind": T.DUP_EXACT if exact[members].all() else T.DUP_NEAR,
                         T.LEAK: bool(leak[members].any())})
    return {
        "dedupe_version": 1,
        "hash": hash, "max_distance": max_distance,
        "samples": len(names), "hashed": int(has.sum()), "missing": missing,
        "groups": groups,
        "samples_in_groups": int(in_group.sum()),
        "exact_samples": int(exact.sum()),
        "near_samples": int((in_group & ~exact).sum()),
        "redundant_samples": int((in_group & ~keep).sum()),
        "leak_groups": len(leak_groups), "leak_samples": int(leak.sum()),
        "leaks_by_splits": split_pairs,
        "split_priority": list(SPLIT_PRIORITY),
        "examples": examples,
    }
