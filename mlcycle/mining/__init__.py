"""Hard-example mining: evaluated labels -> a ranked work list of likely mistakes and failures.

``mine(table, ...)`` turns the output of ``mlcycle evaluate`` (ground truth and
prediction rows with ``eval``/``eval_id``/``eval_iou``) into a ranked work list: every
label that looks like an annotation mistake or a model failure gets a ``hard_score`` in
[0, 1] (higher = more worth a look) and a ``hard_reason``; the result holds the flagged
rows *and* the other labels of the same samples (an annotator needs the context),
ordered by score. With ``pool=``, the result is instead the samples of an unlabeled pool
most similar to the failures. docs/mine-hard.md states every rule and formula.

One concept per module:

==============  =====================================================================
``reasons``     the reasons and the rules (TIDE-style) that score each label
``objectlab``   cleanlab's ObjectLab scores, reproduced exactly and vectorised
``frame``       the evaluated table as numpy arrays; pairs of rows of one sample
``ranking``     eligibility, sample scores, selection, output order, the summary
``pool``        similar-sample search over an unlabeled pool (streamed via io.scan)
``options``     the options, checked when made
==============  =====================================================================

Library code: never prints, knows nothing of the command line.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Sequence

from mlcycle.mining.objectlab import ObjectLabScores, score_objectlab
from mlcycle.mining.options import AGGREGATES, METHODS, PER, MineOptions, PoolOptions
from mlcycle.mining.pool import knn_search, normalize_rows, search_pool
from mlcycle.mining.ranking import Ranking, aggregate, rank
from mlcycle.mining.reasons import (
    BACKGROUND, CLASS_CONFUSION, DUPLICATE, LOCALIZATION, LOW_CONFIDENCE, MISSED,
    POSSIBLE_MISSING, POSSIBLE_SPURIOUS, POSSIBLE_WRONG_LABEL, REASONS, SIMILAR_TO_FAILURE,
    score_rules,
)

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

    from mlcycle.io import TableScan
    from mlcycle.results import Result

__all__ = [
    "mine", "MineOptions", "PoolOptions", "Ranking", "rank", "search_pool", "knn_search",
    "normalize_rows", "aggregate", "score_rules", "score_objectlab", "ObjectLabScores",
    "REASONS", "METHODS", "PER", "AGGREGATES", "SIMILAR_TO_FAILURE",
    "POSSIBLE_MISSING", "POSSIBLE_WRONG_LABEL", "CLASS_CONFUSION", "LOCALIZATION", "DUPLICATE",
    "BACKGROUND", "MISSED", "POSSIBLE_SPURIOUS", "LOW_CONFIDENCE",
]


def mine(
    table: "pa.Table",
    *,
    method: str = "rules",
    per: str = "label",
    top: "int | str | None" = "auto",
    min_score: float | None = None,
    reasons: Sequence[str] | None = None,
    source: str | None = None,
    iou: float = 0.5,
    low_iou: float = 0.1,
    conf_missing: float = 0.8,
    conf_wrong: float = 0.8,
    conf_spurious: float = 0.95,
    conf_low: float = 0.3,
    model_weight: float = 0.5,
    miss_weight: float = 0.25,
    aggregate: str = "max",
    context: bool = True,
    origin: str = "<table>",
    pool: "str | os.PathLike | pa.Table | TableScan | None" = None,
    embedding: str | None = None,
    k: int = 100,
    failures: int | None = None,
    dup_threshold: float = 0.95,
) -> "Result":
    """Rank the labels of an evaluated table that are worth a human look.

    ``top``: how many labels (samples with ``per="sample"``) to keep, best first;
    ``"auto"`` (default) keeps the best 5% of the ground-truth labels (of the samples), at
    least 10, unless ``min_score`` is given (then every label scoring at least that);
    None keeps every flagged label. ``.summary["cutoff"]`` says which rule applied.

    Returns a ``Result``: ``.table`` is the flagged labels with the other labels of their
    samples (``hard_score``, ``hard_reason``, ``hard_sample_score``), best first;
    ``.summary`` the document ``mine-hard --json`` prints; ``.warnings`` what was noted.
    ``origin`` names the table in messages.

    With ``pool`` (a path, an ``io.scan`` or a table) and ``embedding`` (the column of
    each sample's embedding), ``.table`` is instead the ``k`` pool samples most like the
    selected failures (the top ``failures`` of them, default all) and
    ``.summary["pool"]`` describes the search. Raises ``OptionError`` for a bad option,
    ``MlcycleError`` for a table that cannot be mined.
    """
    from mlcycle import reporting
    from mlcycle.errors import OptionError
    from mlcycle.results import Result

    options = MineOptions(
        method=method, per=per, top=top, min_score=min_score, reasons=reasons, source=source,
        iou=iou, low_iou=low_iou, conf_missing=conf_missing, conf_wrong=conf_wrong,
        conf_spurious=conf_spurious, conf_low=conf_low, model_weight=model_weight,
        miss_weight=miss_weight, aggregate=aggregate, context=context, origin=origin,
    )
    pool_options = None
    if pool is not None:
        if embedding is None:
            raise OptionError("embedding", "a pool search needs the name of the embedding column")
        pool_options = PoolOptions(embedding=embedding, k=k, failures=failures, dup_threshold=dup_threshold)
    elif embedding is not None:
        raise OptionError("embedding", "an embedding column is only used to search a pool")
    with reporting.collect() as seen:
        ranking = rank(table, options)
        out, summary = ranking.table, dict(ranking.summary)
        if pool_options is not None:
            out, summary["pool"] = search_pool(ranking.selected_samples, table, pool, pool_options)
    return Result(out, summary, tuple(seen.warnings))
