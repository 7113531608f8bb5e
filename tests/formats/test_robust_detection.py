"""Off the happy path (issue #13) for YOLO, Pascal VOC, KITTI and CVAT, and `export`:
encodings, absurd numbers, unlabelled shapes, YAML alias bombs, control characters in
names, atomic folder exports, path safety, round trips, and the export command line.
Every fixture is made here, small."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pytest

import mlcycle
from mlcycle import io
from mlcycle import table as T
from mlcycle.errors import MlcycleError
from mlcycle.formats import ReadOptions, cvat, kitti, voc, yolo

# --------------------------------------------------------------------------- fixtures


def _png(path: Path, w: int = 64, h: int = 48) -> Path:
    """A PNG header is enough for the size readers."""
    import struct
    import zlib

    path.parent.mkdir(parents=True, exist_ok=True)
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))  # noqa: E731
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))
    return path


def _yolo(root: Path, label: bytes, names: bytes = b"cat\ndog\n") -> Path:
    (root / "labels" / "train").mkdir(parents=True)
    _png(root / "images" / "train" / "a.png", 100, 50)
    (root / "classes.txt").write_bytes(names)
    (root / "labels" / "train" / "a.txt").write_bytes(label)
    return root


def _table(rows: list[dict], meta: dict | None = None) -> pa.Table:
    base = {T.SOURCE: "gt", T.WIDTH: 100, T.HEIGHT: 80}
    full = [{**base, T.LABEL_ID: k + 1, **r} for k, r in enumerate(rows)]
    return T.normalize(T.from_columns({c: [r.get(c) for r in full] for c in dict.fromkeys(c for r in full for c in r)},
                                      meta or {}))


VOC_HEAD = b"<annotation><filename>a.jpg</filename><size><width>100</width><height>80</height></size>"
VOC_OBJ = b"<object><name>cat</name><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>30</xmax><ymax>40</ymax></bndbox></object>"


def _voc(tmp_path: Path, body: bytes = VOC_OBJ, head: bytes = VOC_HEAD) -> Path:
    p = tmp_path / "a.xml"
    p.write_bytes(head + body + b"</annotation>")
    return p


KITTI_LINE = "Car 0.00 0 -1.58 587.01 173.33 614.12 200.12 1.65 1.67 3.64 -0.65 1.71 46.70 -1.59\n"


def _kitti(tmp_path: Path, data: bytes) -> Path:
    d = tmp_path / "label_2"
    d.mkdir(parents=True, exist_ok=True)
    (d / "000001.txt").write_bytes(data)
    return tmp_path


CVAT_HEAD = ('<?xml version="1.0" encoding="utf-8"?><annotations><version>1.1</version>'
             '<meta><task><labels><label><name>cat</name><attributes/></label></labels></task></meta>')


def _cvat(tmp_path: Path, images: str) -> Path:
    p = tmp_path / "annotations.xml"
    p.write_text(CVAT_HEAD + images + "</annotations>", encoding="utf-8")
    return p


# --------------------------------------------------------------------------- 1. encodings and numbers


def test_yolo_bom_is_accepted_and_bad_encodings_name_file_and_line(tmp_path):
    t = yolo.read(_yolo(tmp_path / "bom", b"\xef\xbb\xbf0 0.5 0.5 0.2 0.4\n", b"\xef\xbb\xbfcat\ndog\n"))
    assert t.column(T.LABEL).to_pylist() == ["cat"]
    assert t.column(T.BBOX).to_pylist() == [[40.0, 15.0, 20.0, 20.0]]
    with pytest.raises(MlcycleError, match=r"a\.txt:2: invalid UTF-8 \(byte 0xff\)"):
        yolo.read(_yolo(tmp_path / "bad", b"0 0.5 0.5 0.2 0.4\n\xff 0.5 0.5 0.2 0.4\n"))
    with pytest.raises(MlcycleError, match=r"a\.txt:1: a NUL byte: the file is UTF-16"):
        yolo.read(_yolo(tmp_path / "u16", "0 0.5 0.5 0.2 0.4\n".encode("utf-16")))
    with pytest.raises(MlcycleError, match=r"classes\.txt:2: invalid UTF-8"):
        yolo.read(_yolo(tmp_path / "names", b"0 0.5 0.5 0.2 0.4\n", b"cat\nd\xc3og\n"))


@pytest.mark.parametrize("line, message", [
    (b"inf 0.5 0.5 0.2 0.4", r"a\.txt:1: class index 'inf' is not a non-negative integer"),
    (b"nan 0.5 0.5 0.2 0.4", r"a\.txt:1: class index 'nan' is not"),
    (b"1e309 0.5 0.5 0.2 0.4", r"a\.txt:1: class index '1e309' is not"),
    (b"1e300 0.5 0.5 0.2 0.4", r"a\.txt:1: class index 1e\+300 is out of range"),
    (b"0 nan 0.5 0.2 0.4", r"a\.txt:1: a value is not finite"),
    (b"0 0.5 1e309 0.2 0.4", r"a\.txt:1: a value is not finite"),
    (b"0 0.5 0.5 0.2 0.4 nan", r"a\.txt:1: a value is not finite"),
])
def test_yolo_absurd_numbers_are_errors_naming_the_line(tmp_path, line, message):
    with pytest.raises(MlcycleError, match=message):
        yolo.read(_yolo(tmp_path, line + b"\n"))


def test_voc_encodings(tmp_path):
    bom = _voc(tmp_path, head=b"\xef\xbb\xbf" + VOC_HEAD)
    assert voc.read(bom).column(T.LABEL).to_pylist() == ["cat"]
    u16 = tmp_path / "u16.xml"
    u16.write_bytes(('<?xml version="1.0" encoding="utf-16"?>' + (VOC_HEAD + VOC_OBJ).decode()
                     + "</annotation>").encode("utf-16"))
    assert voc.read(u16).column(T.BBOX).to_pylist() == [[1.0, 2.0, 29.0, 38.0]]
    bad = _voc(tmp_path, body=b"\n<object><name>c\xe9t</name></object>")
    with pytest.raises(MlcycleError, match=r"a\.xml:2: invalid UTF-8 \(byte 0xe9\)"):
        voc.read(bad)
    unknown = _voc(tmp_path, head=b'<?xml version="1.0" encoding="klingon"?>' + VOC_HEAD)
    with pytest.raises(MlcycleError, match=r"a\.xml: cannot read XML: unknown encoding: klingon"):
        voc.read(unknown)


@pytest.mark.parametrize("size, message", [
    (b"<width>inf</width><height>80</height>", r"a\.xml: <size><width> is 'inf', not an image size"),
    (b"<width>100</width><height>nan</height>", r"a\.xml: <size><height> is 'nan'"),
    (b"<width>1e309</width><height>80</height>", r"<width> is '1e309'"),
    (b"<width>3e9</width><height>80</height>", r"<width> is '3e9'"),
    (b"<width>-4</width><height>80</height>", r"<width> is '-4'"),
])
def test_voc_absurd_sizes_are_errors_naming_the_file(tmp_path, size, message):
    p = _voc(tmp_path, head=b"<annotation><filename>a.jpg</filename><size>" + size + b"</size>")
    with pytest.raises(MlcycleError, match=message):
        voc.read(p)
    # skipped: the size is unknown, the objects stay
    with pytest.warns(UserWarning, match="skipped 1 invalid VOC object"):
        t = voc.read(p, ReadOptions(skip_invalid=True))
    assert t.column(T.WIDTH).to_pylist() == [None] and t.num_rows == 1


@pytest.mark.parametrize("obj, message", [
    (b"<object><name>cat</name><score>nan</score><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>3</xmax><ymax>4</ymax></bndbox></object>",
     r"a\.xml: object 1 \(cat\): <score> is 'nan', not a finite number"),
    (b"<object><name>cat</name><bndbox><xmin>-1e308</xmin><ymin>2</ymin><xmax>1e308</xmax><ymax>4</ymax></bndbox></object>",
     r"object 1 \(cat\): a corner is not finite"),
    (b"<object><name>cat</name><bndbox><xmin>inf</xmin><ymin>2</ymin><xmax>3</xmax><ymax>4</ymax></bndbox></object>",
     r"object 1 \(cat\): a corner is not finite"),
    (b"<object><name>cat</name><bndbox><xmin>5</xmin><ymin>2</ymin><xmax>3</xmax><ymax>4</ymax></bndbox></object>",
     r"object 1 \(cat\): box has x2 < x1"),
])
def test_voc_absurd_objects_are_errors_naming_the_object(tmp_path, obj, message):
    with pytest.raises(MlcycleError, match=message):
        voc.read(_voc(tmp_path, body=obj))


def test_json_given_to_an_xml_reader_says_it_is_json(tmp_path, runner):
    p = tmp_path / "x.json"
    p.write_text('{"images": [], "annotations": []}')
    for fmt in ("voc", "cvat"):
        res = runner(["ingest", fmt, p, "-o", tmp_path / "out.parquet"])
        assert res.exit_code == 1, res.stderr
        assert res.stderr.startswith("error: ") and "x.json: is JSON, not XML" in res.stderr
        assert "coco" in res.stderr and "Traceback" not in res.stderr
        assert not (tmp_path / "out.parquet").exists()


def test_kitti_encodings_and_numbers(tmp_path):
    t = kitti.read(_kitti(tmp_path / "bom", b"\xef\xbb\xbf" + KITTI_LINE.encode()))
    assert t.column(T.LABEL).to_pylist() == ["Car"]
    t = kitti.read(_kitti(tmp_path / "utf8", KITTI_LINE.replace("Car", "Straßenbahn").encode()))
    assert t.column(T.LABEL).to_pylist() == ["Straßenbahn"]
    with pytest.raises(MlcycleError, match=r"000001\.txt:2: invalid UTF-8 \(byte 0xef\)"):
        kitti.read(_kitti(tmp_path / "bad", KITTI_LINE.encode() + b"\xef" + KITTI_LINE.encode()))
    with pytest.raises(MlcycleError, match=r"000001\.txt:1: a NUL byte"):
        kitti.read(_kitti(tmp_path / "u16", KITTI_LINE.encode("utf-16")))
    with pytest.raises(MlcycleError, match=r"000001\.txt:1: a value is not finite"):
        kitti.read(_kitti(tmp_path / "inf", KITTI_LINE.replace("587.01", "1e309").encode()))
    with pytest.raises(MlcycleError, match=r"000001\.txt:1: a value is not finite"):
        kitti.read(_kitti(tmp_path / "nan", (KITTI_LINE.strip() + " nan\n").encode()))
    with pytest.raises(MlcycleError, match=r"000001\.txt:1: occluded is 1e\+20, not an integer state"):
        kitti.read(_kitti(tmp_path / "occ", KITTI_LINE.replace("0.00 0 ", "0.00 1e20 ").encode()))


def test_cvat_null_label_is_kept_as_a_null_label_and_written_back(tmp_path):
    """label="" (datumaro writes such shapes) is a row with a null label: nothing is lost;
    evaluate refuses ground truth without a class with a clear error (tests/evaluation)."""
    p = _cvat(tmp_path, '<image id="0" name="a.jpg" width="100" height="80">'
                        '<box label="cat" xtl="1" ytl="2" xbr="3" ybr="4"/>'
                        '<box label="" xtl="1" ytl="2" xbr="3" ybr="4"/></image>')
    t = cvat.read(p)
    assert t.column(T.LABEL).to_pylist() == ["cat", None]
    cvat.write(t, tmp_path / "again.xml")
    assert cvat.read(tmp_path / "again.xml").column(T.LABEL).to_pylist() == ["cat", None]


@pytest.mark.parametrize("image, message", [
    ('<image id="0" name="a.jpg" width="inf" height="80"/>', r"image 'a\.jpg': width='inf' is not an integer in 1\.\."),
    ('<image id="0" name="a.jpg" width="3000000000" height="80"/>', r"width='3000000000' is not an integer"),
    ('<image id="18446744073709551616" name="a.jpg" width="10" height="80"/>', r"id='18446744073709551616' is not an integer"),
    ('<image id="0" name="a.jpg"><box label="cat" xtl="-1e308" ytl="2" xbr="1e308" ybr="4"/></image>', r"<box> #1: box is beyond the float range"),
    ('<image id="0" name="a.jpg"><box label="cat" xtl="nan" ytl="2" xbr="3" ybr="4"/></image>', r"<box> #1: xtl='nan' is not a finite number"),
    ('<image id="0" name="a.jpg"><polygon label="cat" points="1,2;1e309,3;4,5"/></image>', r"<polygon> #1: points=.* has a non-finite value"),
])
def test_cvat_absurd_numbers_are_errors_naming_the_element(tmp_path, image, message):
    with pytest.raises(MlcycleError, match=message):
        cvat.read(_cvat(tmp_path, image))


def test_cvat_bom_and_integral_float_sizes_are_accepted(tmp_path):
    p = tmp_path / "a.xml"
    p.write_bytes(b"\xef\xbb\xbf" + (CVAT_HEAD + '<image id="0" name="a.jpg" width="640.0" height="480"/></annotations>').encode())
    assert cvat.read(p).select([T.WIDTH, T.HEIGHT]).to_pylist() == [{T.WIDTH: 640, T.HEIGHT: 480}]


# --------------------------------------------------------------------------- 2. YAML alias bomb


def test_yolo_yaml_alias_bomb_is_refused_fast(tmp_path):
    root = _yolo(tmp_path, b"0 0.5 0.5 0.2 0.4\n")
    (root / "classes.txt").unlink()
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for k in range(1, 10):
        prev = chr(ord("a") + k - 1)
        lines.append(f"{chr(ord('a') + k)}: &{chr(ord('a') + k)} [" + ",".join([f"*{prev}"] * 9) + "]")
    lines.append("names: *j")
    (root / "data.yaml").write_text("\n".join(lines) + "\n")
    import numpy  # noqa: F401  (imports are not what is timed)
    import yaml  # noqa: F401

    start = time.perf_counter()
    with pytest.raises(MlcycleError, match=r"data\.yaml: YAML aliases expand to more than 100000 values"):
        yolo.read(root)
    assert time.perf_counter() - start < 0.5
    # plain aliases in a small data.yaml are fine
    (root / "data.yaml").write_text("base: &n [cat, dog]\nnames: *n\n")
    assert yolo.read(root).column(T.LABEL).to_pylist() == ["cat"]


def test_yolo_yaml_names_must_be_text(tmp_path):
    root = _yolo(tmp_path, b"0 0.5 0.5 0.2 0.4\n")
    (root / "classes.txt").unlink()
    (root / "data.yaml").write_text("names: [cat, [a, b]]\n")
    with pytest.raises(MlcycleError, match=r"data\.yaml: 'names' entry 1 is a list, not a class name"):
        yolo.read(root)
    (root / "data.yaml").write_text("names: [cat\n")
    with pytest.raises(MlcycleError, match=r"data\.yaml:2: cannot read YAML"):
        yolo.read(root)


# --------------------------------------------------------------------------- 3. names with control characters


@pytest.mark.parametrize("layout", ["ultralytics", "darknet", "flat"])
def test_yolo_refuses_class_names_that_would_shift_the_class_list(tmp_path, layout):
    t = _table([{T.SAMPLE_ID: "a.png", T.LABEL: "traffic\nlight", T.BBOX: [1, 2, 3, 4]},
                {T.SAMPLE_ID: "a.png", T.LABEL: "car", T.BBOX: [1, 2, 3, 4]}])
    with pytest.raises(MlcycleError, match=r"class 'traffic\\nlight' \(index \d\) has a control character"):
        mlcycle.export(t, "yolo", tmp_path / "out", layout=layout)
    assert not (tmp_path / "out").exists()


def test_kitti_refuses_types_with_control_characters(tmp_path):
    t = _table([{T.SAMPLE_ID: "a.png", T.LABEL: "Car\nVan", T.BBOX: [1, 2, 3, 4]}])
    with pytest.raises(MlcycleError, match=r"label 'Car\\nVan' cannot be a KITTI type"):
        mlcycle.export(t, "kitti", tmp_path / "out")
    assert not (tmp_path / "out").exists()


TRICKY = ["a<b & \"c\" 'd'", "café ☕ 猫", "tab\there", "two\nlines", "cr\rhere", "]]>", "&amp;"]


def test_voc_write_read_keeps_tricky_names_and_attributes(tmp_path):
    t = _table([{T.SAMPLE_ID: f"img&<{k}>.png", T.LABEL: name, T.BBOX: [1, 2, 3, 4], "note": name}
                for k, name in enumerate(TRICKY)])
    mlcycle.export(t, "voc", tmp_path / "out")
    back = voc.read(tmp_path / "out")
    got = {r[T.SAMPLE_ID]: (r[T.LABEL], r["note"]) for r in back.to_pylist()}
    # (VOC text is stripped on reading: names here have no spaces around them)
    assert got == {f"img&<{k}>.png": (name, name) for k, name in enumerate(TRICKY)}


def test_cvat_write_read_keeps_tricky_names_and_attributes(tmp_path):
    t = _table([{T.SAMPLE_ID: f"img&<{k}>.png", T.LABEL: name, T.BBOX: [1, 2, 3, 4], "note": name}
                for k, name in enumerate(TRICKY)])
    cvat.write(t, tmp_path / "a.xml")
    back = cvat.read(tmp_path / "a.xml")
    got = {r[T.SAMPLE_ID]: (r[T.LABEL], r["note"]) for r in back.to_pylist()}
    assert got == {f"img&<{k}>.png": (name, name) for k, name in enumerate(TRICKY)}


@pytest.mark.parametrize("fmt", ["voc", "cvat"])
@pytest.mark.parametrize("where", [T.LABEL, "note", T.SAMPLE_ID])
def test_xml_writers_refuse_control_characters_xml_cannot_hold(tmp_path, fmt, where):
    row = {T.SAMPLE_ID: "a.png", T.LABEL: "cat", T.BBOX: [1, 2, 3, 4], "note": "ok"}
    row[where] = "bell\x07" if where != T.SAMPLE_ID else "a\x1b[31m.png"
    t = _table([row])
    out = tmp_path / ("out" if fmt == "voc" else "out.xml")
    with pytest.raises(MlcycleError, match=r"control character"):
        mlcycle.export(t, fmt, out)
    assert not out.exists()


# --------------------------------------------------------------------------- 4. atomic folders, path safety


@pytest.mark.parametrize("fmt", ["yolo", "voc", "kitti"])
def test_a_failing_folder_export_leaves_nothing_behind(tmp_path, fmt, monkeypatch):
    from mlcycle.formats import _paths

    images = tmp_path / "images"
    for k in range(3):
        _png(images / f"{k}.png")
    t = _table([{T.SAMPLE_ID: f"{k}.png", T.LABEL: "cat", T.BBOX: [1, 2, 3, 4]} for k in range(3)])
    calls = []
    real = _paths.image_source

    def fail_on_third(root, sid):
        calls.append(sid)
        if len(calls) == 3:
            raise MlcycleError("disk on fire")
        return real(root, sid)

    monkeypatch.setattr(_paths, "image_source", fail_on_third)
    out = tmp_path / "out"
    with pytest.raises(MlcycleError, match="disk on fire"):
        mlcycle.export(t, fmt, out, images_root=images)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images"]  # no out, no temporary folder
    # into an existing folder: it is left as it was
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    calls.clear()
    with pytest.raises(MlcycleError, match="disk on fire"):
        mlcycle.export(t, fmt, out, images_root=images)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images", "out"]


def test_cvat_folder_output_is_atomic(tmp_path, runner, monkeypatch):
    t = tmp_path / "t.parquet"
    io.write_table(_table([{T.SAMPLE_ID: "a.png", T.LABEL: "cat", T.BBOX: [1, 2, 3, 4]}]), t)
    res = runner(["export", "cvat", t, "-o", f"{tmp_path}/new/"])
    assert res.exit_code == 0, res.stderr
    assert [p.name for p in (tmp_path / "new").iterdir()] == ["annotations.xml"]

    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", boom)
    res = runner(["export", "cvat", t, "-o", f"{tmp_path}/other/"])
    assert res.exit_code == 1 and "No space left on device" in res.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new", "t.parquet"]


@pytest.mark.parametrize("fmt", ["yolo", "voc", "kitti"])
def test_folder_exporters_never_read_outside_the_images_root(tmp_path, fmt):
    images = tmp_path / "images"
    _png(images / "ok.png")
    secret = _png(tmp_path / "secret" / "s.png")
    (images / "link.png").symlink_to(secret)
    t = _table([{T.SAMPLE_ID: "link.png", T.LABEL: "cat", T.BBOX: [1, 2, 3, 4]}])
    with pytest.raises(MlcycleError, match=r"link\.png: a symbolic link to a file outside images_root"):
        mlcycle.export(t, fmt, tmp_path / "out", images_root=images)
    assert not (tmp_path / "out").exists()
    for sid in ("../secret/s.png", str(secret), "a/../../secret/s.png"):
        t = _table([{T.SAMPLE_ID: sid, T.LABEL: "cat", T.BBOX: [1, 2, 3, 4]}])
        with pytest.raises(MlcycleError, match=r"would write outside the output folder|not a relative path"):
            mlcycle.export(t, fmt, tmp_path / "out", images_root=images)
        assert not (tmp_path / "out").exists()
    # a link inside the root is copied
    (images / "inner.png").symlink_to(images / "ok.png")
    t = _table([{T.SAMPLE_ID: "inner.png", T.LABEL: "cat", T.BBOX: [1, 2, 3, 4]}])
    mlcycle.export(t, fmt, tmp_path / "out", images_root=images)
    copied = [p for p in (tmp_path / "out").rglob("inner.png")]
    assert len(copied) == 1 and not copied[0].is_symlink() and copied[0].read_bytes() == (images / "ok.png").read_bytes()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
@pytest.mark.parametrize("fmt", ["yolo", "voc", "kitti"])
def test_a_fifo_in_place_of_an_image_does_not_hang_export(tmp_path, fmt):
    images = tmp_path / "images"
    images.mkdir()
    os.mkfifo(images / "a.png")
    t = tmp_path / "t.parquet"
    io.write_table(_table([{T.SAMPLE_ID: "a.png", T.LABEL: "cat", T.BBOX: [1, 2, 3, 4]}]), t)
    res = subprocess.run([sys.executable, "-m", "mlcycle", "export", fmt, str(t), "-o", str(tmp_path / "out"),
                          "--images-root", str(images)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 1
    assert "a.png: not a regular file" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_in_place_of_a_label_file_does_not_hang_ingest(tmp_path):
    root = _yolo(tmp_path, b"0 0.5 0.5 0.2 0.4\n")
    os.mkfifo(root / "labels" / "train" / "b.txt")
    with pytest.raises(MlcycleError, match=r"b\.txt: not a regular file"):
        yolo.read(root)


# --------------------------------------------------------------------------- 5. round trips


def _labels(table: pa.Table) -> list[tuple]:
    return sorted((r[T.SAMPLE_ID], r[T.LABEL], tuple(round(v, 3) for v in r[T.BBOX]) if r[T.BBOX] else None,
                   r[T.WIDTH], r[T.HEIGHT]) for r in table.to_pylist())


@pytest.mark.parametrize("copy_images", [True, False])
def test_yolo_round_trip_of_the_bundled_sample_keeps_sample_ids(tmp_path, runner, copy_images):
    sample = mlcycle.sample_dataset()
    gt = tmp_path / "gt.parquet"
    assert runner(["ingest", "coco", sample / "annotations" / "instances_val.json", "--images-root", sample,
                   "-o", gt]).exit_code == 0
    res = runner(["export", "yolo", gt, "-o", tmp_path / "y"] + (["--images-root", sample] if copy_images else []))
    assert res.exit_code == 0, res.stderr
    back = tmp_path / "back.parquet"
    res = runner(["ingest", "yolo", tmp_path / "y", "-o", back] + ([] if copy_images else ["--images-root", sample]))
    assert res.exit_code == 0, res.stderr
    a, b = io.read_table(gt), io.read_table(back)
    assert a.column(T.SAMPLE_ID).to_pylist()[0].startswith("images/")
    assert _labels(a) == _labels(b)


def test_crowd_regions_are_flagged_in_voc_and_dropped_with_a_warning_in_yolo(tmp_path):
    t = _table([{T.SAMPLE_ID: "a.png", T.LABEL: "person", T.BBOX: [1, 2, 30, 40], T.ISCROWD: False},
                {T.SAMPLE_ID: "a.png", T.LABEL: "person", T.BBOX: [50, 2, 30, 40], T.ISCROWD: True}])
    mlcycle.export(t, "voc", tmp_path / "v")
    back = voc.read(tmp_path / "v").to_pylist()
    assert [(r[T.BBOX][0], r["difficult"]) for r in back] == [(1.0, None), (50.0, True)]
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mlcycle.export(t, "yolo", tmp_path / "y")
    assert [str(w.message) for w in caught] == [
        "1 crowd region(s) (iscrowd) not written: YOLO has no crowd flag, and a crowd box written as an ordinary object would be one"]
    lines = (tmp_path / "y" / "labels" / "a.txt").read_text().splitlines()
    assert len(lines) == 1 and lines[0].startswith("0 0.16")


def test_voc_polygon_objects_are_read_and_written(tmp_path):
    body = (b"<object><name>cat</name><polygon><x1>10</x1><y1>10</y1><x2>50</x2><y2>10</y2><x3>30</x3><y3>40</y3>"
            b"</polygon></object><object><name>dog</name><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>5</xmax>"
            b"<ymax>9</ymax></bndbox><polygon><pt><x>1</x><y>2</y></pt><pt><x>5</x><y>2</y></pt><pt><x>5</x>"
            b"<y>9</y></pt></polygon></object>")
    t = voc.read(_voc(tmp_path, body=body))
    rows = t.to_pylist()
    assert [(r[T.LABEL], r[T.BBOX], json.loads(r[T.SEGMENTATION])) for r in rows] == [
        ("cat", [10.0, 10.0, 40.0, 30.0], [[10, 10, 50, 10, 30, 40]]),
        ("dog", [1.0, 2.0, 4.0, 7.0], [[1, 2, 5, 2, 5, 9]]),
    ]
    assert voc.detect(tmp_path / "a.xml")
    mlcycle.export(t, "voc", tmp_path / "out")
    again = voc.read(tmp_path / "out")
    assert again.select([T.LABEL, T.BBOX, T.SEGMENTATION]).to_pylist() == t.select([T.LABEL, T.BBOX, T.SEGMENTATION]).to_pylist()
    bad = _voc(tmp_path, body=b"<object><name>cat</name><polygon><x1>1</x1><y1>2</y1></polygon></object>")
    with pytest.raises(MlcycleError, match=r"object 1 \(cat\): <polygon> needs at least 3 points"):
        voc.read(bad)


# --------------------------------------------------------------------------- 6. the export command line


@pytest.fixture()
def gt(tmp_path):
    p = tmp_path / "gt.parquet"
    io.write_table(_table([{T.SAMPLE_ID: "a.png", T.LABEL: "cat", T.BBOX: [1, 2, 3, 4]}]), p)
    return p


def test_export_accepts_several_tables(tmp_path, runner, gt):
    other = tmp_path / "other.parquet"
    io.write_table(_table([{T.SAMPLE_ID: "b.png", T.LABEL: "dog", T.BBOX: [5, 6, 7, 8]}]), other)
    res = runner(["export", "yolo", gt, other, "-o", f"{tmp_path}/d/"])
    assert res.exit_code == 0, res.stderr
    assert res.stdout == ""
    assert sorted(p.name for p in (tmp_path / "d" / "labels").iterdir()) == ["a.txt", "b.txt"]
    assert yolo.read(tmp_path / "d", ReadOptions(image_size=(100, 80))).column(T.LABEL).to_pylist() == ["cat", "dog"]


def test_export_of_empty_input_fails_without_creating_the_folder(tmp_path, runner):
    res = runner(["export", "yolo", "-o", f"{tmp_path}/d/"], input="")
    assert res.exit_code == 1
    assert res.stderr.startswith("error: <stdin>: no input") and "--allow-empty" in res.stderr
    assert not (tmp_path / "d").exists()


def test_export_empty_input_in_a_real_pipe(tmp_path):
    res = subprocess.run(f"false | {sys.executable} -m mlcycle export yolo -o {tmp_path}/d/", shell=True,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 1 and res.stderr.startswith("error: ")
    assert not (tmp_path / "d").exists()


def test_export_trailing_slash_means_a_folder(tmp_path, runner, gt):
    res = runner(["export", "cvat", gt, "-o", f"{tmp_path}/c/"])
    assert res.exit_code == 0, res.stderr
    assert (tmp_path / "c" / "annotations.xml").is_file()
    res = runner(["export", "coco", gt, "-o", f"{tmp_path}/j/"])
    assert res.exit_code == 2
    assert "--output" in res.stderr and "coco writes one file, not a folder" in res.stderr
    assert not (tmp_path / "j").exists()
    res = runner(["export", "voc", gt, "-o", f"{tmp_path}/v/"])
    assert res.exit_code == 0 and (tmp_path / "v" / "Annotations" / "a.xml").is_file()


# --------------------------------------------------------------------------- 8. what the fuzz test found


@pytest.mark.parametrize("bad", [b"/abs/path", b"../up", b"x/../../y", b"a\x1b[31mb"])
def test_voc_imagesets_ids_that_are_not_relative_paths_are_named(tmp_path, bad):
    (tmp_path / "Annotations").mkdir()
    (tmp_path / "Annotations" / "a.xml").write_bytes(VOC_HEAD + VOC_OBJ + b"</annotation>")
    main = tmp_path / "ImageSets" / "Main"
    main.mkdir(parents=True)
    (main / "train.txt").write_bytes(b"a\n" + bad + b"\n")
    with pytest.raises(MlcycleError, match=r"train\.txt:2: image id '.*' is not a relative image path"):
        voc.read(tmp_path)
    with pytest.warns(UserWarning, match="skipped 1 invalid VOC object"):
        t = voc.read(tmp_path, ReadOptions(skip_invalid=True))
    assert t.column(T.SAMPLE_ID).to_pylist() == ["a.jpg"] and t.column(T.SPLIT).to_pylist() == ["train"]
    (main / "train.txt").write_bytes(b"\xff\n")
    with pytest.raises(MlcycleError, match=r"train\.txt:1: invalid UTF-8"):
        voc.read(tmp_path)
    (main / "train.txt").write_bytes(b"a\n" + bad + b"\x00\n")
    with pytest.raises(MlcycleError, match=r"train\.txt:2: a NUL byte"):
        voc.read(tmp_path)


def test_voc_filename_outside_the_folder_is_named(tmp_path):
    p = _voc(tmp_path, head=VOC_HEAD.replace(b"a.jpg", b"../../etc/x.jpg"))
    with pytest.raises(MlcycleError, match=r"a\.xml: <filename> '\.\./\.\./etc/x\.jpg' is not an image file name"):
        voc.read(p)


def test_yolo_list_file_lines_outside_the_folder_are_not_used(tmp_path):
    root = _yolo(tmp_path, b"0 0.5 0.5 0.2 0.4\n")
    (root / "train.txt").write_bytes(b"./images/train/a.png\n../../etc/b.png\n/abs/c.png\nimages/train/d\x00.png\n")
    t = yolo.read(root, ReadOptions(image_size=(100, 50)))
    assert t.column(T.SAMPLE_ID).to_pylist() == ["a.png"]
