"""COCO results JSON (a list of detections) <-> prediction rows.

Reading needs the ground truth (``--images``: a COCO instances file or a label table)
to map ``image_id`` to ``sample_id`` and ``category_id`` to class names; a result for an
unknown image or category is an error naming it (``skip_invalid``: skipped, one
warning). ``label_id`` is the result's position + 1, as pycocotools' ``loadRes`` numbers
them. ``bbox`` and ``segmentation`` (RLE or polygons) are kept; ``score`` is required.
Areas follow ``loadRes`` (see ``read``): the ``area`` column holds the area pycocotools
would use; evaluate gives a result with only a mask its mask's box. Image sizes
come from the ground truth (instances file or label table).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlcycle import table as T
from mlcycle.errors import MlcycleError, OptionError, printable
from mlcycle.formats import ReadOptions as CommonReadOptions
from mlcycle.formats import WriteOptions
from mlcycle.formats._json import load_json
from mlcycle.formats._coco_doc import _attribute_array, _fail, _json_text, load_categories, load_images

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
    widths = T.column_or_null(table, T.WIDTH).to_pylist()
    heights = T.column_or_null(table, T.HEIGHT).to_pylist()
    first: dict[int, tuple] = {}
    for s, i, w, h in zip(samples, img_ids, widths, heights):
        if i is None:
            continue
        seen = first.get(i)
        if seen is None:
            first[i] = (s, w, h)
        elif (seen[1] is None or seen[2] is None) and w is not None and h is not None and seen[0] == s:
            first[i] = (s, w, h)  # the sample's size may be on another of its rows
    if not first:
        raise MlcycleError(f"{images_path}: has no image_id column to map result image ids",
                           hint="ingest the ground truth with `mlcycle ingest coco` first")
    ids = np.array(list(first), dtype=np.int64)
    order = np.argsort(ids, kind="stable")
    vals = list(first.values())
    images = {"ids": ids, "file_names": [v[0] for v in vals], "widths": [v[1] for v in vals],
              "heights": [v[2] for v in vals], "extra": {}, "sorted_ids": ids[order], "sorted_index": order}
    cats: dict[int, str] = {}
    for lab, cid in zip(T.column_or_null(table, T.LABEL).to_pylist(), T.column_or_null(table, T.CATEGORY_ID).to_pylist()):
        if lab is not None and cid is not None:
            cats.setdefault(cid, lab)
    meta = T.get_metadata(table).get("coco", {})
    for c in meta.get("categories", []):
        if isinstance(c, dict) and isinstance(c.get("id"), int) and isinstance(c.get("name"), str):
            cats.setdefault(c["id"], c["name"])
    return images, cats, {"categories": meta.get("categories", [])}


_CORE_KEYS = ("image_id", "category_id", "bbox", "score", "segmentation", "id", "area", "iscrowd")


def _results_list(results: Any, name: str) -> list:
    """The detections of a results file; a COCO instances file is refused with the way
    to read it."""
    if isinstance(results, dict):
        anns = results.get("annotations")
        scored = isinstance(anns, list) and anns and all(isinstance(a, dict) and "score" in a for a in anns)
        if not scored and ("images" in results or isinstance(anns, list)):
            raise _fail(name, "is a COCO instances file (images, annotations, categories), not a list of results",
                        hint="read it with the coco format (`mlcycle ingest coco FILE`); coco-results reads the "
                             "JSON list of detections a model writes: [{image_id, category_id, bbox, score}, ...]")
        if scored:
            return anns  # a results list saved inside a dataset object (scored annotations)
    if not isinstance(results, list):
        raise _fail(name, "expected a JSON list of detections [{image_id, category_id, bbox, score}, ...]")
    return results


def read(path: Path, options: CommonReadOptions | None = None) -> "pa.Table":
    """A COCO results file as prediction rows, as pycocotools' ``loadRes`` reads it.

    ``loadRes`` decides from the FIRST result how every result is read, and so does this:

    - the first result has a (non-empty) ``bbox``: each result's area is ``w*h`` of its
      box (a result without a box, on which pycocotools fails: of its mask's box);
    - otherwise (the first result is a mask): each result's area is its mask's area (also
      for results that carry a box).

    The area goes to the ``area`` column, which evaluate uses for the size ranges. A
    result without a box keeps a null ``bbox`` (so that writing the results back gives
    the same file); evaluate matches it on its mask's box (``maskUtils.toBbox``), as
    ``loadRes`` gives it one. An empty
    list is a valid "the model found nothing": a table with no rows. Invalid results are
    errors naming ``[i]``, or with ``skip_invalid`` skipped with one warning.
    """
    import numpy as np
    import pyarrow as pa

    from mlcycle.evaluation import masks
    from mlcycle.formats._coco_doc import find_image_rows, int_values, read_boxes
    from mlcycle.formats._invalid import InvalidInput

    options = ReadOptions.of(options)
    if options.images is None:
        raise OptionError("images", "coco-results needs the ground truth to map image ids",
                          hint="give the COCO instances file (or label table) the detections were made on")
    name = str(path)
    results = _results_list(load_json(path), name)
    images, cat_names, ref_meta = _reference(Path(options.images))
    problems = InvalidInput(options.skip_invalid, "COCO result", "COCO results")
    n = len(results)
    bad = np.zeros(n, bool)
    not_obj = [i for i, r in enumerate(results) if not isinstance(r, dict)]
    if not_obj:
        problems.add_each(not_obj, lambda i: f"{name}: [{i}] is not an object")
        bad[not_obj] = True
    res = [r if isinstance(r, dict) else {} for r in results]
    img_arr, bad_img, _ = int_values([r.get("image_id") for r in res], name, "", "image_id",
                                     problems=_Unless(problems, bad))
    bad |= bad_img
    cat_arr, bad_cat, _ = int_values([r.get("category_id") for r in res], name, "", "category_id",
                                     problems=_Unless(problems, bad))
    bad |= bad_cat
    scores = np.zeros(n)
    for i, r in enumerate(res):
        if bad[i]:
            continue
        v = r.get("score")
        if v is None or isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v):
            problems.add(f"{name}: [{i}]: score {printable(repr(v), 60)} is not a finite number"
                         if v is not None else f"{name}: [{i}] has no 'score'")
            bad[i] = True
        else:
            scores[i] = float(v)
    rows, unknown = find_image_rows(images, img_arr, name, "", problems=problems, skip=bad)
    bad |= unknown
    labels: list = [None] * n
    for i, r in enumerate(res):
        if bad[i]:
            continue
        lab = cat_names.get(int(cat_arr[i]))
        if lab is None:
            problems.add(f"{name}: [{i}] refers to unknown category id {int(cat_arr[i])}",
                         hint=f"the categories of {options.images} do not include it")
            bad[i] = True
        labels[i] = lab
    raw_boxes = [None if bad[i] or r.get("bbox") in (None, []) else r.get("bbox") for i, r in enumerate(res)]
    boxes, has_box, bad_box = read_boxes(raw_boxes, name, "", problems=problems)
    bad |= bad_box
    segs = [None if bad[i] else r.get("segmentation") for i, r in enumerate(res)]
    neither = ~bad & ~has_box & np.array([s is None for s in segs], dtype=bool)
    if neither.any():
        problems.add_each(np.flatnonzero(neither).tolist(), lambda i: f"{name}: [{i}] has neither 'bbox' nor 'segmentation'")
        bad |= neither
    widths = np.array([np.nan if v is None else v for v in images["widths"]], dtype=np.float64)
    heights = np.array([np.nan if v is None else v for v in images["heights"]], dtype=np.float64)
    keep = np.flatnonzero(~bad)
    # loadRes' branch, from the first result (the first one kept)
    box_branch = bool(len(keep)) and bool(has_box[keep[0]])
    need_mask = ~bad & np.array([s is not None for s in segs], dtype=bool) & (~has_box if box_branch else True)
    area = np.where(has_box, boxes[:, 2] * boxes[:, 3], np.nan)
    if need_mask.any():
        idx = np.flatnonzero(need_mask)
        rles, why = masks.decode([segs[i] for i in idx.tolist()], heights[rows[idx]], widths[rows[idx]])
        if why:
            problems.add_each(sorted(idx[k] for k in why),
                              lambda i: f"{name}: [{i}]: segmentation {why[int(np.flatnonzero(idx == i)[0])]}")
            bad[idx[list(why)]] = True
        ok = [k for k in range(len(idx)) if k not in why]
        if ok:
            good = [rles[k] for k in ok]
            at = idx[ok]
            if box_branch:  # w*h of the mask's box (the box itself is left out: evaluate
                # derives it, so that writing the results back gives the same file)
                derived = masks.mask_boxes(good)
                area[at] = derived[:, 2] * derived[:, 3]
            else:
                area[at] = masks.mask_areas(good)
        keep = np.flatnonzero(~bad)
    problems.report()
    keep_l = keep.tolist()
    fns = images["file_names"]
    rl = rows[keep].tolist()
    extra_keys: list[str] = []
    for i in keep_l:
        for k in res[i]:
            if k not in _CORE_KEYS and k not in extra_keys:
                extra_keys.append(k)
    m = len(keep_l)
    columns: dict[str, Any] = {
        T.SAMPLE_ID: pa.array([fns[i] for i in rl], type=pa.string()),
        T.SOURCE: pa.array([options.source or T.DEFAULT_PRED_SOURCE] * m, type=pa.string()),
        T.LABEL_ID: keep.astype(np.int64) + 1,  # loadRes numbers results 1..N in file order
        T.LABEL: pa.array([labels[i] for i in keep_l], type=pa.string()),
        T.CATEGORY_ID: pa.array(cat_arr[keep], type=pa.int64()),
        T.BBOX: T.bbox_array(boxes[keep], valid=has_box[keep]),
        T.SCORE: pa.array(scores[keep], type=pa.float64()),
        T.AREA: pa.array(area[keep], type=pa.float64(), from_pandas=True),
        T.SEGMENTATION: pa.array(_json_text([segs[i] for i in keep_l]), type=pa.string()),
        T.WIDTH: pa.array([images["widths"][i] for i in rl], type=pa.int32()),
        T.HEIGHT: pa.array([images["heights"][i] for i in rl], type=pa.int32()),
        T.IMAGE_ID: pa.array(img_arr[keep], type=pa.int64()),
    }
    if options.split is not None:
        columns[T.SPLIT] = pa.array([options.split] * m, type=pa.string())
    for k in extra_keys:
        columns[k if k not in columns else f"coco_{k}"] = _attribute_array([res[i].get(k) for i in keep_l], k)[0]
    return T.from_columns(columns, {"coco_results": {"extra_keys": extra_keys}} if extra_keys else None)


class _Unless:
    """An ``InvalidInput`` view that ignores entries already marked bad (so one bad
    result is reported once)."""

    def __init__(self, problems, bad) -> None:
        self.problems, self.bad = problems, bad

    def add_each(self, indices, message_of, hint=None) -> None:
        self.problems.add_each([i for i in indices if not self.bad[i]], message_of, hint)


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
