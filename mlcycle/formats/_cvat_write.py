"""Writing CVAT for images 1.1 XML (see ``cvat`` for what is written): the label specs
in ``<meta>``, one ``<image>`` per sample, each row as its shape, attribute columns as
``<attribute>``; text escaped for XML attributes and element text."""

from __future__ import annotations

from math import isfinite
from typing import TYPE_CHECKING, Any

from mlcycle import table as T
from mlcycle.errors import MlcycleError, printable
from mlcycle.formats._paths import check_relative
from mlcycle.formats._writing import num, num_strings, source_rows, writable_attributes
from mlcycle.formats._xml import NotXmlText, xml_attr, xml_text
from mlcycle.formats.cvat import HANDLED, META, RLE, SHAPES

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa


_q = xml_attr  # an XML attribute value, quoted and escaped (control characters refused)
_text = xml_text


def to_xml(table: "pa.Table", source: str | None = None) -> str:
    try:
        return _to_xml(table, source)
    except NotXmlText as exc:
        raise MlcycleError(f"cannot write CVAT XML: {exc.raw_message}", hint=exc.raw_hint) from None


def _attr_text(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return num(v)
    return str(v)


def _input_type(values: list) -> str:
    vals = [v for v in values if v is not None]
    if vals and all(isinstance(v, bool) for v in vals):
        return "checkbox"
    if vals and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals):
        return "number"
    return "text"


def _to_xml(table: "pa.Table", source: str | None = None) -> str:
    import numpy as np
    import orjson

    from mlcycle import reporting

    full_meta = T.get_metadata(table).get(META, {})
    table = source_rows(table, source)[0]
    n = table.num_rows
    samples = table.column(T.SAMPLE_ID).to_pylist()
    col = lambda c: T.column_or_null(table, c).to_pylist() if c in table.column_names else [None] * n  # noqa: E731
    labels, splits = col(T.LABEL), col(T.SPLIT)
    widths, heights, image_ids = col(T.WIDTH), col(T.HEIGHT), col(T.IMAGE_ID)
    shapes, points, segs = col(T.SHAPE), col(T.POINTS), col(T.SEGMENTATION)
    occluded, z_order, src = col(T.OCCLUDED), col(T.Z_ORDER), col(T.ANNOTATION_SOURCE)
    group_ids, rotations, rles = col(T.GROUP_ID), col(T.ROTATION), col(RLE)
    boxes = T.bboxes(table)
    has_box = ~np.isnan(boxes).all(axis=1)
    is_label = T.label_mask(table)
    if T.SHAPE in table.column_names:
        is_label = is_label | table.column(T.SHAPE).is_valid().to_numpy(zero_copy_only=False)

    attr_map: dict[str, str] = dict(full_meta.get("attributes", {}))
    # every other attribute column becomes an <attribute>, mine-hard's hard_score and
    # hard_reason included, so that a re-check task shows annotators why a label is there
    for c in writable_attributes(table, HANDLED, commands=True):
        attr_map.setdefault(c, c)
    attr_map = {c: a for c, a in attr_map.items() if c in table.column_names}
    attr_vals = {c: table.column(c).to_pylist() for c in attr_map}

    # images in table order; their ids kept when every sample has a distinct one, else 0, 1, ...
    first: dict[str, int] = {}
    for i, s in enumerate(samples):
        first.setdefault(s, i)
    info: dict[str, list] = {s: [image_ids[i], widths[i], heights[i], splits[i]] for s, i in first.items()}
    for i, s in enumerate(samples):
        rec = info[s]
        for k, v in enumerate((image_ids[i], widths[i], heights[i], splits[i])):
            if rec[k] is None and v is not None:
                rec[k] = v
    ids = [(rec[0], rec[3]) for rec in info.values()]  # ids may repeat across subsets (project export)
    order = list(first)
    if not (all(v[0] is not None for v in ids) and len(set(ids)) == len(ids)):
        for k, s in enumerate(order):
            info[s][0] = k
    rows_of: dict[str, list[int]] = {s: [] for s in first}
    for i in np.flatnonzero(is_label).tolist():
        rows_of[samples[i]].append(i)

    # labels and their attribute specs
    specs = [dict(s) for s in full_meta.get("labels", [])]
    known = {s["name"] for s in specs}
    new = sorted({lab for lab in labels if lab is not None and lab not in known})
    specs.extend({"name": lab, "attributes": []} for lab in new)
    rows_by_label: dict[Any, list[int]] = {}
    for i in np.flatnonzero(is_label).tolist():
        rows_by_label.setdefault(labels[i], []).append(i)
    for spec in specs:  # an attribute spec for every attribute a label's rows carry
        spec["attributes"] = list(spec.get("attributes", []))
        have = {a.get("name") for a in spec["attributes"]}
        for c, a in attr_map.items():
            if a in have:
                continue
            vals = [attr_vals[c][i] for i in rows_by_label.get(spec["name"], [])]
            if any(v is not None for v in vals):
                it = _input_type(vals)
                spec["attributes"].append({"name": a, "mutable": "false", "input_type": it,
                                           "default_value": {"checkbox": "false", "number": "0"}.get(it, ""), "values": ""})

    out = ['<?xml version="1.0" encoding="utf-8"?>', "<annotations>", "  <version>1.1</version>",
           "  <meta>", "    <task>", f"      <size>{len(order)}</size>", "      <mode>annotation</mode>", "      <labels>"]
    for s in specs:
        out.append("        <label>")
        out.append(f"          <name>{_text(s['name'])}</name>")
        for key in ("color", "type"):
            if key in s:
                out.append(f"          <{key}>{_text(s[key])}</{key}>")
        out.append("          <attributes>")
        for a in s.get("attributes", []):
            out.append("            <attribute>")
            for key in ("name", "mutable", "input_type", "default_value", "values"):
                if key in a:
                    out.append(f"              <{key}>{_text(a[key])}</{key}>")
            out.append("            </attribute>")
        out.append("          </attributes>")
        out.append("        </label>")
    out += ["      </labels>", "    </task>", "  </meta>"]

    xtl_s, ytl_s = num_strings(boxes[:, 0]), num_strings(boxes[:, 1])
    xbr_s, ybr_s = num_strings(boxes[:, 0] + boxes[:, 2]), num_strings(boxes[:, 1] + boxes[:, 3])
    dropped_seg = 0
    split_lost = 0
    for s in order:
        check_relative(s, "CVAT")
    for s in order:
        iid, w, h, split = info[s]
        name, subset = s, None
        if split is not None:
            if s.startswith(f"{split}/"):
                name, subset = s[len(split) + 1:], split
            else:
                split_lost += 1
        head = f"  <image id={_q(iid)} name={_q(name)}"
        if subset is not None:
            head += f" subset={_q(subset)}"
        if w is not None:
            head += f" width={_q(w)}"
        if h is not None:
            head += f" height={_q(h)}"
        out.append(head + ">")
        for i in rows_of[s]:
            kind = shapes[i]
            if kind in ("line", "linestrip"):
                kind = "polyline"
            elif kind == "point":
                kind = "points"
            elif kind == "rectangle":
                kind = "box"
            if kind is None or kind not in SHAPES and kind != "circle":
                kind = "box" if has_box[i] else "tag"
            if kind == "polygon" and segs[i] is None:
                kind = "box" if has_box[i] else "tag"
            if kind in ("polyline", "points") and not points[i]:
                kind = "box" if has_box[i] else "tag"
            if kind == "mask" and rles[i] is None:
                kind = "box" if has_box[i] else "tag"
            if kind in ("box", "ellipse", "circle") and not has_box[i]:
                kind = "tag"
            if kind == "box" and segs[i] not in (None, "", "[]", "{}") and shapes[i] is None:
                dropped_seg += 1
            a = f' label={_q(labels[i] if labels[i] is not None else "")}'
            geo = ""
            x, y, bw, bh = (boxes[i].tolist() if has_box[i] else (0.0, 0.0, 0.0, 0.0))
            if kind == "box":
                geo = f' xtl="{xtl_s[i]}" ytl="{ytl_s[i]}" xbr="{xbr_s[i]}" ybr="{ybr_s[i]}"'
            elif kind == "polygon":
                seg = orjson.loads(segs[i])
                poly = seg[0] if isinstance(seg, list) and seg and isinstance(seg[0], list) else seg
                geo = " points=" + _q(";".join(f"{num(poly[k])},{num(poly[k + 1])}" for k in range(0, len(poly) - 1, 2)))
            elif kind in ("polyline", "points"):
                pts = points[i]
                geo = " points=" + _q(";".join(f"{num(pts[k])},{num(pts[k + 1])}" for k in range(0, len(pts) - 1, 2)))
            elif kind in ("ellipse", "circle"):
                pts = points[i]
                if shapes[i] == "ellipse" and pts and len(pts) == 4:
                    cx, cy, rx, ry = pts
                else:
                    cx, cy, rx, ry = x + bw / 2, y + bh / 2, bw / 2, bh / 2
                kind = "ellipse"
                geo = f" cx={_q(num(cx))} cy={_q(num(cy))} rx={_q(num(rx))} ry={_q(num(ry))}"
            elif kind == "mask":
                geo = (f" rle={_q(rles[i])} left={_q(num(x))} top={_q(num(y))}"
                       f" width={_q(num(bw))} height={_q(num(bh))}")
            if kind != "tag" and occluded[i] is not None:
                a += f' occluded="{1 if occluded[i] else 0}"'
            if src[i] is not None:
                a += f" source={_q(src[i])}"
            a += geo
            if kind != "tag" and z_order[i] is not None:
                a += f' z_order="{z_order[i]}"'
            if group_ids[i] is not None:
                a += f' group_id="{group_ids[i]}"'
            if rotations[i] is not None and kind in ("box", "ellipse"):
                a += f" rotation={_q(num(rotations[i]))}"
            children = [f"      <attribute name={_q(an)}>{_text(_attr_text(attr_vals[c][i]))}</attribute>"
                        for c, an in attr_map.items() if attr_vals[c][i] is not None]
            if children:
                out.append(f"    <{kind}{a}>")
                out.extend(children)
                out.append(f"    </{kind}>")
            else:
                out.append(f"    <{kind}{a}/>")
        out.append("  </image>")
    out.append("</annotations>")
    if dropped_seg:
        reporting.warn(f"{dropped_seg} segmentation(s) written as their boxes (CVAT export writes polygons only for rows whose shape is 'polygon')")
    if split_lost:
        reporting.warn(f"split not written for {split_lost} image(s): CVAT keeps a subset only as the first folder of the image name (SPLIT/name)")
    return "\n".join(out) + "\n"
