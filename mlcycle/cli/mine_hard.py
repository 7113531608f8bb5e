"""mlcycle mine-hard: evaluated labels -> a ranked work list of likely mistakes and failures."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from mlcycle.cli.common import Format, Json, NoColor, Output, Quiet, Tables, Verbose, command, setup

_REASONS = (
    "possible_missing, possible_wrong_label, class_confusion, localization, duplicate, "
    "background, missed, possible_spurious, low_confidence"
)


@command(
    "mine-hard",
    examples=[
        "mlcycle evaluate gt.parquet preds.parquet | mlcycle mine-hard --top 50 | mlcycle export cvat -o recheck.xml",
        "mlcycle mine-hard evaluated.parquet --per sample --reasons possible_missing,possible_wrong_label --json",
        "mlcycle mine-hard evaluated.parquet --pool unlabeled.parquet --embedding embedding --k 200 -o to_label.parquet",
    ],
)
def mine_hard(
    tables: Tables = None,
    per: Annotated[str, typer.Option("--per", metavar="label|sample", help="Rank labels or samples.")] = "label",
    top: Annotated[Optional[int], typer.Option("--top", metavar="N", help="Keep the N highest-scoring labels (or samples with --per sample) [default: the best 5% of the ground-truth labels (of the samples), at least 10, unless --min-score is given].")] = None,
    min_score: Annotated[Optional[float], typer.Option("--min-score", metavar="X", help="Keep only scores >= X (0..1); without --top, every label scoring X or more (--min-score 0: every flagged label).")] = None,
    reasons: Annotated[Optional[str], typer.Option("--reasons", metavar="R1,R2", help=f"Only these reasons: {_REASONS}.")] = None,
    method: Annotated[str, typer.Option("--method", metavar="rules|objectlab", help="rules (the documented reasons) or objectlab (cleanlab's ObjectLab label-quality scores).")] = "rules",
    source: Annotated[Optional[str], typer.Option("--source", metavar="NAME", help="Prediction source to compare with gt [default: the only one].")] = None,
    iou: Annotated[float, typer.Option("--iou", metavar="T", help="IoU at which boxes are the same object (use evaluate's --iou).")] = 0.5,
    low_iou: Annotated[float, typer.Option("--low-iou", metavar="T", help="Below this IoU boxes do not overlap: low bound of localization, bound of background/possible_missing.")] = 0.1,
    conf_missing: Annotated[float, typer.Option("--conf-missing", metavar="S", help="Min score of an unmatched prediction on no ground truth to be possible_missing (else background).")] = 0.8,
    conf_wrong: Annotated[float, typer.Option("--conf-wrong", metavar="S", help="Min score of an other-class prediction to be possible_wrong_label (else class_confusion).")] = 0.8,
    conf_spurious: Annotated[float, typer.Option("--conf-spurious", metavar="S", help="Missed ground truth is possible_spurious when 1 - (best nearby score) >= S.")] = 0.95,
    conf_low: Annotated[float, typer.Option("--conf-low", metavar="S", help="Matched predictions below this score are low_confidence (0 turns it off).")] = 0.3,
    model_weight: Annotated[float, typer.Option("--model-weight", metavar="W", help="Factor on the scores of reasons that point at the model, not the labels.")] = 0.5,
    miss_weight: Annotated[float, typer.Option("--miss-weight", metavar="W", help="Factor on the scores of missed and possible_spurious ground truth.")] = 0.25,
    aggregate: Annotated[str, typer.Option("--aggregate", metavar="max|noisy-or", help="How label scores make a sample's score.")] = "max",
    no_context: Annotated[bool, typer.Option("--no-context", help="Write only the flagged rows, not the other labels of their samples.")] = False,
    pool: Annotated[Optional[str], typer.Option("--pool", metavar="TABLE", help="Unlabeled pool: output its samples most similar to the failures instead.")] = None,
    embedding: Annotated[Optional[str], typer.Option("--embedding", metavar="COLUMN", help="Column holding each sample's embedding (list of floats).")] = None,
    k: Annotated[int, typer.Option("--k", metavar="N", help="How many pool samples to choose.")] = 100,
    failures: Annotated[Optional[int], typer.Option("--failures", metavar="N", help="Use the N top failure samples for the pool search [default: all selected].")] = None,
    dup_threshold: Annotated[float, typer.Option("--dup-threshold", metavar="C", help="Cosine above which two samples are near-duplicates (dropped from the pool choice).")] = 0.95,
    json_out: Json = False,
    output: Output = None,
    encoding: Format = None,
    quiet: Quiet = False,
    verbose: Verbose = False,
    no_color: NoColor = False,
) -> None:
    """Rank the labels worth a human look: likely annotation mistakes, confusions, bad boxes.

    Reads the output of mlcycle evaluate (eval, eval_id, eval_iou columns) and writes the
    flagged labels together with the other labels of their samples, with hard_score
    (0..1, higher = more worth a look), hard_reason and hard_sample_score, ordered by
    score: ready for mlcycle export. Without --top or --min-score it keeps the best 5%
    of the ground-truth labels (--per sample: of the samples), at least 10, and says so. A summary goes to stderr; --json prints it on
    standard output instead of the table. With --pool, the output is the pool samples
    most similar to the failures (hard_reason similar_to_failure, hard_match = the
    failure). Rules and formulas: docs/mine-hard.md.
    """
    from mlcycle import io, mining
    from mlcycle.cli.common import UsageError
    from mlcycle.cli.views.mine_hard import show_summary

    setup(quiet, verbose, no_color)
    wanted = None
    if reasons is not None:
        wanted = [r.strip() for r in reasons.split(",") if r.strip()]
        if not wanted:
            raise UsageError("--reasons: give at least one reason", hint=f"choose from {_REASONS}")
    if pool is not None and embedding is None:
        raise UsageError("--pool needs --embedding COLUMN", hint="name the column that holds each sample's embedding")
    if embedding is not None and pool is None:
        raise UsageError("--embedding needs --pool TABLE")
    paths = list(tables or [])
    if pool == "-" and (not paths or "-" in paths):
        raise UsageError("--pool -: standard input is already the evaluated table", hint="pass the evaluated table as a file")
    origin = io.display_name(paths[0]) if len(paths) == 1 else ("<inputs>" if paths else "<stdin>")
    params = dict(
        method=method, per=per, top="auto" if top is None else top, min_score=min_score, reasons=wanted, source=source,
        iou=iou, low_iou=low_iou, conf_missing=conf_missing, conf_wrong=conf_wrong,
        conf_spurious=conf_spurious, conf_low=conf_low, model_weight=model_weight, miss_weight=miss_weight,
        aggregate=aggregate, context=not no_context, origin=origin,
    )
    pool_params = {}
    if pool is not None:
        pool_params = dict(pool=pool, embedding=embedding, k=k, failures=failures, dup_threshold=dup_threshold)
    # options are checked before anything is read
    mining.MineOptions(**params)
    if pool is not None:
        mining.PoolOptions(embedding=embedding, k=k, failures=failures, dup_threshold=dup_threshold)
    if not json_out:
        io.check_binary_to_terminal(output, io.output_encoding(output, encoding))
    result = mining.mine(io.read_tables(paths), **params, **pool_params)
    if json_out:
        with io.atomic_output(output, "wb") as fh:
            fh.write(result.to_json())
    else:
        io.write_table(result.table, output, encoding)
    show_summary(result.summary)
