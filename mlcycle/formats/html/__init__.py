"""``export html``: a self-contained, offline HTML report of a label table.

The report is a folder (``index.html`` + ``thumbs/``) or, with ``embed``, one HTML file
with the thumbnails inlined as data URIs. It needs no server and no network: the page's
JavaScript and CSS (``static/report.js``, ``static/report.css``, hand-written) are
inlined, the data goes in as JSON inside ``<script type="application/json">`` with
``<``, ``>``, ``&`` and U+2028/U+2029 escaped, and the script renders every piece of
data with ``textContent``/``setAttribute`` only. A Content-Security-Policy allows only
that one inline script (by its hash) and no network requests.

Options (``html.WriteOptions``): ``embed`` (bool), ``limit`` (int: keep the first N
samples in sort order), ``sort_by`` (column name, ``sample_id`` or ``errors``),
``metrics`` (path to a metrics document, the JSON ``evaluate`` writes), ``thumb_size``
(longest side, px), ``title``. ``images_root`` (else the table's ``images_root`` metadata, else the
current folder) is where the images are: ``images_root / sample_id``.

Thumbnails are made once with Pillow (JPEG draft decoding, in a thread pool) and reused
when the report is written again into the same folder and the image has not changed.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlcycle import table as T
from mlcycle.errors import MlcycleError, OptionError
from mlcycle.formats import ReadOptions
from mlcycle.formats import WriteOptions as CommonWriteOptions

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

STATIC = Path(__file__).parent / "static"
THUMB_SIZE = 384
THUMBS = "thumbs"
# Columns never put in the page: big nested data nobody reads in a table cell.
SKIP_COLUMNS = (T.SEGMENTATION,)
MAX_FILTER_VALUES = 200  # a column with more distinct values is not offered as a filter
MAX_INT_FILTER_VALUES = 20  # integer columns are sort keys; with this few values, filters too


@dataclass(frozen=True)
class WriteOptions(CommonWriteOptions):
    """The report's options. ``embed``: one self-contained HTML file, thumbnails inlined;
    ``limit``: only the first N samples in sort order; ``sort_by``: a column (numbers:
    largest first), ``sample_id`` or ``errors`` (default: hard_score, else errors, else
    sample_id); ``metrics``: a metrics document to add as a page; ``thumb_size``: the
    thumbnails' longest side in pixels; ``title``: the page title."""

    embed: bool = False
    limit: int | None = None
    sort_by: str | None = None
    metrics: Path | None = None
    thumb_size: int = THUMB_SIZE
    title: str = "mlcycle report"

    def __post_init__(self) -> None:
        if self.limit is not None and int(self.limit) < 0:
            raise OptionError("limit", f"{self.limit}: must be 0 or more")


def read(path: Path, options: ReadOptions | None = None) -> "pa.Table":
    raise OptionError("format_name", "html can be written but not read", hint="read the table the report was made from")


def detect(path: Path) -> bool:
    return False


# --------------------------------------------------------------------------- data

def _json_safe_columns(table: "pa.Table") -> list[str]:
    """Columns that go into the page: everything except segmentation and float vectors
    (embeddings), which are large and unreadable in a table cell."""
    import pyarrow as pa

    keep = []
    for f in table.schema:
        if f.name in SKIP_COLUMNS:
            continue
        t = f.type
        if f.name != T.BBOX and (pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)):
            if pa.types.is_floating(t.value_type) or pa.types.is_integer(t.value_type):
                continue
        if pa.types.is_binary(t) or pa.types.is_large_binary(t):
            continue
        keep.append(f.name)
    return keep


def _sample_order(table: "pa.Table", samples: "pa.Array", sort_by: str | None) -> tuple["Any", str, bool]:
    """Indices into ``samples`` in report order, the sort column and whether descending.

    Numeric columns sort by the sample's largest value, descending; text columns by the
    smallest value, ascending; nulls last. Default: ``hard_sample_score``/``hard_score``
    when present, else the number of ``eval`` errors (fp + fn), else ``sample_id``."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    names = table.column_names
    if sort_by is None:
        for c in (T.HARD_SAMPLE_SCORE, T.HARD_SCORE):
            if c in names:
                sort_by = c
                break
        else:
            sort_by = "errors" if T.EVAL in names else T.SAMPLE_ID
    if sort_by == T.SAMPLE_ID:
        return pc.array_sort_indices(samples).to_numpy(), sort_by, False
    codes = pc.index_in(table[T.SAMPLE_ID], value_set=samples).to_numpy()
    if sort_by == "errors":
        if T.EVAL not in names:
            raise OptionError("sort_by", "errors needs the eval column", hint="evaluate the table first")
        ev = pc.fill_null(pc.is_in(table[T.EVAL], value_set=pa.array([T.FP, T.FN])), False).to_numpy(zero_copy_only=False)
        key = np.bincount(codes, weights=ev.astype(np.float64), minlength=len(samples))
        return np.argsort(-key, kind="stable"), sort_by, True
    if sort_by not in names:
        raise OptionError("sort_by", f"{sort_by}: no such column",
                          hint="columns: " + ", ".join(names) + ", or errors")
    col = table[sort_by]
    if pa.types.is_integer(col.type) or pa.types.is_floating(col.type) or pa.types.is_boolean(col.type):
        vals = pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False).astype(np.float64)
        key = np.full(len(samples), -np.inf)
        ok = ~np.isnan(vals)
        np.maximum.at(key, codes[ok], vals[ok])
        return np.lexsort((np.arange(len(samples)), -key)), sort_by, True
    g = pa.table({"s": codes, "v": pc.cast(col, pa.string())}).group_by("s").aggregate([("v", "min")])
    first = pa.array([None] * len(samples), pa.string())
    first = pc.replace_with_mask(first, pc.is_in(pa.array(np.arange(len(samples))), value_set=g["s"]),
                                 g["v_min"].take(pc.sort_indices(g["s"])).combine_chunks())
    return pc.array_sort_indices(first, null_placement="at_end").to_numpy(), sort_by, False


def _first_per_sample(table: "pa.Table", codes, n: int, column: str):
    """The first non-null value of ``column`` for each sample (None where there is none)."""
    import numpy as np
    import pyarrow.compute as pc

    out = np.full(n, None, dtype=object)
    if column not in table.column_names:
        return out
    col = table[column]
    valid = pc.is_valid(col).to_numpy(zero_copy_only=False)
    idx = np.flatnonzero(valid)[::-1]  # reversed: the first row wins the assignment below
    vals = col.take(idx).to_numpy(zero_copy_only=False)
    out[codes[idx]] = vals
    return out


def build_data(table: "pa.Table", sort_by: str | None = None, limit: int | None = None) -> dict[str, Any]:
    """The page's data: samples (in report order) and rows as columns."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    table = T.normalize(table)
    samples = pc.unique(table[T.SAMPLE_ID]) if table.num_rows else pa.array([], pa.string())
    order, sort_col, desc = _sample_order(table, samples, sort_by)
    if limit is not None:
        order = order[:max(int(limit), 0)]
    samples = samples.take(pa.array(order, pa.int64()))
    idx = pc.index_in(table[T.SAMPLE_ID], value_set=samples)
    if limit is not None:
        keep = pc.is_valid(idx)
        table, idx = table.filter(keep), idx.filter(keep)
    codes = idx.to_numpy(zero_copy_only=False)
    codes = np.asarray(codes, dtype=np.int64)
    # rows sorted by sample (stable), so the page reads each sample's rows as one slice
    row_order = np.argsort(codes, kind="stable")
    table = table.take(pa.array(row_order))
    codes = codes[row_order]
    n = len(samples)
    widths = _first_per_sample(table, codes, n, T.WIDTH)
    heights = _first_per_sample(table, codes, n, T.HEIGHT)

    columns = _json_safe_columns(table)
    rows: dict[str, list] = {}
    for c in columns:
        if c == T.BBOX:
            b = T.bboxes(table).reshape(-1, 4)
            missing = np.flatnonzero(np.isnan(b).any(axis=1))
            rows[c] = np.round(b, 2).tolist()
            for i in missing:  # rows without a box (sample rows, image-level labels)
                rows[c][i] = None
        else:
            rows[c] = table[c].to_pylist()
    numeric, filters = [], []
    for c in columns:
        t = table.schema.field(c).type
        if c in (T.BBOX, T.SAMPLE_ID, T.LABEL_ID, T.IMAGE_ID, T.EVAL_ID, T.WIDTH, T.HEIGHT, T.AREA, T.CATEGORY_ID):
            continue
        if pa.types.is_floating(t) or (pa.types.is_integer(t) and c not in (T.Z_ORDER, T.GROUP_ID, T.TRACK_ID, T.FRAME)):
            numeric.append(c)
            # a small integer code (VOC difficult 0/1, a level 1..5) is also a filter
            if not (pa.types.is_integer(t) and len(pc.unique(table[c])) <= MAX_INT_FILTER_VALUES):
                continue
        if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_boolean(t) or pa.types.is_dictionary(t) \
                or pa.types.is_integer(t) or pa.types.is_list(t):
            try:
                distinct = len(pc.unique(pc.list_flatten(table[c]) if pa.types.is_list(t) else table[c]))
            except (pa.ArrowNotImplementedError, pa.ArrowInvalid):
                continue
            if distinct <= MAX_FILTER_VALUES:
                filters.append(c)
    # the well-known filters first, in the order the issue names them
    first = [T.LABEL, T.SOURCE, T.EVAL, T.HARD_REASON, T.SPLIT]
    filters = [c for c in first if c in filters] + [c for c in filters if c not in first]
    starts = np.searchsorted(codes, np.arange(n + 1)).tolist()
    return {
        "samples": {"id": samples.to_pylist(), "w": widths.tolist(), "h": heights.tolist(),
                    "start": starts[:-1], "end": starts[1:]},
        "rows": rows,
        "columns": columns,
        "numeric": numeric,
        "filters": filters,
        "sort": {"by": sort_col, "desc": desc},
        "classes": sorted(v for v in pc.unique(T.column_or_null(table, T.LABEL)).to_pylist() if v is not None),
    }


# --------------------------------------------------------------------------- thumbnails

def _thumb(src: Path, dst: Path, size: int) -> tuple[int, int] | None:
    """Write a JPEG thumbnail of ``src`` to ``dst`` (kept when newer than ``src``) and
    return the image's own size; None when the image is missing or unreadable."""
    from PIL import Image

    try:
        mtime = src.stat().st_mtime
        with Image.open(src) as im:  # lazy: the header only
            full = im.size
            try:
                if dst.stat().st_mtime >= mtime and dst.stat().st_size > 0:
                    return full
            except OSError:
                pass
            im.draft("RGB", (size, size))  # JPEG: decode at a reduced scale (fast)
            im.thumbnail((size, size))
            if im.mode not in ("RGB", "L"):
                rgba = im.convert("RGBA")
                im = Image.new("RGB", im.size, (255, 255, 255))
                im.paste(rgba, mask=rgba.split()[-1])
            dst.parent.mkdir(parents=True, exist_ok=True)
            tmp = dst.with_name(dst.name + ".tmp")
            im.save(tmp, "JPEG", quality=85)
            os.replace(tmp, dst)
        return full
    except (OSError, ValueError, Image.DecompressionBombError):
        return None


def make_thumbs(sample_ids: list[str], images_root: Path, out: Path,
                size: int = THUMB_SIZE) -> tuple[list[str | None], list[tuple[int, int] | None]]:
    """Thumbnail paths relative to ``out`` and the images' sizes (None where the image
    is missing or unreadable). Thumbnails land under ``out/thumbs`` only: a sample id
    that would leave it gets a numbered name instead."""
    from concurrent.futures import ThreadPoolExecutor

    from mlcycle.formats._paths import safe_join

    thumbs_root = out / THUMBS
    jobs = []
    for i, sid in enumerate(sample_ids):
        try:
            dst = safe_join(thumbs_root, sid + ".jpg")
        except MlcycleError:
            dst = thumbs_root / "_" / f"{i}.jpg"
        jobs.append((Path(images_root) / sid, dst))
    workers = min(4, os.cpu_count() or 1)
    with ThreadPoolExecutor(workers) as pool:
        sizes = list(pool.map(lambda j: _thumb(j[0], j[1], size), jobs))
    paths = [dst.relative_to(out).as_posix() if s else None for (_, dst), s in zip(jobs, sizes)]
    return paths, sizes


def url(path: str) -> str:
    """A relative path as a URL (``#``, ``?``, ``%``, spaces ... percent-encoded)."""
    from urllib.parse import quote

    return quote(path, safe="/")


# --------------------------------------------------------------------------- page

def json_for_script(doc: Any) -> str:
    """JSON that is safe inside ``<script type="application/json">``: no ``<``, ``>``,
    ``&`` or JavaScript line separators appear literally."""
    import orjson

    raw = orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)
    for a, b in ((b"&", b"\\u0026"), (b"<", b"\\u003c"), (b">", b"\\u003e"),
                 ("\u2028".encode(), b"\\u2028"), ("\u2029".encode(), b"\\u2029")):
        raw = raw.replace(a, b)
    return raw.decode()


def render_page(data: dict[str, Any], title: str = "mlcycle report") -> str:
    import html

    js = (STATIC / "report.js").read_text(encoding="utf-8")
    css = (STATIC / "report.css").read_text(encoding="utf-8")
    template = (STATIC / "report.html").read_text(encoding="utf-8")
    digest = base64.b64encode(hashlib.sha256(js.encode()).digest()).decode()
    csp = (f"default-src 'none'; script-src 'sha256-{digest}'; style-src 'unsafe-inline'; "
           "img-src 'self' data: file:; connect-src 'none'; form-action 'none'; base-uri 'none'")
    parts = {"CSP": csp, "TITLE": html.escape(title), "CSS": css, "DATA": json_for_script(data), "JS": js}
    # one pass over the template only: text from the data is never searched for markers
    return re.sub(r"\{\{([A-Z]+)\}\}", lambda m: parts[m.group(1)], template)


def _load_metrics(path: Path | str) -> dict:
    from mlcycle.formats._json import load_json

    doc = load_json(Path(path))
    if not isinstance(doc, dict):
        raise MlcycleError(f"{path}: not a metrics document (expected the JSON object evaluate writes)")
    return doc


def write(table: "pa.Table", output: Path | None, options: CommonWriteOptions | None = None) -> None:
    from mlcycle import io

    options = WriteOptions.of(options)
    if output is None:
        raise OptionError("output", "export html writes a folder, not to standard output", hint="name the report folder")
    embed = options.embed
    limit = options.limit
    size = int(options.thumb_size or THUMB_SIZE)
    metrics = _load_metrics(options.metrics) if options.metrics else None
    images_root = options.images_root or T.get_metadata(table).get("images_root") or "."
    if options.source is not None:  # the ground truth and this one prediction source
        import pyarrow as pa
        import pyarrow.compute as pc

        table = table.filter(pc.is_in(table[T.SOURCE], value_set=pa.array([T.GT_SOURCE, options.source])))

    data = build_data(table, sort_by=options.sort_by, limit=limit)
    output = Path(output)
    if embed and output.suffix.lower() in (".html", ".htm"):
        folder, page = output.parent, output
    else:
        folder, page = output, output / "index.html"
    if folder.exists() and not folder.is_dir():
        raise OptionError("output", f"{folder}: is a file; export html writes a folder",
                          hint="name a folder, or embed the thumbnails to write one .html file")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MlcycleError(f"{folder}: cannot create the report folder: {exc.strerror or exc}") from None
    ids = data["samples"]["id"]
    if embed:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            thumbs, sizes = make_thumbs(ids, Path(images_root), Path(tmp), size)
            data["samples"]["img"] = [
                "data:image/jpeg;base64," + base64.b64encode((Path(tmp) / t).read_bytes()).decode() if t else None
                for t in thumbs]
        data["samples"]["full"] = [None] * len(ids)
    else:
        thumbs, sizes = make_thumbs(ids, Path(images_root), folder, size)
        data["samples"]["img"] = [url(t) if t else None for t in thumbs]
        # the original image, for the detail view (relative, so the folder can be moved
        # together with the images); the page falls back to the thumbnail
        rel = os.path.relpath(Path(images_root).resolve(), folder.resolve())
        data["samples"]["full"] = [
            url((Path(rel) / s).as_posix()) if t else None for s, t in zip(ids, data["samples"]["img"])]
    # the table's width/height win; the image's own size fills the gaps
    sm = data["samples"]
    sm["w"] = [w if w is not None else (z[0] if z else None) for w, z in zip(sm["w"], sizes)]
    sm["h"] = [h if h is not None else (z[1] if z else None) for h, z in zip(sm["h"], sizes)]
    data["samples"]["path"] = [str(Path(images_root) / s) for s in ids]
    data["metrics"] = metrics
    data["title"] = options.title or "mlcycle report"
    text = render_page(data, data["title"])
    with io.atomic_output(page) as fh:
        fh.write(text.encode("utf-8"))
