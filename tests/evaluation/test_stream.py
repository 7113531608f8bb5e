"""Streaming evaluate (bucket by bucket) gives the in-memory document bit for bit."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest

import mlcycle
from mlcycle.errors import MlcycleError, OptionError
from mlcycle.evaluation import to_json
from mlcycle.evaluation.prepare import Options
from mlcycle.evaluation.stream import bucket_count, evaluate_files

PY = sys.executable


def _generated(n_img: int = 120, seed: int = 0, segm: bool = False) -> tuple[pa.Table, pa.Table]:
    """(ground truth, predictions) with crowd regions, classes some images lack, a
    prediction class the ground truth lacks, an unlabelled prediction, image ids."""
    rng = np.random.default_rng(seed)
    g, d = [], []
    for i in range(n_img):
        s = f"img/{i:05d}.jpg"
        g.append({"sample_id": s, "source": "gt", "image_id": (i * 7) % n_img + 1, "width": 128, "height": 96})
        for _ in range(int(rng.integers(0, 6))):
            x, y = rng.integers(0, 80, 2).astype(float)
            w, h = rng.integers(2, 48, 2).astype(float)
            lab = f"c{int(rng.integers(0, 5))}"
            row = {"sample_id": s, "source": "gt", "label": lab, "bbox": [x, y, w, h],
                   "iscrowd": bool(rng.random() < 0.04), "image_id": (i * 7) % n_img + 1, "width": 128, "height": 96}
            if segm:
                row["segmentation"] = json.dumps([[x, y, x + w, y, x + w, y + h, x, y + h]])
            g.append(row)
            for _ in range(int(rng.integers(0, 3))):
                j = rng.normal(0, 3, 4)
                dl = lab if rng.random() < 0.85 else f"c{int(rng.integers(0, 6))}"
                box = [x + j[0], y + j[1], max(1.0, w + j[2]), max(1.0, h + j[3])]
                drow = {"sample_id": s, "source": "pred", "label": dl, "bbox": box,
                        "score": float(np.round(rng.random(), 2)), "width": 128, "height": 96}
                if segm:
                    bx, by, bw, bh = box
                    drow["segmentation"] = json.dumps([[bx, by, bx + bw, by, bx + bw, by + bh, bx, by + bh]])
                d.append(drow)
    d.append({"sample_id": "img/00003.jpg", "source": "pred", "label": None, "bbox": [1.0, 1.0, 5.0, 5.0],
              "score": 0.5})
    d.append({"sample_id": "img/not-in-gt.jpg", "source": "pred", "label": "c1", "bbox": [1.0, 1.0, 5.0, 5.0],
              "score": 0.5})
    order = rng.permutation(len(d))   # predictions not grouped by image
    d = [d[i] for i in order]
    return _table(g, segm), _table(d, segm)


def _table(rows: list[dict], segm: bool) -> pa.Table:
    from mlcycle import table as T

    cols = {
        "sample_id": pa.array([r["sample_id"] for r in rows], pa.string()),
        "source": pa.array([r["source"] for r in rows], pa.string()),
        "label": pa.array([r.get("label") for r in rows], pa.string()),
        "label_id": pa.array([i + 1 if "bbox" in r else None for i, r in enumerate(rows)], pa.int64()),
        "bbox": pa.array([r.get("bbox") for r in rows], pa.list_(pa.float64(), 4)),
        "score": pa.array([r.get("score") for r in rows], pa.float64()),
        "iscrowd": pa.array([r.get("iscrowd", False) for r in rows], pa.bool_()),
        "width": pa.array([r.get("width") for r in rows], pa.int32()),
        "height": pa.array([r.get("height") for r in rows], pa.int32()),
        "image_id": pa.array([r.get("image_id") for r in rows], pa.int64()),
        "split": pa.array(["val" if int(r["sample_id"][4:9] if r["sample_id"][4:9].isdigit() else 0) % 3
                           else "test" for r in rows], pa.string()),
    }
    if segm:
        cols["segmentation"] = pa.array([r.get("segmentation") for r in rows], pa.string())
    return T.normalize(pa.table(cols))


def _memory(*tables, **kw) -> dict:
    return mlcycle.evaluate(mlcycle.concat(list(tables)), annotate=False, **kw).summary


@pytest.mark.parametrize("buckets", [None, 1, 4, 33])
def test_two_files_equal_in_memory(tmp_path, buckets):
    gt, dt = _generated()
    mlcycle.write_table(gt, tmp_path / "gt.parquet")
    mlcycle.write_table(dt, tmp_path / "dt.jsonl")
    ref = _memory(gt, dt)
    assert ref["warnings"]   # the unlabelled and off-sample predictions are reported
    got = mlcycle.evaluate([tmp_path / "gt.parquet", tmp_path / "dt.jsonl"], stream=True, buckets=buckets)
    assert got.table is None
    assert to_json(got.summary) == to_json(ref)
    assert [str(w) for w in got.warnings] == ref["warnings"]


def test_partitioned_parquet_folder_equals_in_memory(tmp_path):
    import pyarrow.parquet as pq

    gt, dt = _generated(seed=1)
    both = mlcycle.concat([gt, dt])
    folder = tmp_path / "dataset"
    for split in ("val", "test"):
        part = both.filter(pa.compute.equal(both.column("split"), split)).drop_columns(["split"])
        (folder / f"split={split}").mkdir(parents=True)
        # several files per partition, small row groups: batches cut samples apart
        half = part.num_rows // 2
        pq.write_table(part.slice(0, half), folder / f"split={split}" / "part-0.parquet", row_group_size=50)
        pq.write_table(part.slice(half), folder / f"split={split}" / "part-1.parquet", row_group_size=50)
    ref = mlcycle.evaluate(mlcycle.read_table(folder), annotate=False).summary
    opts = Options(annotate=False)
    for n in (None, 3):
        doc = evaluate_files([folder], opts, buckets=n, batch_rows=64)
        assert to_json(doc) == to_json(ref)


def test_segm_and_options_equal_in_memory(tmp_path):
    gt, dt = _generated(n_img=40, seed=2, segm=True)
    mlcycle.write_table(mlcycle.concat([gt, dt]), tmp_path / "all.arrow")
    kw = dict(iou_type="segm", iou=0.6, conf=0.3, max_dets=(1, 5), area_ranges={"tiny": (0.0, 64.0)},
              rel_area_ranges={"half": (0.0, 0.5)}, at_recall=(0.5,))
    ref = _memory(gt, dt, **kw)
    got = mlcycle.evaluate(tmp_path / "all.arrow", stream=True, buckets=5, **kw)
    assert to_json(got.summary) == to_json(ref)


def test_buckets_from_the_row_count_and_files_cleaned_up(tmp_path):
    gt, dt = _generated(n_img=60, seed=3)
    mlcycle.write_table(mlcycle.concat([gt, dt]), tmp_path / "all.parquet")
    assert bucket_count(10, 3) == 4 and bucket_count(0) == 1
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    doc = evaluate_files([tmp_path / "all.parquet"], Options(annotate=False), rows_per_bucket=40, tmp_dir=tmp)
    assert to_json(doc) == to_json(_memory(gt, dt))
    assert list(tmp.iterdir()) == []


def test_unwritable_temporary_folder_is_a_clean_error(tmp_path):
    gt, dt = _generated(n_img=5)
    mlcycle.write_table(mlcycle.concat([gt, dt]), tmp_path / "all.parquet")
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    with pytest.raises(MlcycleError, match="temporary folder"):
        evaluate_files([tmp_path / "all.parquet"], Options(annotate=False), tmp_dir=not_a_dir)


def test_refused_options_name_the_parameter(tmp_path):
    gt, dt = _generated(n_img=5)
    mlcycle.write_table(mlcycle.concat([gt, dt]), tmp_path / "all.parquet")
    for kw, param in (({"by": "split"}, "by"), ({"bootstrap": 5}, "bootstrap"), ({"conf": "best-f1"}, "conf"),
                      ({"remap": {"c1": "c2"}}, "remap"), ({"method": "voc"}, "method"),
                      ({"output": tmp_path / "x.parquet", "stream": False}, "output")):
        with pytest.raises(OptionError) as exc:
            mlcycle.evaluate(tmp_path / "all.parquet", **{"stream": True, **kw})
        assert exc.value.option == param
    with pytest.raises(OptionError) as exc:
        mlcycle.evaluate(gt, stream=True)
    assert exc.value.option == "stream"


def test_fail_under_applies_to_streamed_metrics(tmp_path):
    gt, dt = _generated(n_img=30)
    mlcycle.write_table(mlcycle.concat([gt, dt]), tmp_path / "all.parquet")
    r = mlcycle.evaluate(tmp_path / "all.parquet", stream=True, fail_under={"AP": 0.99})
    assert r.summary["fail_under"]["failed"]


def _run(*args, stdin=None):
    env = {**os.environ, "NO_COLOR": "1"}
    return subprocess.run([PY, "-m", "mlcycle", *map(str, args)], capture_output=True, input=stdin, env=env,
                          timeout=300)


def test_cli_stream_json_and_metrics_equal_in_memory(tmp_path):
    gt, dt = _generated(n_img=50, seed=4)
    mlcycle.write_table(gt, tmp_path / "gt.parquet")
    mlcycle.write_table(dt, tmp_path / "dt.parquet")
    mem = _run("evaluate", tmp_path / "gt.parquet", tmp_path / "dt.parquet", "--json",
               "--metrics", tmp_path / "m1.json")
    assert mem.returncode == 0, mem.stderr
    st = _run("evaluate", tmp_path / "gt.parquet", tmp_path / "dt.parquet", "--stream", "--buckets", "3",
              "--json", "--metrics", tmp_path / "m2.json")
    assert st.returncode == 0, st.stderr
    assert st.stdout == mem.stdout
    assert (tmp_path / "m1.json").read_bytes() == (tmp_path / "m2.json").read_bytes()
    assert st.stderr == mem.stderr   # same warnings and summary on stderr
    # standard input streams too (read into memory first, as documented)
    mlcycle.write_table(mlcycle.concat([gt, dt]), tmp_path / "all.arrow")
    piped = _run("evaluate", "--stream", "--json", stdin=(tmp_path / "all.arrow").read_bytes())
    assert piped.returncode == 0, piped.stderr
    assert json.loads(piped.stdout)["metrics"] == json.loads(mem.stdout)["metrics"]


def _same_rows(a: pa.Table, b: pa.Table) -> None:
    """Equal tables up to the row order (streamed rows come grouped by bucket)."""
    key = [("source", "ascending"), ("label_id", "ascending"), ("sample_id", "ascending")]
    assert a.schema.names == b.schema.names
    assert a.sort_by(key).equals(b.sort_by(key))


@pytest.mark.parametrize("ending", ["parquet", "jsonl"])
def test_per_label_table_written_bucket_by_bucket_equals_in_memory(tmp_path, ending):
    gt, dt = _generated(n_img=80, seed=5)
    mlcycle.write_table(gt, tmp_path / "gt.parquet")
    mlcycle.write_table(dt, tmp_path / "dt.parquet")
    ref = mlcycle.evaluate(mlcycle.concat([gt, dt]), iou=0.6, conf=0.2)
    out = tmp_path / f"out.{ending}"
    got = mlcycle.evaluate([tmp_path / "gt.parquet", tmp_path / "dt.parquet"], stream=True, buckets=4, iou=0.6,
                           conf=0.2, output=out)
    assert to_json(got.summary) == to_json(ref.summary)
    written = mlcycle.read_table(out)
    _same_rows(written, ref.table.replace_schema_metadata(None).cast(written.schema))
    # grouped by bucket (a sample's rows all in one), in input order within a bucket
    from mlcycle.shards import bucket_of

    b = bucket_of(written.column("sample_id"), 4)
    assert (np.diff(b) >= 0).all()
    for k in range(4):
        rows = written.filter(pa.array(b == k))
        src = rows.column("source").to_pylist()
        assert src == sorted(src, key=lambda v: v != "gt")   # gt.parquet's rows, then dt.parquet's


def test_cli_stream_output_and_usage_errors(tmp_path):
    gt, dt = _generated(n_img=20, seed=6)
    mlcycle.write_table(mlcycle.concat([gt, dt]), tmp_path / "all.parquet")
    mem = _run("evaluate", tmp_path / "all.parquet", "-o", tmp_path / "a.parquet", "--metrics", tmp_path / "a.json")
    st = _run("evaluate", tmp_path / "all.parquet", "--stream", "--buckets", "3", "-o", tmp_path / "b.parquet",
              "--metrics", tmp_path / "b.json")
    assert mem.returncode == st.returncode == 0, st.stderr
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    _same_rows(mlcycle.read_table(tmp_path / "a.parquet"), mlcycle.read_table(tmp_path / "b.parquet"))
    # piped without --json: the table on stdout, as in memory
    piped = _run("evaluate", tmp_path / "all.parquet", "--stream", "--format", "arrow")
    assert piped.returncode == 0, piped.stderr
    from mlcycle import io

    _same_rows(io.decode(piped.stdout), mlcycle.read_table(tmp_path / "a.parquet"))
    # a failure leaves no output behind
    r = _run("evaluate", tmp_path / "all.parquet", "--stream", "--pred-source", "nope", "-o", tmp_path / "c.parquet")
    assert r.returncode == 1 and not (tmp_path / "c.parquet").exists()
    r = _run("evaluate", tmp_path / "all.parquet", "--buckets", "3", "--json")
    assert r.returncode == 2 and b"--buckets works with --stream only" in r.stderr
    r = _run("evaluate", tmp_path / "all.parquet", "--stream", "--by", "split", "--json")
    assert r.returncode == 2 and b"--by" in r.stderr and b"Traceback" not in r.stderr


def test_mutated_tables_stream_cleanly_and_equal_in_memory(tmp_path):
    """Fuzz (as tests/fuzz): mutated label tables through `evaluate --stream`: exit 0-3,
    no traceback or internal error, one error line; and whenever the in-memory run gives
    COCO metrics, the streamed JSON is the same bytes."""
    import random

    from tests.fuzz.test_fuzz import _assert_clean, _invoke, _mutate

    from pathlib import Path as _P

    root = _P(mlcycle.sample_dataset())
    gt = mlcycle.ingest(root / "annotations" / "instances_val.json", "coco")
    dt = mlcycle.ingest(root / "predictions" / "detections_val.json", "coco-results",
                        images=root / "annotations" / "instances_val.json")
    from mlcycle import io

    both = mlcycle.concat([gt, dt])
    seeds = {"jsonl": io.encode(both, "jsonl"), "parquet": io.encode(both, "parquet")}
    rng = random.Random("mlcycle-fuzz-stream")
    failures: list[str] = []
    compared = 0
    for case in range(int(os.environ.get("MLCYCLE_FUZZ_CASES", "20"))):
        kind = "jsonl" if case % 3 else "parquet"
        src = tmp_path / f"in{case}.{kind}"
        if kind == "jsonl" and case % 2:
            # a milder mutation that often leaves the table valid: one number made absurd
            import re

            data = seeds[kind]
            nums = list(re.finditer(rb"-?\d+(?:\.\d+)?", data))
            m = rng.choice(nums)
            data = data[:m.start()] + rng.choice([b"0", b"-1", b"1e9", b"0.5", b"99", b"2"]) + data[m.end():]
        else:
            data = _mutate(seeds[kind], rng)
        src.write_bytes(data)
        mem = _invoke(["evaluate", src, "--json", "-q"])
        out = tmp_path / f"out{case}.parquet"
        args = ["evaluate", src, "--stream", "--buckets", "3", "--json", "-q", "-o", out]
        res = _invoke(args)
        _assert_clean(res, args, [out], failures)
        if mem.exit_code == 0:
            doc = json.loads(mem.stdout)
            if doc.get("method") == "coco" and "sources" not in doc:
                compared += 1
                if res.exit_code != 0 or res.stdout != mem.stdout:
                    failures.append(f"{args}: streamed output differs from in memory (exit {res.exit_code})\n"
                                    f"{res.stderr[-500:]}")
    assert not failures, "\n\n".join(failures)
    assert compared >= 3   # the mutations leave enough tables valid to compare
