"""COCO results JSON (a list of detections) <-> prediction rows.

Reading needs the ground truth (``--images``: a COCO instances file or a label table)
to map ``image_id`` to ``sample_id`` and ``category_id`` to class names; a result for an
unknown image or category is an error naming it. ``label_id`` is the result's position
+ 1, as pycocotools' ``loadRes`` numbers them. ``bbox`` and ``segmentation`` (RLE or
polygons) are kept; ``score`` is required.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlcycle import table as T
from mlcycle.errors import MlcycleError, OptionError
from mlcycle.formats import ReadOptions as CommonReadOptions
from mlcycle.formats import WriteOptions
from mlcycle.formats._json import load_json
from mlcycle.formats._coco_doc import _fail, _json_text, check_boxes, image_rows, load_categories, load_images

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa


@dataclass(frozen=True)
class ReadOptions(CommonReadOptions):
    """COCO results' read options: ``images`` is the ground truth (a COCO instances file
    or a label table) that maps the results' image and category ids; required."""

    images: Path | None = None


def detect(path: Path) -> bool:
    if not path.is_file() or path.suffix.lower() != ".json":
        return False
    with open(path, "rb") as fh:
        head = fh.read(4096).lstrip()
    return head.startswith(b"[") and b'"score"' in head and b'"image_id"' in head


def _reference(images_path: Path) -> tuple[dict, dict[int, str], dict]:
    """(images columns, category id -> name, metadata) from instances JSON or a label table."""
    from mlcycle import io

    data = io.read_bytes(images_path)
    doc = None
    if data.lstrip().startswith(b"{"):
        try:
            doc = load_json(images_path, data)
        except MlcycleError:
            doc = None  # not one JSON document: a JSON Lines label table
    if isinstance(doc, dict) and "images" in doc:
        images = load_images(doc, str(images_path))
        _, cats = load_categories(doc, str(images_path))
        return images, cats, {"categories": doc.get("categories", [])}
    table = T.normalize(io.decode(data, str(images_path)), origin=str(images_path))
    import numpy as np

    samples = table.column(T.SAMPLE_ID).to_pylist()
    img_ids = T.column_or_null(table, T.IMAGE_ID).to_pylist()
    first: dict[int, str] = {}
    for s, i in zip(samples, img_ids):
        if i is not None and i not in first:
            first[i] = s
    if not first:
        raise MlcycleError(f"{images_path}: has no image_id column to map result image ids",
                           hint="ingest the ground truth with `mlcycle ingest coco` first")
    ids = np.array(list(first), dtype=np.int64)
    order = np.argsort(ids, kind="stable")
    images = {"ids": ids, "file_names": list(first.values()), "widths": [None] * len(ids),
              "heights": [None] * len(ids), "extra": {}, "sorted_ids": ids[order], "sorted_index": order}
    cats: dict[int, str] = {}
    for lab, cid in zip(T.column_or_null(table, T.LABEL).to_pylist(), T.column_or_null(table, T.CATEGORY_ID).to_pylist()):
        if lab is not None and cid is not None:
            cats.setdefault(cid, lab)
    meta = T.get_metadata(table).get("coco", {})
    for c in meta.get("categories", []):
        cats.setdefault(c["id"], c["name"])
    return images, cats, {"categories": meta.get("categories", [])}


def read(path: Path, options: CommonReadOptions | None = None) -> "pa.Table":
    import numpy as np
    import pyarrow as pa

    options = ReadOptions.of(options)
    if options.images is None:
        raise OptionError("images", "coco-results needs the ground truth to map image ids",
                          hint="give the COCO instances file (or label table) the detections were made on")
    name = str(path)
    results = load_json(path)
    if isinstance(results, dict) and isinstance(results.get("annotations"), list):
        results = results["annotations"]  # a results list saved inside a dataset object
    if not isinstance(results, list):
        raise _fail(name, "expected a JSON list of detections")
    if not results:
        raise _fail(name, "the results list is empty", hint="pycocotools cannot load an empty result either")
    if not all(isinstance(r, dict) for r in results):
        bad = next(i for i, r in enumerate(results) if not isinstance(r, dict))
        raise _fail(name, f"[{bad}] is not an object")
    images, cat_names, ref_meta = _reference(Path(options.images))
    n = len(results)
    for key in ("image_id", "category_id", "score"):
        for i, r in enumerate(results):
            v = r.get(key)
            if v is None:
                raise _fail(name, f"[{i}] has no '{key}'")
            if key != "score" and type(v) is not int:
                raise _fail(name, f"[{i}]: {key} {v!r} is not an integer")
            if key == "score" and (not isinstance(v, (int, float)) or isinstance(v, bool) or not np.isfinite(v)):
                raise _fail(name, f"[{i}]: score {v!r} is not a finite number")
    img_arr = np.array([r["image_id"] for r in results], dtype=np.int64)
    rows = image_rows(images, img_arr, name, "results")
    labels = []
    for i, r in enumerate(results):
        try:
            labels.append(cat_names[r["category_id"]])
        except KeyError:
            raise _fail(name, f"[{i}] refers to unknown category id {r['category_id']}",
                        hint=f"the categories of {options.images} do not include it") from None
    boxes, has_box = check_boxes([r.get("bbox") for r in results], name, "results")
    segs = [r.get("segmentation") for r in results]
    if not has_box.all():
        missing = ~has_box & np.array([s is None for s in segs])
        if missing.any():
            raise _fail(name, f"[{int(np.argmax(missing))}] has neither 'bbox' nor 'segmentation'")
    fns = images["file_names"]
    widths, heights = images["widths"], images["heights"]
    rl = rows.tolist()
    extra_keys: list[str] = []
    for r in results:
        for k in r:
            if k not in ("image_id", "category_id", "bbox", "score", "segmentation", "id", "area", "iscrowd") and k not in extra_keys:
                extra_keys.append(k)
    columns: dict[str, Any] = {
        T.SAMPLE_ID: [fns[i] for i in rl],
        T.SOURCE: pa.array([options.source or T.DEFAULT_PRED_SOURCE] * n, type=pa.string()),
        T.LABEL_ID: np.arange(1, n + 1, dtype=np.int64),
        T.LABEL: labels,
        T.CATEGORY_ID: pa.array([r["category_id"] for r in results], type=pa.int64()),
        T.BBOX: T.bbox_array(boxes, valid=has_box),
        T.SCORE: pa.array([float(r["score"]) for r in results], type=pa.float64()),
        T.SEGMENTATION: pa.array(_json_text(segs), type=pa.string()),
        T.WIDTH: pa.array([widths[i] for i in rl], type=pa.int32()),
        T.HEIGHT: pa.array([heights[i] for i in rl], type=pa.int32()),
        T.IMAGE_ID: img_arr,
    }
    if options.split is not None:
        columns[T.SPLIT] = [options.split] * n
    for k in extra_keys:
        columns[k if k not in columns else f"coco_{k}"] = pa.array([r.get(k) for r in results])
    return T.from_columns(columns, {"coco_results": {"extra_keys": extra_keys}} if extra_keys else None)


def to_list(table: "pa.Table", source: str | None = None) -> list[dict]:
    import numpy as np
    import orjson

    from mlcycle.formats.coco import category_table

    preds = [s for s in T.sources(table) if s != T.GT_SOURCE]
    if source is None:
        if len(preds) != 1:
            if not preds:
                raise MlcycleError("no prediction rows to export")
            raise OptionError("source", f"several prediction sources ({', '.join(preds)})", hint="choose the one to write")
        source = preds[0]
    sub = T.filter_source(table, source)
    if sub.num_rows == 0:
        raise MlcycleError(f"no rows with source '{source}'")
    _, name_to_id = category_table(table)
    mask = T.label_mask(sub)
    idx = np.flatnonzero(mask)
    img = T.column_or_null(sub, T.IMAGE_ID).to_pylist()
    samples = sub.column(T.SAMPLE_ID).to_pylist()
    if any(img[i] is None for i in idx.tolist()):
        bad = next(samples[i] for i in idx.tolist() if img[i] is None)
        raise MlcycleError(f"sample {bad!r} has no image_id; COCO results need the ground truth's image ids",
                           hint="ingest the predictions with their ground truth (COCO instances), which gives the image ids")
    boxes = T.bboxes(sub)
    scores = T.column_or_null(sub, T.SCORE).to_pylist()
    labels = sub.column(T.LABEL).to_pylist()
    segs = T.column_or_null(sub, T.SEGMENTATION).to_pylist()
    extra = T.get_metadata(table).get("coco_results", {}).get("extra_keys", [])
    extra_cols = {k: sub.column(k).to_pylist() for k in extra if k in sub.column_names}
    out = []
    for i in idx.tolist():
        if scores[i] is None:
            raise MlcycleError(f"row for {samples[i]!r} (label_id {i}) has no score; results need one")
        r: dict[str, Any] = {"image_id": img[i], "category_id": name_to_id[labels[i]]}
        if not np.isnan(boxes[i]).all():
            r["bbox"] = [float(v) for v in boxes[i]]
        r["score"] = scores[i]
        if segs[i] is not None:
            r["segmentation"] = orjson.loads(segs[i])
        for k, vals in extra_cols.items():
            if vals[i] is not None:
                r[k] = vals[i]
        out.append(r)
    return out


def write(table: "pa.Table", output: Path | None, options: WriteOptions | None = None) -> None:
    import orjson

    from mlcycle import io

    options = options or WriteOptions()
    data = orjson.dumps(to_list(table, options.source), option=orjson.OPT_APPEND_NEWLINE)
    with io.atomic_output(output, "wb") as fh:
        fh.write(data)
