"""mlcycle.curate.diff: matching, change kinds, properties (hypothesis), CLI."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlcycle import io
from mlcycle import table as T
from mlcycle.curate.diff import diff
from mlcycle.errors import OptionError


def _table(rows: list[dict]) -> pa.Table:
    cols = {k: [r.get(k) for r in rows] for k in rows[0]}
    if "bbox" in cols:
        cols["bbox"] = np.array([b if b is not None else [np.nan] * 4 for b in cols["bbox"]], dtype=float)
    return T.from_columns(cols)


def _changes(result) -> dict:
    t = result.table
    return {(r["sample_id"], r["label_id"]): r for r in t.to_pylist()}


OLD = [
    {"sample_id": "a", "source": "gt", "label_id": 1, "label": "cat", "bbox": [0, 0, 10, 10], "occluded": True},
    {"sample_id": "a", "source": "gt", "label_id": 2, "label": "dog", "bbox": [20, 20, 10, 10], "occluded": False},
    {"sample_id": "a", "source": "gt", "label_id": 3, "label": "cat", "bbox": [50, 50, 10, 10], "occluded": False},
    {"sample_id": "a", "source": "gt", "label_id": 4, "label": "cat", "bbox": [80, 80, 10, 10], "occluded": False},
    {"sample_id": "b", "source": "gt", "label_id": 5, "label": "cat", "bbox": [0, 0, 5, 5], "occluded": False},
    {"sample_id": "c", "source": "gt", "label_id": None, "label": None, "bbox": None, "occluded": None},
]
NEW = [
    {"sample_id": "a", "source": "gt", "label_id": 1, "label": "cat", "bbox": [1, 0, 10, 10], "occluded": True},
    {"sample_id": "a", "source": "gt", "label_id": 2, "label": "cow", "bbox": [20, 20, 10, 10], "occluded": False},
    {"sample_id": "a", "source": "gt", "label_id": 13, "label": "cat", "bbox": [50, 50, 10, 10], "occluded": True},
    {"sample_id": "a", "source": "gt", "label_id": 14, "label": "cat", "bbox": [80, 80, 10, 10], "occluded": False},
    {"sample_id": "d", "source": "gt", "label_id": 6, "label": "cat", "bbox": [0, 0, 5, 5], "occluded": False},
    {"sample_id": "c", "source": "gt", "label_id": None, "label": None, "bbox": None, "occluded": None},
]


def test_every_kind_of_change():
    r = diff(_table(OLD), _table(NEW))
    ch = _changes(r)
    assert ch[("a", 1)]["change"] == T.CHANGE_MOVED and ch[("a", 1)]["change_iou"] == pytest.approx(90 / 110)
    assert ch[("a", 1)]["old_bbox"] == [0, 0, 10, 10] and ch[("a", 1)]["changed_attributes"] == []
    assert ch[("a", 2)]["change"] == T.CHANGE_RELABELLED and ch[("a", 2)]["old_label"] == "dog"
    # matched by geometry although the id changed; only the attribute differs
    assert ch[("a", 13)]["change"] == T.CHANGE_ATTRIBUTES and ch[("a", 13)]["changed_attributes"] == ["occluded"]
    assert ("a", 14) not in ch  # same box, new id, nothing else changed: unchanged
    assert ch[("b", 5)]["change"] == T.CHANGE_REMOVED and ch[("d", 6)]["change"] == T.CHANGE_ADDED
    assert r.summary["counts"] == {"added": 1, "removed": 1, "moved": 1, "relabelled": 1, "attributes": 1,
                                   "unchanged": 1}
    assert r.summary["samples"] == {"added": 1, "removed": 1, "added_examples": ["d"], "removed_examples": ["b"]}
    assert r.summary["relabels"] == [{"from": "dog", "to": "cow", "count": 1}]
    assert r.table.num_rows == 5


def test_sample_rows_of_samples_on_one_side_are_reported():
    old = _table(OLD)
    new = _table([*NEW, {"sample_id": "e", "source": "gt", "label_id": None, "label": None, "bbox": None,
                         "occluded": None}])
    ch = _changes(diff(old, new))
    assert ch[("e", None)]["change"] == T.CHANGE_ADDED


def test_relabel_found_by_geometry_without_ids():
    old = _table([{**r, "label_id": None} for r in OLD[:2]])
    new = _table([{**r, "label_id": None} for r in NEW[:2]])
    r = diff(old, new)
    kinds = sorted(r.table.column(T.CHANGE).to_pylist())
    assert kinds == [T.CHANGE_MOVED, T.CHANGE_RELABELLED]
    assert r.summary["matched_by"] == {"label_id": 0, "geometry": 1, "relabel": 1}


def test_greedy_takes_the_best_pair_first():
    # one old box between two new ones: the closer new box is the match, the other is added
    old = _table([{"sample_id": "a", "source": "gt", "label_id": None, "label": "cat", "bbox": [0, 0, 10, 10]}])
    new = _table([{"sample_id": "a", "source": "gt", "label_id": None, "label": "cat", "bbox": [3, 0, 10, 10]},
                  {"sample_id": "a", "source": "gt", "label_id": None, "label": "cat", "bbox": [1, 0, 10, 10]}])
    rows = diff(old, new).table.to_pylist()
    by = {tuple(r["bbox"]): r["change"] for r in rows}
    assert by == {(1.0, 0.0, 10.0, 10.0): T.CHANGE_MOVED, (3.0, 0.0, 10.0, 10.0): T.CHANGE_ADDED}


def test_low_iou_is_removed_and_added():
    old = _table([{"sample_id": "a", "source": "gt", "label_id": None, "label": "cat", "bbox": [0, 0, 10, 10]}])
    new = _table([{"sample_id": "a", "source": "gt", "label_id": None, "label": "cat", "bbox": [6, 0, 10, 10]}])
    assert sorted(diff(old, new).table.column(T.CHANGE).to_pylist()) == [T.CHANGE_ADDED, T.CHANGE_REMOVED]
    assert diff(old, new, iou=0.2).table.column(T.CHANGE).to_pylist() == [T.CHANGE_MOVED]


def test_sources_are_compared_apart():
    old = _table([{"sample_id": "a", "source": "gt", "label_id": 1, "label": "cat", "bbox": [0, 0, 10, 10]}])
    new = _table([{"sample_id": "a", "source": "pred", "label_id": 1, "label": "cat", "bbox": [0, 0, 10, 10]}])
    assert sorted(diff(old, new).table.column(T.CHANGE).to_pylist()) == [T.CHANGE_ADDED, T.CHANGE_REMOVED]


def test_nested_attribute_columns_are_compared():
    old = T.from_columns({"sample_id": ["a", "a"], "source": ["gt", "gt"], "label_id": [1, 2], "label": ["x", "x"],
                          "bbox": np.array([[0, 0, 1, 1], [5, 5, 1, 1]], float),
                          "embedding": pa.array([[1.0, 2.0], [3.0, 4.0]])})
    new = old.set_column(old.column_names.index("embedding"), "embedding", pa.array([[1.0, 2.0], [3.0, 5.0]]))
    r = diff(old, new)
    assert r.table.column(T.LABEL_ID).to_pylist() == [2]
    assert r.table.column(T.CHANGED_ATTRIBUTES).to_pylist() == [["embedding"]]


def test_bad_options():
    with pytest.raises(OptionError) as e:
        diff(_table(OLD), _table(NEW), iou=0)
    assert e.value.option == "iou"
    with pytest.raises(OptionError):
        diff(_table(OLD), _table(NEW), iou=0.6, same_iou=0.5)


# --------------------------------------------------------------------------- properties

@st.composite
def grids(draw):
    """Label tables whose boxes sit in their own 100x100 cells (never overlapping)."""
    n_samples = draw(st.integers(1, 4))
    rows = []
    lid = 0
    for s in range(n_samples):
        for cell in range(draw(st.integers(0, 6))):
            lid += 1
            w = draw(st.floats(20, 60))
            h = draw(st.floats(20, 60))
            rows.append({"sample_id": f"s{s}", "source": "gt", "label_id": lid,
                         "label": draw(st.sampled_from(["cat", "dog", "cow"])),
                         "bbox": [cell * 100.0, 0.0, w, h]})
    if not rows:
        rows.append({"sample_id": "s0", "source": "gt", "label_id": None, "label": None, "bbox": None})
    return rows


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(grids())
def test_diff_of_a_table_with_itself_is_empty(rows):
    t = _table(rows)
    r = diff(t, t)
    assert r.table.num_rows == 0 and r.summary["changes"] == 0


@settings(max_examples=60, deadline=None)
@given(grids(), st.data())
def test_added_and_removed_are_the_set_differences_of_label_ids(rows, data):
    labels = [r for r in rows if r["label"] is not None]
    keep = data.draw(st.lists(st.booleans(), min_size=len(labels), max_size=len(labels)))
    n_new = data.draw(st.integers(0, 4))
    new_rows = [r for r, k in zip(labels, keep) if k]
    top = max([r["label_id"] for r in labels], default=0)
    for k in range(n_new):  # far from every old box
        new_rows.append({"sample_id": "s0", "source": "gt", "label_id": top + 1 + k, "label": "cat",
                         "bbox": [10_000.0 + 100 * k, 0.0, 30.0, 30.0]})
    if not new_rows:
        new_rows = [{"sample_id": "s0", "source": "gt", "label_id": None, "label": None, "bbox": None}]
    old, new = _table(rows), _table(new_rows)
    ids_old = {r["label_id"] for r in labels}
    ids_new = {r["label_id"] for r in new_rows if r["label"] is not None}
    r = diff(old, new)
    c = r.summary["counts"]
    assert c["removed"] == len(ids_old - ids_new)
    assert c["added"] == len(ids_new - ids_old)
    assert c["moved"] == c["relabelled"] == c["attributes"] == 0
    got = r.table.filter(pa.array(T.label_mask(r.table)))
    assert {(x["change"], x["label_id"]) for x in got.to_pylist()} == (
        {(T.CHANGE_REMOVED, i) for i in ids_old - ids_new} | {(T.CHANGE_ADDED, i) for i in ids_new - ids_old})


@settings(max_examples=60, deadline=None)
@given(grids(), st.data(), st.booleans())
def test_moving_a_random_subset_is_reported_exactly(rows, data, keep_ids):
    labels = [r for r in rows if r["label"] is not None]
    move = data.draw(st.lists(st.booleans(), min_size=len(labels), max_size=len(labels)))
    new_rows, expect = [], {}
    for r, m in zip(rows, move + [False] * (len(rows) - len(move))):
        r2 = dict(r)
        if m and r["bbox"] is not None:
            x, y, w, h = r["bbox"]
            r2["bbox"] = [x + 0.1 * w, y, w, h]  # IoU 0.9 / 1.1
            expect[r["label_id"]] = 0.9 / 1.1
        if not keep_ids:
            r2["label_id"] = None if r2["label"] is None else 1000 + (r["label_id"] or 0)
        new_rows.append(r2)
    r = diff(_table(rows), _table(new_rows))
    got = {(x["sample_id"], x["old_bbox"][0]): x for x in r.table.to_pylist()}
    assert r.summary["counts"]["moved"] == len(expect) == r.table.num_rows
    assert all(x["change"] == T.CHANGE_MOVED for x in got.values())
    assert sorted(x["change_iou"] for x in got.values()) == pytest.approx(sorted(expect.values()))


# --------------------------------------------------------------------------- chunking and scale

def test_chunked_matching_equals_one_chunk():
    rng = np.random.default_rng(1)
    n = 3000
    boxes = np.c_[rng.uniform(0, 200, (n, 2)), rng.uniform(5, 40, (n, 2))]
    cols = {"sample_id": [f"s{k % 50}" for k in range(n)], "source": ["gt"] * n, "label_id": [None] * n,
            "label": [["a", "b"][k % 2] for k in range(n)], "bbox": boxes}
    old = T.from_columns(cols)
    moved = boxes + np.c_[rng.normal(0, 2, (n, 2)), np.zeros((n, 2))]
    new = T.from_columns({**cols, "bbox": moved})
    a = diff(old, new, chunk_pairs=500)
    b = diff(old, new, chunk_pairs=10_000_000)
    assert a.summary["counts"] == b.summary["counts"]
    assert a.table.equals(b.table)


# --------------------------------------------------------------------------- CLI

@pytest.fixture
def pair(tmp_path):
    old, new = tmp_path / "old.parquet", tmp_path / "new.jsonl"
    io.write_table(_table(OLD), old)
    io.write_table(_table(NEW), new)
    return old, new


def _rows(stdout: str) -> list[dict]:
    return [r for r in map(json.loads, stdout.splitlines()) if io.JSONL_META_KEY not in r]


def test_cli_writes_changes_on_stdout_and_a_summary_on_stderr(runner, pair):
    r = runner(["diff", *pair])
    assert r.exit_code == 0, r.stderr
    rows = _rows(r.stdout)
    assert sorted(x["change"] for x in rows) == ["added", "attributes", "moved", "relabelled", "removed"]
    assert "diff:" in r.stderr and "relabelled" in r.stderr
    assert "{" not in r.stderr.splitlines()[0]


def test_cli_json_summary(runner, pair):
    r = runner(["diff", *pair, "--json"])
    assert r.exit_code == 0
    doc = json.loads(r.stdout)
    assert doc["counts"]["moved"] == 1 and doc["changes"] == 5


def test_cli_fail_on_change_exits_3_after_writing(runner, pair, tmp_path):
    out = tmp_path / "changes.parquet"
    r = runner(["diff", *pair, "--fail-on-change", "-o", out])
    assert r.exit_code == 3
    assert "5 changes" in r.stderr
    assert io.read_table(out).num_rows == 5
    same = runner(["diff", pair[0], pair[0], "--fail-on-change", "-q"])
    assert same.exit_code == 0 and same.stderr == ""


def test_cli_bad_input_is_one_error_line_and_no_output(runner, pair, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"sample_id": "a"}\n')
    out = tmp_path / "out.parquet"
    r = runner(["diff", pair[0], bad, "-o", out])
    assert r.exit_code == 1
    assert r.stderr.startswith("error: ") and "source" in r.stderr
    assert not out.exists()
    r = runner(["diff", pair[0], pair[1], "--iou", "1.5"])
    assert r.exit_code == 2 and r.stderr.startswith("error: --iou:")


# --------------------------------------------------------------------------- streaming

def _sorted_pair(rng, n_samples: int) -> tuple[pa.Table, pa.Table]:
    """Two versions of a table sorted by sample_id: two sources, sample rows, samples on
    one side only, moved / relabelled / removed / added labels and an attribute."""
    def side(version: int) -> pa.Table:
        rows = []
        for s in range(n_samples):
            sid = f"s{s:04d}"
            if (version == 0 and s % 7 == 3) or (version == 1 and s % 5 == 2):
                continue  # a sample on one side only
            for src in (["gt", "aux"] if s % 4 == 0 else ["gt"]):
                k = int(rng.integers(0, 5))
                if k == 0:
                    rows.append({"sample_id": sid, "source": src, "label_id": None, "label": None,
                                 "bbox": None, "occluded": None})
                for j in range(k):
                    x = 100.0 * j + (rng.uniform(0, 8) if version and rng.random() < 0.3 else 0.0)
                    lab = ["cat", "dog", "cow"][(j + (version if rng.random() < 0.2 else 0)) % 3]
                    rows.append({"sample_id": sid, "source": src, "label_id": None if rng.random() < 0.3 else j,
                                 "label": lab, "bbox": [x, 0.0, 30.0, 30.0],
                                 "occluded": bool(rng.random() < 0.2 * (1 + version))})
        return _table(rows)
    return side(0), side(1)


@pytest.mark.parametrize("seed", range(6))
def test_streamed_diff_equals_the_whole_table_diff(tmp_path, seed):
    import orjson

    from mlcycle.curate.diff import diff_files

    rng = np.random.default_rng(seed)
    old, new = _sorted_pair(rng, int(rng.integers(1, 60)))
    io.write_table(old, tmp_path / "old.parquet")
    io.write_table(new, tmp_path / "new.parquet")
    whole = diff(io.read_table(tmp_path / "old.parquet"), io.read_table(tmp_path / "new.parquet"),
                 old_name=str(tmp_path / "old.parquet"), new_name=str(tmp_path / "new.parquet"))
    io.write_table(whole.table, tmp_path / "whole.parquet")
    for batch_rows in (1, 2, 3, int(rng.integers(4, 40)), 100_000):
        out = tmp_path / f"streamed{batch_rows}.parquet"
        summary = diff_files(str(tmp_path / "old.parquet"), str(tmp_path / "new.parquet"), str(out),
                             batch_rows=batch_rows)
        assert orjson.dumps(summary) == orjson.dumps(whole.summary)  # same values, same key order
        got, want = io.read_table(out), io.read_table(tmp_path / "whole.parquet")
        assert got.select(want.column_names).to_pylist() == want.to_pylist()
        assert got.column_names == want.column_names


def test_unsorted_inputs_fall_back_to_the_whole_tables(tmp_path, pair):
    from mlcycle import reporting
    from mlcycle.curate.diff import diff_files

    old, new = pair  # NEW has sample d before c
    with reporting.collect() as notes:
        summary = diff_files(str(old), str(new), str(tmp_path / "out.parquet"), batch_rows=2)
    assert summary == diff(io.read_table(old), io.read_table(new), old_name=str(old), new_name=str(new)).summary
    assert any("is not sorted by sample_id" in m for m in notes.notes)
    assert io.read_table(tmp_path / "out.parquet").num_rows == 5


def _peak_mb(cmd: list[str]) -> float:
    """Peak RSS (MB) of one child process (``os.wait4``: that process only)."""
    import os
    import subprocess

    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, proc.stderr.read().decode(errors="replace")
    return usage.ru_maxrss / 1024.0


def test_streamed_diff_memory_is_bounded_by_the_batch_not_the_tables(tmp_path):
    """2M labels against 100k: the tables are 20 times larger, the peak memory grows by
    about the Parquet row groups' size (measured: 180 -> 308 MB; read whole, the 2M pair
    peaks at 1.2 GB: docs/curate-diff.md)."""
    import subprocess
    import sys
    from pathlib import Path

    bench = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_curate_diff.py"
    peaks = {}
    for labels in (100_000, 2_000_000):
        folder = tmp_path / str(labels)
        folder.mkdir()
        subprocess.run([sys.executable, str(bench), "--generate-diff", str(folder), "--labels", str(labels)],
                       check=True, capture_output=True)
        peaks[labels] = _peak_mb([sys.executable, "-m", "mlcycle", "diff", str(folder / "old.parquet"),
                                  str(folder / "new.parquet"), "-o", str(folder / "out.parquet"), "-q"])
        assert io.read_table(folder / "out.parquet").num_rows == 5 * labels // 40
    assert peaks[2_000_000] < peaks[100_000] + 250, peaks
