"""Label table I/O: every encoding round-trips, input is sniffed, errors name the place."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlcycle import io
from mlcycle import table as T
from mlcycle.errors import MlcycleError, OptionError

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
names = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1, max_size=12)


@st.composite
def label_tables(draw):
    n = draw(st.integers(min_value=0, max_value=25))
    sample_ids = draw(st.lists(names, min_size=n, max_size=n))
    sources = draw(st.lists(st.sampled_from(["gt", "pred", "model-b"]), min_size=n, max_size=n))
    has_label = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    labels = [draw(names) if h else None for h in has_label]
    label_ids = [draw(st.integers(-2**40, 2**40)) if h else None for h in has_label]
    boxes = np.array([[draw(finite) for _ in range(4)] if h else [np.nan] * 4 for h in has_label]).reshape(n, 4)
    scores = [draw(st.one_of(st.none(), st.floats(0, 1))) for _ in range(n)]
    crowd = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    widths = draw(st.lists(st.one_of(st.none(), st.integers(1, 10000)), min_size=n, max_size=n))
    occluded = draw(st.lists(st.one_of(st.none(), st.booleans()), min_size=n, max_size=n))
    note = draw(st.lists(st.one_of(st.none(), names), min_size=n, max_size=n))
    segs = draw(st.lists(st.one_of(st.none(), st.just('[[1.5,2.0,3.0,4.0,5.0,6.0]]'), st.just('{"counts":"abc","size":[4,5]}')), min_size=n, max_size=n))
    meta = draw(st.one_of(st.none(), st.fixed_dictionaries({"coco": st.fixed_dictionaries({"info": st.dictionaries(names, st.integers(-2**62, 2**62), max_size=3)})})))
    cols = {
        T.SAMPLE_ID: sample_ids, T.SOURCE: sources, T.LABEL_ID: label_ids, T.LABEL: labels,
        T.BBOX: T.bbox_array(boxes, valid=np.array(has_label, dtype=bool)), T.SCORE: scores,
        T.ISCROWD: crowd, T.SEGMENTATION: segs, T.WIDTH: widths,
        "occluded": pa.array(occluded, type=pa.bool_()), "note": pa.array(note, type=pa.string()),
    }
    return T.from_columns(cols, meta)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(table=label_tables())
@pytest.mark.parametrize("encoding", ["parquet", "jsonl", "arrow"])
def test_lossless_encodings_round_trip(encoding, table):
    if encoding == "jsonl" and table.num_rows == 0:
        return  # an empty JSON Lines stream has no rows to name its columns
    back = T.normalize(io.decode(io.encode(table, encoding)))
    assert back.column_names == table.column_names
    for name in table.column_names:
        a, b = table.column(name), back.column(name)
        if name == "note" or name == "occluded":
            b = b.cast(a.type) if pa.types.is_null(b.type) else b
        assert a.to_pylist() == b.to_pylist(), name
    assert T.get_metadata(back) == T.get_metadata(table)


@settings(max_examples=30, deadline=None)
@given(table=label_tables())
def test_csv_round_trip_keeps_core_values(table):
    back = T.normalize(io.decode(io.encode(table, "csv")))
    assert back.num_rows == table.num_rows
    if table.num_rows:
        assert back.column(T.SOURCE).to_pylist() == table.column(T.SOURCE).to_pylist()
        np.testing.assert_array_equal(T.bboxes(back), T.bboxes(table))
        assert back.column(T.LABEL_ID).to_pylist() == table.column(T.LABEL_ID).to_pylist()


def small_table(**extra):
    cols = {T.SAMPLE_ID: ["a.jpg", "a.jpg", "b.jpg"], T.SOURCE: ["gt", "gt", "gt"],
            T.LABEL_ID: [1, 2, None], T.LABEL: ["cat", "dog", None],
            T.BBOX: np.array([[1, 2, 3, 4], [5, 6, 7, 8], [np.nan] * 4])}
    cols.update(extra)
    return T.from_columns(cols)


@pytest.mark.parametrize("encoding,magic", [("parquet", b"PAR1"), ("arrow", b"\xff\xff\xff\xff"), ("jsonl", b"{")])
def test_encoding_is_sniffed_from_content_not_name(tmp_path, encoding, magic):
    data = io.encode(small_table(), encoding)
    assert data.startswith(magic)
    path = tmp_path / "misleading.csv"
    path.write_bytes(data)
    assert io.read_table(path).column(T.LABEL).to_pylist() == ["cat", "dog", None]


def test_output_encoding_precedence(monkeypatch):
    monkeypatch.delenv("MLCYCLE_FORMAT", raising=False)
    assert io.output_encoding(None, None) == "jsonl"
    assert io.output_encoding("x.parquet", "csv") == "parquet"
    assert io.output_encoding("x.out", "arrow") == "arrow"
    monkeypatch.setenv("MLCYCLE_FORMAT", "parquet")
    assert io.output_encoding(None, None) == "parquet"
    assert io.output_encoding(None, "jsonl") == "jsonl"
    with pytest.raises(OptionError):
        io.output_encoding(None, "xml")


def test_several_inputs_are_concatenated_with_unified_schemas(tmp_path):
    a = small_table(occluded=[True, False, None])
    b = T.from_columns({T.SAMPLE_ID: ["c.jpg"], T.SOURCE: ["pred"], T.LABEL: ["cat"], T.SCORE: [0.5],
                        T.BBOX: np.array([[0, 0, 1, 1.0]])})
    io.write_table(a, tmp_path / "a.parquet")
    io.write_table(b, tmp_path / "b.jsonl")
    both = io.read_tables([tmp_path / "a.parquet", tmp_path / "b.jsonl"])
    assert both.num_rows == 4
    assert both.column("occluded").to_pylist() == [True, False, None, None]
    assert both.column(T.SCORE).to_pylist() == [None, None, None, 0.5]


def test_attribute_columns_survive_untouched(tmp_path):
    t = small_table(embedding=pa.array([[0.1, 0.2], [0.3, 0.4], None], type=pa.list_(pa.float32())),
                    annotator=["ann1", "ann2", None])
    io.write_table(t, tmp_path / "t.parquet")
    back = io.read_table(tmp_path / "t.parquet")
    assert back.column("embedding").type == pa.list_(pa.float32())
    assert back.column("annotator").to_pylist() == ["ann1", "ann2", None]


def test_missing_required_column_is_named(tmp_path):
    p = tmp_path / "t.jsonl"
    p.write_text('{"source": "gt", "label": "cat"}\n')
    with pytest.raises(MlcycleError, match="required column 'sample_id' is missing"):
        io.read_table(p)


def test_jsonl_wrong_type_names_line_and_column(tmp_path):
    p = tmp_path / "t.jsonl"
    p.write_text('{"sample_id": "a", "source": "gt", "score": 0.5}\n{"sample_id": "b", "source": "gt", "score": "high"}\n')
    with pytest.raises(MlcycleError, match=r"t.jsonl:2: column 'score' is a string, expected float64"):
        io.read_table(p)


def test_jsonl_malformed_names_line_and_column(tmp_path):
    p = tmp_path / "t.jsonl"
    p.write_text('{"sample_id": "a", "source": "gt"}\n{"sample_id": "b", "source": \n')
    with pytest.raises(MlcycleError, match=r"t.jsonl:2:\d+: malformed JSON"):
        io.read_table(p)


def test_wrong_box_length_is_named(tmp_path):
    p = tmp_path / "t.jsonl"
    p.write_text('{"sample_id": "a", "source": "gt", "bbox": [1, 2, 3]}\n')
    with pytest.raises(MlcycleError, match="row 1: column 'bbox' has 3 values"):
        io.read_table(p)


def test_truncated_parquet_is_a_clear_error(tmp_path):
    data = io.encode(small_table(), "parquet")
    p = tmp_path / "t.parquet"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(MlcycleError, match="t.parquet: not a readable Parquet file"):
        io.read_table(p)


def test_atomic_output_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.parquet"
    with pytest.raises(RuntimeError):
        with io.atomic_output(target) as fh:
            fh.write(b"partial")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_atomic_output_replaces_existing_file(tmp_path):
    target = tmp_path / "out.jsonl"
    target.write_text("old")
    io.write_table(small_table(), target)
    assert io.read_table(target).num_rows == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl"]


def test_special_files_are_written_directly_not_renamed_over():
    io.write_table(small_table(), "/dev/null", "parquet")
    assert os.path.exists("/dev/null") and not Path("/dev/null").is_file()


def test_fifo_output_is_written_in_place(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    import threading

    got = {}

    def reader():
        with open(fifo, "rb") as fh:
            got["data"] = fh.read()

    t = threading.Thread(target=reader)
    t.start()
    io.write_table(small_table(), fifo, "jsonl")
    t.join(5)
    assert got["data"].count(b"\n") == 3
    assert fifo.is_fifo()


def test_bbox_nan_and_null_are_kept_apart():
    t = small_table()
    boxes = T.bboxes(t)
    assert np.isnan(boxes[2]).all() and not np.isnan(boxes[:2]).any()
    assert T.label_mask(t).tolist() == [True, True, False]
