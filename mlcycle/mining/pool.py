"""Similar-sample search: the samples of an unlabeled pool that look most like the failures.

Each pool sample scores its best cosine similarity to a failure's embedding (one matrix
product per chunk of pool rows); near-duplicates of labeled samples and of each other
are dropped; the ``k`` best are chosen, marked ``similar_to_failure`` with the failure
they resemble (``hard_match``). The pool is read through ``mlcycle.io.scan``, so a
Parquet pool is streamed batch by batch (three passes) in bounded memory.

Library code: never prints, knows nothing of the command line.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Iterable, Iterator, Sequence

from mlcycle import table as T
from mlcycle.errors import MlcycleError
from mlcycle.mining.reasons import SIMILAR_TO_FAILURE

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import pyarrow as pa

    from mlcycle.io import TableScan
    from mlcycle.mining.options import PoolOptions


def normalize_rows(mat: "np.ndarray") -> "np.ndarray":
    """L2-normalise rows (float32); all-zero rows stay zero."""
    import numpy as np

    mat = np.asarray(mat, dtype=np.float32)
    norm = np.linalg.norm(mat, axis=1, keepdims=True)
    return mat / np.where(norm > 0, norm, 1.0)


def knn_search(
    failures: "np.ndarray",
    pool_chunks: Iterable["np.ndarray"],
    k: int,
    labeled: "np.ndarray | None" = None,
    dup_threshold: float = 0.95,
    chunk_labeled: int = 8192,
) -> tuple["np.ndarray", "np.ndarray", "np.ndarray"]:
    """The core search: for L2-normalised ``failures`` (m, d) and pool chunks (c, d),
    return (pool index, cosine, failure index) of up to ``k`` chosen pool items, best first.

    Each pool item scores ``max_f cos(x, f)`` (one matrix product per chunk); items whose
    cosine to any ``labeled`` embedding exceeds ``dup_threshold`` are dropped; the
    survivors are picked greedily in score order, each pick suppressing pool items with
    cosine > ``dup_threshold`` to it. Memory is bounded by the chunk size and a candidate
    buffer of ``max(8k, 1024)`` items, whatever the pool size.
    """
    import numpy as np

    failures = np.ascontiguousarray(failures, dtype=np.float32)
    buf = max(8 * k, 1024)
    cand_idx = np.zeros(0, np.int64)
    cand_sim = np.zeros(0, np.float32)
    cand_fail = np.zeros(0, np.int64)
    cand_vec = np.zeros((0, failures.shape[1]), np.float32)
    offset = 0
    lab = None if labeled is None or len(labeled) == 0 else np.ascontiguousarray(labeled, dtype=np.float32)
    for chunk in pool_chunks:
        chunk = np.asarray(chunk, dtype=np.float32)
        c = len(chunk)
        if c == 0:
            continue
        sims = chunk @ failures.T                       # (c, m)
        best = sims.argmax(axis=1)
        best_sim = sims[np.arange(c), best]
        del sims
        keep = np.ones(c, bool)
        if lab is not None:
            for j in range(0, len(lab), chunk_labeled):
                keep &= (chunk @ lab[j:j + chunk_labeled].T).max(axis=1) <= dup_threshold
        idx = np.flatnonzero(keep)
        if len(idx) > buf:
            idx = idx[np.argpartition(-best_sim[idx], buf - 1)[:buf]]
        cand_idx = np.concatenate([cand_idx, idx + offset])
        cand_sim = np.concatenate([cand_sim, best_sim[idx]])
        cand_fail = np.concatenate([cand_fail, best[idx]])
        cand_vec = np.concatenate([cand_vec, chunk[idx]])
        if len(cand_idx) > 2 * buf:
            top = np.argpartition(-cand_sim, buf - 1)[:buf]
            cand_idx, cand_sim, cand_fail, cand_vec = cand_idx[top], cand_sim[top], cand_fail[top], cand_vec[top]
        offset += c
    order = np.lexsort((cand_idx, -cand_sim))
    cand_idx, cand_sim, cand_fail, cand_vec = cand_idx[order], cand_sim[order], cand_fail[order], cand_vec[order]
    # greedy diversification in blocks: each pick suppresses its near-duplicates
    picked: list[int] = []
    picked_vec = np.zeros((0, cand_vec.shape[1]), np.float32)
    block = 512
    for start in range(0, len(cand_idx), block):
        if len(picked) >= k:
            break
        vec = cand_vec[start:start + block]
        ok = np.ones(len(vec), bool)
        if len(picked_vec):
            ok &= (vec @ picked_vec.T).max(axis=1) <= dup_threshold
        local = np.flatnonzero(ok)
        gram = vec[local] @ vec[local].T
        suppressed = np.zeros(len(local), bool)
        new = []
        for j in range(len(local)):
            if suppressed[j]:
                continue
            new.append(local[j])
            suppressed |= gram[j] > dup_threshold
            if len(picked) + len(new) >= k:
                break
        picked.extend(start + np.asarray(new, np.int64))
        picked_vec = np.concatenate([picked_vec, vec[new]])
    sel = np.asarray(picked, np.int64)
    return cand_idx[sel], cand_sim[sel], cand_fail[sel]


class _InMemory:
    """A table in memory with the slice of ``io.TableScan``'s interface the search uses."""

    def __init__(self, table: "pa.Table", batch_rows: int) -> None:
        self.table = table
        self.batch_rows = max(1, int(batch_rows))
        self.column_names = table.column_names

    def empty(self) -> "pa.Table":
        return self.table.slice(0, 0)

    def batches(self, columns: Sequence[str] | None = None) -> Iterator["pa.Table"]:
        t = self.table if columns is None else self.table.select(
            [c for c in self.table.column_names if c in set(columns)])
        for start in range(0, max(t.num_rows, 1), self.batch_rows):
            yield t.slice(start, self.batch_rows)


def open_pool(pool: "str | os.PathLike | pa.Table | TableScan", batch_rows: int = 65536):
    """``(scan, name)``: the pool as batches (a path is read with ``io.scan``) and its
    name for messages."""
    from mlcycle import io

    if isinstance(pool, (str, os.PathLike)):
        return io.scan(pool, batch_rows=batch_rows), io.display_name(pool)
    if isinstance(pool, io.TableScan):
        return pool, None
    if T.SAMPLE_ID not in pool.column_names:
        raise MlcycleError(f"<pool>: not a label table: required column '{T.SAMPLE_ID}' is missing")
    return _InMemory(pool, batch_rows), None


def _embeddings_of(t: "pa.Table", column: str, origin: str, offset: int = 0) -> tuple["np.ndarray", "np.ndarray"]:
    """Rows of ``t`` with an embedding and their L2-normalised (m, d) float32 matrix."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    col = t.column(column).combine_chunks()
    if not (pa.types.is_list(col.type) or pa.types.is_large_list(col.type) or pa.types.is_fixed_size_list(col.type)):
        raise MlcycleError(f"{origin}: column '{column}' has type {col.type}, expected a list of floats")
    valid = col.is_valid().to_numpy(zero_copy_only=False)
    rows = np.flatnonzero(valid)
    if len(rows) == 0:
        return rows, np.zeros((0, 0), np.float32)
    sub = col.filter(pa.array(valid))
    lengths = pc.list_value_length(sub).to_numpy(zero_copy_only=False)
    d = int(lengths[0])
    wrong = lengths != d
    if wrong.any() or d == 0:
        i = int(np.argmax(wrong)) if d else 0
        raise MlcycleError(f"{origin}: row {offset + rows[i] + 1}: embedding has {int(lengths[i])} values, the first has {d}",
                           hint="every embedding in a column must have the same length")
    flat = pc.list_flatten(sub).to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    return rows, normalize_rows(flat.reshape(len(rows), d))


def _is_in(col, values: Sequence[str]) -> "np.ndarray":
    import pyarrow as pa
    import pyarrow.compute as pc

    return pc.fill_null(pc.is_in(col, value_set=pa.array(list(values), type=pa.string())), False) \
        .to_numpy(zero_copy_only=False).astype(bool)


def _first_per_sample(sample_codes: "np.ndarray", rows: "np.ndarray") -> "np.ndarray":
    """Of ``rows``, the first row of each sample (input order)."""
    import numpy as np

    _, first = np.unique(sample_codes[rows], return_index=True)
    return rows[np.sort(first)]


def search_pool(failures: Sequence[str], table: "pa.Table", pool, opts: "PoolOptions") -> tuple["pa.Table", dict]:
    """Pool samples most similar to the ``failures`` (sample ids, best first) of ``table``.

    Failure embeddings come from ``opts.embedding`` in the evaluated table, or, where a
    failure sample has none there, from the pool rows of the same sample. Pool samples
    already in the evaluated table are never chosen; nor are their near-duplicates.
    ``pool`` is a path, an ``io.TableScan`` or a table. Returns the chosen pool rows
    (every row of each chosen sample) with ``hard_score`` = cosine similarity (clipped
    to [0, 1]), ``hard_reason`` = similar_to_failure and ``hard_match`` = the failure
    sample it resembles, best first; and the pool part of the summary.
    """
    import numpy as np
    import pyarrow as pa

    from mlcycle import io
    from mlcycle.mining.ranking import set_column

    reader, name = open_pool(pool, opts.chunk_rows)
    origin = name or opts.origin
    if opts.embedding not in reader.column_names:
        raise MlcycleError(f"{origin}: no embedding column '{opts.embedding}'",
                           hint="columns present: " + ", ".join(reader.column_names))
    failures = list(failures[: opts.failures] if opts.failures else failures)
    if not failures:
        raise MlcycleError("no failures to search the pool for: nothing was flagged",
                           hint="lower the minimum score or allow more reasons")
    t_codes, t_names = T.dictionary_codes(table.column(T.SAMPLE_ID))
    emb_by_sample: dict[str, np.ndarray] = {}
    lab_vecs = []
    if opts.embedding in table.column_names:
        rows, mat = _embeddings_of(table, opts.embedding, "input table")
        if len(rows):
            first = _first_per_sample(t_codes, rows)
            pos = np.searchsorted(rows, first)
            lab_vecs.append(mat[pos])
            for r, p in zip(first, pos):
                emb_by_sample[t_names[t_codes[r]]] = mat[p]

    cols = [T.SAMPLE_ID, opts.embedding]
    # pass 1: pool rows of labeled samples (near-duplicate exclusion, missing failure embeddings)
    offset = 0
    labeled_in_pool: set[str] = set()
    for t in reader.batches(cols):
        mask = _is_in(t.column(T.SAMPLE_ID), t_names)
        if mask.any():
            sub = t.filter(pa.array(mask))
            r, m = _embeddings_of(sub, opts.embedding, origin, offset)
            if len(r):
                lab_vecs.append(m)
                names = sub.column(T.SAMPLE_ID).take(pa.array(r)).to_pylist()
                labeled_in_pool.update(names)
                for s, v in zip(names, m):
                    emb_by_sample.setdefault(s, v)
        offset += t.num_rows
    fail_names = [s for s in failures if s in emb_by_sample]
    if not fail_names:
        raise MlcycleError(f"no embedding for any failure sample in column '{opts.embedding}'",
                           hint="add the embedding column to the evaluated table, or include the labeled samples in the pool")
    fmat = np.stack([emb_by_sample[s] for s in fail_names])
    labeled = np.concatenate(lab_vecs) if lab_vecs else None
    if labeled is not None and labeled.shape[1] != fmat.shape[1]:
        raise MlcycleError(f"{origin}: embeddings have {fmat.shape[1]} and {labeled.shape[1]} values in different places",
                           hint="the pool and the evaluated table need embeddings of one model")

    # pass 2: the search, one chunk at a time
    cand_names: list["pa.Array"] = []
    state = {"rows": 0, "cand": 0}

    def chunks():
        off = 0
        for t in reader.batches(cols):
            keep = ~_is_in(t.column(T.SAMPLE_ID), t_names)
            r, m = _embeddings_of(t, opts.embedding, origin, off)
            sel = keep[r]
            r, m = r[sel], m[sel]
            off += t.num_rows
            state["rows"] = off
            if len(r) == 0:
                continue
            if m.shape[1] != fmat.shape[1]:
                raise MlcycleError(f"{origin}: pool embeddings have {m.shape[1]} values, the failures' {fmat.shape[1]}",
                                   hint="the pool and the evaluated table need embeddings of one model")
            cand_names.append(t.column(T.SAMPLE_ID).combine_chunks().take(pa.array(r)))
            state["cand"] += len(r)
            yield m

    idx, sim, fail = knn_search(fmat, chunks(), opts.k, labeled, opts.dup_threshold)
    names_all = pa.chunked_array(cand_names, type=pa.string()) if cand_names else pa.chunked_array([], type=pa.string())
    chosen_names = names_all.take(pa.array(idx, type=pa.int64())).to_pylist() if len(idx) else []
    # one entry per sample (a sample with several rows could appear twice)
    seen: dict[str, int] = {}
    for i, s in enumerate(chosen_names):
        seen.setdefault(s, i)
    order = sorted(seen.values())
    chosen_names = [chosen_names[i] for i in order]
    sim, fail = sim[order], fail[order]

    # pass 3: every row of the chosen samples
    parts = []
    for t in reader.batches(None):
        mask = _is_in(t.column(T.SAMPLE_ID), chosen_names)
        if mask.any():
            parts.append(t.filter(pa.array(mask)))
    out = io.concat(parts) if len(parts) > 1 else (parts[0] if parts else reader.empty())
    rank_of = {s: i for i, s in enumerate(chosen_names)}
    r = np.array([rank_of[s] for s in out.column(T.SAMPLE_ID).to_pylist()], dtype=np.int64)
    perm = np.lexsort((np.arange(len(r)), r))
    out = out.take(pa.array(perm, type=pa.int64()))
    r = r[perm]
    out = set_column(out, T.HARD_SCORE, pa.array(np.clip(sim[r].astype(np.float64), 0.0, 1.0), type=pa.float64()))
    out = set_column(out, T.HARD_REASON, pa.array([SIMILAR_TO_FAILURE] * len(r), type=pa.string()))
    match = np.array(fail_names, dtype=object)[fail[r]] if len(r) else []
    out = set_column(out, T.HARD_MATCH, pa.array(list(match), type=pa.string()))
    summary = {
        "failures_used": len(fail_names),
        "failures_without_embedding": len(failures) - len(fail_names),
        "pool_rows": int(state["rows"]),
        "pool_candidates": int(state["cand"]),
        "pool_samples_already_labeled": len(labeled_in_pool),
        "chosen": len(chosen_names),
        "k": opts.k,
        "dup_threshold": opts.dup_threshold,
        "top": [
            {"sample_id": s, "similarity": float(v), T.HARD_MATCH: fail_names[fi]}
            for s, v, fi in list(zip(chosen_names, sim, fail))[:10]
        ],
    }
    return out, summary
