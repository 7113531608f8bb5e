"""split: random, stratified (multi-label), grouped; reproducible; summary; CLI."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings, strategies as st

from mlcycle import io
from mlcycle import table as T
from mlcycle.curate.split import split_files, split_table
from mlcycle.errors import OptionError
from tests.curate._data import make_table


def _sample_splits(t):
    out = {}
    for sid, sp in zip(t.column(T.SAMPLE_ID).to_pylist(), t.column(T.SPLIT).to_pylist()):
        out.setdefault(sid, set()).add(sp)
    return out


@settings(max_examples=25, deadline=None)
@given(n=st.integers(5, 120), seed=st.integers(0, 10_000), stratify=st.booleans(), group=st.booleans(),
       ratios=st.sampled_from(["train=0.8,val=0.1,test=0.1", "train=0.5,val=0.5", "a=1,b=1,c=1,d=1"]))
def test_split_properties(n, seed, stratify, group, ratios):
    t = make_table(n_samples=n, seed=seed, sources=("gt", "pred"))
    res = split_table(t, ratios, seed=seed, stratify=T.LABEL if stratify else None, group="scene" if group else None)
    out = res.table
    per = _sample_splits(out)
    assert all(len(v) == 1 for v in per.values())  # every sample in exactly one split, all sources alike
    assert out.column(T.SPLIT).null_count == 0
    names = [p.split("=")[0] for p in ratios.split(",")]
    assert set().union(*per.values()) <= set(names)
    if group:
        scenes = {}
        for sc, sp in zip(out.column("scene").to_pylist(), out.column(T.SPLIT).to_pylist()):
            scenes.setdefault(sc, set()).add(sp)
        assert all(len(v) == 1 for v in scenes.values())  # a group never spans two splits
    elif not stratify:
        counts = res.summary["samples_per_split"]
        want = {k: v * n for k, v in res.summary["ratios"].items()}
        assert all(abs(counts[k] - want[k]) <= 1 for k in want)  # exact cut up to rounding
    # reproducible
    again = split_table(t, ratios, seed=seed, stratify=T.LABEL if stratify else None, group="scene" if group else None)
    assert again.table.column(T.SPLIT).to_pylist() == out.column(T.SPLIT).to_pylist()


def test_stratified_beats_random_on_class_balance():
    rng = np.random.default_rng(0)
    n = 3000
    classes = np.array(["common", "mid", "rare"])
    rows = {T.SAMPLE_ID: [], T.SOURCE: [], T.LABEL: []}
    for s in range(n):
        k = rng.choice(3, size=rng.integers(1, 3), replace=False, p=[0.8, 0.17, 0.03])
        for c in k:
            rows[T.SAMPLE_ID].append(f"s{s}"); rows[T.SOURCE].append("gt"); rows[T.LABEL].append(classes[c])
    t = T.from_columns(rows)
    strat = split_table(t, seed=3, stratify=T.LABEL).summary
    rand = split_table(t, seed=3).summary
    assert strat["max_class_deviation"] < 0.02
    assert strat["max_class_deviation"] <= rand["max_class_deviation"]
    assert abs(strat["achieved"]["train"] - 0.8) < 0.01
    assert set(strat["per_class"]["rare"]["labels"]) == {"train", "val", "test"}


def test_iterative_stratification_handles_100k_samples_quickly():
    import time

    rng = np.random.default_rng(1)
    n = 100_000
    per = rng.integers(1, 4, size=n)
    sid = np.repeat(np.arange(n), per)
    cls = rng.zipf(1.6, size=len(sid)) % 80
    t = T.from_columns({T.SAMPLE_ID: pa.array(sid.astype(str)), T.SOURCE: pa.array(np.full(len(sid), "gt")),
                        T.LABEL: pa.array(np.char.add("c", cls.astype(str)))})
    start = time.perf_counter()
    res = split_table(t, seed=0, stratify=T.LABEL)
    assert time.perf_counter() - start < 30
    assert abs(res.summary["achieved"]["train"] - 0.8) < 0.005


def test_errors():
    t = make_table(n_samples=10)
    with pytest.raises(OptionError) as info:
        split_table(t, "train=0.8,val")
    assert info.value.option == "ratio"
    with pytest.raises(OptionError) as info:
        split_table(t, stratify="labl")
    assert info.value.option == "stratify" and "did you mean 'label'" in info.value.message
    with pytest.raises(OptionError):
        split_table(t, "train=0,val=0")


def test_group_with_two_values_in_a_sample_is_an_error():
    t = T.from_columns({T.SAMPLE_ID: ["a", "a"], T.SOURCE: ["gt", "gt"], T.LABEL: ["x", "y"], "video": ["v1", "v2"]})
    with pytest.raises(Exception) as info:
        split_table(t, group="video", origin="t.parquet")
    assert "t.parquet: sample 'a' has more than one value in column 'video'" in str(info.value)


def test_streaming_equals_in_memory(tmp_path):
    t = make_table(n_samples=60, sources=("gt", "pred"))
    io.write_table(t, tmp_path / "in.parquet")
    mem = split_table(t, seed=5, stratify=T.LABEL, group="scene")
    res = split_files([tmp_path / "in.parquet"], tmp_path / "out.parquet", None, seed=5, stratify=T.LABEL,
                      group="scene", batch_rows=13)
    got = io.read_table(tmp_path / "out.parquet")
    assert got.column(T.SPLIT).to_pylist() == mem.table.column(T.SPLIT).to_pylist()
    assert res.summary == mem.summary


def test_cli_split(runner, small_path, tmp_path):
    out = tmp_path / "s.parquet"
    r = runner(["split", small_path, "--ratio", "train=0.7,val=0.3", "--stratify", "label", "--seed", "2", "-o", out])
    assert r.exit_code == 0, r.stderr
    assert r.stdout == "" and "split: train" in r.stderr
    assert set(io.read_table(out).column(T.SPLIT).to_pylist()) == {"train", "val"}
    r = runner(["split", small_path, "--json", "--group", "scene"])
    doc = json.loads(r.stdout)
    assert doc["groups"] == 8 and set(doc["achieved"]) == {"train", "val", "test"}
    r = runner(["split", small_path, "--ratio", "train=x"])
    assert r.exit_code == 2 and "error: --ratio: 'x' is not a number" in r.stderr
