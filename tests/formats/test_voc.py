"""Pascal VOC: stated parse results, the 100-image cross-format check, unsafe XML, export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mlcycle import reporting

from mlcycle import formats
from mlcycle import table as T
from mlcycle.errors import MlcycleError
from mlcycle.formats import ReadOptions, WriteOptions, voc


def labels(table):
    return [r for r in table.to_pylist() if r[T.LABEL] is not None]


def test_datumaro_voc_2007_000001(external, expected):
    spec = expected["parse"]["datumaro_voc_detection"]
    path = external / "openvinotoolkit__datumaro/tests/assets/voc_dataset/voc_dataset1"
    assert formats.detect(path) == "voc"
    table = voc.read(path, ReadOptions())
    rows = table.to_pylist()
    item = spec["items"][0]
    got = [r for r in rows if r[T.SAMPLE_ID] == item["id"] + ".jpg" and r["part_of"] is None]
    assert [r[T.LABEL] for r in got] == [a["label"] for a in item["anns"]]
    for r, a in zip(got, item["anns"]):
        assert r[T.BBOX] == a["bbox"]
        assert bool(r["truncated"]) == a["truncated"] and bool(r["difficult"]) == a["difficult"]
        assert (r[T.WIDTH], r[T.HEIGHT]) == (20, 10) and r[T.SPLIT] == "train"
    assert got[0]["pose"] == "Unspecified"
    part = [r for r in rows if r["part_of"] is not None]
    assert [(p[T.LABEL], p[T.BBOX]) for p in part] == [(spec["items"][0]["layout_part"]["label"],
                                                        spec["items"][0]["layout_part"]["bbox"])]
    assert part[0]["part_of"] == got[1][T.LABEL_ID]  # the person's head
    empty = [r for r in rows if r[T.SAMPLE_ID] == "2007_000002.jpg"]
    assert len(empty) == 1 and empty[0][T.LABEL] is None and empty[0][T.SPLIT] == "test"
    assert (empty[0][T.WIDTH], empty[0][T.HEIGHT]) == (20, 10)  # from the JPEG header


def test_roboflow_voc_equals_stated_values(external, expected):
    spec = expected["parse"]["datumaro_roboflow_coco_voc_yolo"]
    table = formats.read("voc", external / "openvinotoolkit__datumaro/tests/assets/roboflow_dataset/voc")
    got = labels(table)
    for item in spec["items"]:
        rs = [r for r in got if r[T.SAMPLE_ID] == item["id"] + ".jpg"]
        assert [(r[T.LABEL], r[T.BBOX]) for r in rs] == [(a["label"], a["bbox"]) for a in item["anns"]]
        assert {(r[T.SPLIT], r[T.WIDTH], r[T.HEIGHT]) for r in rs} == {(item["subset"], 10, 5)}


def gts(external: Path) -> Path:
    return external / "rafaelpadilla__review_object_detection_metrics/data/database/gts"


def key(r):
    return (r[T.SAMPLE_ID], r[T.LABEL], tuple(r[T.BBOX]))


@pytest.mark.parametrize("folder", ["pascalvoc_format", "imagenet_format"])
def test_voc100_equals_coco_exactly(external, folder):
    table = formats.read("voc", gts(external) / folder)
    coco = formats.read("coco", gts(external) / "coco_format_v1/instances_default.json")
    a = sorted(labels(table), key=key)
    b = sorted(labels(coco), key=key)
    assert len(a) == 273
    assert [key(r) for r in a] == [key(r) for r in b]
    assert [(r[T.WIDTH], r[T.HEIGHT]) for r in a] == [(r[T.WIDTH], r[T.HEIGHT]) for r in b]
    if folder == "pascalvoc_format":
        assert sum(bool(r["difficult"]) for r in a) == 38


def test_inclusive_corners_option(external):
    path = gts(external) / "pascalvoc_format/2007_000027.xml"
    ex = labels(voc.read(path, ReadOptions()))[0][T.BBOX]
    inc = labels(voc.read(path, voc.ReadOptions(corners="inclusive")))[0][T.BBOX]
    assert ex == [174.0, 101.0, 175.0, 250.0]
    assert inc == [173.0, 100.0, 176.0, 251.0]


BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<annotation><filename>&lol3;</filename></annotation>
"""
EXTERNAL = b"""<?xml version="1.0"?>
<!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<annotation><filename>&xxe;</filename></annotation>
"""


@pytest.mark.parametrize("data", [BOMB, EXTERNAL], ids=["bomb", "external-entity"])
def test_unsafe_xml_is_refused(tmp_path, data):
    p = tmp_path / "evil.xml"
    p.write_bytes(data)
    with pytest.raises(MlcycleError, match="refused unsafe XML"):
        voc.read(p, ReadOptions())


def write_xml(tmp_path, body: str) -> Path:
    p = tmp_path / "a.xml"
    p.write_text(f"<annotation><filename>a.jpg</filename><size><width>10</width><height>10</height></size>{body}</annotation>")
    return p


def test_inverted_box_is_an_error_naming_file_and_object(tmp_path, capsys):
    p = write_xml(tmp_path, "<object><name>cat</name><bndbox><xmin>5</xmin><ymin>1</ymin><xmax>2</xmax><ymax>3</ymax></bndbox></object>"
                            "<object><name>dog</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>2</xmax><ymax>3</ymax></bndbox></object>")
    with pytest.raises(MlcycleError, match=r"a\.xml: object 1 \(cat\): box has x2 < x1"):
        voc.read(p, ReadOptions())
    with reporting.collect() as seen:
        table = voc.read(p, ReadOptions(skip_invalid=True))
    assert [r[T.LABEL] for r in labels(table)] == ["dog"]
    assert any("skipped 1 invalid VOC object" in w for w in seen.warnings)


def test_malformed_xml_names_line(tmp_path):
    p = tmp_path / "a.xml"
    p.write_text("<annotation>\n<object>\n</annotation>")
    with pytest.raises(MlcycleError, match=r"a\.xml:3:\d+: malformed XML"):
        voc.read(p, ReadOptions())


def test_round_trip_voc_text(external, tmp_path):
    src = gts(external) / "pascalvoc_format"
    table = formats.read("voc", src)
    out = tmp_path / "out"
    formats.write("voc", table, out)
    back = formats.read("voc", out)
    assert sorted(map(key, labels(back))) == sorted(map(key, labels(table)))
    cols = ["difficult", "truncated", "pose"]
    a = sorted((key(r), tuple(r[c] for c in cols)) for r in labels(table))
    b = sorted((key(r), tuple(r[c] for c in cols)) for r in labels(back))
    assert a == b
    xml = (out / "Annotations/2007_000027.xml").read_text()
    assert "<xmin>174</xmin>" in xml and "<xmax>349</xmax>" in xml and "<difficult>0</difficult>" in xml


def test_round_trip_parts_attributes_and_splits(external, tmp_path):
    src = external / "openvinotoolkit__datumaro/tests/assets/voc_dataset/voc_dataset1"
    table = formats.read("voc", src)
    out = tmp_path / "out"
    formats.write("voc", table, out)
    back = formats.read("voc", out)
    drop = {T.LABEL_ID}
    norm = lambda t: sorted((tuple((k, v) for k, v in r.items() if k not in drop) for r in t.to_pylist()), key=repr)
    assert norm(back) == norm(table)
    assert (out / "ImageSets/Main/test.txt").read_text() == "2007_000002\n"


def test_inclusive_round_trip(tmp_path):
    t = T.from_columns({T.SAMPLE_ID: ["a.jpg"], T.SOURCE: ["gt"], T.LABEL: ["x"],
                        T.BBOX: np.array([[0.0, 0, 10, 5]]), T.WIDTH: [20], T.HEIGHT: [20]})
    voc.write(t, tmp_path / "o", voc.WriteOptions(corners="inclusive"))
    xml = (tmp_path / "o/Annotations/a.xml").read_text()
    assert "<xmin>1</xmin>" in xml and "<xmax>10</xmax>" in xml
    back = voc.read(tmp_path / "o", voc.ReadOptions(corners="inclusive"))
    assert labels(back)[0][T.BBOX] == [0.0, 0.0, 10.0, 5.0]


@pytest.mark.parametrize("sid", ["../x.jpg", "/tmp/x.jpg"])
def test_export_refuses_escaping_sample_ids(tmp_path, sid):
    t = T.from_columns({T.SAMPLE_ID: [sid], T.SOURCE: ["gt"], T.LABEL: ["x"], T.BBOX: np.array([[0.0, 0, 1, 1]])})
    with pytest.raises(MlcycleError, match="outside the output folder"):
        voc.write(t, tmp_path / "o", WriteOptions())


def test_cli_ingest_voc_with_corners(runner, external):
    p = gts(external) / "pascalvoc_format/2007_000027.xml"
    res = runner(["ingest", "voc", p, "--corners", "inclusive"])
    assert res.exit_code == 0, res.stderr
    assert '"bbox":[173.0,100.0,176.0,251.0]' in res.stdout


def test_utf16_bomb_is_refused_too(tmp_path):
    p = tmp_path / "evil.xml"
    p.write_bytes(BOMB.decode().replace('version="1.0"', 'version="1.0" encoding="UTF-16"').encode("utf-16"))
    with pytest.raises(MlcycleError, match="refused unsafe XML"):
        voc.read(p, ReadOptions())


def test_fast_path_only_without_dtd():
    from mlcycle.formats._xml import _without_dtd

    assert _without_dtd(b"<annotation><filename>a.jpg</filename></annotation>")
    assert _without_dtd(b'<?xml version="1.0" encoding="UTF-8"?><annotation/>')
    assert not _without_dtd(BOMB) and not _without_dtd(EXTERNAL)
    assert not _without_dtd(b'<?xml version="1.0" encoding="cp500"?><annotation/>')
    assert not _without_dtd("<annotation/>".encode("utf-16"))
