"""Pipes that cannot lie, and inputs or disks that fail: io.py's guarantees
(docs/reliability.md). Each case: one readable error naming the file, the documented
exit status, no traceback, and no output file left behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlcycle import io
from mlcycle import table as T
from mlcycle.errors import MlcycleError, OptionError

SAMPLE = Path(__file__).resolve().parent.parent / "mlcycle" / "data" / "sample"


def _table(n: int = 3, source: str = "gt", meta: dict | None = None) -> pa.Table:
    t = T.from_columns({
        T.SAMPLE_ID: [f"img{i}.jpg" for i in range(n)], T.SOURCE: [source] * n,
        T.LABEL_ID: list(range(1, n + 1)), T.LABEL: ["cat"] * n,
        T.BBOX: [[1.0, 2.0, 3.0, 4.0]] * n,
    })
    return T.with_metadata(t, meta) if meta else t


def _run(args, input: bytes | None = b"", **kw):
    return subprocess.run([sys.executable, "-m", "mlcycle", *map(str, args)], input=input,
                          capture_output=True, **kw)


def test_deeply_nested_json_lines_is_refused_before_pyarrow_sees_it(tmp_path):
    deep = "[" * 10000 + "]" * 10000
    p = tmp_path / "deep.jsonl"
    p.write_text('{"sample_id":"a","source":"gt"}\n{"sample_id":"b","source":"gt","x":' + deep + "}\n")
    with pytest.raises(MlcycleError, match=r"deep\.jsonl:2: JSON nested deeper than 64 levels"):
        io.read_table(p)
    out = _run(["stats", p, "--json"])  # used to be a segfault (exit -11)
    assert out.returncode == 1
    assert out.stderr.decode().startswith("error: ") and b"Traceback" not in out.stderr


def test_empty_standard_input_is_an_error_unless_allowed(tmp_path):
    with pytest.raises(MlcycleError, match="empty"):
        io.read_table(_empty_file(tmp_path))
    assert io.read_table(_empty_file(tmp_path), allow_empty=True).num_rows == 0
    out = _run(["stats"], input=b"")
    assert out.returncode == 1
    assert b"standard input is empty" in out.stderr


def _empty_file(tmp_path: Path) -> Path:
    p = tmp_path / "empty.jsonl"
    p.write_bytes(b"")
    return p


def test_an_empty_table_is_never_zero_bytes_so_it_reads_back():
    data = io.encode(_table(0), "jsonl")
    assert data.strip(), "an empty table must still have its header line"
    assert io.decode(data).num_rows == 0


def test_concatenated_json_lines_tables_with_headers_are_one_table():
    a = _table(2, meta={"coco": {"categories": [{"id": 1, "name": "cat"}]}})
    b = _table(3, source="pred", meta={"other": 1})
    data = io.encode(a, "jsonl") + io.encode(b, "jsonl")
    out = T.normalize(io.decode(data))
    assert out.num_rows == 5
    assert out.column(T.SOURCE).to_pylist() == ["gt"] * 2 + ["pred"] * 3
    meta = T.get_metadata(out)
    assert meta["coco"]["categories"][0]["name"] == "cat" and meta["other"] == 1


def test_concatenated_arrow_streams_are_one_table():
    data = io.encode(_table(2), "arrow") + io.encode(_table(3), "arrow")
    assert T.normalize(io.decode(data)).num_rows == 5


def test_cat_two_tables_into_a_real_pipe(tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    io.write_table(_table(2, meta={"x": 1}), a)
    io.write_table(_table(4, source="pred", meta={"y": 2}), b)
    out = _run(["stats", "--json"], input=a.read_bytes() + b.read_bytes())
    assert out.returncode == 0, out.stderr
    assert b'"rows": 6' in out.stdout


def test_output_with_a_trailing_slash_is_a_folder_not_a_file(tmp_path):
    with pytest.raises(OptionError, match="is a folder"):
        io.write_table(_table(), str(tmp_path / "new") + "/")
    assert not (tmp_path / "new").exists()


def test_disk_full_is_an_error_naming_the_file():
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full on this system")
    with pytest.raises(MlcycleError, match="/dev/full: cannot write: No space left"):
        io.write_table(_table(), "/dev/full")
    proc = subprocess.run(f"{sys.executable} -m mlcycle ingest coco {SAMPLE}/annotations/instances_val.json > /dev/full",
                          shell=True, capture_output=True)
    assert proc.returncode == 1
    assert b"<stdout>: cannot write: No space left on device" in proc.stderr


def test_closed_standard_output_is_an_error_not_a_bug():
    proc = subprocess.run(f"{sys.executable} -m mlcycle ingest coco {SAMPLE}/annotations/instances_val.json >&-",
                          shell=True, capture_output=True)
    assert proc.returncode == 1
    assert b"standard output is closed" in proc.stderr and b"internal error" not in proc.stderr


def test_write_outputs_is_all_or_nothing(tmp_path):
    good = tmp_path / "m.json"
    with pytest.raises(MlcycleError, match="does not exist"):
        io.write_outputs([(good, b"{}"), (tmp_path / "missing" / "x.parquet", b"data")])
    assert not good.exists()
    assert not [p for p in tmp_path.iterdir()], "no temporary file may be left behind"
    io.write_outputs([(good, b"{}"), (tmp_path / "t.bin", b"data")])
    assert good.read_bytes() == b"{}" and (tmp_path / "t.bin").read_bytes() == b"data"


@pytest.mark.parametrize("variant", ["large_string", "dictionary", "int32_ids", "large_list"])
def test_parquet_from_polars_or_pandas_is_accepted(tmp_path, variant):
    t = _table(3)
    cols = {n: t.column(n) for n in t.column_names}
    if variant == "large_string":
        cols = {n: (c.cast(pa.large_string()) if pa.types.is_string(c.type) else c) for n, c in cols.items()}
    elif variant == "dictionary":
        cols[T.LABEL] = cols[T.LABEL].dictionary_encode()
        cols[T.SOURCE] = cols[T.SOURCE].dictionary_encode()
    elif variant == "int32_ids":
        cols[T.LABEL_ID] = cols[T.LABEL_ID].cast(pa.int32())
    else:
        cols[T.BBOX] = cols[T.BBOX].cast(pa.large_list(pa.float64()))
    p = tmp_path / "polars.parquet"
    pq.write_table(pa.table(cols), p)
    out = io.read_table(p)
    assert out.schema.field(T.LABEL).type == pa.string()
    assert out.schema.field(T.BBOX).type == pa.list_(pa.float64(), 4)
    assert sum(b.num_rows for b in io.scan(p)) == 3
    proc = _run(["stats", p, "--json"], input=None)
    assert proc.returncode == 0, proc.stderr


# --------------------------------------------------------------------------- CSV injection

def test_csv_output_guards_formulas_and_reads_them_back_unchanged():
    t = T.from_columns({T.SAMPLE_ID: ["=HYPERLINK(\"http://x\")", "a.jpg", "-x", "@SUM(A1)"],
                        T.SOURCE: ["gt"] * 4, T.LABEL: ["+1", "cat", "\tTAB", "dog"], T.SCORE: [-3.5, 1.0, 2.0, None]})
    text = io.encode(t, "csv").decode()
    for cell in ("'=HYPERLINK", "'-x", "'@SUM", "'+1", "'\tTAB"):
        assert cell in text, cell
    assert "-3.5" in text and "'-3.5" not in text  # numbers stay numbers
    back = T.normalize(io.decode(io.encode(t, "csv")))
    assert back.column(T.SAMPLE_ID).to_pylist() == t.column(T.SAMPLE_ID).to_pylist()
    assert back.column(T.LABEL).to_pylist() == t.column(T.LABEL).to_pylist()


# --------------------------------------------------------------------------- datasets

def _dataset(root: Path) -> Path:
    ds = root / "ds"
    for split in ("train", "val"):
        (ds / f"split={split}").mkdir(parents=True)
        for i in range(2):
            t = T.from_columns({T.SAMPLE_ID: [f"{split}{i}_{j}.jpg" for j in range(3)], T.SOURCE: ["gt"] * 3,
                                T.LABEL_ID: [1, 2, 3], T.LABEL: ["cat", "dog", "cat"],
                                T.BBOX: [[1.0, 1.0, 5.0, 5.0]] * 3})
            pq.write_table(t, ds / f"split={split}" / f"part-{i}.parquet")
    (ds / "_SUCCESS").write_text("")
    return ds


def test_a_partitioned_parquet_folder_is_one_table_with_its_partition_columns(tmp_path):
    ds = _dataset(tmp_path)
    t = io.read_table(ds)
    assert t.num_rows == 12
    assert sorted(set(t.column(T.SPLIT).to_pylist())) == ["train", "val"]
    batches = list(io.scan(ds, batch_rows=2))
    assert sum(b.num_rows for b in batches) == 12 and all(b.num_rows <= 2 for b in batches)
    assert {v for b in batches for v in b.column(T.SPLIT).to_pylist()} == {"train", "val"}


@pytest.mark.parametrize("args", [["stats", "--json"], ["schema-check", "--infer"], ["filter", "--split", "val"],
                                  ["export", "coco"]])
def test_every_command_reads_a_dataset_folder(tmp_path, args):
    ds = _dataset(tmp_path)
    cmd = [args[0], ds, *args[1:]] if args[0] != "export" else ["export", "coco", ds]
    out = _run(cmd, input=None)
    assert out.returncode == 0, out.stderr
    assert out.stdout


def test_a_folder_without_parquet_files_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(MlcycleError, match="no Parquet files"):
        io.read_table(tmp_path / "empty")


@pytest.mark.parametrize("kind", ["jsonl-value", "jsonl-name", "parquet-value"])
def test_text_that_is_not_utf8_is_an_error_naming_the_column(tmp_path, kind):
    import io as _io

    if kind == "jsonl-value":
        p = tmp_path / "bad.jsonl"
        p.write_bytes(b'{"sample_id":"a","source":"gt","label":"c\xffat"}\n')
        want = r"row 1: column 'label' has text that is not valid UTF-8"
    elif kind == "jsonl-name":
        p = tmp_path / "bad.jsonl"
        p.write_bytes(b'{"sample_id":"a","source":"gt","lab\xffel":"cat"}\n')
        want = "not valid UTF-8"
    else:
        buf = _io.BytesIO()
        pq.write_table(pa.table({"sample_id": ["a", "b"], "source": ["gt", "gt"], "label": ["cat", "dogz"]}), buf,
                       use_dictionary=False, compression="none")
        p = tmp_path / "bad.parquet"
        p.write_bytes(buf.getvalue().replace(b"dogz", b"do\xff\xfe"))
        want = "column 'label' has text that is not valid UTF-8"
    with pytest.raises(MlcycleError, match=want):
        io.read_table(p)
    for cmd in (["stats", p, "--json"], ["evaluate", p, "--json"]):
        out = _run(cmd, input=None)
        assert out.returncode == 1 and b"internal error" not in out.stderr, out.stderr
