"""Image folders: samples with sizes from headers, class-per-folder, export; the size helper."""

from __future__ import annotations

import pytest

from mlcycle import reporting
from PIL import Image

from mlcycle import formats, io
from mlcycle import table as T
from mlcycle.errors import MlcycleError
from mlcycle.formats import ReadOptions, WriteOptions, images
from mlcycle.formats._images import image_sizes


def img(path, size):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size).save(path)


def test_flat_folder_gives_sample_rows_with_sizes(tmp_path):
    img(tmp_path / "a.jpg", (30, 20))
    img(tmp_path / "sub/b.png", (7, 9))
    assert formats.detect(tmp_path) == "images"
    rows = images.read(tmp_path, ReadOptions()).to_pylist()
    assert [(r[T.SAMPLE_ID], r[T.WIDTH], r[T.HEIGHT], r[T.LABEL], r[T.BBOX]) for r in rows] == [
        ("a.jpg", 30, 20, None, None), ("sub/b.png", 7, 9, None, None)]


def test_class_per_folder_with_splits(tmp_path):
    img(tmp_path / "train/cat/1.jpg", (5, 5))
    img(tmp_path / "train/dog/2.jpg", (6, 5))
    img(tmp_path / "val/cat/3.jpg", (7, 5))
    rows = images.read(tmp_path, ReadOptions()).to_pylist()
    assert [(r[T.SAMPLE_ID], r[T.LABEL], r[T.SPLIT], r[T.BBOX], r[T.CATEGORY_ID]) for r in rows] == [
        ("train/cat/1.jpg", "cat", "train", None, 0), ("train/dog/2.jpg", "dog", "train", None, 1),
        ("val/cat/3.jpg", "cat", "val", None, 0)]


def test_a_folder_with_annotations_is_not_taken_for_images(tmp_path):
    img(tmp_path / "a.jpg", (5, 5))
    (tmp_path / "a.xml").write_text("<annotation/>")
    assert not images.detect(tmp_path)


def test_export_copies_into_class_folders(tmp_path):
    src = tmp_path / "src"
    img(src / "cat/1.jpg", (5, 5))
    img(src / "x.jpg", (5, 5))
    table = T.from_columns({T.SAMPLE_ID: ["cat/1.jpg", "x.jpg"], T.SOURCE: ["gt", "gt"],
                            T.LABEL: ["kitten", None], T.SPLIT: ["val", None]})
    images.write(table, tmp_path / "out", WriteOptions(images_root=src))
    assert (tmp_path / "out/val/kitten/1.jpg").is_file() and (tmp_path / "out/x.jpg").is_file()
    back = images.read(src, ReadOptions())
    images.write(back, tmp_path / "out2", WriteOptions())  # images_root from the metadata
    assert (tmp_path / "out2/cat/1.jpg").is_file() or (tmp_path / "out2/x.jpg").is_file()


def test_export_refuses_escaping_ids(tmp_path):
    table = T.from_columns({T.SAMPLE_ID: ["../x.jpg"], T.SOURCE: ["gt"]})
    with pytest.raises(MlcycleError, match="outside"):
        images.write(table, tmp_path / "out", WriteOptions(images_root=tmp_path))


def test_image_sizes_order_table_then_fixed_then_header(tmp_path):
    img(tmp_path / "c.jpg", (11, 12))
    sizes = tmp_path / "s.parquet"
    io.write_table(T.from_columns({T.SAMPLE_ID: ["other/a.png"], T.SOURCE: ["gt"], T.WIDTH: [3], T.HEIGHT: [4]}), sizes)
    w, h = image_sizes(["a.jpg", "c.jpg"], tmp_path, ReadOptions(image_sizes=sizes))
    assert w.tolist() == [3, 11] and h.tolist() == [4, 12]  # a.jpg matched by stem
    w, h = image_sizes(["a.jpg", "c.jpg"], tmp_path, ReadOptions(image_sizes=sizes, image_size=(640, 480)))
    assert w.tolist() == [3, 640]


def test_missing_image_error_or_counted_warning(tmp_path, capsys):
    with pytest.raises(MlcycleError, match=r"nope\.jpg: image not found \(and 1 more\)"):
        image_sizes(["nope.jpg", "nope2.jpg"], tmp_path, ReadOptions())
    with reporting.collect() as seen:
        w, h = image_sizes(["nope.jpg", "nope2.jpg"], tmp_path, ReadOptions(allow_missing=True))
    assert w.tolist() == [-1, -1]
    assert any("2 image(s) not found" in m for m in seen.warnings)


def test_not_an_image_is_an_error(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"not an image")
    with pytest.raises(MlcycleError, match="not an image"):
        image_sizes(["a.jpg"], tmp_path, ReadOptions())


def test_cli_ingest_images(runner, tmp_path):
    img(tmp_path / "a.jpg", (3, 2))
    res = runner(["ingest", tmp_path])
    assert res.exit_code == 0
    assert "detected format: images" in res.stderr
    assert '"width":3' in res.stdout and '"height":2' in res.stdout


@pytest.mark.parametrize("fmt, ext, kwargs", [
    ("PNG", "png", {}), ("JPEG", "jpg", {}), ("JPEG", "jpg", {"progressive": True}),
    ("JPEG", "jpg", {"exif": b"Exif\x00\x00" + b"MM\x00*\x00\x00\x00\x08\x00\x00" + b"\x00" * 5000}),
    ("GIF", "gif", {}), ("BMP", "bmp", {}), ("WEBP", "webp", {}), ("TIFF", "tif", {}),
])
def test_header_sizes_equal_pillow(tmp_path, fmt, ext, kwargs):
    from mlcycle.formats._images import _pillow_size, header_size

    for size in [(1, 1), (640, 480), (333, 4000)]:
        p = tmp_path / f"a.{ext}"
        Image.new("RGB", size).save(p, fmt, **kwargs)
        assert header_size(p) == _pillow_size(p) == size
