"""filter: the expression language, sample-row consistency, streaming, CLI."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings, strategies as st, HealthCheck

from mlcycle import io
from mlcycle import table as T
from mlcycle.curate import expression as E
from mlcycle.curate.filter import filter_files, filter_table
from mlcycle.errors import OptionError
from tests.curate._data import make_table

SCHEMA = pa.schema([("label", pa.string()), ("score", pa.float64()), ("difficult", pa.bool_()),
                    ("bbox", pa.list_(pa.float64(), 4)), ("my col", pa.int64())])


def _eval(text, rows):
    t = pa.Table.from_pylist(rows, schema=SCHEMA)
    return E.compile_expression(text, SCHEMA).evaluate(t).to_pylist()


ROWS = [
    {"label": "cat", "score": 0.9, "difficult": True, "bbox": [0, 0, 10, 20], "my col": 1},
    {"label": "dog", "score": 0.2, "difficult": False, "bbox": None, "my col": 2},
    {"label": None, "score": None, "difficult": None, "bbox": [1, 1, 1, 1], "my col": None},
]


@pytest.mark.parametrize("text, expected", [
    ("label == 'cat'", [True, False, None]),
    ("label = \"cat\"", [True, False, None]),
    ("label != 'cat'", [False, True, None]),
    ("score >= 0.5 or difficult", [True, False, None]),
    ("score < .5", [False, True, None]),
    ("label in ['dog', 'x']", [False, True, None]),
    ("label not in ['cat']", [False, True, None]),
    ("label is null", [False, False, True]),
    ("label IS NOT NULL", [True, True, False]),
    ("not difficult", [False, True, None]),
    ("not (label == 'cat' or label == 'dog')", [False, False, None]),
    ("bbox.h > 5", [True, None, False]),
    ("`my col` >= 2", [False, True, None]),
    ("difficult == true", [True, False, None]),
    ("score > 1e-1 and (label == 'cat' or `my col` == 2)", [True, True, None]),
])
def test_expressions(text, expected):
    assert _eval(text, ROWS) == expected


@pytest.mark.parametrize("text, message", [
    ("labl == 'cat'", "unknown column 'labl' at character 1 (did you mean 'label'?)"),
    ("score == 'a'", "cannot compare column 'score' (number) with 'a' (string) at character 7"),
    ("label == 3", "cannot compare column 'label' (string) with 3 (number) at character 7"),
    ("label ==", "the expression ends too early at character 9"),
    ("(label == 'a'", "expected ')' at character 14"),
    ("score", "column 'score' is number, not true/false: compare it at character 1"),
    ("label == null", "comparing with null is never true at character 7"),
    ("label == 'a' $", "unexpected character '$' at character 14"),
    ("label == 'a", "unterminated string at character 10"),
    ("label in 'a'", "expected '[' after 'in' at character 10"),
    ("label == 'a' label", "unexpected 'label' at character 14"),
    ("bbox > 3", "cannot compare column 'bbox' (a list or nested value) at character 6"),
    ("", "empty expression at character 1"),
])
def test_expression_errors_point_at_the_character(text, message):
    with pytest.raises(E.ExpressionError) as info:
        E.compile_expression(text, SCHEMA)
    assert info.value.message == message
    assert info.value.option == "where"


def test_no_python_eval():
    with pytest.raises(E.ExpressionError):
        E.compile_expression("__import__('os').system('true')", SCHEMA)


def test_to_expression_is_a_pyarrow_expression():
    expr = E.compile_expression("label == 'cat' and bbox.w > 3", SCHEMA).to_expression()
    assert isinstance(expr, pc.Expression)
    t = pa.Table.from_pylist(ROWS, schema=SCHEMA)
    assert t.filter(expr).column("label").to_pylist() == ["cat"]


# --------------------------------------------------------------------------- sample rows

def _groups(table):
    return {(r[T.SAMPLE_ID], r[T.SOURCE]) for r in table.select([T.SAMPLE_ID, T.SOURCE]).to_pylist()}


def test_samples_without_kept_labels_stay_as_sample_rows(small):
    res = filter_table(small, "label == 'cat'")
    out = res.table
    labels = out.filter(pa.array(T.label_mask(out)))
    assert set(labels.column(T.LABEL).to_pylist()) == {"cat"}
    assert _groups(out) == _groups(small)  # every sample still there
    sample_rows = out.filter(pa.array(~T.label_mask(out)))
    assert sample_rows.column(T.LABEL_ID).null_count == sample_rows.num_rows
    # one row per sample: a sample with cats has no sample row
    assert len(_groups(sample_rows)) == sample_rows.num_rows
    assert not (_groups(sample_rows) & _groups(labels))
    # the sample's columns are kept, per-label attributes are not (unless one value)
    assert sample_rows.column(T.WIDTH).null_count == 0
    assert sample_rows.column("scene").null_count == 0
    assert res.summary["labels_kept"] == labels.num_rows
    assert res.table.schema.metadata == small.schema.metadata


def test_drop_empty(small):
    out = filter_table(small, "label == 'cat'", drop_empty=True).table
    assert out.num_rows == int(pc.sum(pc.equal(small.column(T.LABEL), "cat")).as_py())


def test_sample_level_condition_drops_whole_samples(small):
    out = filter_table(small, "width < 110").table
    assert set(out.column(T.WIDTH).to_pylist()) <= set(range(100, 110))
    want = {g for g, w in zip(_groups(small), [0]) }  # noqa: F841 - readable below
    assert {r[T.SAMPLE_ID] for r in out.to_pylist()} == {f"img/{s:04d}.jpg" for s in range(10)}


def test_attribute_with_one_value_per_sample_decides_for_the_sample(small):
    out = filter_table(small, "scene == 'scene1'").table
    assert set(out.column("scene").to_pylist()) == {"scene1"}


def test_conveniences(tmp_path):
    t = make_table(sources=("gt", "pred"))
    res = filter_table(t, labels=["cat", "dog"], sources=["pred"], min_score=0.5)
    out = res.table
    lab = out.filter(pa.array(T.label_mask(out)))
    assert set(lab.column(T.SOURCE).to_pylist()) == {"pred"}
    assert set(lab.column(T.LABEL).to_pylist()) <= {"cat", "dog"}
    assert pc.min(lab.column(T.SCORE)).as_py() >= 0.5
    with pytest.raises(OptionError) as info:
        filter_table(t, evals=["tq"])
    assert info.value.option == "evals"


def _reference(table, pred) -> list:
    """The label rows a plain Python filter keeps."""
    rows = table.to_pylist()
    mask = T.label_mask(table)
    return [r for r, m in zip(rows, mask) if m and pred(r)]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10_000), threshold=st.integers(0, 60), cls=st.sampled_from(["cat", "dog", "bird"]),
       op=st.sampled_from(["and", "or"]))
def test_filter_equals_a_python_reference(seed, threshold, cls, op):
    t = make_table(n_samples=25, seed=seed)
    res = filter_table(t, f"label == '{cls}' {op} bbox.w >= {threshold}", drop_empty=True)

    def pred(r):
        a, b = r[T.LABEL] == cls, r[T.BBOX] is not None and r[T.BBOX][2] >= threshold
        return (a and b) if op == "and" else (a or b)

    assert res.table.to_pylist() == _reference(t, pred)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 1000), batch=st.integers(1, 50))
def test_streaming_equals_in_memory(tmp_path_factory, seed, batch):
    d = tmp_path_factory.mktemp("f")
    t = make_table(n_samples=30, seed=seed)
    io.write_table(t, d / "in.parquet")
    mem = filter_table(t, "label != 'dog' and occluded").table
    filter_files([d / "in.parquet"], d / "out.parquet", where="label != 'dog' and occluded", batch_rows=batch)
    got = io.read_table(d / "out.parquet")
    key = lambda r: (r[T.SAMPLE_ID], r[T.SOURCE], r[T.LABEL_ID] or 0)  # noqa: E731
    assert sorted(got.to_pylist(), key=key) == sorted(mem.to_pylist(), key=key)


# --------------------------------------------------------------------------- CLI

def test_cli_filter(runner, small_path, tmp_path):
    out = tmp_path / "cats.parquet"
    r = runner(["filter", small_path, "--where", "label == 'cat'", "--drop-empty", "-o", out])
    assert r.exit_code == 0, r.stderr
    assert r.stdout == ""
    assert "filter: kept" in r.stderr
    assert set(io.read_table(out).column(T.LABEL).to_pylist()) == {"cat"}


def test_cli_filter_jsonl_to_stdout_and_json_summary(runner, small_path):
    r = runner(["filter", small_path, "--label", "cat,dog", "--source", "gt"])
    assert r.exit_code == 0, r.stderr
    assert r.stdout.count("\n") >= 1
    r = runner(["filter", small_path, "--label", "cat", "--json"])
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["labels_kept"] > 0 and doc["rows_in"] > doc["labels_kept"]


def test_cli_filter_bad_expression(runner, small_path, tmp_path):
    out = tmp_path / "x.parquet"
    r = runner(["filter", small_path, "--where", "labl == 'cat'", "-o", out])
    assert r.exit_code == 2
    assert r.stdout == ""
    assert "error: --where: unknown column 'labl' at character 1 (did you mean 'label'?)" in r.stderr
    assert not out.exists()
    r = runner(["filter", small_path, "--split", "val"])
    assert r.exit_code == 2 and "error: --split: the table has no 'split' column" in r.stderr
    r = runner(["filter", small_path, "--eval", "tq"])
    assert r.exit_code == 2 and "--eval: unknown value 'tq'" in r.stderr


def test_cli_filter_missing_file(runner, tmp_path):
    r = runner(["filter", tmp_path / "nope.parquet", "--label", "cat"])
    assert r.exit_code == 1
    assert "nope.parquet: no such file" in r.stderr


def test_streamed_write_error_mid_way_leaves_no_output_and_keeps_warnings(tmp_path, small):
    """filter and remap write through a background producer (write_batches(prefetch=True)):
    an error after some batches raises in the caller, with no (partial) output file, and
    warnings raised while producing reach the caller's reporter."""
    from mlcycle import reporting
    from mlcycle.curate._stream import write_batches
    from mlcycle.errors import MlcycleError

    def batches():
        yield small.slice(0, 5)
        reporting.warn("half-way")
        yield small.slice(5, 5)
        raise MlcycleError("in.parquet: row 11: broken")

    out = tmp_path / "out.parquet"
    with reporting.collect() as seen:
        with pytest.raises(MlcycleError, match="row 11"):
            write_batches(batches(), small.schema, out, prefetch=True)
    assert not out.exists() and list(tmp_path.iterdir()) == []
    assert list(seen.warnings) == ["half-way"]
    assert write_batches(iter([small.slice(0, 7), small.slice(7)]), small.schema, out, prefetch=True) == small.num_rows
    assert io.read_table(out).to_pylist() == small.to_pylist()
