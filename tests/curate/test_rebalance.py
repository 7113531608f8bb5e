"""rebalance: subsampling and weights toward uniform / sqrt / file targets; CLI."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from mlcycle import io
from mlcycle import table as T
from mlcycle.curate.rebalance import WEIGHT, rebalance_files, rebalance_table
from mlcycle.errors import MlcycleError, OptionError


def _skewed(n=2000, seed=0):
    rng = np.random.default_rng(seed)
    rows = {T.SAMPLE_ID: [], T.SOURCE: [], T.LABEL: []}
    for s in range(n):
        c = rng.choice(["a", "b", "c"], p=[0.85, 0.1, 0.05])
        for _ in range(rng.integers(1, 3)):
            rows[T.SAMPLE_ID].append(f"s{s}"); rows[T.SOURCE].append("gt"); rows[T.LABEL].append(str(c))
    return T.from_columns(rows)


def test_uniform_subsampling_reduces_imbalance_and_keeps_the_rarest():
    t = _skewed()
    res = rebalance_table(t, target="uniform", seed=1)
    s = res.summary
    assert s["imbalance_after"] < 1.2 < s["imbalance_before"]
    assert s["per_class"]["c"]["after"] == s["per_class"]["c"]["before"]
    for c in "abc":  # never below the target
        assert s["per_class"][c]["after"] >= s["per_class"]["c"]["before"]
    out = res.table
    assert len(set(out.column(T.SAMPLE_ID).to_pylist())) == s["samples_after"]
    # whole samples: a kept sample keeps all its rows
    before = {sid: n for sid, n in zip(*np.unique(t.column(T.SAMPLE_ID).to_pylist(), return_counts=True))}
    after = {sid: n for sid, n in zip(*np.unique(out.column(T.SAMPLE_ID).to_pylist(), return_counts=True))}
    assert all(before[k] == v for k, v in after.items())
    assert rebalance_table(t, target="uniform", seed=1).table.equals(out)  # reproducible


def test_sqrt_and_file_targets(tmp_path):
    t = _skewed()
    s = rebalance_table(t, target="sqrt").summary
    assert 1.2 < s["imbalance_after"] < s["imbalance_before"]
    p = tmp_path / "w.yaml"
    p.write_text("a: 2\nb: 1\nc: 1\n")
    s = rebalance_table(t, target=p).summary
    assert abs(s["per_class"]["a"]["share_after"] - 0.5) < 0.1


def test_weight_mode():
    t = _skewed()
    res = rebalance_table(t, target="uniform", mode="weight")
    out = res.table
    assert out.num_rows == t.num_rows and WEIGHT in out.column_names
    w = {}
    for sid, x in zip(out.column(T.SAMPLE_ID).to_pylist(), out.column(WEIGHT).to_pylist()):
        w.setdefault(sid, set()).add(x)
    assert all(len(v) == 1 for v in w.values())
    assert abs(np.mean([next(iter(v)) for v in w.values()]) - 1) < 1e-9
    shares = [v["share_after"] for v in res.summary["per_class"].values()]
    assert max(shares) - min(shares) < 0.05


def test_errors(tmp_path):
    t = _skewed(50)
    with pytest.raises(OptionError) as info:
        rebalance_table(t, target="cubic")
    assert info.value.option == "target"
    with pytest.raises(OptionError):
        rebalance_table(t, mode="bogus")
    p = tmp_path / "w.yaml"
    p.write_text("a: lots\n")
    with pytest.raises(MlcycleError) as info:
        rebalance_table(t, target=p)
    assert str(p) in info.value.message and "'a'" in info.value.message


def test_cli_rebalance(runner, tmp_path):
    src = tmp_path / "t.parquet"
    io.write_table(_skewed(300), src)
    out = tmp_path / "o.parquet"
    r = runner(["rebalance", src, "--target", "uniform", "--seed", "3", "-o", out])
    assert r.exit_code == 0, r.stderr
    assert r.stdout == "" and "rebalance (sample" in r.stderr
    mem = rebalance_table(io.read_table(src), target="uniform", seed=3).table
    assert io.read_table(out).num_rows == mem.num_rows
    r = runner(["rebalance", src, "--mode", "weight", "--json"])
    assert json.loads(r.stdout)["mode"] == "weight"
    r = runner(["rebalance", src, "--by", "lable"])
    assert r.exit_code == 2 and "--by" in r.stderr and "did you mean 'label'" in r.stderr
