"""mlcycle.scale: stats, schema-check and evaluate sharded on a real local Dask cluster of
2 worker processes give exactly what one process gives; shards merged in-process too."""

from __future__ import annotations

import json
import logging
import textwrap

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlcycle import scale, schema, stats
from mlcycle import table as T
from mlcycle.schema import checker
from mlcycle.shards import bucket_of
from mlcycle.stats import sketches
from mlcycle.stats.accumulate import accumulate, finish, merge

CLASSES = ["car", "person", "bike", "dog", "cat"]


def labels(n_images: int, seed: int, source: str, split: str, start: int = 0, id_base: int = 0) -> pa.Table:
    """A label table of ``n_images`` images (some without labels), with attributes."""
    rng = np.random.default_rng(seed)
    per = rng.integers(0, 6, n_images)
    sid = np.repeat(np.arange(start, start + n_images), np.maximum(per, 1))
    n = len(sid)
    empty = np.repeat(per == 0, np.maximum(per, 1))
    xy = rng.uniform(0, 500, (n, 2))
    wh = rng.uniform(2, 200, (n, 2))
    box = np.concatenate([xy, wh], axis=1)
    box[empty] = np.nan
    label = np.array(CLASSES, dtype=object)[rng.integers(0, len(CLASSES), n)]
    label[empty] = None
    cols = {
        T.SAMPLE_ID: [f"img/{i:06d}.jpg" for i in sid],
        T.SOURCE: [source] * n,
        T.LABEL_ID: np.where(empty, -1, np.arange(n) + 1 + id_base),
        T.LABEL: label.tolist(),
        T.BBOX: box,
        T.WIDTH: np.full(n, 640), T.HEIGHT: np.full(n, 480),
        T.SPLIT: [split] * n,
    }
    if source == T.GT_SOURCE:
        cols["occluded"] = (rng.random(n) < 0.3).tolist()
        cols["annotator"] = np.array(["ann", "bob", "cy", None], dtype=object)[rng.integers(0, 4, n)].tolist()
        cols["difficulty"] = rng.normal(3.0, 1.7, n) * 10.0 ** rng.integers(-3, 4, n)
    else:
        cols[T.SCORE] = rng.random(n)
    t = T.from_columns(cols)
    ids = t.column(T.LABEL_ID).to_numpy()
    return t.set_column(t.column_names.index(T.LABEL_ID), T.LABEL_ID,
                        pa.array(np.where(ids < 0, None, ids).tolist(), pa.int64()))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """A partitioned dataset folder: ground truth and predictions in different files,
    several row groups per file, hive split folders; plus the same rows in one table."""
    root = tmp_path_factory.mktemp("scale") / "labels"
    tables = []
    # val's images start at 395: five images in both splits (dataset.split-overlap), and
    # val's ground-truth label ids repeat the last 30 of train's (dataset.duplicate-label-id)
    for k, split in enumerate(["train", "val"]):
        gt = labels(400, 10 + k, T.GT_SOURCE, split, start=395 * k, id_base=k * (tables[0].num_rows - 30) if k else 0)
        pred = labels(400, 20 + k, "pred", split, start=395 * k)
        (root / f"split={split}").mkdir(parents=True)
        for name, t in (("a-gt", gt), ("b-pred", pred)):
            pq.write_table(t.drop_columns([T.SPLIT]), root / f"split={split}" / f"{name}.parquet", row_group_size=300)
        tables += [gt, pred]
    return root


@pytest.fixture(scope="module")
def client():
    import distributed

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=logging.ERROR) as cl, \
            distributed.Client(cl) as c:
        yield c


# --------------------------------------------------------------------------- in-process shard merges

def _by_bucket(table: pa.Table, n: int) -> list[pa.Table]:
    b = bucket_of(table.column(T.SAMPLE_ID), n)
    return [table.filter(pa.array(b == i)) for i in range(n)]


def _whole(dataset) -> pa.Table:
    from mlcycle import io

    return io.read_table(dataset)


@pytest.mark.parametrize("limit", [sketches.EXACT_QUANTILE_LIMIT, 500])
def test_stats_shards_merged_equal_one_pass(dataset, monkeypatch, limit):
    """Exact (limit large) and sketched quantiles (limit small) alike: any split by sample,
    merged in any order, gives the one-pass document bit for bit (exact float sums)."""
    monkeypatch.setattr(sketches, "EXACT_QUANTILE_LIMIT", limit)
    table = _whole(dataset)
    for kw in ({}, {"by": ["split"], "compare": "source"}):
        one = stats.compute([table], **kw)
        for n in (2, 7):
            parts = [accumulate([p], **kw) for p in _by_bucket(table, n)]
            assert finish(merge(parts[::-1])) == one
    assert one["boxes"]["area"]["mean"] is not None and one["by_source"] is not None


def test_schema_shards_merged_equal_one_check(dataset, tmp_path):
    table = _whole(dataset)
    spec = _schema(tmp_path)
    one = checker.find_violations(table, spec)
    assert set(one.violations.column("rule").to_pylist()) >= {
        "dataset.duplicate-label-id", "dataset.min-examples", "dataset.imbalance", "dataset.split-overlap",
        "dataset.duplicate-label", "attr.enum", "sample.empty", "sample.too-many-labels", "box.outside-image",
        "box.too-small", "class.unknown", "sample.value", "attr.range", "dataset.min-examples-per-split",
        "pred.class-unknown", "attr.unknown"}
    b = bucket_of(table.column(T.SAMPLE_ID), 3)
    parts = [checker.partial(table.filter(pa.array(b == i)), spec, np.flatnonzero(b == i)) for i in range(3)]
    merged = checker.merge(parts[::-1], spec)
    assert merged.violations.equals(one.violations)
    assert merged.violations_column().equals(one.violations_column())
    assert merged.summary(examples=5) == one.summary(examples=5)


def _schema(tmp_path):
    path = tmp_path / "schema.yaml"
    path.write_text(textwrap.dedent("""\
        version: 1
        classes:
          - name: car
            min_examples: 100000
          - name: person
          - name: bike
          - name: dog
        attributes:
          annotator:
            type: enum
            values: [ann, bob]
          difficulty:
            type: float
            min: 0
        boxes:
          inside_image: true
          tolerance: 0
          min_width: 5
          max_aspect_ratio: 20
        samples:
          required_columns: [split, width]
          allowed_values:
            split: [train]
          allow_empty: false
          max_labels: 4
        dataset:
          min_examples_per_split: 400
          max_imbalance: 1.01
          duplicate_iou: 0.3
          unique_label_ids: true
          split_overlap: true
        predictions:
          score_required: true
          classes_known: true
    """))
    return schema.load(path)


# --------------------------------------------------------------------------- on a 2-worker cluster

def test_stats_on_cluster_equal_one_process(dataset, client):
    for kw in ({}, {"by": ["split"]}, {"compare": "split", "sources": ["gt"]}):
        one = stats.describe(dataset, **kw).summary
        sharded = scale.describe(dataset, client=client, buckets=5, **kw).summary
        assert json.dumps(sharded, sort_keys=True) == json.dumps(one, sort_keys=True)


def test_schema_check_on_cluster_equal_one_process(dataset, client, tmp_path):
    from mlcycle import io

    spec = _schema(tmp_path)
    one = checker.find_violations(io.read_table(dataset), spec)
    sharded = scale.find_violations(dataset, spec, client=client, buckets=4)
    assert sharded.violations.equals(one.violations)
    assert sharded.violations_column().equals(one.violations_column())
    assert sharded.summary() == one.summary() and not one.summary()["passed"]


def test_shards_are_row_group_ranges_in_input_order(dataset):
    shards = scale.plan(dataset, shard_rows=250)
    assert [s.offset for s in shards] == list(np.cumsum([0] + [s.rows for s in shards[:-1]]))
    assert sum(s.rows for s in shards) == _whole(dataset).num_rows
    assert all(len(s.row_groups) == 1 for s in shards)  # 300-row groups, never split


def test_parse_engine():
    assert scale.parse_engine("dask") == scale.Engine()
    assert scale.parse_engine("dask:3") == scale.Engine(workers=3)
    assert scale.parse_engine("dask:tcp://10.0.0.1:8786").address == "tcp://10.0.0.1:8786"
    from mlcycle.errors import OptionError

    with pytest.raises(OptionError, match="unknown engine"):
        scale.parse_engine("spark")


# --------------------------------------------------------------------------- the command line

def test_cli_stats_engine_prints_the_one_process_document(runner, dataset):
    """A real local cluster started by the command (2 workers), as a user runs it."""
    one = runner(["stats", dataset, "--json"])
    sharded = runner(["stats", dataset, "--json", "--engine", "dask:2"])
    assert sharded.exit_code == 0, sharded.stderr
    assert sharded.stdout == one.stdout and json.loads(sharded.stdout)["counts"]["rows"] > 0


def test_cli_schema_check_engine_reports_like_one_run(runner, dataset, tmp_path, client):
    spec = tmp_path / "schema.yaml"
    _schema(tmp_path)
    one = runner(["schema-check", "-s", spec, dataset, "--json", "--report", tmp_path / "one.jsonl"])
    sharded = runner(["schema-check", "-s", spec, dataset, "--json", "--report", tmp_path / "sharded.jsonl",
                      "--engine", "dask:" + client.scheduler.address])  # a running scheduler
    assert (one.exit_code, sharded.exit_code) == (3, 3)
    assert json.loads(sharded.stdout) == json.loads(one.stdout)
    rows = [(tmp_path / f).read_text().splitlines()[1:] for f in ("one.jsonl", "sharded.jsonl")]
    assert rows[0] == rows[1] and len(rows[0]) > 100


def test_cli_schema_check_engine_refuses_to_pass_the_table_on(runner, dataset, tmp_path):
    _schema(tmp_path)
    r = runner(["schema-check", "-s", tmp_path / "schema.yaml", dataset, "--engine", "dask", "--keep", "valid"])
    assert r.exit_code == 2 and r.stdout == ""
    assert "--keep passes the table on" in r.stderr and "hint:" in r.stderr


@pytest.mark.parametrize("command", [["stats"], ["schema-check", "-s", "SCHEMA"]])
def test_cli_missing_engine_package_is_a_usage_error_with_the_pip_command(runner, dataset, tmp_path, monkeypatch,
                                                                          command):
    import sys

    _schema(tmp_path)
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    args = [str(tmp_path / "schema.yaml") if a == "SCHEMA" else a for a in command]
    r = runner([*args, dataset, "--engine", "dask"])
    assert r.exit_code == 2 and r.stdout == ""
    assert "error: --engine: the dask engine needs dask.distributed" in r.stderr
    assert "pip install 'mlcycle[dask]'" in r.stderr and "Traceback" not in r.stderr


def test_cli_unknown_engine(runner, dataset):
    r = runner(["stats", dataset, "--engine", "spark"])
    assert r.exit_code == 2 and "--engine: unknown engine 'spark'" in r.stderr


def test_evaluate_on_cluster_bit_identical_to_one_run(dataset, client):
    import mlcycle
    from mlcycle import io
    from mlcycle.evaluation.prepare import Options

    table = io.read_table(dataset)
    for kw in ({}, {"iou": 0.6, "max_dets": (1, 5, 20), "area_ranges": {"tiny": (0.0, 400.0)}}):
        one = mlcycle.evaluate(table, annotate=False, origin="labels", **kw).summary
        sharded = scale.evaluate(dataset, Options(annotate=False, origin="labels", **kw), client=client,
                                 buckets=5).summary
        assert json.dumps(sharded, sort_keys=True) == json.dumps(one, sort_keys=True)
        assert 0 < one["metrics"]["AP50"] < 1


def test_pieces_keep_only_the_dictionary_values_they_use():
    """A piece split from a shard would carry the shard's whole sample-id dictionary."""
    ids = pa.array([f"s{i % 50}" for i in range(200)]).dictionary_encode()
    piece = pa.table({"sample_id": ids, "n": np.arange(200)}).slice(10, 7)
    small = scale._compact(piece, limit=0)
    assert len(small.column("sample_id").chunk(0).dictionary) == 7
    assert small.column("sample_id").to_pylist() == piece.column("sample_id").to_pylist()
    assert scale._compact(piece).column("sample_id").chunk(0).dictionary.equals(ids.dictionary)  # small: kept


def test_errors_on_workers_come_back_as_they_were(dataset, client, tmp_path):
    """An OptionError (which plain pickling cannot carry) and a file error raised on a
    worker are raised here with their parameter, message and hint."""
    from mlcycle.errors import MlcycleError, OptionError

    with pytest.raises(OptionError, match="more than 1000 distinct values") as info:
        scale.describe(dataset, client=client, by=["label_id"], buckets=1)
    assert info.value.option == "by" and info.value.hint
    broken = tmp_path / "broken"
    broken.mkdir()
    good = next(dataset.rglob("*.parquet"))
    (broken / "a.parquet").write_bytes(good.read_bytes())
    data = good.read_bytes()
    (broken / "b.parquet").write_bytes(data[:4] + b"\0" * 64 + data[68:])  # a damaged first page
    with pytest.raises(MlcycleError, match="b.parquet") as info:
        scale.describe(broken, client=client)
    assert not isinstance(info.value, OptionError) and info.value.exit_code == 1
