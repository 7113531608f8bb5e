"""mlcycle.curate.dedupe: exact and near duplicates, leaks, safety, the CLI."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from mlcycle import io
from mlcycle import table as T
from mlcycle.curate import dedupe as D
from mlcycle.curate.dedupe import dedupe
from mlcycle.errors import MlcycleError, OptionError

GTS = "rafaelpadilla__review_object_detection_metrics/data/database/gts"


def _image(seed: int, size: int = 96) -> Image.Image:
    """A smooth random picture: perceptual hashes of two seeds are far apart."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    return Image.fromarray(small).resize((size, size), Image.Resampling.BICUBIC)


def _table(ids, splits=None) -> pa.Table:
    cols = {"sample_id": list(ids), "source": ["gt"] * len(ids)}
    if splits is not None:
        cols["split"] = list(splits)
    return T.from_columns(cols)


def _groups(result) -> set[frozenset]:
    by: dict[int, set] = {}
    for r in result.table.to_pylist():
        if r[T.DUP_GROUP] is not None:
            by.setdefault(r[T.DUP_GROUP], set()).add(r["sample_id"])
    return {frozenset(v) for v in by.values()}


def test_the_same_voc_images_in_two_formats_are_exactly_the_planted_duplicates(external, tmp_path):
    """100 VOC images annotated in several formats, merged: only images present twice
    (byte-identical or re-encoded) are duplicates, and they leak across the splits."""
    from mlcycle import formats

    voc = formats.read("voc", external / GTS / "pascalvoc_format")
    coco = formats.read("coco", external / GTS / "coco_format_v1/instances_default.json")
    tables = []
    for name, t, split in (("voc", voc, "train"), ("coco", coco, "val")):
        ids = [f"{name}/{s}" for s in t.column("sample_id").to_pylist()]
        t = t.set_column(0, "sample_id", pa.array(ids))
        tables.append(t.append_column("split", pa.array([split] * t.num_rows)))
    merged = io.concat(tables)
    names = sorted(set(voc.column("sample_id").to_pylist()))
    assert len(names) == 100 and names == sorted(set(coco.column("sample_id").to_pylist()))
    (tmp_path / "voc").mkdir()
    (tmp_path / "coco").mkdir()
    exact, near = set(names[:10]), set(names[10:20])
    for k, name in enumerate(names):
        _image(k).save(tmp_path / "voc" / name, format="PNG")
        if name in exact:
            shutil.copyfile(tmp_path / "voc" / name, tmp_path / "coco" / name)
        elif name in near:
            _image(k).save(tmp_path / "coco" / name, format="JPEG", quality=80)
        else:
            _image(1000 + k).save(tmp_path / "coco" / name, format="PNG")
    r = dedupe(merged, tmp_path)
    assert _groups(r) == {frozenset({f"voc/{n}", f"coco/{n}"}) for n in exact | near}
    kinds = {(row["sample_id"].split("/", 1)[1], row[T.DUP_KIND]) for row in r.table.to_pylist() if row[T.DUP_KIND]}
    assert kinds == {(n, T.DUP_EXACT) for n in exact} | {(n, T.DUP_NEAR) for n in near}
    assert all(row[T.LEAK] == (row[T.DUP_GROUP] is not None) for row in r.table.to_pylist())
    assert r.summary["groups"] == 20 and r.summary["leaks_by_splits"] == {"train/val": 20}
    assert r.table.num_rows == merged.num_rows  # every row kept, annotated
    dropped = dedupe(merged, tmp_path, drop=True).table
    kept = set(dropped.column("sample_id").to_pylist())
    assert kept == {f"voc/{n}" for n in names} | {f"coco/{n}" for n in names if n not in exact | near}


def test_reencoded_jpeg_is_a_near_duplicate_and_another_image_is_not(tmp_path):
    _image(1).save(tmp_path / "a.png")
    _image(1).save(tmp_path / "a.jpg", quality=70)
    _image(1, size=200).save(tmp_path / "a_big.png")  # resized
    _image(2).save(tmp_path / "b.png")
    for h in D.HASHES:
        r = dedupe(_table(["a.png", "a.jpg", "a_big.png", "b.png"]), tmp_path, hash=h)
        assert _groups(r) == {frozenset({"a.png", "a.jpg", "a_big.png"})}, h
        assert set(r.table.column(T.DUP_KIND).to_pylist()) == {T.DUP_NEAR, None}


def test_leaks_across_splits_and_drop_keeps_by_split_priority(tmp_path):
    for k in range(3):
        _image(k).save(tmp_path / f"{k}.png")
    shutil.copyfile(tmp_path / "0.png", tmp_path / "0_val.png")
    shutil.copyfile(tmp_path / "1.png", tmp_path / "1_b.png")
    ids = ["0_val.png", "0.png", "1.png", "1_b.png", "2.png"]
    splits = ["val", "train", "train", "train", "test"]
    r = dedupe(_table(ids, splits), tmp_path)
    leak = dict(zip(r.table.column("sample_id").to_pylist(), r.table.column(T.LEAK).to_pylist()))
    assert leak == {"0_val.png": True, "0.png": True, "1.png": False, "1_b.png": False, "2.png": False}
    kept = dedupe(_table(ids, splits), tmp_path, drop=True).table.column("sample_id").to_pylist()
    assert kept == ["0.png", "1.png", "2.png"]  # train before val; then table order
    pairs = dedupe(_table(ids, splits), tmp_path, report=True).table.to_pylist()
    assert [(p["sample_id"], p[D.DUP_SAMPLE_ID], p[T.LEAK]) for p in pairs] == [
        ("0.png", "0_val.png", True), ("1.png", "1_b.png", False)]


def test_embedding_cosine_near_duplicates(tmp_path):
    for k in range(3):
        _image(k).save(tmp_path / f"{k}.png")
    t = _table(["0.png", "1.png", "2.png"]).append_column(
        "embedding", pa.array([[1.0, 0.0], [0.999, 0.01], [0.0, 1.0]]))
    assert _groups(dedupe(t, tmp_path)) == set()  # embeddings only with --min-cosine/--embedding
    r = dedupe(t, tmp_path, min_cosine=0.99)
    assert _groups(r) == {frozenset({"0.png", "1.png"})}
    pairs = dedupe(t, tmp_path, min_cosine=0.99, report=True).table.to_pylist()
    assert pairs[0][D.DUP_COSINE] == pytest.approx(0.99995, abs=1e-4) and pairs[0][D.DUP_DISTANCE] is None


def test_missing_image_is_an_error_naming_the_sample_unless_allowed(tmp_path):
    _image(0).save(tmp_path / "a.png")
    with pytest.raises(MlcycleError, match="row 2: image of sample 'gone.png' not found"):
        dedupe(_table(["a.png", "gone.png"]), tmp_path)
    with pytest.warns(Warning, match="1 images not found"):
        r = dedupe(_table(["a.png", "gone.png"]), tmp_path, allow_missing=True)
    assert r.summary["missing"] == 1 and r.table.column(T.DUP_GROUP).null_count == 2


@pytest.mark.parametrize("sid, words", [("/etc/passwd", "absolute path"), ("../x.png", "leaves the images root"),
                                        ("a/../../x.png", "leaves the images root"), ("C:\\x.png", "absolute")])
def test_sample_ids_may_not_leave_the_images_root(tmp_path, sid, words):
    with pytest.raises(MlcycleError, match=words):
        dedupe(_table([sid]), tmp_path)


def test_symlink_out_of_the_root_is_refused(tmp_path):
    outside = tmp_path / "outside.png"
    _image(0).save(outside)
    (tmp_path / "root").mkdir()
    os.symlink(outside, tmp_path / "root" / "link.png")
    with pytest.raises(MlcycleError, match="resolves outside the images root"):
        dedupe(_table(["link.png"]), tmp_path / "root")


def test_a_fifo_in_place_of_an_image_does_not_hang(tmp_path):
    os.mkfifo(tmp_path / "pipe.png")
    with pytest.raises(MlcycleError, match="not a regular file"):
        dedupe(_table(["pipe.png"]), tmp_path)


def test_undecodable_image(tmp_path):
    (tmp_path / "x.png").write_bytes(b"not an image")
    with pytest.raises(MlcycleError, match="cannot decode image"):
        dedupe(_table(["x.png"]), tmp_path)


def test_bad_options(tmp_path):
    with pytest.raises(OptionError) as e:
        dedupe(_table(["a"]), tmp_path, max_distance=40)
    assert e.value.option == "max_distance"
    with pytest.raises(OptionError):
        dedupe(_table(["a"]), tmp_path / "nope")


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 2**64 - 1), min_size=0, max_size=60), st.integers(0, 16), st.data())
def test_banded_hamming_search_equals_brute_force(values, d, data):
    # plant close pairs, which random 64-bit values almost never are
    extra = []
    for v in values[:10]:
        bits = data.draw(st.lists(st.integers(0, 63), max_size=d, unique=True))
        extra.append(v ^ sum(1 << b for b in bits))
    h = np.array(values + extra, dtype=np.uint64)
    i, j, dist = D.hamming_pairs(h, d)
    brute = {(a, b) for a in range(len(h)) for b in range(a + 1, len(h))
             if bin(int(h[a]) ^ int(h[b])).count("1") <= d}
    assert set(zip(i.tolist(), j.tolist())) == brute
    assert all(bin(int(h[a]) ^ int(h[b])).count("1") == k for a, b, k in zip(i, j, dist))


def test_components():
    comp = D.components(6, np.array([0, 3, 4]), np.array([1, 4, 5]))
    assert comp.tolist() == [0, 0, 2, 3, 3, 3]


# --------------------------------------------------------------------------- CLI

@pytest.fixture
def images(tmp_path):
    root = tmp_path / "img"
    root.mkdir()
    _image(0).save(root / "a.png")
    shutil.copyfile(root / "a.png", root / "b.png")
    _image(5).save(root / "c.png")
    table = tmp_path / "t.parquet"
    io.write_table(_table(["a.png", "b.png", "c.png"], ["train", "val", "val"]), table)
    return root, table


def _rows(stdout: str) -> list[dict]:
    return [r for r in map(json.loads, stdout.splitlines()) if io.JSONL_META_KEY not in r]


def test_cli_annotates_and_summarises(runner, images):
    root, table = images
    r = runner(["dedupe", table, "--images-root", root])
    assert r.exit_code == 0, r.stderr
    rows = _rows(r.stdout)
    assert [(x["sample_id"], x[T.DUP_KIND], x[T.LEAK]) for x in rows] == [
        ("a.png", "exact", True), ("b.png", "exact", True), ("c.png", None, False)]
    assert "1 groups leak across splits (train/val 1)" in r.stderr


def test_cli_report_json_and_drop(runner, images, tmp_path):
    root, table = images
    r = runner(["dedupe", table, "--images-root", root, "--report"])
    assert [(x["sample_id"], x[D.DUP_SAMPLE_ID]) for x in _rows(r.stdout)] == [("a.png", "b.png")]
    r = runner(["dedupe", table, "--images-root", root, "--json"])
    assert json.loads(r.stdout)["leak_groups"] == 1
    out = tmp_path / "clean.parquet"
    r = runner(["dedupe", table, "--images-root", root, "--drop", "-o", out, "-q"])
    assert r.exit_code == 0 and r.stderr == "" and r.stdout == ""
    assert io.read_table(out).column("sample_id").to_pylist() == ["a.png", "c.png"]


def test_cli_errors(runner, images, tmp_path):
    root, table = images
    out = tmp_path / "out.parquet"
    r = runner(["dedupe", table, "-o", out])
    assert r.exit_code == 2 and "--images-root" in r.stderr
    (root / "b.png").unlink()
    r = runner(["dedupe", table, "--images-root", root, "-o", out])
    assert r.exit_code == 1 and r.stderr.startswith("error: ") and "'b.png' not found" in r.stderr
    assert not out.exists()
    r = runner(["dedupe", table, "--images-root", root, "--allow-missing", "-o", out])
    assert r.exit_code == 0 and "warning: 1 images not found" in r.stderr
    r = runner(["dedupe", table, "--images-root", root, "--max-distance", "99"])
    assert r.exit_code == 2 and r.stderr.startswith("error: --max-distance:")
