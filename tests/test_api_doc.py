"""docs/api.md is a working notebook: every ```python block runs as it is, in order,
against the sample dataset (the front door's test as a user meets it)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parent.parent / "docs" / "api.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i + 1}" for i in range(len(BLOCKS))])
def test_api_doc_block_runs(code, capsys):
    exec(compile(code, str(DOC), "exec"), {"__name__": "__api_doc__"})


def test_api_doc_has_the_session():
    assert len(BLOCKS) >= 4
    assert "mlcycle.evaluate(" in BLOCKS[0] and "mlcycle.mine(" in BLOCKS[0]


def test_results_have_one_shape_and_options_are_not_mutated():
    import mlcycle
    from mlcycle.evaluation import Options

    sample = mlcycle.sample_dataset()
    gt = mlcycle.ingest(sample / "annotations" / "instances_val.json", "coco")
    preds = mlcycle.ingest(sample / "predictions" / "detections_val.json", "coco-results",
                           images=sample / "annotations" / "instances_val.json")
    both = mlcycle.concat([gt, preds])
    results = [mlcycle.evaluate(both), mlcycle.describe(gt), mlcycle.check(gt, sample / "schema.yaml")]
    results.append(mlcycle.mine(results[0].table))
    for r in results:
        assert isinstance(r, mlcycle.Result)
        assert isinstance(r.summary, dict) and isinstance(r.warnings, tuple)
    with pytest.raises(Exception):
        Options().iou = 0.7  # frozen
    with pytest.raises(mlcycle.OptionError) as exc:
        mlcycle.evaluate(both, iou=2.0)
    assert exc.value.option == "iou" and "--" not in exc.value.message
