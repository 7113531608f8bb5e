"""COCO instances JSON <-> label table (ground truth).

Reading keeps everything needed to write the file back:
- each annotation becomes a row (file order); each image without annotations a sample
  row; ``id`` -> ``label_id``, ``image_id`` -> ``image_id``, ``file_name`` -> ``sample_id``;
- ``bbox`` as floats, ``area`` and ``iscrowd`` as stated, ``segmentation`` (polygons or
  RLE) as its JSON text, exactly;
- COCO ``attributes`` (CVAT's ``occluded`` ...) become attribute columns; other unknown
  annotation keys and extra image keys (``license``, ``coco_url`` ...) become columns
  of the same name (prefixed ``coco_``/``image_`` where a name is already taken);
- ``info``, ``licenses``, the categories (order, ids, supercategories, extra keys) and
  which keys annotations had go into the table metadata under ``coco``.

Writing uses that metadata when present; a table from another format gets categories
numbered 1..K in name order (or its ``category_id`` values), ``area`` = w*h and
``iscrowd`` = 0, which is what pycocotools needs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlcycle import table as T
from mlcycle.errors import MlcycleError
from mlcycle.formats import ReadOptions, WriteOptions
from mlcycle.formats import _coco_fast
from mlcycle.errors import mention, printable
from mlcycle.formats._assemble import check_box_geometry
from mlcycle.formats._coco_doc import (_attribute_array, _fail, _polygon_texts, find_image_rows, int_values, load_categories,
                                       load_images, read_boxes)
from mlcycle.formats._coco_fast import arrow_numbers
from mlcycle.formats._invalid import InvalidInput
from mlcycle.formats._json import load_json, strip_bom
from mlcycle.formats._writing import source_rows

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

META = "coco"
_ANN_CORE = ("id", "image_id", "category_id", "bbox", "area", "iscrowd", "segmentation", "attributes", "score")


def detect(path: Path) -> bool:
    if not path.is_file() or path.suffix.lower() != ".json":
        return False
    with open(path, "rb") as fh:
        head = fh.read(1 << 16)
    stripped = head.lstrip()
    return stripped.startswith(b"{") and b'"images"' in head and (b'"annotations"' in head or b'"categories"' in head)


# --------------------------------------------------------------------------- reading

def read(path: Path, options: ReadOptions | None = None) -> "pa.Table":
    import gc

    from mlcycle import io

    options = options or ReadOptions()
    # The cyclic GC would rescan the millions of small objects of a big COCO file on
    # every collection; they hold no cycles, so pause it until they are gone.
    enabled = gc.isenabled()
    gc.disable()
    try:
        data = strip_bom(io.read_bytes(path))
        doc = _coco_fast.decode(data)
        if doc is not None:
            try:
                return from_dict(doc, str(path), options, consume=True)
            except _coco_fast.Fallback:
                pass
        doc = None
        doc = load_json(path, data)
        del data
        return from_dict(doc, str(path), options, consume=True)
    finally:
        doc = None
        if enabled:
            gc.enable()


def from_dict(doc: Any, name: str, options: ReadOptions, consume: bool = False) -> "pa.Table":
    """The label table of a parsed COCO document. With ``consume`` the annotations'
    segmentations are removed from ``doc`` as they are converted, to bound memory.
    Annotations may be the structs of ``_coco_fast.decode`` (raw JSON segmentations and
    extra keys; ``_coco_fast.Fallback`` when the general path must read the file)."""
    import numpy as np
    import pyarrow as pa
    from operator import methodcaller

    images = load_images(doc, name)
    anns = doc.get("annotations")
    if not isinstance(anns, list):
        raise _fail(name, "not a COCO instances file: the 'annotations' list is missing")
    cats, cat_names = load_categories(doc, name)
    structs = _coco_fast.is_fast(anns)
    if anns and not structs and not all(type(a) is dict for a in anns):
        bad = next(i for i, a in enumerate(anns) if not isinstance(a, dict))
        raise _fail(name, f"annotations[{bad}] is not an object")

    n = len(anns)

    if structs:
        field = _coco_fast.Fields(anns)
    else:
        def field(key: str) -> list:
            return list(map(methodcaller("get", key), anns))

    problems = InvalidInput(options.skip_invalid, "COCO annotation")

    def ints(key: str, *args, **kwargs) -> tuple:
        """int_values of an annotation key; msgspec's ints need no type checks."""
        arr = field.ints(key) if structs else None
        if arr is not None:
            return arr, np.zeros(n, bool), np.zeros(n, bool)
        return int_values(field(key), name, "annotations", key, *args, **kwargs)

    # -- ids (an id problem is an error: ids are what a round trip keeps)
    ids_arr = ints("id")[0]
    ann_ids = ids_arr.tolist()
    if n:
        uniq, counts = np.unique(ids_arr, return_counts=True)
        if (counts > 1).any():
            raise _fail(name, f"annotation id {int(uniq[counts > 1][0])} appears {int(counts[counts > 1][0])} times")
    img_arr, bad, _ = ints("image_id", ann_ids, problems)
    rows, unknown = find_image_rows(images, img_arr, name, "annotations", problems, ann_ids, skip=bad)
    bad |= unknown

    # -- categories: ids looked up in bulk; a label needs its class
    cat_ids = field("category_id")
    cvals, bad_cat, no_cat = ints("category_id", ann_ids, problems, nullable=True)
    known = np.array(sorted(cat_names), dtype=np.int64)
    known_names = np.array([cat_names[k] for k in known.tolist()] + [None], dtype=object)
    pos = np.searchsorted(known, cvals) if len(known) else np.zeros(n, np.int64)
    found = (pos < len(known)) & (known[np.minimum(pos, max(len(known) - 1, 0))] == cvals) if len(known) else np.zeros(n, bool)
    missing = no_cat & ~bad
    problems.add_each(np.flatnonzero(missing).tolist(),
                      lambda i: f"{name}: annotations[{i}] (id {ann_ids[i]}) has no category_id (a label without a class)",
                      hint="give every annotation a category_id listed in 'categories', or skip such annotations "
                           f"with a warning ({mention('skip_invalid')})")
    unknown_cat = ~found & ~no_cat & ~bad_cat & ~bad
    problems.add_each(np.flatnonzero(unknown_cat).tolist(),
                      lambda i: f"{name}: annotations[{i}] (id {ann_ids[i]}) refers to unknown category id {printable(repr(cat_ids[i]), 40)}",
                      hint="every category_id must be listed in 'categories'; or skip such annotations with a "
                           f"warning ({mention('skip_invalid')})")
    bad |= bad_cat | missing | unknown_cat

    # -- geometry: one rule for bad boxes (formats._assemble.check_box_geometry)
    def where(i: int) -> str:
        return f"{name}: annotations[{i}] (id {ann_ids[i]})"

    raw_boxes = field("bbox")
    if structs:  # 4-tuples of floats or None: no shape to check
        boxes, has_box, bad_box = _coco_fast.box_values(raw_boxes)
        bad_box = bad_box | ~np.isfinite(boxes).all(axis=1) & has_box
        if bad_box.any():
            boxes, has_box, bad_box = read_boxes(raw_boxes, name, "annotations", ann_ids, problems)
    else:
        boxes, has_box, bad_box = read_boxes(raw_boxes, name, "annotations", ann_ids, problems)
    del raw_boxes
    bad |= bad_box | ~check_box_geometry(boxes, problems, where, present=has_box & ~bad)
    areas = field("area")
    area_vals = _float_values(areas)
    bad_area = (np.isinf(area_vals) | (area_vals < 0)) & ~bad
    problems.add_each(np.flatnonzero(bad_area).tolist(),
                      lambda i: f"{where(i)}: area {printable(repr(areas[i]), 40)} is not a finite non-negative number")
    bad |= bad_area
    score_vals = None
    scores = field("score")
    if scores.count(None) != len(scores):
        score_vals = _float_values(scores)
        bad_score = (score_vals == -np.inf) & ~bad
        problems.add_each(np.flatnonzero(bad_score).tolist(),
                          lambda i: f"{where(i)}: score {printable(repr(scores[i]), 40)} is not a number")
        bad |= bad_score

    if bad.any():  # only with skip_invalid: read again without the skipped annotations
        problems.report()
        keep = (~bad).tolist()
        rest = dict(doc)
        rest["annotations"] = [a for a, k in zip(anns, keep) if k]
        return from_dict(rest, name, options, consume)
    labels = known_names[np.where(found, pos, len(known))]
    cat_arr = arrow_numbers(cvals, pa.int64(), no_cat)
    area_arr = arrow_numbers(area_vals, pa.float64(), np.isnan(area_vals))

    # -- which keys annotations carry (order: the first annotation's, then the rest sorted)
    if structs:
        ann_keys = field.keys()
        seen_keys = set(ann_keys)
    else:
        seen_keys = set().union(*anns) if anns else set()
        ann_keys = list(anns[0]) + sorted(seen_keys - set(anns[0])) if anns else []

    crowd = field("iscrowd")
    if structs:
        seg_arr = _coco_fast.raw_strings(field.raw("segmentation"))
        field.drop("segmentation")
        segs = None
    else:
        segs = _polygon_texts(list(map(methodcaller("pop", "segmentation", None), anns)) if consume else field("segmentation"))
    score_arr = None
    if "score" in seen_keys and score_vals is not None:
        score_arr = arrow_numbers(score_vals, pa.float64(), np.isnan(score_vals))

    extra_keys = [k for k in ann_keys if k not in _ANN_CORE]
    attr_keys: list[str] = []
    if "attributes" in seen_keys:
        attr_dicts = field("attributes")
        for i, at in enumerate(attr_dicts):
            if at is not None and type(at) is not dict:
                raise _fail(name, f"annotations[{i}] (id {ann_ids[i]}): 'attributes' must be an object")
        present = [at for at in attr_dicts if at]
        attr_keys = (list(present[0]) + sorted(set().union(*present) - set(present[0]))) if present else []

    columns: dict[str, Any] = {}
    meta_cols: dict[str, dict[str, str]] = {"annotation": {}, "attribute": {}, "image": {}}
    json_cols: list[str] = []
    taken = set(T.CORE_COLUMNS)

    def column_name(key: str, prefix: str) -> str:
        col = key if key not in taken else f"{prefix}_{key}"
        while col in taken:
            col = f"{prefix}_{col}"
        taken.add(col)
        return col

    for k in extra_keys:
        meta_cols["annotation"][column_name(k, "coco")] = k
    for k in attr_keys:
        meta_cols["attribute"][column_name(k, "attr")] = k
    for k in images["extra"]:
        meta_cols["image"][column_name(k, "image")] = k

    # -- sample rows for images without annotations
    has_ann = np.zeros(len(images["ids"]), dtype=bool)
    has_ann[rows] = True
    empty = np.flatnonzero(~has_ann)
    m = len(empty)
    all_rows = np.concatenate([rows, empty]).astype(np.int64)

    # Arrays from lists or buffers, never pa.array(ndarray): that imports numpy.ma and
    # pyarrow.compute, start-up an ingest does not otherwise pay (see _coco_fast).
    def img_col(values: list, typ=None):
        arr = np.empty(len(values), dtype=object)
        arr[:] = values
        return pa.array(arr[all_rows].tolist(), type=typ, from_pandas=False)

    types = T.core_types()
    nulls_m = [None] * m
    columns[T.SAMPLE_ID] = img_col(images["file_names"], pa.string())
    columns[T.SOURCE] = pa.array([options.source or T.GT_SOURCE] * (n + m), type=pa.string())
    columns[T.LABEL_ID] = arrow_numbers(np.concatenate([ids_arr, np.zeros(m, np.int64)]), pa.int64(),
                                        np.concatenate([np.zeros(n, bool), np.ones(m, bool)]))
    columns[T.LABEL] = pa.array(labels.tolist() + nulls_m, type=pa.string())
    columns[T.CATEGORY_ID] = pa.concat_arrays([cat_arr, pa.nulls(m, pa.int64())]) if n else pa.nulls(m, pa.int64())
    columns[T.BBOX] = _coco_fast.box_array(np.concatenate([boxes.reshape(-1, 4), np.full((m, 4), np.nan)]),
                                           np.concatenate([has_box, np.zeros(m, bool)]), types[T.BBOX])
    crowd_arr = np.zeros(n + m, dtype=bool)
    if n:
        try:
            vals = pa.array(crowd, type=pa.int64()).to_numpy(zero_copy_only=False)  # NaN where null
            crowd_arr[:n] = (vals != 0) & (vals == vals)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            crowd_arr[:n] = [bool(c) for c in crowd]
    columns[T.ISCROWD] = arrow_numbers(crowd_arr, pa.bool_())
    columns[T.AREA] = pa.concat_arrays([area_arr, pa.nulls(m, pa.float64())]) if n else pa.nulls(m, pa.float64())
    if segs is None:
        columns[T.SEGMENTATION] = pa.concat_arrays([seg_arr, pa.nulls(m, pa.string())])
    else:
        columns[T.SEGMENTATION] = pa.array(segs + nulls_m, type=pa.string())
    if score_arr is not None:
        columns[T.SCORE] = pa.concat_arrays([score_arr, pa.nulls(m, pa.float64())])
    columns[T.WIDTH] = img_col(images["widths"], pa.int32())
    columns[T.HEIGHT] = img_col(images["heights"], pa.int32())
    if options.split is not None:
        columns[T.SPLIT] = pa.array([options.split] * (n + m), type=pa.string())
    columns[T.IMAGE_ID] = arrow_numbers(images["ids"][all_rows], pa.int64())

    for col, key in meta_cols["annotation"].items():
        arr = _coco_fast.int_column(field.raw(field.attr(key))) if structs else None
        if arr is not None:  # integers, lists of integers (keypoints): parsed in bulk
            columns[col] = pa.concat_arrays([arr, pa.nulls(m, arr.type)])
            continue
        arr, is_json = _attribute_array(field(key) + nulls_m, col)
        columns[col] = arr
        if is_json:
            json_cols.append(col)
    for col, key in meta_cols["attribute"].items():
        arr, is_json = _attribute_array([None if at is None else at.get(key) for at in attr_dicts] + nulls_m, col)
        columns[col] = arr
        if is_json:
            json_cols.append(col)
    for col, key in meta_cols["image"].items():
        values = images["extra"][key]
        arr, is_json = _attribute_array(list(np.array(values + [None], dtype=object)[:-1][all_rows]), col)
        columns[col] = arr
        if is_json:
            json_cols.append(col)

    no_attributes: list[int] = []
    if "attributes" in seen_keys:
        if structs:
            no_attributes = [ann_ids[i] for i, r in enumerate(field.raw(field.attr("attributes"))) if not len(r)]
        else:
            no_attributes = [ann_ids[i] for i, a in enumerate(anns) if "attributes" not in a]
    coco_meta: dict[str, Any] = {
        "categories": cats,
        "no_attributes": no_attributes,
        "annotation_keys": ann_keys,
        "columns": meta_cols,
        "json_columns": json_cols,
    }
    for key in doc:
        if key not in ("images", "annotations", "categories"):
            coco_meta.setdefault("top", {})[key] = doc[key]
    meta: dict[str, Any] = {META: coco_meta}
    if options.images_root is not None:
        meta["images_root"] = str(options.images_root)
    return T.from_columns(columns, meta)


def _float_values(values: list) -> "Any":
    """Numbers -> float64 (None -> NaN); a value that is not a number (a string, a
    boolean, a list) -> -inf, which callers report as invalid."""
    import numpy as np
    import pyarrow as pa

    types = set(map(type, values))
    if types <= {int, float, type(None)}:
        try:
            return pa.array(values, type=pa.float64()).to_numpy(zero_copy_only=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            pass
    out = np.full(len(values), np.nan)
    for i, v in enumerate(values):
        if v is None:
            continue
        if type(v) in (int, float):
            try:
                out[i] = float(v)
            except OverflowError:
                out[i] = np.inf
        else:
            out[i] = -np.inf
    return out


# --------------------------------------------------------------------------- writing

def coco_metadata(table: "pa.Table") -> dict:
    """The table's ``coco`` metadata when it has the shape ``read`` gives it; else (a
    hand-edited or damaged table) a warning, and {} (written as from another format)."""
    meta = T.get_metadata(table).get(META)
    if meta is None:
        return {}

    def ok() -> bool:
        if not isinstance(meta, dict):
            return False
        cats = meta.get("categories", [])
        if not isinstance(cats, list) or not all(
                isinstance(c, dict) and type(c.get("id")) is int and isinstance(c.get("name"), str) for c in cats):
            return False
        cols = meta.get("columns", {})
        if not isinstance(cols, dict) or not all(
                isinstance(v, dict) and all(isinstance(a, str) and isinstance(b, str) for a, b in v.items())
                for v in cols.values()):
            return False
        for key in ("json_columns", "no_attributes", "annotation_keys"):
            if not isinstance(meta.get(key, []), list):
                return False
        if not all(isinstance(k, str) for k in meta.get("json_columns", []) + (meta.get("annotation_keys") or [])):
            return False
        if not all(type(v) is int for v in meta.get("no_attributes", [])):
            return False
        return isinstance(meta.get("top", {}), dict)

    if ok():
        return meta
    from mlcycle import reporting

    reporting.warn("the table's COCO metadata (categories, keys) is malformed and is not used: "
                   "categories are numbered from the labels")
    return {}


def category_table(table: "pa.Table") -> tuple[list[dict], dict[str, int]]:
    """Categories to write and a name -> id map: the ingested ones in their order, plus
    any new class names (ids after the largest; ``category_id`` used where given)."""
    meta = coco_metadata(table)
    cats = [dict(c) for c in meta.get("categories", [])]
    name_to_id = {c["name"]: c["id"] for c in cats}
    labels = T.column_or_null(table, T.LABEL).to_pylist()
    cids = T.column_or_null(table, T.CATEGORY_ID).to_pylist()
    pairs: dict[str, int | None] = {}
    for lab, cid in zip(labels, cids):
        if lab is not None and lab not in name_to_id and (lab not in pairs or pairs[lab] is None):
            pairs[lab] = cid
    used = set(name_to_id.values())
    for lab in sorted(pairs, key=lambda s: (pairs[s] is None, pairs[s] or 0, s)):
        cid = pairs[lab]
        if cid is None or cid in used:
            cid = max(used, default=0) + 1
        used.add(cid)
        name_to_id[lab] = cid
        cats.append({"id": cid, "name": lab, "supercategory": ""})
    return cats, name_to_id


def image_table(table: "pa.Table") -> tuple[list[str], dict[str, int], dict[str, tuple]]:
    """(sample ids in image order, sample_id -> image id, sample_id -> (width, height)).

    Images are written in image id order; samples without an ``image_id`` get new ids
    after the largest, in order of first appearance."""
    samples = T.column_or_null(table, T.SAMPLE_ID).to_pylist()
    img_ids = T.column_or_null(table, T.IMAGE_ID).to_pylist()
    widths = T.column_or_null(table, T.WIDTH).to_pylist()
    heights = T.column_or_null(table, T.HEIGHT).to_pylist()
    first: dict[str, int] = {}
    ids: dict[str, int | None] = {}
    sizes: dict[str, tuple] = {}
    for i, s in enumerate(samples):
        if s not in first:
            first[s] = i
            ids[s] = img_ids[i]
            sizes[s] = (widths[i], heights[i])
        else:
            if ids[s] is None and img_ids[i] is not None:
                ids[s] = img_ids[i]
            if sizes[s][0] is None and widths[i] is not None:
                sizes[s] = (widths[i], heights[i])
    used = {v for v in ids.values() if v is not None}
    nxt = max(used, default=0) + 1
    for s in first:
        if ids[s] is None:
            ids[s] = nxt
            nxt += 1
    order = sorted(first, key=lambda s: ids[s])
    return order, ids, sizes  # type: ignore[return-value]


def to_dict(table: "pa.Table", source: str | None = None) -> dict:
    """The COCO instances document for the ground truth (or ``source``) rows."""
    import numpy as np
    import orjson

    full = table
    table, source = source_rows(table, source)
    meta = coco_metadata(full)
    cats, name_to_id = category_table(table if not meta else full)
    order, img_ids, sizes = image_table(table)

    cols = meta.get("columns", {"annotation": {}, "attribute": {}, "image": {}})
    json_cols = set(meta.get("json_columns", []))
    ann_keys = meta.get("annotation_keys")
    from_coco = ann_keys is not None

    samples = table.column(T.SAMPLE_ID).to_pylist()

    def parse(text: str, i: int, col: str) -> Any:
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise MlcycleError(f"sample {printable(samples[i])!r}: column '{printable(col)}' is not valid JSON text "
                               f"({printable(text, 60)!r}: {exc.msg})",
                               hint="COCO keeps segmentations (and nested values) as JSON; fix or drop that column") from None

    def values(col: str) -> list:
        vals = table.column(col).to_pylist()
        if col in json_cols:
            vals = [None if v is None else parse(v, i, col) for i, v in enumerate(vals)]
        return vals

    images = []
    image_extra = {col: values(col) for col in cols.get("image", {}) if col in table.column_names}
    first_row = {}
    for i, s in enumerate(samples):
        first_row.setdefault(s, i)
    for s in order:
        w, h = sizes[s]
        im: dict[str, Any] = {"id": img_ids[s], "file_name": s}
        if w is not None:
            im["width"] = w
        if h is not None:
            im["height"] = h
        for col, key in cols.get("image", {}).items():
            if col in image_extra:
                v = image_extra[col][first_row[s]]
                if v is not None:
                    im[key] = v
        images.append(im)

    is_label = T.label_mask(table)
    idx = np.flatnonzero(is_label)
    boxes = T.bboxes(table)
    label_ids = T.column_or_null(table, T.LABEL_ID).to_pylist()
    labels = T.column_or_null(table, T.LABEL).to_pylist()
    areas = T.column_or_null(table, T.AREA).to_pylist()
    crowd = T.column_or_null(table, T.ISCROWD).to_pylist()
    segs = T.column_or_null(table, T.SEGMENTATION).to_pylist()
    scores = T.column_or_null(table, T.SCORE).to_pylist()
    extra = {col: values(col) for col in cols.get("annotation", {}) if col in table.column_names}
    attr_cols = dict(cols.get("attribute", {}))
    if not from_coco:
        # another format's attributes (occluded, truncated ...) go into COCO `attributes`
        import pyarrow as pa

        attr_cols = {c: c for c in T.attribute_columns(table)
                     if c not in T.COMMAND_COLUMNS and not pa.types.is_nested(table.column(c).type)}
    attrs = {col: values(col) for col in attr_cols if col in table.column_names}
    no_attributes = set(meta.get("no_attributes", []))
    used_ids = {v for v in label_ids if v is not None}
    next_id = max(used_ids, default=0) + 1
    anns = []
    for i in idx.tolist():
        lid = label_ids[i]
        if lid is None:
            lid = next_id
            next_id += 1
        a: dict[str, Any] = {"id": lid, "image_id": img_ids[samples[i]]}
        if labels[i] is None:
            raise MlcycleError(f"sample {printable(samples[i])!r}: label {lid} has a box but no class (label is null); "
                               "a COCO annotation needs a category",
                               hint="give it a label, or drop the row (mlcycle filter)")
        a["category_id"] = name_to_id[labels[i]]
        b = boxes[i]
        has_box = not np.isnan(b).all()
        if has_box:
            a["bbox"] = [float(v) for v in b]
        if areas[i] is not None:
            a["area"] = areas[i]
        elif has_box and (not from_coco or "area" not in ann_keys):
            a["area"] = float(b[2] * b[3])
        if not from_coco or "iscrowd" in ann_keys:
            a["iscrowd"] = int(bool(crowd[i]))
        if scores[i] is not None:
            a["score"] = scores[i]
        if segs[i] is not None:
            a["segmentation"] = parse(segs[i], i, T.SEGMENTATION)
        elif not from_coco and has_box:
            a["segmentation"] = []
        if (attrs and not from_coco) or (from_coco and "attributes" in ann_keys and label_ids[i] not in no_attributes):
            at = {}
            for col, key in attr_cols.items():
                if col in attrs and attrs[col][i] is not None:
                    at[key] = attrs[col][i]
            a["attributes"] = at
        for col, key in cols.get("annotation", {}).items():
            if col in extra and extra[col][i] is not None:
                a[key] = extra[col][i]
        anns.append(a)

    doc: dict[str, Any] = {}
    for key, value in meta.get("top", {}).items():
        doc[key] = value
    doc["images"] = images
    doc["annotations"] = anns
    doc["categories"] = cats
    return doc


def write(table: "pa.Table", output: Path | None, options: WriteOptions | None = None) -> None:
    import orjson

    from mlcycle import io

    options = options or WriteOptions()
    doc = to_dict(table, options.source)
    data = orjson.dumps(doc, option=orjson.OPT_APPEND_NEWLINE)
    with io.atomic_output(output, "wb") as fh:
        fh.write(data)
