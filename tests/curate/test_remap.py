"""remap: mapping files, merging/dropping classes, category ids, COCO metadata, CLI."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings, strategies as st

from mlcycle import io
from mlcycle import table as T
from mlcycle.curate.remap import load_mapping, remap_files, remap_labels
from mlcycle.errors import MlcycleError, OptionError
from tests.curate._data import make_table


def _labels(t):
    return t.filter(pa.array(T.label_mask(t)))


def test_load_mapping_yaml(tmp_path):
    p = tmp_path / "m.yaml"
    p.write_text("car: vehicle\ntruck: vehicle\nperson: ~\ndog: null\n'no': 'yes'\n3: three\n")
    assert load_mapping(p) == {"car": "vehicle", "truck": "vehicle", "person": None, "dog": None, "no": "yes", "3": "three"}
    assert load_mapping(["a=b,c=", "d=e"]) == {"a": "b", "c": None, "d": "e"}
    assert load_mapping({"a": "b"}) == {"a": "b"}


@pytest.mark.parametrize("text, message", [
    ("- a\n- b\n", "expected a mapping"),
    ("yes: car\n", "is a boolean"),
    ("a: [b]\n", "is not a class name"),
    ("a: b: c\n", "not valid YAML"),
])
def test_load_mapping_errors_name_the_file(tmp_path, text, message):
    p = tmp_path / "m.yaml"
    p.write_text(text)
    with pytest.raises(MlcycleError) as info:
        load_mapping(p)
    assert str(p) in info.value.message and message in info.value.message


def test_pairs_errors():
    with pytest.raises(OptionError) as info:
        load_mapping(["a=b,c"])
    assert info.value.option == "mapping" and "expected OLD=NEW" in info.value.message
    with pytest.raises(OptionError):
        load_mapping(["a=b", "a=c"])


def test_merge_rename_drop_and_ids(small):
    res = remap_labels(small, {"cat": "pet", "dog": "pet", "bird": None})
    out = res.table
    lab = _labels(out)
    assert set(lab.column(T.LABEL).to_pylist()) == {"pet"}
    n_cat_dog = int(pc.sum(pc.is_in(small.column(T.LABEL), value_set=pa.array(["cat", "dog"]))).as_py())
    assert lab.num_rows == n_cat_dog
    # new name takes the id of the first class mapped to it (cat = 1)
    assert set(lab.column(T.CATEGORY_ID).to_pylist()) == {1}
    cats = T.get_metadata(out)["coco"]["categories"]
    assert cats == [{"id": 1, "name": "pet", "supercategory": "animal"}]
    # every sample still present
    key = lambda t: set(zip(t.column(T.SAMPLE_ID).to_pylist(), t.column(T.SOURCE).to_pylist()))  # noqa: E731
    assert key(out) == key(small)
    s = res.summary
    assert s["labels_dropped"] == int(pc.sum(pc.equal(small.column(T.LABEL), "bird")).as_py())
    assert s["classes_in"] == 3 and s["classes_out"] == 1


def test_rename_keeps_id_and_existing_target_keeps_its_own(small):
    out = remap_labels(small, {"bird": "dog"}).table
    ids = dict(zip(_labels(out).column(T.LABEL).to_pylist(), _labels(out).column(T.CATEGORY_ID).to_pylist()))
    assert ids == {"cat": 1, "dog": 2}
    out = remap_labels(small, {"cat": "kitty"}).table
    ids = dict(zip(_labels(out).column(T.LABEL).to_pylist(), _labels(out).column(T.CATEGORY_ID).to_pylist()))
    assert ids["kitty"] == 1


def test_ignore_case_drop_unmapped_and_unused_key_warning(small):
    res = remap_labels(small, {"CAT": "Cat", "zebra": "z"}, ignore_case=True, drop_unmapped=True)
    assert set(_labels(res.table).column(T.LABEL).to_pylist()) == {"Cat"}
    assert any("'zebra'" in w for w in res.warnings)
    res = remap_labels(small, {"CAT": "Cat"})
    assert set(_labels(res.table).column(T.LABEL).to_pylist()) == {"cat", "dog", "bird"}


def test_sources_limit_the_remap():
    t = make_table(sources=("gt", "pred"))
    out = remap_labels(t, {"cat": "feline"}, sources=["pred"]).table
    lab = _labels(out)
    by_src = {s: set(lab.filter(pc.equal(lab.column(T.SOURCE), s)).column(T.LABEL).to_pylist()) for s in ("gt", "pred")}
    assert "cat" in by_src["gt"] and "feline" not in by_src["gt"]
    assert "feline" in by_src["pred"] and "cat" not in by_src["pred"]


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 1000), perm=st.permutations(["cat", "dog", "bird"]))
def test_remap_then_inverse_is_the_identity(seed, perm):
    t = make_table(n_samples=15, seed=seed)
    fwd = dict(zip(["cat", "dog", "bird"], [p.upper() for p in perm]))
    inv = {v: k for k, v in fwd.items()}
    back = remap_labels(remap_labels(t, fwd).table, inv).table
    assert back.select([T.SAMPLE_ID, T.LABEL_ID, T.LABEL, T.BBOX]).to_pylist() == \
        t.select([T.SAMPLE_ID, T.LABEL_ID, T.LABEL, T.BBOX]).to_pylist()


def test_streaming_equals_in_memory(tmp_path, small):
    io.write_table(small, tmp_path / "in.parquet")
    mem = remap_labels(small, {"cat": "pet", "dog": "pet", "bird": None}).table
    remap_files([tmp_path / "in.parquet"], tmp_path / "out.parquet", None, {"cat": "pet", "dog": "pet", "bird": None}, batch_rows=7)
    got = io.read_table(tmp_path / "out.parquet")
    key = lambda r: (r[T.SAMPLE_ID], r[T.LABEL_ID] or 0)  # noqa: E731
    assert sorted(got.to_pylist(), key=key) == sorted(mem.to_pylist(), key=key)
    assert T.get_metadata(got)["coco"] == T.get_metadata(mem)["coco"]


def test_cli_remap(runner, small_path, tmp_path):
    m = tmp_path / "m.yaml"
    m.write_text("cat: pet\ndog: pet\nbird: ~\n")
    out = tmp_path / "o.parquet"
    r = runner(["remap", small_path, "--map-file", m, "-o", out])
    assert r.exit_code == 0, r.stderr
    assert r.stdout == "" and "remap:" in r.stderr
    assert set(_labels(io.read_table(out)).column(T.LABEL).to_pylist()) == {"pet"}
    r = runner(["remap", small_path, "--map", "cat=pet", "--json"])
    assert json.loads(r.stdout)["labels_renamed"] > 0
    r = runner(["remap", small_path])
    assert r.exit_code == 2 and "--map" in r.stderr
    r = runner(["remap", small_path, "--map", "cat"])
    assert r.exit_code == 2 and "error: --map: expected OLD=NEW, got 'cat'" in r.stderr
    r = runner(["remap", small_path, "--map-file", tmp_path / "none.yaml"])
    assert r.exit_code == 1 and "none.yaml: no such file" in r.stderr
