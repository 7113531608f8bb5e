"""``export html``: a self-contained, offline HTML report of a label table.

The report is a folder (``index.html`` + ``thumbs/``, built in a temporary sibling and
renamed: all or nothing) or, with ``embed``, one HTML file with the thumbnails inlined as
data URIs. It needs no server and no network: the page's JavaScript and CSS
(``static/report.js``, ``static/report.css``, hand-written) are inlined, the data goes in
as JSON inside ``<script type="application/json">`` with ``<``, ``>``, ``&`` and
U+2028/U+2029 escaped, and the script renders every piece of data with
``textContent``/``setAttribute`` only. A Content-Security-Policy allows only that one
inline script (by its hash) and no network requests.

Options (``html.WriteOptions``): ``embed`` (bool), ``limit`` (int: keep the first N
samples in sort order; default ``DEFAULT_LIMIT`` with a warning, 0: all), ``sort_by``
(column name, ``sample_id`` or ``errors``), ``metrics`` (path to a metrics document, the
JSON ``evaluate`` writes), ``thumb_size`` (longest side, px), ``title``. ``images_root``
(else the table's ``images_root`` metadata, else the current folder) is where the images
are: ``images_root / sample_id``; only files inside it are read (``thumbs``).

``operating`` computes each prediction source's best-F1 threshold (the page's slider
default) and the matches from the evaluated table; ``thumbs`` makes the thumbnails.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlcycle import reporting
from mlcycle import table as T
from mlcycle.errors import MlcycleError, OptionError, mention, printable
from mlcycle.formats import ReadOptions
from mlcycle.formats import WriteOptions as CommonWriteOptions
from mlcycle.formats.html import operating
from mlcycle.formats.html import thumbs as thumbs_mod
from mlcycle.formats.html.thumbs import THUMB_SIZE, THUMBS

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

STATIC = Path(__file__).parent / "static"
DEFAULT_LIMIT = 1000  # samples in a report unless ``limit`` says otherwise (0: all)
DICT_MIN_ROWS = 16  # text columns with repeated values go into the page as codes + values
# Columns never put in the page: big nested data nobody reads in a table cell.
SKIP_COLUMNS = (T.SEGMENTATION,)
MAX_FILTER_VALUES = 200  # a column with more distinct values is not offered as a filter
MAX_INT_FILTER_VALUES = 20  # integer columns are sort keys; with this few values, filters too


@dataclass(frozen=True)
class WriteOptions(CommonWriteOptions):
    """The report's options. ``embed``: one self-contained HTML file, thumbnails inlined;
    ``limit``: only the first N samples in sort order (None: ``DEFAULT_LIMIT``, with a
    warning and a note on the page when samples are left out; 0: every sample);
    ``sort_by``: a column (numbers: largest first), ``sample_id`` or ``errors`` (the
    errors at the best-F1 threshold, see ``operating.sample_errors``; default:
    hard_score, else errors, else sample_id); ``metrics``: a metrics document to add as a page; ``thumb_size``: the
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


def _sample_order(table: "pa.Table", samples: "pa.Array", sort_by: str | None,
                  codes: "Any" = None, errors: "Any" = None) -> tuple["Any", str, bool]:
    """Indices into ``samples`` in report order, the sort column and whether descending.

    Numeric columns sort by the sample's largest value, descending; text columns by the
    smallest value, ascending; nulls last. ``errors``: the samples' errors at the
    best-F1 thresholds (``operating.sample_errors``), most first. Default:
    ``hard_sample_score``/``hard_score`` when present, else ``errors`` when the table
    has ``eval``, else ``sample_id``."""
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
    if codes is None:
        codes = pc.index_in(table[T.SAMPLE_ID], value_set=samples).to_numpy()
    if sort_by == "errors":
        if T.EVAL not in names:
            raise OptionError("sort_by", "errors needs the eval column", hint="evaluate the table first")
        key = errors if errors is not None else operating.sample_errors(
            table, codes, len(samples), {k: v["threshold"] for k, v in operating.best_f1(table).items()})
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
    total = len(samples)
    all_codes = np.asarray(pc.index_in(table[T.SAMPLE_ID], value_set=samples).to_numpy(zero_copy_only=False),
                           dtype=np.int64) if table.num_rows else np.zeros(0, np.int64)
    points = operating.best_f1(table)
    errors = None
    if T.EVAL in table.column_names and sort_by in (None, "errors"):
        errors = operating.sample_errors(table, all_codes, total, {k: v["threshold"] for k, v in points.items()})
    order, sort_col, desc = _sample_order(table, samples, sort_by, all_codes, errors)
    if limit is not None:
        order = order[:max(int(limit), 0)]
    samples = samples.take(pa.array(order, pa.int64()))
    if limit is not None and len(samples) < total:
        remap = np.full(total, -1, np.int64)
        remap[order] = np.arange(len(order))
        codes = remap[all_codes]
        keep = codes >= 0
        table, codes = table.filter(pa.array(keep)), codes[keep]
    else:
        remap = np.empty(total, np.int64)
        remap[order] = np.arange(len(order))
        codes = remap[all_codes]
    # rows sorted by sample (stable), so the page reads each sample's rows as one slice
    row_order = np.argsort(codes, kind="stable")
    table = table.take(pa.array(row_order))
    codes = codes[row_order]
    n = len(samples)
    widths = _first_per_sample(table, codes, n, T.WIDTH)
    heights = _first_per_sample(table, codes, n, T.HEIGHT)

    columns = _json_safe_columns(table)
    rows: dict[str, Any] = {}
    for c in columns:
        if c == T.BBOX:
            b = T.bboxes(table).reshape(-1, 4)
            missing = np.flatnonzero(np.isnan(b).any(axis=1))
            rows[c] = np.round(b, 2).tolist()
            for i in missing:  # rows without a box (sample rows, image-level labels)
                rows[c][i] = None
        else:
            rows[c] = _column_json(table[c])
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
    pairs = operating.matches(table, codes)
    return {
        "samples": {"id": samples.to_pylist(), "w": widths.tolist(), "h": heights.tolist(),
                    "start": starts[:-1], "end": starts[1:]},
        "rows": rows,
        "columns": columns,
        "numeric": numeric,
        "filters": filters,
        "sort": {"by": sort_col, "desc": desc},
        "classes": _classes_by_count(table),
        "sources": operating.prediction_sources(table),
        # per prediction source: the best-F1 operating point over the whole table (the
        # slider's default) and the (ground truth row, prediction row) matches of the page
        "operating": points,
        "matches": {k: v.tolist() for k, v in pairs.items()},
        "limit": {"shown": n, "total": total, "limit": limit},
    }


def _column_json(col: "pa.ChunkedArray") -> Any:
    """A column as JSON: floats rounded to 4 decimals; text with repeated values as
    ``{"values": [...], "codes": [...]}`` (the page decodes it), which keeps the page
    small when a class or source name repeats on every row."""
    import pyarrow as pa
    import pyarrow.compute as pc

    t = col.type
    if pa.types.is_dictionary(t):
        col = col.cast(t.value_type)
        t = col.type
    if pa.types.is_floating(t):
        return pc.round(col, 4).to_pylist()
    if (pa.types.is_string(t) or pa.types.is_large_string(t)) and len(col) >= DICT_MIN_ROWS:
        enc = pc.dictionary_encode(col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col)
        if 2 * len(enc.dictionary) <= len(col):
            return {"values": enc.dictionary.to_pylist(), "codes": enc.indices.to_pylist()}
    return col.to_pylist()


def _classes_by_count(table: "pa.Table") -> list[dict[str, Any]]:
    """The classes of the page, most labels first (then by name), with their counts of
    ground truth and prediction rows: the legend's order and the colours' order."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if not table.num_rows:
        return []
    lab = T.column_or_null(table, T.LABEL)
    gt = pc.equal(table[T.SOURCE], T.GT_SOURCE)
    g = pa.table({"l": lab, "gt": pc.cast(gt, pa.int64()), "one": pa.array(np.ones(table.num_rows, np.int64))}) \
        .filter(pc.is_valid(lab)).group_by("l").aggregate([("gt", "sum"), ("one", "sum")])
    out = [{"name": n, "gt": int(a), "pred": int(b) - int(a)}
           for n, a, b in zip(g["l"].to_pylist(), g["gt_sum"].to_pylist(), g["one_sum"].to_pylist())]
    out.sort(key=lambda d: (-(d["gt"] + d["pred"]), d["name"]))
    return out


# --------------------------------------------------------------------------- thumbnails

def make_thumbs(sample_ids: list[str], images_root: Path, out: Path,
                size: int = THUMB_SIZE) -> tuple[list[str | None], list[tuple[int, int] | None]]:
    """Thumbnail paths relative to ``out`` and the images' sizes (None where the image
    is missing, unreadable or outside ``images_root``): ``thumbs.make_thumbs``."""
    res = thumbs_mod.make_thumbs(sample_ids, images_root, out, size)
    return res.paths, res.sizes


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
    """Write the report: a folder (``index.html`` + ``thumbs/``, built in a temporary
    sibling and renamed: all or nothing) or, with ``embed``, one HTML file."""
    import tempfile

    from mlcycle import io

    options = WriteOptions.of(options)
    if output is None:
        raise OptionError("output", "export html writes a folder, not to standard output", hint="name the report folder")
    embed = options.embed
    size = int(options.thumb_size or THUMB_SIZE)
    metrics = _load_metrics(options.metrics) if options.metrics else None
    images_root = Path(options.images_root or T.get_metadata(table).get("images_root") or ".")
    if options.source is not None:  # the ground truth and this one prediction source
        import pyarrow as pa
        import pyarrow.compute as pc

        table = table.filter(pc.is_in(table[T.SOURCE], value_set=pa.array([T.GT_SOURCE, options.source])))
    limit = DEFAULT_LIMIT if options.limit is None else (int(options.limit) or None)

    data = build_data(table, sort_by=options.sort_by, limit=limit)
    data["limit"]["default"] = options.limit is None
    if data["limit"]["shown"] < data["limit"]["total"]:
        reporting.warn(f"the report shows {data['limit']['shown']:,} of {data['limit']['total']:,} samples, the first in "
                       f"report order ({data['sort']['by']}); set {mention('limit')} to show more (0: all)")
    output = Path(output)
    if embed and output.suffix.lower() in (".html", ".htm"):
        folder, page = output.parent, output
    else:
        folder, page = output, output / "index.html"
    if folder.exists() and not folder.is_dir():
        raise OptionError("output", f"{folder}: is a file; export html writes a folder",
                          hint="name a folder, or embed the thumbnails to write one .html file")
    if embed and page is output:
        if not folder.is_dir():
            raise MlcycleError(f"{output}: folder {folder} does not exist")
        with tempfile.TemporaryDirectory() as tmp:
            _fill(data, images_root, Path(tmp), size, embed=True, report=folder, metrics=metrics, title=options.title)
            with io.atomic_output(page) as fh:
                fh.write(render_page(data, data["title"]).encode("utf-8"))
        return
    if not folder.parent.is_dir() and str(folder.parent):
        try:
            folder.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise MlcycleError(f"{folder}: cannot create the report folder: {exc.strerror or exc}") from None
    with io.atomic_folder(folder) as tmp:
        previous = folder if folder.is_dir() and not embed else None
        _fill(data, images_root, tmp, size, embed=embed, report=folder, metrics=metrics, title=options.title,
              previous=previous)
        (tmp / "index.html").write_bytes(render_page(data, data["title"]).encode("utf-8"))
        thumbs_mod.check_no_links(tmp, folder)


def _fill(data: dict[str, Any], images_root: Path, built: Path, size: int, *, embed: bool, report: Path,
          metrics: dict | None, title: str | None, previous: Path | None = None) -> None:
    """Make the thumbnails in ``built`` and add the images, sizes, paths and metrics to
    ``data``; warn about sample ids outside ``images_root`` and images not found."""
    ids = data["samples"]["id"]
    res = thumbs_mod.make_thumbs(ids, images_root, built, size, previous=previous)
    if embed:
        data["samples"]["img"] = [
            "data:image/jpeg;base64," + base64.b64encode((built / t).read_bytes()).decode() if t else None
            for t in res.paths]
        data["samples"]["full"] = [None] * len(ids)
        if built.exists():
            import shutil

            shutil.rmtree(built / THUMBS, ignore_errors=True)
    else:
        data["samples"]["img"] = [url(t) if t else None for t in res.paths]
        # the original image, for the detail view (relative, so the folder can be moved
        # together with the images); the page falls back to the thumbnail
        rel = os.path.relpath(images_root.resolve(), report.resolve())
        data["samples"]["full"] = [url((Path(rel) / s).as_posix()) if t else None for s, t in zip(ids, res.paths)]
    # the table's width/height win; the image's own size fills the gaps
    sm = data["samples"]
    sm["w"] = [w if w is not None else (z[0] if z else None) for w, z in zip(sm["w"], res.sizes)]
    sm["h"] = [h if h is not None else (z[1] if z else None) for h, z in zip(sm["h"], res.sizes)]
    sm["path"] = [str(images_root / s) for s in ids]
    data["metrics"] = metrics
    data["title"] = title or "mlcycle report"
    data["images"] = {"root": str(images_root), "outside": len(res.outside), "missing": len(res.missing)}
    root = printable(images_root)
    if res.outside:
        reporting.warn(f"{len(res.outside)} sample id(s) point outside {mention('images_root')} {root} and were not "
                       f"read (absolute paths, '..' or links out): " + ", ".join(repr(printable(s, 80)) for s in res.outside[:3])
                       + (" ..." if len(res.outside) > 3 else ""))
    if res.missing:
        reporting.warn(f"{len(res.missing)} of {len(ids)} images not found or unreadable under {mention('images_root')} {root}"
                       f", e.g. {printable(images_root / res.missing[0], 160)}; the report shows placeholders")
